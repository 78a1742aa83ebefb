"""The simulated program space and proposal oracle of the paper's theoretical model (polca-method.md §4).

Nothing here calls an LLM: programs are points, rewards a formula, proposals random draws. In the
notation of Theorem 1 / Theorem 2:

* **Program space.** A program is a point z in the closed d-ball of radius R (its "embedding"); its
  true reward is mu(z) = B * (1 - |z| / R), so mu is in [0, B], the optimum sits at the centre, and
  mu is (B/R)-Lipschitz in z. Programs within eps of each other therefore differ by at most B*eps/R.
* **Proposal oracle Pi(.|C_theta)** (`Oracle.propose`). From a parent with reward mu, three branches:
  improve with probability delta_0 (mu' uniform in (mu + gamma, min(B, mu + gamma + jump)], new
  direction), near-duplicate with probability p_dup (latent moved by at most dup_radius, mu' = mu(z')),
  otherwise fail (mu' <= mu: a drop of up to failure_drop, or a reset to mu' = 0). With
  B * dup_radius / R < gamma only the improve branch gains more than gamma, so
  P[mu' > mu + gamma] = delta_0 exactly for every parent with mu < B - gamma: the gamma-strict
  improvement assumption holds with equality. (At mu = B - gamma exactly the assumption cannot hold
  for any oracle, since it would need mu' > B; there the improve branch draws mu' in (mu, B].)

`theorem2_oracle` is the oracle of Theorem 2's comparison (improvements of just over gamma, failures
reset). The simulated searches that query the oracle are in `simulator.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Failure = Literal["drop", "reset"]

__all__ = ["Failure", "Oracle", "theorem2_oracle"]


def _check_finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Oracle:
    """Simulated program space plus a proposal oracle that satisfies gamma-strict improvement with prob. delta_0.

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
        dim = self.latent_dim
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"latent_dim must be an int >= 1, got {self.latent_dim!r}")
        if self.latent_radius <= 0:
            raise ValueError(f"latent_radius must be > 0, got {self.latent_radius!r}")

    @property
    def lipschitz(self) -> float:
        """|mu(z) - mu(z')| <= lipschitz * |z - z'|."""
        return self.B / self.latent_radius

    def radius_of(self, mu: np.ndarray | float) -> np.ndarray:
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


def theorem2_oracle(B_over_gamma: float, delta_0: float, B: float = 1.0) -> Oracle:
    """The Theorem 2 oracle: improvements of just over gamma, failures reset to mu = 0, no duplicates.

    A failure may do anything under the assumption (it only lower-bounds the improvement
    probability), so resetting is legal; it makes sequential updating need successes_needed(B, gamma)
    improvements in a row, the exponential regime, while POLCA, which keeps the best, needs them in any order.
    """
    gamma = B / B_over_gamma
    return Oracle(B=B, gamma=gamma, delta_0=delta_0, jump=1e-3 * gamma, p_dup=0.0, failure="reset")
