"""Stoppers: end a run early on what it has found, beside `Budget`'s limits on what it has spent.

A stopper is any callable `stopper(state) -> str | None` given the state after an iteration; a
string is the stop reason (`RunResult.stop_reason`, a "stopped" event). They compose: pass several
to `polca(..., stoppers=[...])`, the first that fires wins. Stoppers read only the state, so a
resumed run stops where the uninterrupted one did (StopFile, which reads the disk, excepted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .state import SearchState

Stopper = Callable[[SearchState], "str | None"]


@dataclass(frozen=True)
class ScoreThreshold:
    """Stop once the best-by-mean candidate reaches `score` over at least `min_rollouts` rollouts."""

    score: float
    min_rollouts: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.score, (int, float)) and math.isfinite(self.score)):
            raise ValueError(f"ScoreThreshold.score must be a finite number, got {self.score!r}")
        if not isinstance(self.min_rollouts, int) or self.min_rollouts < 1:
            raise ValueError(f"ScoreThreshold.min_rollouts must be an int >= 1, got {self.min_rollouts!r}")

    def __call__(self, state: SearchState) -> str | None:
        if not state.history:
            return None
        last = state.history[-1]
        if last.best_mean is not None and last.best_n >= self.min_rollouts and last.best_mean >= self.score:
            return "score_threshold"
        return None


@dataclass(frozen=True)
class NoImprovement:
    """Stop when the best mean has not risen by more than `min_delta` for `iterations` iterations."""

    iterations: int
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"NoImprovement.iterations must be an int >= 1, got {self.iterations!r}")
        if not (isinstance(self.min_delta, (int, float)) and self.min_delta >= 0):
            raise ValueError(f"NoImprovement.min_delta must be a number >= 0, got {self.min_delta!r}")

    def __call__(self, state: SearchState) -> str | None:
        means = [h.best_mean for h in state.history]
        if len(means) <= self.iterations or means[-self.iterations - 1] is None:
            return None
        before = means[-self.iterations - 1]
        assert before is not None
        recent = [m for m in means[-self.iterations:] if m is not None]
        if recent and max(recent) <= before + self.min_delta:
            return "no_improvement"
        return None


@dataclass(frozen=True)
class StopFile:
    """Stop when `path` exists (touch it from a shell to end a long run cleanly after this iteration)."""

    path: str | Path

    def __call__(self, state: SearchState) -> str | None:
        return "stop_file" if Path(self.path).exists() else None


def first_stop(stoppers: Sequence[Stopper], state: SearchState) -> str | None:
    """The reason of the first stopper that fires, or None."""
    for stopper in stoppers:
        reason = stopper(state)
        if reason is not None:
            if not isinstance(reason, str) or not reason:
                raise TypeError(f"stopper {stopper!r} returned {reason!r}: a stop reason must be a non-empty string")
            return reason
    return None
