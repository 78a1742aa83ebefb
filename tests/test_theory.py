"""Tests for the theory simulation: the oracle's assumption, the eps-Net, UCB, Theorems 1 and 2."""

from __future__ import annotations

import math

import numpy as np
import pytest

import polca_nb.theory._sim_memory as sim_memory
from polca_nb.theory import (
    Oracle,
    SimConfig,
    expected_steps_polca,
    expected_steps_sequential_reset,
    fit_log_curve,
    packing_bound,
    simulate_polca,
    simulate_sequential,
    successes_needed,
    sweep_theorem2,
    theorem2_oracle,
    ucb_priority,
)


# --- the oracle -------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta_0", [0.1, 0.35, 0.6])
def test_oracle_improvement_probability_matches_delta_0(delta_0: float) -> None:
    oracle = Oracle(delta_0=delta_0, p_dup=min(0.3, 1 - delta_0))
    rng = np.random.default_rng(11)
    draws = 100_000
    parent_mu = rng.uniform(0.0, oracle.B - oracle.gamma - 1e-9, draws)
    parent_z = oracle.radius_of(parent_mu) * np.vstack([np.ones(draws), np.zeros(draws)])
    child_mu, child_z = oracle.propose(parent_mu, parent_z, rng)

    rate = np.mean(child_mu > parent_mu + oracle.gamma)
    assert abs(rate - delta_0) < 5 * math.sqrt(delta_0 * (1 - delta_0) / draws)
    assert child_mu.min() >= 0.0 and child_mu.max() <= oracle.B
    # A child's reward is the reward of its latent position: mu is a function of the embedding.
    np.testing.assert_allclose(oracle.reward_of(child_z), child_mu, atol=1e-9)


def test_oracle_near_duplicates_stay_within_dup_radius() -> None:
    oracle = Oracle(delta_0=0.2, p_dup=0.5, dup_radius=0.03)
    rng = np.random.default_rng(5)
    draws = 50_000
    parent_mu = rng.uniform(0.0, 0.8, draws)
    angle = rng.uniform(0, 2 * np.pi, draws)
    parent_z = oracle.radius_of(parent_mu) * np.vstack([np.cos(angle), np.sin(angle)])
    child_mu, child_z = oracle.propose(parent_mu, parent_z, rng)
    near = np.linalg.norm(child_z - parent_z, axis=0) <= oracle.dup_radius + 1e-12
    # Every duplicate is near; other children land near only by chance (rare at this radius).
    assert near.mean() >= 0.5 - 5 * math.sqrt(0.25 / draws)
    assert near.mean() < 0.55
    # Near-duplicates cannot gain gamma: |mu' - mu| <= (B/R) * dup_radius < gamma.
    assert np.all(np.abs(child_mu[near] - parent_mu[near]) <= oracle.lipschitz * oracle.dup_radius + 1e-12)


def test_theorem2_oracle_failures_reset_and_improvements_barely_exceed_gamma() -> None:
    oracle = theorem2_oracle(B_over_gamma=5, delta_0=0.4)
    rng = np.random.default_rng(2)
    parent_mu = np.full(20_000, 0.3)
    child_mu, _ = oracle.propose(parent_mu, oracle.start(0.3, parent_mu.size), rng)
    improved = child_mu > 0.3 + oracle.gamma
    assert np.all(child_mu[~improved] == 0.0)
    assert np.all(child_mu[improved] <= 0.3 + oracle.gamma + oracle.jump)


# --- inputs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: SimConfig(sigma=-0.1), "sigma"),
        (lambda: SimConfig(eps=-0.01), "eps"),
        (lambda: SimConfig(seeds=0), "seeds"),
        (lambda: SimConfig(iterations=0), "iterations"),
        (lambda: SimConfig(sigma=float("nan")), "sigma"),
        (lambda: Oracle(delta_0=0.0), "delta_0"),
        (lambda: Oracle(delta_0=1.0), "delta_0"),
        (lambda: Oracle(gamma=0.0), "gamma"),
        (lambda: Oracle(B=1.0, gamma=1.5), "gamma"),
        (lambda: Oracle(delta_0=0.8, p_dup=0.3), "p_dup"),
        (lambda: simulate_sequential(Oracle(), seeds=0, max_steps=10, rng=0), "seeds"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_field(make, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


def test_gamma_equal_to_B_is_allowed() -> None:
    run = simulate_polca(Oracle(B=1.0, gamma=1.0), SimConfig(seeds=3, iterations=20), rng=0)
    assert np.all(run.hit_iteration >= 1)  # the initial program (mu = 0) is not in (0, 1]


# --- UCB --------------------------------------------------------------------------------------------


def test_ucb_priority_arithmetic_and_clipping() -> None:
    means = np.array([0.2, 0.5, -3.0, 0.95, 0.1])
    counts = np.array([100, 4, 1, 9, 1000])
    t, B, c = 3, 1.0, 0.5
    log_term = math.log(4.0)
    expected = [
        0.2 + 0.5 * math.sqrt(log_term / 100),
        0.5 + 0.5 * math.sqrt(log_term / 4),
        0.0,  # clipped below
        1.0,  # 0.95 + 0.5*sqrt(ln 4 / 9) = 1.146, clipped above
        0.1 + 0.5 * math.sqrt(log_term / 1000),
    ]
    np.testing.assert_allclose(ucb_priority(means, counts, t, B, c), expected, rtol=1e-12)
    # The bonus scales with the score range B, and the clip follows it.
    np.testing.assert_allclose(ucb_priority(np.array([1.0]), np.array([4]), 3, 2.0, 0.5),
                               [1.0 + 0.5 * math.sqrt(log_term / 4) * 2.0])
    with pytest.raises(ValueError, match="counts"):
        ucb_priority(means, np.zeros(5), t, B, c)


def test_sub_gaussian_ucb_width_is_sigma_scaled() -> None:
    assert SimConfig(sigma=0.3).ucb_width(B=2.0) == pytest.approx(math.sqrt(2) * 0.3 / 2.0)
    assert SimConfig(sigma=0.3, ucb_c=1.0).ucb_width(B=2.0) == 1.0


# --- an independent, unvectorized POLCA to check the fast one against --------------------------------


def naive_polca(oracle: Oracle, config: SimConfig, seed: int) -> dict[str, np.ndarray]:
    """POLCA written plainly, one seed at a time, consuming the generator in the documented layout.

    Priorities come from `ucb_priority` (checked by hand above) rather than the simulator's fused update.
    """
    rng = np.random.default_rng(seed)
    seeds, sigma, B, dim = config.seeds, config.sigma, oracle.B, oracle.latent_dim
    c = math.sqrt(2) * sigma / B if config.ucb_c is None else config.ucb_c
    first = config.mu_0 + sigma * rng.standard_normal(seeds)
    start = oracle.start(config.mu_0, 1)[:, 0]
    memory = [[{"mu": config.mu_0, "z": start.copy(), "obs": [first[s]]}] for s in range(seeds)]
    best = [config.mu_0] * seeds
    selected, sizes = np.zeros((seeds, config.iterations)), np.zeros((seeds, config.iterations), int)
    for t in range(1, config.iterations + 1):
        step = (t - 1) % 64
        if step == 0:
            uniforms = rng.random((64, 3, seeds))
            normals = rng.standard_normal((64, dim, seeds))
            noise = rng.standard_normal((64, 2, seeds))
        for s in range(seeds):
            programs = memory[s]
            means = np.array([sum(p["obs"]) / len(p["obs"]) for p in programs])
            counts = np.array([len(p["obs"]) for p in programs])
            values = list(ucb_priority(means, counts, t, B, c) if config.priority == "ucb" else means)
            top = max(values)
            parent = programs[max(i for i, v in enumerate(values) if v == top)]  # ties: newest
            parent["obs"].append(parent["mu"] + sigma * noise[step, 0, s])
            child_mu, child_z = oracle.propose_with(
                np.array([parent["mu"]]), parent["z"][:, None], uniforms[step][:, s : s + 1], normals[step][:, s : s + 1]
            )
            child_z = child_z[:, 0]
            if config.eps == 0 or all(np.linalg.norm(child_z - p["z"]) > config.eps for p in programs):
                programs.append({"mu": float(child_mu[0]), "z": child_z,
                                 "obs": [float(child_mu[0]) + sigma * noise[step, 1, s]]})
                best[s] = max(best[s], float(child_mu[0]))
            selected[s, t - 1] = parent["mu"]
            sizes[s, t - 1] = len(programs)
    returned = []
    for programs in memory:
        means = [sum(p["obs"]) / len(p["obs"]) for p in programs]
        top = max(means)
        returned.append(programs[max(i for i, m in enumerate(means) if m == top)]["mu"])
    return {"selected_mu": selected, "memory_size": sizes, "returned_mu": np.array(returned), "best": np.array(best)}


@pytest.mark.parametrize(
    "config",
    [
        SimConfig(seeds=3, iterations=300, sigma=0.2, eps=0.0, priority="ucb", ucb_c=1.0),  # memory grows past 256
        SimConfig(seeds=3, iterations=200, sigma=0.2, eps=0.1, priority="ucb"),
        SimConfig(seeds=3, iterations=200, sigma=0.3, eps=0.05, priority="mean"),
    ],
)
def test_vectorized_polca_matches_the_naive_reference(config: SimConfig) -> None:
    oracle = Oracle()
    fast = simulate_polca(oracle, config, rng=7)
    slow = naive_polca(oracle, config, seed=7)
    np.testing.assert_allclose(fast.selected_mu, slow["selected_mu"], rtol=1e-6)
    np.testing.assert_array_equal(fast.memory_size, slow["memory_size"])
    np.testing.assert_allclose(fast.returned_mu, slow["returned_mu"], rtol=1e-12)
    np.testing.assert_allclose(fast.best_mu[:, -1], slow["best"], rtol=1e-6)


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_eps_net_grid_agrees_with_brute_force(monkeypatch: pytest.MonkeyPatch, latent_dim: int) -> None:
    oracle = Oracle(latent_dim=latent_dim)
    config = SimConfig(seeds=10, iterations=600, sigma=0.3, eps=0.07)
    with_grid = simulate_polca(oracle, config, rng=3)
    monkeypatch.setattr(sim_memory, "_GRID_CELL_LIMIT", 0)
    brute = simulate_polca(oracle, config, rng=3)
    np.testing.assert_array_equal(with_grid.memory_size, brute.memory_size)
    np.testing.assert_array_equal(with_grid.selected_mu, brute.selected_mu)


# --- the eps-Net ------------------------------------------------------------------------------------


def test_eps_zero_admits_every_proposal() -> None:
    run = simulate_polca(Oracle(p_dup=0.5), SimConfig(seeds=4, iterations=400, eps=0.0), rng=1)
    np.testing.assert_array_equal(run.memory_size, np.broadcast_to(np.arange(2, 402), (4, 400)))


def test_eps_larger_than_the_space_admits_nothing_and_large_eps_admits_few() -> None:
    oracle = Oracle()
    nothing = simulate_polca(oracle, SimConfig(seeds=4, iterations=300, eps=2.0 * oracle.latent_radius + 0.01), rng=1)
    assert np.all(nothing.memory_size == 1)
    few = simulate_polca(oracle, SimConfig(seeds=4, iterations=300, eps=0.5), rng=1)
    assert few.memory_size.max() <= packing_bound(0.5, oracle.latent_radius, oracle.latent_dim)
    assert few.memory_size[:, -1].mean() < 0.05 * 300


def test_memory_is_bounded_and_saturates_with_eps() -> None:
    oracle = Oracle(latent_dim=1)
    eps = 0.1
    run = simulate_polca(oracle, SimConfig(seeds=6, iterations=2000, sigma=0.3, eps=eps, ucb_c=1.0), rng=4)
    bound = packing_bound(eps, oracle.latent_radius, 1)  # 21 points fit in [-1, 1] pairwise > 0.1 apart
    assert run.memory_size.max() <= bound
    assert np.all(np.diff(run.memory_size, axis=1) >= 0)
    # Saturation: the second half of the run adds far fewer programs than the first.
    assert (run.memory_size[:, -1] - run.memory_size[:, 999]).mean() < 0.2 * run.memory_size[:, 999].mean()


# --- Theorem 1 --------------------------------------------------------------------------------------


def test_suboptimal_selections_grow_sublinearly_with_ucb_and_eps_net() -> None:
    oracle = Oracle()
    with_net = simulate_polca(oracle, SimConfig(seeds=12, iterations=2000, sigma=0.1, eps=0.1), rng=8)
    counts = with_net.suboptimal_selections.mean(axis=0)
    n = 500
    assert counts[4 * n - 1] < 2.5 * counts[n - 1]
    assert counts[4 * n - 1] < 0.25 * 4 * n  # most of the budget goes to (B - gamma, B]
    # Without the eps-Net, memory keeps growing and UCB keeps paying for it.
    without = simulate_polca(oracle, SimConfig(seeds=12, iterations=1000, sigma=0.1, eps=0.0), rng=8)
    assert without.suboptimal_selections[:, -1].mean() > 3 * counts[999]


def test_deterministic_ucb_never_selects_suboptimal_after_hitting() -> None:
    # sigma = 0 makes the sub-Gaussian UCB plain greedy: only the best program is ever selected.
    run = simulate_polca(Oracle(), SimConfig(seeds=10, iterations=500, sigma=0.0, eps=0.1), rng=9)
    subopt = run.suboptimal_selections
    for s, hit in enumerate(run.hit_iteration):
        assert 1 <= hit < 500
        assert subopt[s, -1] == subopt[s, hit - 1] == hit  # every selection up to the hit, none after


def test_hit_iteration_matches_the_best_mu_trace() -> None:
    oracle = Oracle()
    run = simulate_polca(oracle, SimConfig(seeds=10, iterations=400, sigma=0.2), rng=12)
    target = oracle.B - oracle.gamma
    for s, hit in enumerate(run.hit_iteration):
        assert hit >= 1
        assert run.best_mu[s, hit - 1] > target - 1e-6
        if hit >= 2:
            assert run.best_mu[s, hit - 2] <= target + 1e-6


def test_fit_log_curve_recovers_a_known_curve() -> None:
    n = np.arange(1, 5001)
    fit = fit_log_curve(n, 3.5 * np.log(n) - 2.0, n_min=10)
    assert fit.slope == pytest.approx(3.5) and fit.intercept == pytest.approx(-2.0)


# --- Theorem 2 --------------------------------------------------------------------------------------


def test_successes_needed_counts_gamma_steps() -> None:
    assert successes_needed(1.0, 0.1) == 9  # 9 steps of just over 0.1 pass 0.9; 8 do not
    assert successes_needed(1.0, 0.5) == 1
    assert successes_needed(1.0, 1.0) == 1


def test_theorem2_sequential_is_exponential_and_polca_linear() -> None:
    delta_0, ratio, seeds = 0.5, 8, 300
    sweep = sweep_theorem2([ratio], delta_0, seeds=seeds, max_steps=50_000, seed=21)
    sequential, polca = sweep.sequential_steps[0], sweep.polca_steps[0]
    assert (sequential > 0).all() and (polca > 0).all()  # nothing censored, nothing hit at step 0
    k = successes_needed(1.0, 1.0 / ratio)
    # Exact means derived by hand: k successes in a row, vs k successes in any order.
    for steps, exact in ((sequential, expected_steps_sequential_reset(k, delta_0)),
                         (polca, expected_steps_polca(k, delta_0))):
        assert abs(steps.mean() - exact) < 5 * steps.std(ddof=1) / math.sqrt(seeds)
    assert sequential.mean() > 5 * polca.mean()


def test_same_seed_gives_same_results_and_other_seeds_differ() -> None:
    oracle, config = Oracle(), SimConfig(seeds=5, iterations=300, sigma=0.2)
    a, b = simulate_polca(oracle, config, rng=42), simulate_polca(oracle, config, rng=np.random.default_rng(42))
    c = simulate_polca(oracle, config, rng=43)
    for name in ("selected_mu", "memory_size", "best_mu", "hit_iteration", "returned_mu"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.selected_mu, c.selected_mu)
    s1 = simulate_sequential(theorem2_oracle(6, 0.5), seeds=20, max_steps=10_000, rng=3)
    s2 = simulate_sequential(theorem2_oracle(6, 0.5), seeds=20, max_steps=10_000, rng=3)
    np.testing.assert_array_equal(s1.hit_step, s2.hit_step)


def test_seeds_are_independent_runs() -> None:
    # Seed s of a 6-seed batch is not the same run as seed s of a 3-seed batch (draws are interleaved),
    # but every seed must be an independent run: no two seeds of one batch share a trajectory.
    run = simulate_polca(Oracle(), SimConfig(seeds=6, iterations=200, sigma=0.2), rng=0)
    assert len({tuple(row) for row in run.selected_mu}) == 6


def test_ucb_width_options_suit_a_dropdown_and_name_the_same_runs():
    """ipywidgets shows a None value as no selection: every option needs a real value."""
    from polca_nb import theory

    assert all(value is not None for _, value in theory.UCB_WIDTH_OPTIONS)
    knobs = dict(sigma=0.1, eps=0.1, gamma=0.1, delta_0=0.2, priority="ucb", seeds=2, iterations=60, seed=3)
    named = theory.quick_run(ucb_c=theory.UCB_WIDTH_OPTIONS[0][1], **knobs)
    default = theory.quick_run(ucb_c=None, **knobs)
    assert np.array_equal(named.memory_size, default.memory_size)
    with pytest.raises(ValueError, match="ucb_c='wide'"):
        theory.quick_run(ucb_c="wide", **knobs)
