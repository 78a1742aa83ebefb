"""POLCA and sequential updating, simulated exactly on the theoretical model and vectorized over seeds.

The searches here are simulations of the paper's theoretical model (polca-method.md §4), not the
engine (`polca_nb.runner`): programs, rewards and proposals come from the simulated `Oracle`
(`oracle.py`), observations are Gaussian draws. Model, in the notation of Theorem 1 / Theorem 2:

* **Observations.** y = mu + sigma * N(0, 1), Gaussian and *not* clipped: a Gaussian is exactly
  sigma-sub-Gaussian, and clipping to [0, B] would bias the empirical mean near 0 and B so it would
  no longer converge to mu.
* **POLCA** (`simulate_polca`), K = 1: memory = every admitted program with its observation history
  (kept as the sufficient statistics sum and count, which is all the priority uses). Each iteration
  t = 1..n: select the top-priority program (ties: newest first, as in the paper's code), observe it
  once, propose one child, admit it only if its L2 distance to every program in memory is > eps
  (eps = 0 admits everything), and observe an admitted child once. The initial program is observed
  once before the loop, so every program in memory has n >= 1.
* **Sequential updating** (`simulate_sequential`): always propose from the latest child, accepting it
  unconditionally (Theorem 2's baseline).

Everything random is drawn from an explicit `np.random.Generator` with a fixed number of draws per
iteration, so a seed fixes the whole run regardless of which branches fire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._sim_memory import _INITIAL_CAPACITY, _SimulatedEpsNet, _SimulatedMemory
from .bounds import packing_bound
from .oracle import Oracle, _check_finite

Priority = Literal["ucb", "mean"]

__all__ = [
    "SimConfig",
    "SimulatedPolcaRun",
    "SimulatedSequentialRun",
    "ucb_priority",
    "simulate_polca",
    "simulate_sequential",
]


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    """Accept an explicit Generator or an explicit integer seed; nothing else (no global RNG)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy Generator or an int seed, got {rng!r}")


# ---------------------------------------------------------------------------------------------------
# POLCA
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    """POLCA's knobs for one simulated batch of independent runs (one per seed).

    ucb_c: the c in clip(mean + c * sqrt(ln(t + 1) / n) * B, 0, B), t = 1..iterations the iteration
    number and n the program's observation count. None (default) means the
    sub-Gaussian width c = sqrt(2) * sigma / B, i.e. a bonus sigma * sqrt(2 ln(t + 1) / n): the UCB whose
    cost grows with sigma^2 as in Theorem 1's second term (and which is plain mean priority at sigma = 0).
    The paper's experiment code uses a fixed c = 1.0 (bonus scaled by the score range).
    """

    seeds: int = 100
    iterations: int = 10_000
    sigma: float = 0.1
    eps: float = 0.1
    priority: Priority = "ucb"
    ucb_c: float | None = None
    mu_0: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sigma", "eps", "mu_0"):
            _check_finite(name, getattr(self, name))
        for name in ("seeds", "iterations"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma!r}")
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")
        if self.priority not in ("ucb", "mean"):
            raise ValueError(f"priority must be 'ucb' or 'mean', got {self.priority!r}")
        if self.ucb_c is not None:
            _check_finite("ucb_c", self.ucb_c)
            if self.ucb_c < 0:
                raise ValueError(f"ucb_c must be >= 0 or None, got {self.ucb_c!r}")

    def ucb_width(self, B: float) -> float:
        """The c actually used for a program space with reward bound B."""
        return math.sqrt(2.0) * self.sigma / B if self.ucb_c is None else float(self.ucb_c)


def ucb_priority(
    means: np.ndarray, counts: np.ndarray, t: int, B: float, c: float
) -> np.ndarray:
    """clip(mean + c * sqrt(ln(t + 1) / n) * B, 0, B), elementwise; counts must be >= 1."""
    counts = np.asarray(counts, dtype=np.float64)
    if np.any(counts < 1):
        raise ValueError(f"counts must all be >= 1, got min {counts.min()!r}")
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t!r}")
    bonus = c * np.sqrt(math.log(t + 1) / counts) * B
    return np.clip(np.asarray(means, dtype=np.float64) + bonus, 0.0, B)


@dataclass(frozen=True)
class SimulatedPolcaRun:
    """Per-seed traces of one simulated POLCA batch (`simulate_polca`); time axis = iterations 1..iterations_run.

    selected_mu (S, T): true reward of the program selected at each iteration; memory_size (S, T):
    programs in memory after the iteration (N_eps(t)); best_mu (S, T): best true reward in memory so
    far; hit_iteration (S,): first iteration after which memory holds a program in (B - gamma, B]
    (0: the initial program already is, -1: never); returned_mu (S,): true reward of the final
    argmax-empirical-mean program (what POLCA would return).
    """

    oracle: Oracle
    config: SimConfig
    selected_mu: np.ndarray
    memory_size: np.ndarray
    best_mu: np.ndarray
    hit_iteration: np.ndarray
    returned_mu: np.ndarray

    @property
    def iterations_run(self) -> int:
        return int(self.selected_mu.shape[1])

    @property
    def n(self) -> np.ndarray:
        """Iteration numbers 1..T, the x axis of every trace."""
        return np.arange(1, self.iterations_run + 1)

    @property
    def suboptimal_selections(self) -> np.ndarray:
        """(S, T) cumulative count of selections of programs with mu <= B - gamma."""
        threshold = self.oracle.B - self.oracle.gamma
        return np.cumsum(self.selected_mu <= threshold, axis=1, dtype=np.int64)


_RNG_CHUNK = 64
"""Iterations' worth of random numbers drawn per Generator call (part of what a seed means)."""


def simulate_polca(
    oracle: Oracle,
    config: SimConfig,
    rng: np.random.Generator | int,
    *,
    stop_when_all_hit: bool = False,
) -> SimulatedPolcaRun:
    """Simulate POLCA (K = 1) on `config.seeds` independent seeds at once; see the module docstring.

    With stop_when_all_hit, stops after the first iteration at which every seed has a program in
    (B - gamma, B] in memory (traces are then shorter than config.iterations).
    Random layout (what a seed means): one (S,) normal draw for the initial observations, then per
    block of 64 iterations uniforms (64, 3, S), normals (64, d, S) for the oracle and noise (64, 2, S).
    """
    rng = _as_rng(rng)
    seeds, iterations, sigma, eps = config.seeds, config.iterations, config.sigma, config.eps
    if not 0 <= config.mu_0 <= oracle.B:
        raise ValueError(f"mu_0 must be in [0, B={oracle.B}], got {config.mu_0!r}")
    B, target, dim = oracle.B, oracle.B - oracle.gamma, oracle.latent_dim
    limit = int(min(iterations + 1, packing_bound(eps, oracle.latent_radius, dim)))
    memory = _SimulatedMemory(seeds, dim, min(limit, _INITIAL_CAPACITY), limit)
    rows = memory.rows
    eps_net = _SimulatedEpsNet(eps, oracle, memory) if eps > 0 else None

    everyone = np.ones(seeds, dtype=bool)
    start_z = oracle.start(config.mu_0, seeds)
    first_slots = memory.add(everyone, np.full(seeds, float(config.mu_0)), start_z,
                             config.mu_0 + sigma * rng.standard_normal(seeds))
    if eps_net is not None:
        eps_net.add(rows, first_slots, start_z)
    best = np.full(seeds, float(config.mu_0))
    hit = np.where(best > target, 0, -1).astype(np.int64)

    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    use_ucb = config.priority == "ucb"
    bonus_scale = config.ucb_width(B) * B

    t_done = 0
    for t in range(1, iterations + 1):
        step = (t - 1) % _RNG_CHUNK
        if step == 0:
            uniforms = rng.random((_RNG_CHUNK, 3, seeds))
            normals = rng.standard_normal((_RNG_CHUNK, dim, seeds))
            noise = rng.standard_normal((_RNG_CHUNK, 2, seeds))
            width = min(_RNG_CHUNK, iterations - t + 1)
            block = (np.empty((width, seeds), np.float32), np.empty((width, seeds), np.int32),
                     np.empty((width, seeds), np.float32))
            blocks.append(block)
        if memory.lo == 0 and memory.capacity < limit:
            shift = memory.grow()
            if eps_net is not None:
                eps_net.shifted(shift)
        lo, hi = memory.lo, memory.capacity

        # --- select the top-priority program ---
        if use_ucb:
            prio = memory.scratch[:, lo:hi]
            np.multiply(memory.inv_sqrt_counts[:, lo:hi], bonus_scale * math.sqrt(math.log(t + 1)), out=prio)
            prio += memory.means[:, lo:hi]
            np.minimum(prio, B, out=prio)
        else:
            prio = memory.means[:, lo:hi]
        offset = prio.argmax(axis=1)
        picked = lo + offset
        if use_ucb:
            # Clipping below at 0 only matters when every program is below 0: then all tie at 0.
            all_below = prio[rows, offset] < 0.0
            if all_below.any():
                picked = np.where(all_below, memory.newest, picked)
        flat = memory.row_base + picked

        # --- observe it once, propose one child, eps-Net, observe admitted children once ---
        parent_mu = memory.flat_mu[flat]
        memory.observe(flat, parent_mu + sigma * noise[step, 0])
        child_mu, child_z = oracle.propose_with(parent_mu, memory.flat_latent[:, flat], uniforms[step], normals[step])
        admit = eps_net.admits(child_z) if eps_net is not None else everyone
        if admit.any():
            admitted_mu = child_mu[admit]
            admitted_z = child_z[:, admit]
            slots = memory.add(admit, admitted_mu, admitted_z, admitted_mu + sigma * noise[step, 1][admit])
            if eps_net is not None:
                eps_net.add(rows[admit], slots, admitted_z)
            best[admit] = np.maximum(best[admit], admitted_mu)
            hit[(hit < 0) & (best > target)] = t

        block[0][step] = parent_mu
        block[1][step] = memory.size
        block[2][step] = best
        t_done = t
        if stop_when_all_hit and (hit >= 0).all():
            break

    def trace(i: int) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([b[i] for b in blocks])[:t_done].T)

    lo, hi = memory.lo, memory.capacity
    returned = lo + memory.means[:, lo:hi].argmax(axis=1)
    return SimulatedPolcaRun(
        oracle=oracle,
        config=config,
        selected_mu=trace(0),
        memory_size=trace(1),
        best_mu=trace(2),
        hit_iteration=hit,
        returned_mu=memory.mu[rows, returned],
    )


# ---------------------------------------------------------------------------------------------------
# Sequential updating (Theorem 2 baseline)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedSequentialRun:
    """One simulated sequential-updating batch (`simulate_sequential`).

    hit_step (S,): proposals until the latest program first lies in (B - gamma, B] (-1: not within max_steps).
    """

    oracle: Oracle
    hit_step: np.ndarray
    max_steps: int

    @property
    def censored(self) -> np.ndarray:
        return self.hit_step < 0


def simulate_sequential(
    oracle: Oracle, seeds: int, max_steps: int, rng: np.random.Generator | int, mu_0: float = 0.0
) -> SimulatedSequentialRun:
    """Simulate sequential updating: always propose from the latest program, accept the child unconditionally."""
    for name, value in (("seeds", seeds), ("max_steps", max_steps)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not 0 <= mu_0 <= oracle.B:
        raise ValueError(f"mu_0 must be in [0, B={oracle.B}], got {mu_0!r}")
    rng = _as_rng(rng)
    target = oracle.B - oracle.gamma
    mu = np.full(seeds, float(mu_0))
    z = oracle.start(mu_0, seeds)
    hit = np.where(mu > target, 0, -1).astype(np.int64)
    for step in range(1, max_steps + 1):
        if (hit >= 0).all():
            break
        draw = (step - 1) % _RNG_CHUNK
        if draw == 0:
            uniforms = rng.random((_RNG_CHUNK, 3, seeds))
            normals = rng.standard_normal((_RNG_CHUNK, oracle.latent_dim, seeds))
        mu, z = oracle.propose_with(mu, z, uniforms[draw], normals[draw])
        hit[(hit < 0) & (mu > target)] = step
    return SimulatedSequentialRun(oracle=oracle, hit_step=hit, max_steps=max_steps)
