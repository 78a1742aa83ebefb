"""The simulated POLCA's program memory and eps-Net, vectorized over seeds (private to `simulator.py`).

Array bookkeeping only: `simulate_polca` keeps every seed's programs in one `_SimulatedMemory` and asks one
`_SimulatedEpsNet` which children to admit; both are exact (no approximation of the model).
"""

from __future__ import annotations

import math

import numpy as np

from .oracle import Oracle

_GRID_CELL_LIMIT = 10_000_000
"""Largest eps-Net grid (cells over all seeds) before falling back to brute-force distance checks."""

_INITIAL_CAPACITY = 256
"""Program slots per seed allocated up front; memory doubles when full (up to the packing bound)."""


class _SimulatedMemory:
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
        grown = (self.mu, self.sums, self.counts, self.means, self.inv_sqrt_counts)
        for new, previous in zip(grown, old[:1] + old[2:]):
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


class _SimulatedEpsNet:
    """Exact eps-Net admission test against every program in memory, for all seeds at once.

    When it fits, keeps a grid of cells of side h slightly below eps / sqrt(d): two programs in one
    cell would be closer than eps, so a cell holds at most one program and a child only has to be
    compared with the programs in the cells within eps of its own. Otherwise compares with all.
    """

    def __init__(self, eps: float, oracle: Oracle, memory: _SimulatedMemory) -> None:
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
