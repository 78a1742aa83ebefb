"""The eps-Net admission filter: keep only proposals that are far from everything already known.

Greedy farthest-first, as in the paper: reference = memory + this round's explored candidates; drop
proposals whose minimum L2 distance to the reference is <= eps; admit the farthest of the rest, add it
to the reference, repeat. This also de-duplicates proposals among themselves. eps = 0 disables the
filter (everything is admitted, in proposal order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Admission:
    """One proposal's fate: its index in the proposal list, and its min distance when decided."""

    index: int
    distance: float
    admitted: bool


def min_distances(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each row of `points`, the smallest L2 distance to a row of `reference` (inf if empty)."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if reference is None or len(reference) == 0:
        return np.full(len(points), np.inf)
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    # ||a-b||^2 = |a|^2 + |b|^2 - 2ab, clamped at 0 against rounding.
    sq = (points**2).sum(1)[:, None] + (reference**2).sum(1)[None, :] - 2.0 * points @ reference.T
    return np.sqrt(np.maximum(sq, 0.0)).min(axis=1)


def epsnet_filter(proposals: np.ndarray, reference: np.ndarray, eps: float) -> list[Admission]:
    """Decide every proposal; admitted ones come first, in admission order, then the rejected.

    A rejected proposal's distance is its min distance to the final reference set (which is why it
    was rejected: <= eps).
    """
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    proposals = np.atleast_2d(np.asarray(proposals, dtype=np.float64)) if len(proposals) else np.zeros((0, 0))
    n = len(proposals)
    if eps == 0:
        dist = min_distances(proposals, reference) if n else np.zeros(0)
        return [Admission(i, float(dist[i]), True) for i in range(n)]

    dist = min_distances(proposals, reference) if n else np.zeros(0)
    pending = list(range(n))
    decided: list[Admission] = []
    while pending:
        alive = [i for i in pending if dist[i] > eps]
        if not alive:
            break
        # Farthest first; ties by proposal order so the outcome is deterministic.
        pick = max(alive, key=lambda i: (dist[i], -i))
        decided.append(Admission(pick, float(dist[pick]), True))
        pending.remove(pick)
        if pending:
            d_new = min_distances(proposals[pending], proposals[pick][None, :])
            for j, i in enumerate(pending):
                dist[i] = min(dist[i], d_new[j])
    decided.extend(Admission(i, float(dist[i]), False) for i in pending)
    return decided


@dataclass(frozen=True)
class EpsNetReport:
    """What the eps-Net did in one run: eps is only meaningful per embedder, so the embedder is named.

    `distances` are the proposals' min distances to the reference when decided (finite ones only:
    a run without an embedder measures none).
    """

    eps: float
    embedder: str | None
    proposals: int
    admitted: int
    rejected: int
    distances: tuple[float, ...]

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.proposals if self.proposals else float("nan")

    def distance_quantiles(self, qs: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)) -> dict[float, float]:
        if not self.distances:
            return {}
        return {q: float(v) for q, v in zip(qs, np.quantile(np.asarray(self.distances), qs))}

    def __str__(self) -> str:
        head = (f"eps-Net (eps={self.eps:g}, embedder={self.embedder or 'none'}): {self.rejected}/{self.proposals} "
                f"proposals rejected ({self.rejection_rate:.0%})" if self.proposals else
                f"eps-Net (eps={self.eps:g}, embedder={self.embedder or 'none'}): no proposals")
        q = self.distance_quantiles((0.1, 0.5, 0.9))
        if q:
            head += (f"; proposal distances min {min(self.distances):.3f}, p10 {q[0.1]:.3f}, median {q[0.5]:.3f}, "
                     f"p90 {q[0.9]:.3f}, max {max(self.distances):.3f}")
        return head


def epsnet_report(events, eps: float, embedder: str | None) -> EpsNetReport:
    """Summarise the admission/rejection events of a run log."""
    decided = [e for e in events if e.get("type") in ("admission", "rejection")]
    distances = tuple(float(e["distance"]) for e in decided if e.get("distance") is not None)
    rejected = sum(1 for e in decided if e["type"] == "rejection")
    return EpsNetReport(float(eps), embedder, len(decided), len(decided) - rejected, rejected, distances)


def suggest_eps(distances, target_rejection: float = 0.2) -> float:
    """An eps that would have rejected about `target_rejection` of the observed proposal distances.

    The paper's eps = 0.1 / 0.02 were set for Gemini embeddings; distances from another embedder live
    on another scale, so pick eps from what that embedder measures (the `target_rejection` quantile).
    """
    if not 0.0 < target_rejection < 1.0:
        raise ValueError(f"target_rejection must be in (0, 1), got {target_rejection!r}")
    d = np.asarray([x for x in distances if np.isfinite(x)], dtype=np.float64)
    if d.size == 0:
        raise ValueError("no finite proposal distances to suggest eps from: run with an embedder first")
    return float(np.quantile(d, target_rejection))
