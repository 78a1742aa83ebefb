"""Several evaluations per Dask task: fewer scheduler round trips, the same results in the same order.

One task per evaluation costs a submit, a schedule, a ship and a gather each (a few ms on a busy
machine); a `ChunkCall` runs a contiguous slice of one iteration's jobs in one task instead. Chunks
are contiguous so the first results come back first and the run can settle them in input order.

    plan_chunks(10, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    chunk_size_for(32, slots=2, policy="auto") == 8        # ceil(32 / (2 x 2))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Sequence, Union

ChunkPolicy = Union[int, Literal["auto"]]
"""An evaluations-per-task count (1: one task per evaluation), or "auto" (`AUTO_TASKS_PER_SLOT`)."""

AUTO_TASKS_PER_SLOT = 2
"""With "auto", an iteration's evaluations are cut into about this many tasks per worker thread:
few enough round trips, and still a second task per slot to balance uneven evaluations."""


def check_policy(policy: ChunkPolicy) -> None:
    """ValueError unless `policy` is "auto" or an int >= 1."""
    if policy == "auto":
        return
    if isinstance(policy, bool) or not isinstance(policy, int) or policy < 1:
        raise ValueError(f"chunk_size must be an int >= 1 or 'auto', got {policy!r}")


def chunk_size_for(n: int, slots: int, policy: ChunkPolicy) -> int:
    """Evaluations per task for `n` evaluations on `slots` worker threads: `policy` when it is a
    number, else ceil(n / (slots x AUTO_TASKS_PER_SLOT)); always >= 1."""
    if policy != "auto":
        return int(policy)
    return max(1, math.ceil(n / (max(1, slots) * AUTO_TASKS_PER_SLOT)))


def plan_chunks(n: int, size: int) -> list[range]:
    """Contiguous index ranges of at most `size` covering 0..n-1, in order."""
    return [range(start, min(start + size, n)) for start in range(0, n, max(1, size))]


@dataclass(frozen=True)
class ChunkCall:
    """`fn` over `items` in one task, results in input order (a list as long as `items`).

    It pickles when `fn` and the items do; a failure of one item fails the task (an `EvaluatorCall`
    never raises for a failing program, so only a `StopRun` or a dead worker does).
    """

    fn: Callable[[Any], Any]
    items: tuple[Any, ...]
    ships_to_workers: ClassVar[bool] = True

    def __call__(self) -> list[Any]:
        return [self.fn(item) for item in self.items]


def chunk_calls(fn: Callable[[Any], Any], items: Sequence[Any], chunks: Sequence[range]) -> list[ChunkCall]:
    """One `ChunkCall` per range of `chunks`."""
    return [ChunkCall(fn, tuple(items[i] for i in chunk)) for chunk in chunks]
