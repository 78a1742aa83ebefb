"""The eps-Net admission filter: keep only proposals that are far from everything already known.

Greedy farthest-first, as in the paper: reference = memory + this round's explored candidates; drop
proposals whose minimum L2 distance to the reference is <= eps; admit the farthest of the rest, add it
to the reference, repeat. This also de-duplicates proposals among themselves. eps = 0 disables the
filter (everything is admitted, in proposal order).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class Admission:
    """One proposal's fate: its index in the proposal list, and its min distance when decided."""

    index: int
    distance: float
    admitted: bool


def min_distances(points: np.ndarray, reference: np.ndarray, *,
                  reference_sq_norms: np.ndarray | None = None) -> np.ndarray:
    """For each row of `points`, the smallest L2 distance to a row of `reference` (inf if empty).

    `reference_sq_norms`, if given, must be `(reference**2).sum(1)` (e.g. `ReferenceEmbeddings.sq_norms`):
    passing it saves a pass over a large reference and changes no result.
    """
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if reference is None or len(reference) == 0:
        return np.full(len(points), np.inf)
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    ref_sq = (reference**2).sum(1) if reference_sq_norms is None else reference_sq_norms
    # ||a-b||^2 = |a|^2 + |b|^2 - 2ab, clamped at 0 against rounding. Clamping and sqrt are monotone,
    # so taking the row minimum first gives the same numbers with one sqrt per point.
    sq = (points**2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * points @ reference.T
    return np.sqrt(np.maximum(sq.min(axis=1), 0.0))


def epsnet_filter(proposals: np.ndarray, reference: np.ndarray, eps: float, *,
                  reference_sq_norms: np.ndarray | None = None) -> list[Admission]:
    """Decide every proposal; admitted ones come first, in admission order, then the rejected.

    A rejected proposal's distance is its min distance to the final reference set (which is why it
    was rejected: <= eps). `reference_sq_norms` as in `min_distances`.
    """
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    proposals = np.atleast_2d(np.asarray(proposals, dtype=np.float64)) if len(proposals) else np.zeros((0, 0))
    n = len(proposals)
    dist = min_distances(proposals, reference, reference_sq_norms=reference_sq_norms) if n else np.zeros(0)
    if eps == 0:
        return [Admission(i, float(dist[i]), True) for i in range(n)]

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


class Embedded(Protocol):
    """Anything with an embedding vector (a `Candidate`)."""

    @property
    def embedding(self) -> np.ndarray | None: ...


class ReferenceEmbeddings:
    """An append-only stack of embedding vectors with their squared norms, kept across iterations.

    The loop's reference set only grows, so stacking it afresh every iteration (and summing its
    norms) is wasted work. A vector is keyed by the identity of its array (a candidate keeps its
    array when it gains rollouts) and a candidate by its own identity, which spares a large
    reference a pass over its candidates' attributes; everything keyed is held here, so no id() is
    reused while keyed. Embeddings are taken as immutable. A derived cache, rebuilt from the candidates.
    """

    def __init__(self) -> None:
        self._buf = np.zeros((0, 0))
        self._sq = np.zeros(0)
        self._count = 0
        self._row_of: dict[int, int] = {}       # id(array) -> its row
        self._arrays: list[np.ndarray] = []     # every keyed array, by row
        self._holder_row: dict[int, int] = {}   # id(candidate) -> the row of its embedding
        self._holders: list[Embedded] = []      # every keyed candidate

    @classmethod
    def of(cls, embeddings: Sequence[np.ndarray]) -> "ReferenceEmbeddings":
        store = cls()
        store.add(embeddings)
        return store

    def __len__(self) -> int:
        return self._count

    @property
    def matrix(self) -> np.ndarray:
        """Every stored vector, one row each (a read-only view)."""
        view = self._buf[:self._count]
        view.flags.writeable = False
        return view

    @property
    def sq_norms(self) -> np.ndarray:
        """`(matrix**2).sum(1)`, computed once per row."""
        view = self._sq[:self._count]
        view.flags.writeable = False
        return view

    def add(self, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """The rows of these 1-d vectors, storing the ones not stored yet."""
        fresh: dict[int, np.ndarray] = {}
        for e in embeddings:
            if id(e) not in self._row_of:
                fresh.setdefault(id(e), e)
        if fresh:
            self._append(list(fresh.items()))
        return np.fromiter(map(self._row_of.__getitem__, map(id, embeddings)), dtype=np.int64,
                           count=len(embeddings))

    def probe(self, holders: Sequence[Embedded]) -> np.ndarray:
        """Each candidate's row, -1 for one not keyed yet (whose embedding may still be missing)."""
        return np.fromiter(map(self._holder_row.get, map(id, holders), repeat(-1)), dtype=np.int64,
                           count=len(holders))

    def stacked_for(self, holders: Sequence[Embedded], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(matrix, squared norms) of exactly these candidates' embeddings, any row order.

        `rows` is `probe(holders)`; every holder must have an embedding by now. Row order does not
        matter to min distances; the whole store is returned without a copy when it holds exactly
        these vectors (the loop's case), else their rows are gathered.
        """
        unseen = np.flatnonzero(rows < 0).tolist()
        if unseen:
            arrays = [holders[i].embedding for i in unseen]
            if any(e is None for e in arrays):
                raise ValueError("every reference candidate needs an embedding before it is stacked")
            rows = rows.copy()
            rows[unseen] = self.add(arrays)
            for i in unseen:
                self._holder_row[id(holders[i])] = int(rows[i])
                self._holders.append(holders[i])
            if len(self._holders) > 2 * len(holders) + 64:
                # Keyed candidates replaced by newer versions pile up: keep only the current ones.
                self._holders = list(holders)
                self._holder_row = dict(zip(map(id, holders), rows.tolist()))
        if len(rows) == self._count and np.bincount(rows, minlength=self._count).all():
            return self.matrix, self.sq_norms
        return self._buf[rows], self._sq[rows]

    def _append(self, items: list[tuple[int, np.ndarray]]) -> None:
        block = np.asarray(np.stack([e for _, e in items]), dtype=np.float64)
        if block.ndim != 2 or (self._count and block.shape[1] != self._buf.shape[1]):
            dims = sorted({np.shape(e) for _, e in items} | ({self._buf.shape[1:]} if self._count else set()))
            raise ValueError(f"embeddings must be 1-d vectors of one length, got shapes {dims}")
        end = self._count + len(block)
        if end > len(self._buf) or block.shape[1] != self._buf.shape[1]:
            # Capacity doubles, so appending one iteration's candidates copies the store rarely.
            buf = np.empty((max(end, 2 * len(self._buf), 64), block.shape[1]))
            sq = np.empty(len(buf))
            if self._count:
                buf[:self._count], sq[:self._count] = self._buf[:self._count], self._sq[:self._count]
            self._buf, self._sq = buf, sq
        self._buf[self._count:end] = block
        self._sq[self._count:end] = (block**2).sum(1)  # row by row, as min_distances sums them
        for row, (key, e) in enumerate(items, start=self._count):
            self._row_of[key] = row
            self._arrays.append(e)
        self._count = end


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
