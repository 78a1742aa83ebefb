"""fast_p: the fraction of tasks whose best kernel is correct and faster than p x the reference."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def fast_p(best_speedups: Sequence[float] | np.ndarray, p: float) -> float:
    """Fraction of tasks with best speedup strictly greater than p (failures score 0, so p >= 0)."""
    if not isinstance(p, (int, float)) or math.isnan(p) or p < 0:
        raise ValueError(f"p must be a number >= 0 (a failure scores 0 and must never count), got {p!r}")
    speedups = np.asarray(best_speedups, dtype=float)
    if speedups.ndim != 1 or speedups.size == 0:
        raise ValueError(f"best_speedups must be a non-empty 1-D sequence, got shape {speedups.shape}")
    return float(np.mean(np.nan_to_num(speedups, nan=0.0) > p))


def best_so_far(step_scores: Sequence[Sequence[float]]) -> np.ndarray:
    """(tasks x steps) running best score per task; NaN (not evaluated yet) counts as 0, and a task
    with fewer steps keeps its last best for the remaining steps."""
    if len(step_scores) == 0:
        raise ValueError("step_scores must hold at least one task")
    n_steps = max(len(row) for row in step_scores)
    if n_steps == 0:
        raise ValueError("step_scores must hold at least one step")
    grid = np.zeros((len(step_scores), n_steps), dtype=float)
    for t, row in enumerate(step_scores):
        values = np.nan_to_num(np.asarray(row, dtype=float), nan=0.0)
        if values.size:
            grid[t, : values.size] = values
            grid[t, values.size:] = values.max()
    return np.maximum.accumulate(grid, axis=1)


def fast_p_curves(step_scores: Sequence[Sequence[float]], ps: Sequence[float] = (0.5, 1.0)) -> dict[float, np.ndarray]:
    """fast_p at every step for each p, from per-task per-step best scores (step_scores[task][step])."""
    best = best_so_far(step_scores)
    return {float(p): np.array([fast_p(best[:, s], p) for s in range(best.shape[1])]) for p in ps}
