"""The priority queue of candidates (POLCA's memory) and the priority rules.

Memory is an immutable mapping id -> Candidate. Priorities are computed when candidates are popped,
not frozen at push time, so a UCB bonus always uses the current iteration count.

Tie rule (documented, tested): equal priority -> the newer candidate first (larger `step_created`,
then larger `id`), as in the paper's experiment code.

The built-in rules are also computed over whole columns of the memory (`_Columns`, carried by
`pop_top_k` and `push` from one memory to the next) and give exactly what calling them per candidate
gives; any other rule object is called per candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

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
class _Columns:
    """What the built-in priority rules read, one row per candidate in the memory's order.

    Derived from the candidates (never persisted); `means` holds `Candidate.mean` itself (0.0 where
    `counts` is 0), so column arithmetic repeats the per-candidate arithmetic exactly.
    """

    ids: np.ndarray      # int64
    steps: np.ndarray    # int64, step_created
    counts: np.ndarray   # int64, n
    means: np.ndarray    # float64

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> "_Columns":
        n = len(candidates)
        return cls(np.fromiter((c.id for c in candidates), np.int64, n),
                   np.fromiter((c.step_created for c in candidates), np.int64, n),
                   np.fromiter((c.n for c in candidates), np.int64, n),
                   np.fromiter((0.0 if c.mean is None else c.mean for c in candidates), np.float64, n))

    def without(self, rows: np.ndarray) -> "_Columns":
        return _Columns(*(np.delete(a, rows) for a in (self.ids, self.steps, self.counts, self.means)))

    def merged(self, candidates: Mapping[int, Candidate], replaced: Iterable[int], added: Sequence[int]) -> "_Columns":
        """These columns with the `replaced` ids' rows refreshed and `added` ids appended, from `candidates`."""
        ids, steps, counts, means = (a.copy() for a in (self.ids, self.steps, self.counts, self.means))
        replaced = list(replaced)
        if replaced:
            for row in np.flatnonzero(np.isin(ids, replaced)).tolist():
                c = candidates[int(ids[row])]
                steps[row], counts[row], means[row] = c.step_created, c.n, 0.0 if c.mean is None else c.mean
        if not added:
            return _Columns(ids, steps, counts, means)
        new = _Columns.of([candidates[cid] for cid in added])
        return _Columns(*(np.concatenate(pair) for pair in zip((ids, steps, counts, means),
                                                                (new.ids, new.steps, new.counts, new.means))))

    def priorities(self, priority: PriorityRule, t: int) -> np.ndarray | None:
        """Every row's priority under a built-in rule, else None (exact types: a subclass may redefine __call__)."""
        if type(priority) is MeanPriority:
            top = priority.score_range[1] if priority.score_range else math.inf
            return np.where(self.counts == 0, top, self.means)
        if type(priority) is UCBPriority:
            lo, hi = priority.score_range  # type: ignore[misc]
            out = np.full(len(self.ids), hi, dtype=np.float64)
            seen = self.counts > 0
            if seen.any():  # as the per-candidate rule: ln(t + 1) is taken only for an evaluated candidate
                # The operations of UCBPriority.__call__ in the same order, element by element.
                bonus = priority.c * np.sqrt(math.log(t + 1) / self.counts[seen]) * (hi - lo)
                out[seen] = np.minimum(np.maximum(self.means[seen] + bonus, lo), hi)
            return out
        if type(priority) is NewestFirst:
            return self.ids.astype(np.float64)
        if type(priority) is OldestFirst:
            return -self.ids.astype(np.float64)
        return None

    def top_rows(self, keys: np.ndarray, k: int) -> np.ndarray:
        """Rows of the k largest (keys, step_created, id), largest first: the tie rule of `ranked`."""
        n = len(keys)
        if k < n:
            # Only rows whose key reaches the k-th largest can be among the top k (all its ties included).
            kth = np.partition(keys, n - k)[n - k]
            rows = np.flatnonzero(keys >= kth)
        else:
            rows = np.arange(n)
        order = np.lexsort((self.ids[rows], self.steps[rows], keys[rows]))[::-1][:k]
        return rows[order]


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

    @cached_property
    def _columns(self) -> _Columns:
        # Built once for a memory made from scratch; pop_top_k and push hand theirs on (_with_columns).
        return _Columns.of(list(self.candidates.values()))

    def _with_columns(self, columns: _Columns) -> "Memory":
        self.__dict__["_columns"] = columns  # cached_property's slot: frozen blocks only __setattr__
        return self


def _order_key(priority: PriorityRule, t: int) -> Callable[[Candidate], tuple[float, int, int]]:
    return lambda c: (priority(c, t), c.step_created, c.id)


def ranked(memory: Memory | Iterable[Candidate], priority: PriorityRule, t: int) -> list[Candidate]:
    """Candidates from highest to lowest priority at iteration t (ties: newer first)."""
    return sorted(memory, key=_order_key(priority, t), reverse=True)


def push(memory: Memory, candidates: Iterable[Candidate]) -> Memory:
    """Memory with `candidates` added or replaced (by id): a replaced one keeps its place, new ones go last."""
    merged = dict(memory.candidates)
    get = merged.get
    replaced: set[int] = set()   # may name ids pushed twice here too: refreshing those rows changes nothing
    added: dict[int, None] = {}  # new ids in first-push order
    for c in candidates:
        previous = get(c.id)
        if previous is not c:  # the loop pushes its whole reference back, mostly unchanged objects
            if previous is None:
                added[c.id] = None
            else:
                replaced.add(c.id)
            merged[c.id] = c
    out = Memory(merged)
    columns = memory.__dict__.get("_columns")  # only carried when built: a memory never popped needs none
    return out._with_columns(columns.merged(merged, replaced, list(added))) if columns is not None else out


def pop_top_k(memory: Memory, k: int, priority: PriorityRule, t: int) -> tuple[list[Candidate], Memory]:
    """The k highest-priority candidates (fewer if memory is smaller) and the memory without them."""
    if k < 1:
        raise ValueError(f"num_candidates (K) must be >= 1, got {k}")
    columns = memory._columns
    keys = columns.priorities(priority, t)
    if keys is None or np.isnan(keys).any():
        # A rule of the caller's own, or NaN priorities (whose sorted order depends on the input order).
        top = ranked(memory, priority, t)[:k]
        rows = np.flatnonzero(np.isin(columns.ids, [c.id for c in top]))
    else:
        rows = columns.top_rows(keys, k)
        top = [memory.candidates[cid] for cid in columns.ids[rows].tolist()]
    rest = dict(memory.candidates)
    for c in top:
        del rest[c.id]
    return top, Memory(rest)._with_columns(columns.without(rows))


def best_by_mean(candidates: Memory | Sequence[Candidate]) -> Candidate | None:
    """The candidate with the highest empirical mean (unevaluated counts as -inf; ties: newer first)."""
    if isinstance(candidates, Memory) and len(candidates):
        columns = candidates._columns
        keys = np.where(columns.counts == 0, -math.inf, columns.means)
        if not np.isnan(keys).any():
            return candidates.candidates[int(columns.ids[columns.top_rows(keys, 1)[0]])]
    pool = list(candidates)
    if not pool:
        return None
    return max(pool, key=lambda c: (c.mean if c.mean is not None else -math.inf, c.step_created, c.id))
