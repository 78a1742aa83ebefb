"""Small statistics over simulated traces: the a ln n + b fit of Theorem 1's shape, mean and its standard error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LogFit", "fit_log_curve", "mean_and_sem"]


@dataclass(frozen=True)
class LogFit:
    """y ~ slope * ln(n) + intercept, least squares."""

    slope: float
    intercept: float

    def __call__(self, n: np.ndarray) -> np.ndarray:
        return self.slope * np.log(np.asarray(n, dtype=np.float64)) + self.intercept


def fit_log_curve(n: np.ndarray, y: np.ndarray, n_min: int = 1) -> LogFit:
    """Least-squares fit of y = a ln n + b over points with n >= n_min."""
    n = np.asarray(n, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1:
        raise ValueError(f"n and y must be 1-d of equal shape, got {n.shape} and {y.shape}")
    keep = n >= n_min
    if keep.sum() < 2:
        raise ValueError(f"n_min leaves fewer than 2 points to fit, got n_min={n_min!r}")
    design = np.stack([np.log(n[keep]), np.ones(keep.sum())], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(design, y[keep], rcond=None)
    return LogFit(float(slope), float(intercept))


def mean_and_sem(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean over `axis` and its standard error std(ddof=1)/sqrt(count) (0 for a single sample)."""
    x = np.asarray(x, dtype=np.float64)
    count = x.shape[axis]
    mean = x.mean(axis=axis)
    if count < 2:
        return mean, np.zeros_like(mean)
    return mean, x.std(axis=axis, ddof=1) / math.sqrt(count)
