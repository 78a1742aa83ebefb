"""How the loop draws data and evidence: epoch-wise minibatches and the summarizer's candidate samplers.

Both are plain data plus pure functions of (state, Generator), so a checkpoint stores them and a
resumed run draws exactly what an uninterrupted one would.

- `EpochSampler` walks a shuffled permutation of the dataset, as Trace's data loader does in the
  paper's code: every example is used once before any repeats; a batch that runs past the end of an
  epoch continues into a fresh shuffle (so a set of 3 examples can still serve a batch of 5).
- `sample_summary_candidates` implements the two published summarizer samplers (polca-method.md §2.4):
  "incremental" (public OpenTrace, the default): up to 5 random candidates with >= 1 rollout that were
  never summarized before (by id); "experiment" (the paper-era code): up to 20 random candidates with
  a rollout, seen or not, each summary made afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from .types import Candidate, Example

SummarySampler = Literal["incremental", "experiment"]
SUMMARY_SAMPLERS: tuple[str, ...] = ("incremental", "experiment")
SUMMARY_MAX_CANDIDATES: dict[str, int] = {"incremental": 5, "experiment": 20}
"""Each sampler's published sample size (hard-coded 5 in OpenTrace; 20 in the experiment code)."""


@dataclass(frozen=True)
class EpochSampler:
    """Position in the current shuffled pass over a dataset (`order` empty before the first draw)."""

    order: tuple[int, ...] = ()
    position: int = 0
    epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"order": list(self.order), "position": self.position, "epoch": self.epoch}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpochSampler":
        return cls(tuple(int(i) for i in d["order"]), int(d["position"]), int(d["epoch"]))


def next_batch(
    sampler: EpochSampler, dataset: Sequence[Example], size: int, rng: np.random.Generator
) -> tuple[list[Example], EpochSampler]:
    """The next `size` examples of the epoch walk and the advanced sampler.

    A new permutation is drawn from `rng` whenever the current one is used up, also in mid-batch.
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty: cannot draw a minibatch")
    order, position, epoch = sampler.order, sampler.position, sampler.epoch
    if order and len(order) != len(dataset):
        raise ValueError(f"sampler walks a dataset of {len(order)} examples, got one of {len(dataset)}")
    picked: list[int] = []
    while len(picked) < size:
        if position >= len(order):
            order, position, epoch = tuple(int(i) for i in rng.permutation(len(dataset))), 0, epoch + 1
        take = min(size - len(picked), len(order) - position)
        picked.extend(order[position:position + take])
        position += take
    return [dataset[i] for i in picked], EpochSampler(order, position, epoch)


def distinct_evaluated(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Candidates with at least one rollout, one per id (the copy with most rollouts), sorted by id."""
    by_id: dict[int, Candidate] = {}
    for candidate in candidates:
        kept = by_id.get(candidate.id)
        if candidate.rollouts and (kept is None or candidate.n > kept.n):
            by_id[candidate.id] = candidate
    return [by_id[i] for i in sorted(by_id)]


def sample_summary_candidates(
    candidates: Iterable[Candidate],
    summarized_ids: frozenset[int],
    rng: np.random.Generator,
    *,
    sampler: SummarySampler = "incremental",
    max_candidates: int | None = None,
) -> list[Candidate]:
    """The candidates one summary shows, sorted by id (duplicates by id keep the most rollouts).

    "incremental" skips ids in `summarized_ids`; "experiment" ignores it. Both keep only candidates
    with at least one rollout and sample `max_candidates` (default: the sampler's published size)
    uniformly without replacement from `rng`.
    """
    if sampler not in SUMMARY_SAMPLERS:
        raise ValueError(f"summary sampler must be one of {SUMMARY_SAMPLERS}, got {sampler!r}")
    limit = SUMMARY_MAX_CANDIDATES[sampler] if max_candidates is None else max_candidates
    if limit < 1:
        raise ValueError(f"max_candidates must be >= 1, got {limit!r}")
    pool = [c for c in distinct_evaluated(candidates) if sampler == "experiment" or c.id not in summarized_ids]
    if len(pool) <= limit:
        return pool
    chosen = rng.choice(len(pool), size=limit, replace=False)
    return [pool[int(i)] for i in sorted(chosen)]
