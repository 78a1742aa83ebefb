"""Parameter sweeps of the simulated POLCA behind the theory notebook's figures (Theorems 1 and 2, priority vs noise).

Each sweep runs the simulator (`simulator.py`) over a grid of model parameters with child seeds of
one seed, so a sweep is reproducible from that seed; `quick_run` is one small simulated batch for
the notebook's widget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from .bounds import (
    expected_steps_polca,
    expected_steps_sequential_reset,
    successes_needed,
    theorem2_polca_rate,
    theorem2_sequential_rate,
)
from .oracle import Oracle, theorem2_oracle
from .simulator import Priority, SimConfig, SimulatedPolcaRun, simulate_polca, simulate_sequential
from .stats import LogFit, fit_log_curve

__all__ = [
    "Theorem1Sweep",
    "Theorem2Sweep",
    "PriorityNoiseSweep",
    "PRIORITY_VARIANTS",
    "sweep_theorem1",
    "sweep_theorem2",
    "sweep_priority_noise",
    "quick_run",
]


def _child_rngs(seed: int, count: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


@dataclass(frozen=True)
class Theorem1Sweep:
    """Simulated POLCA runs keyed by (sigma, eps), with a*ln(n)+b fits of the mean sub-optimal selection count."""

    runs: dict[tuple[float, float], SimulatedPolcaRun]
    fits: dict[tuple[float, float], LogFit]
    fit_from: int


def sweep_theorem1(
    oracle: Oracle,
    base: SimConfig,
    sigmas: Sequence[float],
    eps_values: Sequence[float],
    seed: int,
    fit_from: int = 100,
) -> Theorem1Sweep:
    """One simulated POLCA run per (sigma, eps) pair, the rest of `base` fixed; fits start at iteration fit_from."""
    pairs = [(float(s), float(e)) for s in sigmas for e in eps_values]
    runs: dict[tuple[float, float], SimulatedPolcaRun] = {}
    fits: dict[tuple[float, float], LogFit] = {}
    for (sigma, eps), rng in zip(pairs, _child_rngs(seed, len(pairs))):
        run = simulate_polca(oracle, replace(base, sigma=sigma, eps=eps), rng)
        runs[(sigma, eps)] = run
        fits[(sigma, eps)] = fit_log_curve(run.n, run.suboptimal_selections.mean(axis=0), n_min=fit_from)
    return Theorem1Sweep(runs=runs, fits=fits, fit_from=fit_from)


@dataclass(frozen=True)
class Theorem2Sweep:
    """Simulated steps to first reach (B - gamma, B] per B/gamma ratio: arrays (len(ratios), seeds), -1 = censored."""

    ratios: np.ndarray
    delta_0: float
    sequential_steps: np.ndarray
    polca_steps: np.ndarray
    max_steps: int
    successes: np.ndarray = field(repr=False)

    @property
    def sequential_rate(self) -> np.ndarray:
        return np.array([theorem2_sequential_rate(r, 1.0, self.delta_0) for r in self.ratios])

    @property
    def polca_rate(self) -> np.ndarray:
        return np.array([theorem2_polca_rate(r, 1.0, self.delta_0) for r in self.ratios])

    @property
    def sequential_exact(self) -> np.ndarray:
        return np.array([expected_steps_sequential_reset(int(k), self.delta_0) for k in self.successes])

    @property
    def polca_exact(self) -> np.ndarray:
        return np.array([expected_steps_polca(int(k), self.delta_0) for k in self.successes])


def sweep_theorem2(
    ratios: Sequence[float], delta_0: float, seeds: int, max_steps: int, seed: int
) -> Theorem2Sweep:
    """Simulated sequential updating vs POLCA (mean priority, sigma = 0, no eps-Net) on `theorem2_oracle` per ratio."""
    ratios_arr = np.asarray(ratios, dtype=np.float64)
    rngs = _child_rngs(seed, 2 * len(ratios_arr))
    sequential, polca, successes = [], [], []
    for i, ratio in enumerate(ratios_arr):
        oracle = theorem2_oracle(float(ratio), delta_0)
        sequential.append(simulate_sequential(oracle, seeds, max_steps, rngs[2 * i]).hit_step)
        config = SimConfig(seeds=seeds, iterations=max_steps, sigma=0.0, eps=0.0, priority="mean")
        polca.append(simulate_polca(oracle, config, rngs[2 * i + 1], stop_when_all_hit=True).hit_iteration)
        successes.append(successes_needed(oracle.B, oracle.gamma))
    return Theorem2Sweep(
        ratios=ratios_arr,
        delta_0=delta_0,
        sequential_steps=np.stack(sequential),
        polca_steps=np.stack(polca),
        max_steps=max_steps,
        successes=np.asarray(successes),
    )


PRIORITY_VARIANTS: dict[str, tuple[Priority, float | None]] = {
    "mean": ("mean", None),
    "UCB, c = sqrt(2) sigma / B": ("ucb", None),
    "UCB, c = 1 (paper code)": ("ucb", 1.0),
}
"""Default (priority, ucb_c) variants compared under increasing noise."""


@dataclass(frozen=True)
class PriorityNoiseSweep:
    """Simulated POLCA runs keyed by (variant label, sigma); variants map labels to (priority, ucb_c)."""

    sigmas: np.ndarray
    variants: dict[str, tuple[Priority, float | None]]
    runs: dict[tuple[str, float], SimulatedPolcaRun]


def sweep_priority_noise(
    oracle: Oracle,
    base: SimConfig,
    sigmas: Sequence[float],
    seed: int,
    variants: dict[str, tuple[Priority, float | None]] | None = None,
) -> PriorityNoiseSweep:
    """One simulated POLCA run per (variant, sigma); all variants share the random stream at a given sigma."""
    variants = dict(PRIORITY_VARIANTS if variants is None else variants)
    sigma_arr = np.asarray(sigmas, dtype=np.float64)
    streams = np.random.SeedSequence(seed).spawn(len(sigma_arr))
    runs: dict[tuple[str, float], SimulatedPolcaRun] = {}
    for sigma, stream in zip(sigma_arr, streams):
        for label, (priority, ucb_c) in variants.items():
            config = replace(base, sigma=float(sigma), priority=priority, ucb_c=ucb_c)
            runs[(label, float(sigma))] = simulate_polca(oracle, config, np.random.default_rng(stream))
    return PriorityNoiseSweep(sigmas=sigma_arr, variants=variants, runs=runs)


SUB_GAUSSIAN = "sub-gaussian"
UCB_WIDTH_OPTIONS: tuple[tuple[str, str | float], ...] = (
    ("sub-Gaussian", SUB_GAUSSIAN), ("c = 1 (paper code)", 1.0), ("c = 0.3", 0.3))
"""(label, value) pairs for a UCB-width dropdown: a widget needs a non-None value for its default option."""


def quick_run(
    sigma: float,
    eps: float,
    gamma: float,
    delta_0: float,
    priority: Priority,
    ucb_c: float | str | None = None,
    seeds: int = 10,
    iterations: int = 1000,
    seed: int = 0,
) -> SimulatedPolcaRun:
    """One small simulated POLCA batch on the default oracle with the widget knobs changed.

    p_dup is capped at 1 - delta_0 so that any delta_0 the widget offers makes a valid oracle.
    `ucb_c` is a width, None or "sub-gaussian" (c = sqrt(2) sigma / B).
    """
    if isinstance(ucb_c, str):
        if ucb_c != SUB_GAUSSIAN:
            raise ValueError(f"ucb_c={ucb_c!r}: use a number, None or {SUB_GAUSSIAN!r}")
        ucb_c = None
    oracle = Oracle(gamma=gamma, delta_0=delta_0, p_dup=min(Oracle.p_dup, 1.0 - delta_0))
    config = SimConfig(seeds=seeds, iterations=iterations, sigma=sigma, eps=eps, priority=priority, ucb_c=ucb_c)
    return simulate_polca(oracle, config, seed)
