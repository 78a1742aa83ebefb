"""The paper's theoretical model of POLCA (polca-method.md §4), simulated exactly and vectorized over seeds.

Model, in the notation of Theorem 1 / Theorem 2:

* **Program space.** A program is a point z in the closed d-ball of radius R (its "embedding"); its
  true reward is mu(z) = B * (1 - |z| / R), so mu is in [0, B], the optimum sits at the centre, and
  mu is (B/R)-Lipschitz in z. Programs within eps of each other therefore differ by at most B*eps/R.
* **Observations.** y = mu + sigma * N(0, 1), Gaussian and *not* clipped: a Gaussian is exactly
  sigma-sub-Gaussian, and clipping to [0, B] would bias the empirical mean near 0 and B so it would
  no longer converge to mu.
* **Proposal oracle Pi(.|C_theta)** (`Oracle.propose`). From a parent with reward mu, three branches:
  improve with probability delta_0 (mu' uniform in (mu + gamma, min(B, mu + gamma + jump)], new
  direction), near-duplicate with probability p_dup (latent moved by at most dup_radius, mu' = mu(z')),
  otherwise fail (mu' <= mu: a drop of up to failure_drop, or a reset to mu' = 0). With
  B * dup_radius / R < gamma only the improve branch gains more than gamma, so
  P[mu' > mu + gamma] = delta_0 exactly for every parent with mu < B - gamma: the gamma-strict
  improvement assumption holds with equality. (At mu = B - gamma exactly the assumption cannot hold
  for any oracle, since it would need mu' > B; there the improve branch draws mu' in (mu, B].)
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
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import numpy as np

Priority = Literal["ucb", "mean"]
Failure = Literal["drop", "reset"]

__all__ = [
    "Oracle",
    "SearchConfig",
    "PolcaRun",
    "SequentialRun",
    "LogFit",
    "Theorem1Sweep",
    "Theorem2Sweep",
    "PriorityNoiseSweep",
    "PRIORITY_VARIANTS",
    "ucb_priority",
    "simulate_polca",
    "simulate_sequential",
    "packing_bound",
    "fit_log_curve",
    "mean_and_sem",
    "theorem1_slope",
    "theorem2_sequential_rate",
    "theorem2_polca_rate",
    "successes_needed",
    "expected_steps_sequential_reset",
    "expected_steps_polca",
    "theorem2_oracle",
    "sweep_theorem1",
    "sweep_theorem2",
    "sweep_priority_noise",
    "quick_run",
]


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    """Accept an explicit Generator or an explicit integer seed; nothing else (no global RNG)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy Generator or an int seed, got {rng!r}")


def _check_finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


# ---------------------------------------------------------------------------------------------------
# The proposal oracle
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Oracle:
    """Program space plus a proposal oracle that satisfies gamma-strict improvement with prob. delta_0.

    B: reward upper bound; gamma: improvement margin, 0 < gamma <= B; delta_0: improvement probability
    in (0, 1); jump: width of the improvement window above mu + gamma (> 0); p_dup: near-duplicate
    probability (delta_0 + p_dup <= 1); dup_radius: how far a near-duplicate moves in latent space;
    failure: "drop" (mu' uniform in [max(0, mu - failure_drop), mu]) or "reset" (mu' = 0);
    latent_dim, latent_radius: the d-ball that holds the programs' embeddings.
    """

    B: float = 1.0
    gamma: float = 0.1
    delta_0: float = 0.2
    jump: float = 0.1
    p_dup: float = 0.3
    dup_radius: float = 0.02
    failure: Failure = "drop"
    failure_drop: float = 0.2
    latent_dim: int = 2
    latent_radius: float = 1.0

    def __post_init__(self) -> None:
        for name in ("B", "gamma", "delta_0", "jump", "p_dup", "dup_radius", "failure_drop", "latent_radius"):
            _check_finite(name, getattr(self, name))
        if self.B <= 0:
            raise ValueError(f"B must be > 0, got {self.B!r}")
        if not 0 < self.gamma <= self.B:
            raise ValueError(f"gamma must be in (0, B={self.B}], got {self.gamma!r}")
        if not 0 < self.delta_0 < 1:
            raise ValueError(f"delta_0 must be in (0, 1), got {self.delta_0!r}")
        if self.jump <= 0:
            raise ValueError(f"jump must be > 0 (improvements are strict), got {self.jump!r}")
        if not 0 <= self.p_dup <= 1 - self.delta_0:
            raise ValueError(f"p_dup must be in [0, 1 - delta_0 = {1 - self.delta_0:g}], got {self.p_dup!r}")
        if self.dup_radius < 0:
            raise ValueError(f"dup_radius must be >= 0, got {self.dup_radius!r}")
        if self.failure not in ("drop", "reset"):
            raise ValueError(f"failure must be 'drop' or 'reset', got {self.failure!r}")
        if self.failure_drop < 0:
            raise ValueError(f"failure_drop must be >= 0, got {self.failure_drop!r}")
        if not isinstance(self.latent_dim, (int, np.integer)) or isinstance(self.latent_dim, bool) or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be an int >= 1, got {self.latent_dim!r}")
        if self.latent_radius <= 0:
            raise ValueError(f"latent_radius must be > 0, got {self.latent_radius!r}")

    @property
    def lipschitz(self) -> float:
        """|mu(z) - mu(z')| <= lipschitz * |z - z'|."""
        return self.B / self.latent_radius

    def radius_of(self, mu: np.ndarray) -> np.ndarray:
        """Distance from the optimum of a program with reward mu (inverse of mu(z))."""
        return self.latent_radius * (1.0 - np.asarray(mu, dtype=np.float64) / self.B)

    def reward_of(self, z: np.ndarray) -> np.ndarray:
        """True reward mu(z) for latents z of shape (latent_dim, ...)."""
        return self.B * (1.0 - np.sqrt(np.sum(np.square(z), axis=0)) / self.latent_radius)

    def start(self, mu_0: float, count: int) -> np.ndarray:
        """Latents (latent_dim, count) of `count` copies of the initial program with reward mu_0."""
        z = np.zeros((self.latent_dim, count))
        z[0] = self.radius_of(mu_0)
        return z

    def propose(
        self, mu: np.ndarray, z: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One child per parent: mu (S,), z (latent_dim, S) -> (mu' (S,), z' (latent_dim, S))."""
        count = np.shape(mu)[0]
        return self.propose_with(mu, z, rng.random((3, count)), rng.standard_normal((self.latent_dim, count)))

    def propose_with(
        self, mu: np.ndarray, z: np.ndarray, uniforms: np.ndarray, normals: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`propose` with its randomness passed in: uniforms (3, S) in [0, 1), normals (latent_dim, S).

        uniforms[0] picks the branch, uniforms[1] the size of the move, uniforms[2] the near-duplicate's
        step length; normals give the direction. A fixed draw count keeps seeded runs reproducible.
        """
        mu = np.asarray(mu, dtype=np.float64)
        norm = np.sqrt(np.einsum("ks,ks->s", normals, normals))
        direction = normals / np.maximum(norm, 1e-300)
        # 1 - u is in (0, 1], which makes the improvement window open at its lower end.
        upward = 1.0 - uniforms[1]

        floor = mu + self.gamma
        improved = np.where(
            floor < self.B,
            floor + (np.minimum(self.B, floor + self.jump) - floor) * upward,
            mu + (self.B - mu) * upward,
        )
        if self.failure == "reset":
            failed = np.zeros_like(mu)
        else:
            failed = np.maximum(0.0, mu - self.failure_drop * uniforms[1])

        branch = uniforms[0]
        is_improve = branch < self.delta_0
        child_mu = np.where(is_improve, improved, failed)
        child_z = self.radius_of(child_mu) * direction

        if self.p_dup > 0:
            is_dup = (~is_improve) & (branch < self.delta_0 + self.p_dup)
            # Uniform in the dup_radius ball around the parent, pulled back inside the program space.
            step = self.dup_radius * uniforms[2] ** (1.0 / self.latent_dim)
            dup_z = z + step * direction
            dup_norm = np.sqrt(np.einsum("ks,ks->s", dup_z, dup_z))
            dup_z *= np.where(dup_norm > self.latent_radius, self.latent_radius / np.maximum(dup_norm, 1e-300), 1.0)
            child_z = np.where(is_dup, dup_z, child_z)
            dup_mu = self.B * (1.0 - np.minimum(dup_norm, self.latent_radius) / self.latent_radius)
            child_mu = np.where(is_dup, dup_mu, child_mu)
        return child_mu, child_z


# ---------------------------------------------------------------------------------------------------
# POLCA
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchConfig:
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


def packing_bound(eps: float, latent_radius: float, latent_dim: int) -> int:
    """Most programs a d-ball of radius R can hold pairwise > eps apart (volume bound; inf for eps=0)."""
    if eps <= 0:
        return np.iinfo(np.int64).max
    half = eps / 2.0
    return int(math.floor(((latent_radius + half) / half) ** latent_dim))


@dataclass(frozen=True)
class PolcaRun:
    """Per-seed traces of one `simulate_polca` call; time axis = iterations 1..iterations_run.

    selected_mu (S, T): true reward of the program selected at each iteration; memory_size (S, T):
    programs in memory after the iteration (N_eps(t)); best_mu (S, T): best true reward in memory so
    far; hit_iteration (S,): first iteration after which memory holds a program in (B - gamma, B]
    (0: the initial program already is, -1: never); returned_mu (S,): true reward of the final
    argmax-empirical-mean program (what POLCA would return).
    """

    oracle: Oracle
    config: SearchConfig
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

_GRID_CELL_LIMIT = 10_000_000
"""Largest eps-Net grid (cells over all seeds) before falling back to brute-force distance checks."""

_INITIAL_CAPACITY = 256
"""Program slots per seed allocated up front; memory doubles when full (up to the packing bound)."""


class _Memory:
    """Per-seed program memory as (seeds, columns) arrays; the last column is an always-empty sentinel.

    Programs fill columns from the right, newest leftmost, so np.argmax's first-maximum rule breaks
    priority ties newest-first (as the paper's code does). Empty slots have mean -inf (never selected)
    and latent at infinity (never within eps). Observation histories are kept as their sufficient
    statistics (sum, count): both priority rules depend on nothing else.
    """

    def __init__(self, seeds: int, dim: int, capacity: int, limit: int) -> None:
        self.seeds, self.dim, self.limit = seeds, dim, limit
        self.rows = np.arange(seeds)
        self._allocate(capacity)
        self.newest = np.full(seeds, capacity)  # one past the leftmost slot: memory starts empty
        self.lo = capacity

    def _allocate(self, capacity: int) -> None:
        self.capacity = capacity
        self.cols = capacity + 1
        shape = (self.seeds, self.cols)
        self.mu = np.full(shape, -np.inf)
        self.latent = np.full((self.dim, *shape), np.inf)
        self.sums = np.zeros(shape)
        self.counts = np.zeros(shape)
        self.means = np.full(shape, -np.inf)
        self.inv_sqrt_counts = np.zeros(shape)
        self.scratch = np.empty(shape)
        self._views()

    def _views(self) -> None:
        self.row_base = self.rows * self.cols
        self.flat_mu, self.flat_sums = self.mu.reshape(-1), self.sums.reshape(-1)
        self.flat_counts, self.flat_means = self.counts.reshape(-1), self.means.reshape(-1)
        self.flat_inv = self.inv_sqrt_counts.reshape(-1)
        self.flat_latent = self.latent.reshape(self.dim, -1)

    @property
    def size(self) -> np.ndarray:
        return self.capacity - self.newest

    def grow(self) -> int:
        """Double the slots (shifting programs right); returns the shift to apply to stored slot numbers."""
        old = (self.mu, self.latent, self.sums, self.counts, self.means, self.inv_sqrt_counts)
        old_capacity = self.capacity
        self._allocate(min(self.limit, 2 * old_capacity))
        shift = self.capacity - old_capacity
        for new, previous in zip((self.mu, self.sums, self.counts, self.means, self.inv_sqrt_counts), old[:1] + old[2:]):
            new[:, shift : shift + old_capacity] = previous[:, :old_capacity]
        self.latent[:, :, shift : shift + old_capacity] = old[1][:, :, :old_capacity]
        self.newest += shift
        self.lo += shift
        return shift

    def add(self, admit: np.ndarray, mu: np.ndarray, z: np.ndarray, first_obs: np.ndarray) -> np.ndarray:
        """Store the admitted programs (mu, z, one observation each); returns their slots."""
        slots = self.newest[admit] - 1
        at = self.row_base[admit] + slots
        self.flat_mu[at] = mu
        self.flat_latent[:, at] = z
        self.flat_sums[at] = first_obs
        self.flat_counts[at] = 1.0
        self.flat_means[at] = first_obs
        self.flat_inv[at] = 1.0
        self.newest[admit] = slots
        self.lo = min(self.lo, int(slots.min()))
        return slots

    def observe(self, flat: np.ndarray, y: np.ndarray) -> None:
        """Append one observation y to the programs at flat indices `flat` (one per seed)."""
        new_sum = self.flat_sums[flat] + y
        new_count = self.flat_counts[flat] + 1.0
        self.flat_sums[flat] = new_sum
        self.flat_counts[flat] = new_count
        self.flat_means[flat] = new_sum / new_count
        self.flat_inv[flat] = 1.0 / np.sqrt(new_count)


class _EpsNet:
    """Exact eps-Net admission test against every program in memory, for all seeds at once.

    When it fits, keeps a grid of cells of side h slightly below eps / sqrt(d): two programs in one
    cell would be closer than eps, so a cell holds at most one program and a child only has to be
    compared with the programs in the cells within eps of its own. Otherwise compares with all.
    """

    def __init__(self, eps: float, oracle: Oracle, memory: _Memory) -> None:
        self.eps_sq = eps * eps
        self.memory = memory
        dim, seeds = memory.dim, memory.seeds
        self.radius = oracle.latent_radius
        self.cell = eps / math.sqrt(dim) * (1.0 - 1e-9)
        self.inv_cell = 1.0 / self.cell
        self.reach = math.ceil(eps / self.cell)
        self.per_axis = int(math.floor(2 * self.radius / self.cell)) + 1
        padded = self.per_axis + 2 * self.reach
        cells = padded**dim
        self.use_grid = seeds * cells <= _GRID_CELL_LIMIT
        if not self.use_grid:
            return
        self.strides = padded ** np.arange(dim - 1, -1, -1)
        span = np.arange(-self.reach, self.reach + 1)
        offsets = np.stack(np.meshgrid(*([span] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
        self.offsets = offsets @ self.strides
        self.seed_base = np.arange(seeds) * cells
        # Grid entries are slot numbers; empty cells point at the sentinel column.
        self.grid = np.full(seeds * cells, memory.capacity, dtype=np.int64)

    def shifted(self, shift: int) -> None:
        """Follow a memory.grow(): every stored slot, the sentinel included, moved right by `shift`."""
        if self.use_grid:
            self.grid += shift

    def _cell_of(self, z: np.ndarray) -> np.ndarray:
        # Truncation is floor here: z + R >= 0 up to rounding, and rounding below 0 belongs in cell 0.
        index = ((z + self.radius) * self.inv_cell).astype(np.int64)
        np.minimum(index, self.per_axis - 1, out=index)
        return (index + self.reach).T @ self.strides

    def add(self, who: np.ndarray, slots: np.ndarray, z: np.ndarray) -> None:
        """Register programs at latent z (d, k) stored in `slots` of seeds `who`."""
        if not self.use_grid:
            return
        cells = self.seed_base[who] + self._cell_of(z)
        if np.any(self.grid[cells] != self.memory.capacity):
            raise RuntimeError("eps-Net grid invariant broken: two programs within eps share a cell")
        self.grid[cells] = slots

    def admits(self, z: np.ndarray) -> np.ndarray:
        """(S,) whether child z (d, S) is more than eps from every program in memory."""
        memory = self.memory
        if self.use_grid:
            cells = (self.seed_base + self._cell_of(z))[:, None] + self.offsets
            near = memory.row_base[:, None] + self.grid[cells]
            dist_sq = np.square(memory.flat_latent[0][near] - z[0][:, None])
            for k in range(1, memory.dim):
                dist_sq += np.square(memory.flat_latent[k][near] - z[k][:, None])
        else:
            lo, hi = memory.lo, memory.capacity
            dist_sq = np.square(memory.latent[0, :, lo:hi] - z[0][:, None])
            for k in range(1, memory.dim):
                dist_sq += np.square(memory.latent[k, :, lo:hi] - z[k][:, None])
        return dist_sq.min(axis=1) > self.eps_sq


def simulate_polca(
    oracle: Oracle,
    config: SearchConfig,
    rng: np.random.Generator | int,
    *,
    stop_when_all_hit: bool = False,
) -> PolcaRun:
    """Run POLCA (K = 1) on `config.seeds` independent seeds at once; see the module docstring.

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
    memory = _Memory(seeds, dim, min(limit, _INITIAL_CAPACITY), limit)
    rows = memory.rows
    eps_net = _EpsNet(eps, oracle, memory) if eps > 0 else None

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
    return PolcaRun(
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
class SequentialRun:
    """hit_step (S,): proposals until the latest program first lies in (B - gamma, B] (-1: not within max_steps)."""

    oracle: Oracle
    hit_step: np.ndarray
    max_steps: int

    @property
    def censored(self) -> np.ndarray:
        return self.hit_step < 0


def simulate_sequential(
    oracle: Oracle, seeds: int, max_steps: int, rng: np.random.Generator | int, mu_0: float = 0.0
) -> SequentialRun:
    """Always propose from the latest program and accept the child unconditionally (deterministic)."""
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
    return SequentialRun(oracle=oracle, hit_step=hit, max_steps=max_steps)


# ---------------------------------------------------------------------------------------------------
# Theory reference curves and small statistics
# ---------------------------------------------------------------------------------------------------


def theorem1_slope(B: float, gamma: float, delta_0: float, sigma: float, n_eps: float) -> float:
    """Theorem 1's coefficient of log n without its hidden constant: B/(2 gamma delta_0) + 64 sigma^2 N_eps / gamma^2."""
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


def theorem2_oracle(B_over_gamma: float, delta_0: float, B: float = 1.0) -> Oracle:
    """The Theorem 2 oracle: improvements of just over gamma, failures reset to mu = 0, no duplicates.

    A failure may do anything under the assumption (it only lower-bounds the improvement
    probability), so resetting is legal; it makes sequential updating need successes_needed(B, gamma)
    improvements in a row, the exponential regime, while POLCA, which keeps the best, needs them in any order.
    """
    gamma = B / B_over_gamma
    return Oracle(B=B, gamma=gamma, delta_0=delta_0, jump=1e-3 * gamma, p_dup=0.0, failure="reset")


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


# ---------------------------------------------------------------------------------------------------
# Sweeps behind the notebook's figures
# ---------------------------------------------------------------------------------------------------


def _child_rngs(seed: int, count: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


@dataclass(frozen=True)
class Theorem1Sweep:
    """POLCA runs keyed by (sigma, eps), with a*ln(n)+b fits of the mean sub-optimal selection count."""

    runs: dict[tuple[float, float], PolcaRun]
    fits: dict[tuple[float, float], LogFit]
    fit_from: int


def sweep_theorem1(
    oracle: Oracle,
    base: SearchConfig,
    sigmas: Sequence[float],
    eps_values: Sequence[float],
    seed: int,
    fit_from: int = 100,
) -> Theorem1Sweep:
    """One POLCA run per (sigma, eps) pair, the rest of `base` fixed; fits start at iteration fit_from."""
    pairs = [(float(s), float(e)) for s in sigmas for e in eps_values]
    runs: dict[tuple[float, float], PolcaRun] = {}
    fits: dict[tuple[float, float], LogFit] = {}
    for (sigma, eps), rng in zip(pairs, _child_rngs(seed, len(pairs))):
        run = simulate_polca(oracle, replace(base, sigma=sigma, eps=eps), rng)
        runs[(sigma, eps)] = run
        fits[(sigma, eps)] = fit_log_curve(run.n, run.suboptimal_selections.mean(axis=0), n_min=fit_from)
    return Theorem1Sweep(runs=runs, fits=fits, fit_from=fit_from)


@dataclass(frozen=True)
class Theorem2Sweep:
    """Steps to first reach (B - gamma, B] per B/gamma ratio: arrays (len(ratios), seeds), -1 = censored."""

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
    """Sequential updating vs POLCA (mean priority, sigma = 0, no eps-Net) on `theorem2_oracle` per ratio."""
    ratios_arr = np.asarray(ratios, dtype=np.float64)
    rngs = _child_rngs(seed, 2 * len(ratios_arr))
    sequential, polca, successes = [], [], []
    for i, ratio in enumerate(ratios_arr):
        oracle = theorem2_oracle(float(ratio), delta_0)
        sequential.append(simulate_sequential(oracle, seeds, max_steps, rngs[2 * i]).hit_step)
        config = SearchConfig(seeds=seeds, iterations=max_steps, sigma=0.0, eps=0.0, priority="mean")
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
    """Runs keyed by (variant label, sigma); variants map labels to (priority, ucb_c)."""

    sigmas: np.ndarray
    variants: dict[str, tuple[Priority, float | None]]
    runs: dict[tuple[str, float], PolcaRun]


def sweep_priority_noise(
    oracle: Oracle,
    base: SearchConfig,
    sigmas: Sequence[float],
    seed: int,
    variants: dict[str, tuple[Priority, float | None]] | None = None,
) -> PriorityNoiseSweep:
    """One POLCA run per (variant, sigma); all variants share the random stream at a given sigma."""
    variants = dict(PRIORITY_VARIANTS if variants is None else variants)
    sigma_arr = np.asarray(sigmas, dtype=np.float64)
    streams = np.random.SeedSequence(seed).spawn(len(sigma_arr))
    runs: dict[tuple[str, float], PolcaRun] = {}
    for sigma, stream in zip(sigma_arr, streams):
        for label, (priority, ucb_c) in variants.items():
            config = replace(base, sigma=float(sigma), priority=priority, ucb_c=ucb_c)
            runs[(label, float(sigma))] = simulate_polca(oracle, config, np.random.default_rng(stream))
    return PriorityNoiseSweep(sigmas=sigma_arr, variants=variants, runs=runs)


def quick_run(
    sigma: float,
    eps: float,
    gamma: float,
    delta_0: float,
    priority: Priority,
    ucb_c: float | None = None,
    seeds: int = 10,
    iterations: int = 1000,
    seed: int = 0,
) -> PolcaRun:
    """One small POLCA batch on the default oracle with the widget knobs changed (p_dup capped at 1 - delta_0)."""
    oracle = Oracle(gamma=gamma, delta_0=delta_0, p_dup=min(Oracle.p_dup, 1.0 - delta_0))
    config = SearchConfig(seeds=seeds, iterations=iterations, sigma=sigma, eps=eps, priority=priority, ucb_c=ucb_c)
    return simulate_polca(oracle, config, seed)
