"""The theorems' reference curves and bounds (polca-method.md §4), to compare the simulations against.

Plain formulas in the model's parameters (B, gamma, delta_0, sigma, eps, N_eps); no randomness.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "packing_bound",
    "theorem1_slope",
    "theorem2_sequential_rate",
    "theorem2_polca_rate",
    "successes_needed",
    "expected_steps_sequential_reset",
    "expected_steps_polca",
]


def packing_bound(eps: float, latent_radius: float, latent_dim: int) -> int:
    """Most programs a d-ball of radius R can hold pairwise > eps apart (volume bound; inf for eps=0)."""
    if eps <= 0:
        return np.iinfo(np.int64).max
    half = eps / 2.0
    return int(math.floor(((latent_radius + half) / half) ** latent_dim))


def theorem1_slope(B: float, gamma: float, delta_0: float, sigma: float, n_eps: float) -> float:
    """Theorem 1's coefficient of log n without its hidden constant:
    B/(2 gamma delta_0) + 64 sigma^2 N_eps / gamma^2."""
    return B / (2 * gamma * delta_0) + 64 * sigma**2 * n_eps / gamma**2


def theorem2_sequential_rate(B: float, gamma: float, delta_0: float) -> float:
    """Theorem 2's order for sequential updating: delta_0^(-B/gamma)."""
    return float(delta_0 ** (-B / gamma))


def theorem2_polca_rate(B: float, gamma: float, delta_0: float) -> float:
    """Theorem 2's expected steps for POLCA: B / (gamma delta_0)."""
    return float(B / (gamma * delta_0))


def successes_needed(B: float, gamma: float) -> int:
    """Improvements (each just over gamma) needed to climb from mu = 0 into (B - gamma, B]."""
    ratio = (B - gamma) / gamma
    return max(1, math.ceil(ratio - 1e-9)) if B > gamma else 1


def expected_steps_sequential_reset(k: int, delta_0: float) -> float:
    """Exact mean waiting time for k successes in a row (failures reset): (delta_0^-k - 1) / (1 - delta_0)."""
    return (delta_0 ** (-k) - 1.0) / (1.0 - delta_0)


def expected_steps_polca(k: int, delta_0: float) -> float:
    """Exact mean waiting time for k successes when failures cost nothing (negative binomial): k / delta_0."""
    return k / delta_0
