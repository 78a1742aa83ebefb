"""The priority queue of candidates (POLCA's memory) and the priority rules.

Memory is an immutable mapping id -> Candidate. Priorities are computed when candidates are popped,
not frozen at push time, so a UCB bonus always uses the current iteration count.

Tie rule (documented, tested): equal priority -> the newer candidate first (larger `step_created`,
then larger `id`), as in the paper's experiment code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from .types import Candidate

ScoreRange = tuple[float, float]


@runtime_checkable
class PriorityRule(Protocol):
    """Maps a candidate at iteration t to its exploration priority (higher is explored first)."""

    @property
    def name(self) -> str: ...

    def __call__(self, candidate: Candidate, t: int) -> float: ...


def _check_range(score_range: ScoreRange | None, *, required: bool, rule: str) -> ScoreRange | None:
    if score_range is None:
        if required:
            raise ValueError(
                f"score_range is required for the {rule!r} priority: pass finite (min, max) bounds, "
                f"e.g. score_range=(0.0, 1.0); without them the exploration bonus is infinite"
            )
        return None
    lo, hi = (float(score_range[0]), float(score_range[1]))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        if required:
            raise ValueError(f"score_range must be finite for the {rule!r} priority, got {score_range!r}")
        return None
    if not lo < hi:
        raise ValueError(f"score_range must satisfy min < max, got {score_range!r}")
    return lo, hi


@dataclass(frozen=True)
class MeanPriority:
    """The paper's default: the empirical mean of all rollouts.

    An unevaluated candidate gets the top of the score range (+inf when no finite range is given), so
    a fresh seed or proposal is explored before anything already measured.
    """

    score_range: ScoreRange | None = None
    name: str = field(default="mean", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "score_range", _check_range(self.score_range, required=False, rule="mean"))

    def __call__(self, candidate: Candidate, t: int) -> float:
        mean = candidate.mean
        if mean is None:
            return self.score_range[1] if self.score_range else math.inf
        return mean


@dataclass(frozen=True)
class UCBPriority:
    """UCB = clip(mean + c * sqrt(ln(t + 1) / n) * (max - min), min, max); unevaluated -> max.

    Requires a finite score range (Theorem 1's bounded rewards).
    """

    score_range: ScoreRange | None = None
    c: float = 1.0
    name: str = field(default="ucb", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "score_range", _check_range(self.score_range, required=True, rule="ucb"))
        if not (self.c >= 0 and math.isfinite(self.c)):
            raise ValueError(f"ucb c (exploration constant) must be a finite number >= 0, got {self.c!r}")

    def __call__(self, candidate: Candidate, t: int) -> float:
        lo, hi = self.score_range  # type: ignore[misc]
        mean = candidate.mean
        if mean is None:
            return hi
        bonus = self.c * math.sqrt(math.log(t + 1) / candidate.n) * (hi - lo)
        return min(max(mean + bonus, lo), hi)


@dataclass(frozen=True)
class NewestFirst:
    """Always explore the latest candidate: with K=1 and no eps-Net this is sequential updating."""

    name: str = field(default="newest", init=False)

    def __call__(self, candidate: Candidate, t: int) -> float:
        return float(candidate.id)


@dataclass(frozen=True)
class OldestFirst:
    """Always explore the seed program: with K=1 this is best-of-N sampling from the seed."""

    name: str = field(default="oldest", init=False)

    def __call__(self, candidate: Candidate, t: int) -> float:
        return -float(candidate.id)


PRIORITY_NAMES = ("mean", "ucb", "newest", "oldest")


def make_priority(
    rule: str | PriorityRule, score_range: ScoreRange | None = None, ucb_c: float = 1.0
) -> PriorityRule:
    """String-or-object: a name from PRIORITY_NAMES builds a built-in rule; an object is used as is."""
    if isinstance(rule, str):
        if rule == "mean":
            return MeanPriority(score_range)
        if rule == "ucb":
            return UCBPriority(score_range, ucb_c)
        if rule == "newest":
            return NewestFirst()
        if rule == "oldest":
            return OldestFirst()
    if isinstance(rule, str) or not callable(rule):
        raise ValueError(f"priority must be one of {PRIORITY_NAMES} or a PriorityRule object, got {rule!r}")
    return rule


@dataclass(frozen=True)
class Memory:
    """All candidates kept by the search, keyed by id. Use the functions below to change it."""

    candidates: Mapping[int, Candidate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", MappingProxyType(dict(self.candidates)))

    def __len__(self) -> int:
        return len(self.candidates)

    def __iter__(self):
        return iter(self.candidates.values())

    def __contains__(self, candidate_id: object) -> bool:
        return candidate_id in self.candidates


def _order_key(priority: PriorityRule, t: int) -> Callable[[Candidate], tuple[float, int, int]]:
    return lambda c: (priority(c, t), c.step_created, c.id)


def ranked(memory: Memory | Iterable[Candidate], priority: PriorityRule, t: int) -> list[Candidate]:
    """Candidates from highest to lowest priority at iteration t (ties: newer first)."""
    return sorted(memory, key=_order_key(priority, t), reverse=True)


def push(memory: Memory, candidates: Iterable[Candidate]) -> Memory:
    """Memory with `candidates` added or replaced (by id)."""
    merged = dict(memory.candidates)
    for c in candidates:
        merged[c.id] = c
    return Memory(merged)


def pop_top_k(memory: Memory, k: int, priority: PriorityRule, t: int) -> tuple[list[Candidate], Memory]:
    """The k highest-priority candidates (fewer if memory is smaller) and the memory without them."""
    if k < 1:
        raise ValueError(f"num_candidates (K) must be >= 1, got {k}")
    top = ranked(memory, priority, t)[:k]
    rest = {cid: c for cid, c in memory.candidates.items() if cid not in {c.id for c in top}}
    return top, Memory(rest)


def best_by_mean(candidates: Memory | Sequence[Candidate]) -> Candidate | None:
    """The candidate with the highest empirical mean (unevaluated counts as -inf; ties: newer first)."""
    pool = list(candidates)
    if not pool:
        return None
    return max(pool, key=lambda c: (c.mean if c.mean is not None else -math.inf, c.step_created, c.id))
