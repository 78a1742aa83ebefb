"""The comparison's fairness contract: one test protocol apart from every method's seeds, and budgets
checked against each method's per-step cost (`baselines.estimates`)."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import replace

import numpy as np
import pytest

from polca_nb.baselines.accounting import TEST_SEED_STREAM, MeteredEvaluator, held_out_score, held_out_seeds
from polca_nb.baselines.compare import compare_methods, describe_test_protocol
from polca_nb.baselines.estimates import (
    MIN_STEPS,
    STEP_ESTIMATORS,
    BudgetWarning,
    budget_for_steps,
    budget_warnings,
    estimated_steps,
    gepa_steps,
    loop_steps,
    openevolve_steps,
)
from polca_nb.baselines.gepa_adapter import GepaSettings, gepa_iteration_cost
from polca_nb.baselines.registry import default_config, run_baseline
from polca_nb.budget import Budget
from polca_nb.llm.base import ScriptedLLM
from polca_nb.methods import get_method
from polca_nb.runner import PolcaConfig, Problem
from polca_nb.state import derived_rng
from polca_nb.types import SEED_BOUND, Evaluation, Example
from test_baselines_compare import KEY, LengthEmbedder, keyword_evaluator



def problem(n_train: int = 10, n_test: int = 4, evaluator=keyword_evaluator) -> Problem:
    return Problem("keyword", {"instructions": "Answer."}, [Example(f"t{i}", f"a{i}") for i in range(n_train)],
                   evaluator, testset=[Example(f"x{i}", f"b{i}") for i in range(n_test)])


# -- one test protocol --------------------------------------------------------------------------------

def _meter_seeds(rng: np.random.Generator, n: int) -> set[int]:
    seeds: list[int] = []
    meter = MeteredEvaluator(lambda params, ex, seed: seeds.append(seed) or Evaluation(0.0, "", ""), n, rng)
    meter.evaluate_batch({"p": "x"}, [Example(str(i), i) for i in range(n)])
    return set(seeds)


def test_test_seeds_are_apart_from_every_stream_a_method_draws_with_seeds_0_to_4():
    testset = [Example(f"x{i}", i) for i in range(50)]
    seen: list[tuple[str, str, int]] = []

    def recording(params, example, seed):
        seen.append((params["instructions"], example.id, seed))
        return Evaluation(0.5, "", "")

    for test_seed in range(5):
        seen.clear()
        for program in ("Answer.", "Answer briefly.", "Say one word."):
            held_out_score(recording, {"instructions": program}, testset, seed=test_seed, repeats=2)
        by_program = {p: [s for q, _, s in seen if q == p] for p, _, _ in seen}
        first, *others = by_program.values()
        assert all(o == first for o in others)  # every program sees the same task-model samples
        assert first == held_out_seeds(test_seed, 2, len(testset)).ravel().tolist()
        test = set(first)
        for run_seed in range(5):
            # GEPA's, DSPy's and the registry's meters and the loop's RNG; OpenEvolve's meter and batches; the
            # loop's test and re-evaluation streams; SeedSequence children (the theory sweeps).
            streams = [np.random.default_rng(run_seed), *(derived_rng(run_seed, k) for k in range(3)),
                       *map(np.random.default_rng, np.random.SeedSequence(run_seed).spawn(3))]
            for rng in streams:
                assert not test & _meter_seeds(rng, 2 * len(testset)), (test_seed, run_seed)


def test_held_out_seeds_come_from_the_named_stream():
    seeds = held_out_seeds(3, 2, 5)
    expected = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(TEST_SEED_STREAM,))).integers(
        0, SEED_BOUND, size=(2, 5))
    assert seeds.shape == (2, 5) and (seeds == expected).all()
    assert not (held_out_seeds(4, 2, 5) == seeds).all()
    # The old protocol drew default_rng(test_seed): GEPA's meter with seed == test_seed drew the same vector.
    assert not (np.random.default_rng(3).integers(0, SEED_BOUND, size=(2, 5)) == seeds).any()


def test_compare_methods_tests_every_program_on_the_same_samples_and_none_on_validation_samples():
    pytest.importorskip("gepa")
    calls: list[tuple[str, str, int]] = []

    def recording(params, example, seed):
        calls.append((params["instructions"], example.id, seed))
        return keyword_evaluator(params, example, seed)

    count = itertools.count()

    def reply(request):  # new programs in the formats both methods read, half of them good
        k = next(count)
        return f'<param name="instructions">\nAnswer {k}. {KEY}\n</param>' if k % 2 else f"```\nAnswer {k}.\n```"

    llm = ScriptedLLM(reply)
    p = problem(n_train=6, evaluator=recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        compare_methods(["sequential", "gepa"], p, llm, budget=24, seeds=[0, 1], grid_points=2, test_seed=0)
    test_ids = {ex.id for ex in p.testset}
    test_calls = [c for c in calls if c[1] in test_ids]
    seeds_by_example = {ex_id: {s for _, e, s in test_calls if e == ex_id} for ex_id in test_ids}
    assert len({prog for prog, _, _ in test_calls}) >= 2  # several programs were tested ...
    assert all(len(s) == 1 for s in seeds_by_example.values())  # ... each example on one seed for all of them
    validation_seeds = {s for _, e, s in calls if e not in test_ids}
    assert not {s for seeds in seeds_by_example.values() for s in seeds} & validation_seeds


def test_describe_test_protocol_states_examples_repeats_and_stream():
    line = describe_test_protocol(10, test_seed=0, test_repeats=2)
    assert "10 test examples x 2 repeat(s)" in line and f"{TEST_SEED_STREAM:#x}" in line
    assert "SeedSequence(0" in line


# -- step estimates -----------------------------------------------------------------------------------

def test_loop_steps_replay_the_loops_accounting():
    # K=5, b=2: iteration 0 explores the seed on 5 sub-batches (10 calls) and validates each of its 5
    # proposals on 10 examples; later ones explore 5 candidates (10 calls) and validate 5 on 2 each.
    assert loop_steps(default_config(24)) == 1      # 10 + 1 x 10 (14 left pay for one)
    assert loop_steps(default_config(40)) == 3      # 10 + 3 x 10
    assert loop_steps(default_config(60)) == 5
    assert loop_steps(default_config(200)) == 40    # 60 + 7 x (10 + 5 x 2)
    sequential = get_method("sequential").configure(default_config(40))
    assert loop_steps(sequential) == 10             # 2 explored + 2 validated per proposal
    assert loop_steps(replace(sequential, validation_batch_size=6)) == 5
    # P=2: 2 + 2 x 2 calls per iteration; the 7th iteration's 2 calls left validate one of its two.
    assert loop_steps(replace(sequential, num_proposals=2)) == 13
    with pytest.raises(ValueError, match="max_metric_calls"):
        loop_steps(PolcaConfig(Budget(max_iterations=3)))


@pytest.mark.parametrize("method,budget", [("polca-vanilla", 24), ("polca-vanilla", 40), ("polca-vanilla", 200),
                                           ("sequential", 37), ("best-of-n", 30)])
def test_loop_estimate_is_what_a_run_with_every_proposal_admitted_validates(method, budget):
    count = itertools.count()
    llm = ScriptedLLM(lambda req: f'<param name="instructions">\nAnswer, take {next(count)}.\n</param>')
    result = run_baseline(method, problem(), llm, budget=budget, seed=0, embedder=LengthEmbedder())
    validated = result.details["memory_size"] - 1
    assert validated == estimated_steps(method, problem(), budget)
    assert result.details["proposals"] >= validated
    assert result.details["unused_calls"] == budget - result.metric_calls


def test_gepa_estimate_is_the_worst_case_iterations_and_zero_where_run_gepa_refuses():
    p = problem(n_train=10)
    assert gepa_steps(p, 200) == (200 - 10) // (2 * 3 + 10) == 11
    assert gepa_steps(p, 40) == 1
    cost = gepa_iteration_cost(10, 3, 10, False)
    assert gepa_steps(p, 10 + cost - 1) == 0 and gepa_steps(p, 10 + cost) == 1  # run_gepa's own limit
    assert gepa_steps(p, 200, settings=GepaSettings(reflection_minibatch_size=1)) == 190 // 12
    assert gepa_steps(p, 200, settings=GepaSettings(use_merge=True)) == 11  # merge (5 + 10) costs less here
    assert estimated_steps("gepa", p, 200, peer_settings=GepaSettings(reflection_minibatch_size=5)) == 190 // 20


def test_openevolve_estimate_is_one_minibatch_per_child_after_the_seed():
    pytest.importorskip("openevolve")
    from polca_nb.baselines.openevolve_adapter import OpenEvolveSettings

    p = problem(n_train=10)
    assert openevolve_steps(p, 200) == 200 // 10 - 1  # default minibatch 10
    assert openevolve_steps(p, 200, settings=OpenEvolveSettings(minibatch_size=5)) == 39
    assert openevolve_steps(p, 200, settings=OpenEvolveSettings(minibatch_size=50)) == 19  # capped by the set
    assert openevolve_steps(p, 19) == 0  # run_openevolve refuses a budget under 2 minibatches
    assert openevolve_steps(p, 200, settings=OpenEvolveSettings(minibatch_size=5, max_iterations=7)) == 7


def test_every_method_of_the_harness_has_an_estimator():
    from polca_nb.baselines import ALL_METHODS

    assert set(ALL_METHODS) <= set(STEP_ESTIMATORS)
    with pytest.raises(ValueError, match="no step estimator"):
        estimated_steps("no-such-method", problem(), 200)


def test_budget_for_steps_is_the_smallest_budget_reaching_them():
    p = problem()
    for method in ("polca", "sequential", "gepa"):
        needed = budget_for_steps(method, p, MIN_STEPS)
        assert needed is not None
        assert estimated_steps(method, p, needed) >= MIN_STEPS > estimated_steps(method, p, needed - 1)
    assert budget_for_steps("polca", p, MIN_STEPS) == 60


# -- budget warnings ----------------------------------------------------------------------------------

def test_a_tiny_budget_warns_for_every_method_short_of_steps_and_20x_the_valset_warns_for_none():
    pytest.importorskip("openevolve")
    p = problem(n_train=10)
    methods = ["polca", "sequential", "gepa", "openevolve", "dspy-mipro", "dspy-gepa"]
    tiny = budget_warnings(methods, p, 40)
    warned = {m.split(":")[0] for m in tiny}
    assert warned == {"polca", "gepa", "openevolve", "dspy-mipro", "dspy-gepa"}  # sequential makes 10
    gepa = next(m for m in tiny if m.startswith("gepa:"))
    assert "about 1 proposal(s)" in gepa and f"about {budget_for_steps('gepa', p, MIN_STEPS)} metric calls" in gepa
    assert budget_warnings(list(STEP_ESTIMATORS), p, 20 * len(p.trainset)) == []


def test_peer_settings_and_base_config_reach_the_estimates():
    p = problem(n_train=10)
    assert budget_warnings(["gepa"], p, 100) == []
    assert budget_warnings(["gepa"], p, 100, peer_settings={"gepa": GepaSettings(reflection_minibatch_size=10)})
    assert budget_warnings(["polca"], p, 60) == []
    assert budget_warnings(["polca"], p, 60, base_config=default_config(60, batch_size=4))


def test_a_registered_estimator_is_used(monkeypatch):
    monkeypatch.setitem(STEP_ESTIMATORS, "my-method", lambda problem, budget, *, base_config, settings: budget // 100)
    assert estimated_steps("my-method", problem(), 250) == 2
    (message,) = budget_warnings(["my-method"], problem(), 250)
    assert message.startswith("my-method:") and "about 500 metric calls" in message


def test_dspy_estimates_follow_their_budget_checks():
    pytest.importorskip("dspy")
    from polca_nb.baselines.dspy_adapter import DspyGepaSettings, MiproSettings, plan_mipro
    from polca_nb.baselines.estimates import dspy_gepa_steps, mipro_steps

    p = problem(n_train=10)
    assert mipro_steps(p, 200) == plan_mipro(200, n_train=10, n_val=10, settings=MiproSettings()).num_trials == 14
    assert mipro_steps(p, 59) == 0  # bootstrapping (5 x 10 at worst), the default program and a trial need 70
    assert dspy_gepa_steps(p, 200) == (200 - 10) // 16  # merge on: max(2 * 3 + 10, 5 + 10)
    assert dspy_gepa_steps(p, 200, settings=DspyGepaSettings(reflection_minibatch_size=10)) == (200 - 10) // 30


def test_compare_methods_warns_before_running_a_method_short_of_steps():
    llm = ScriptedLLM(lambda req: '<param name="instructions">\nAnswer.\n</param>')
    with pytest.warns(BudgetWarning, match="polca-vanilla: at 24 metric calls") as caught:
        compare_methods(["polca-vanilla"], problem(), llm, budget=24, seeds=[0], grid_points=2,
                        embedder=LengthEmbedder())
    # Named by module: a notebook's saved warning shows no path of the machine that ran it.
    assert [w.filename for w in caught] == ["polca_nb.baselines.compare"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        compare_methods(["sequential"], problem(), llm, budget=24, seeds=[0], grid_points=2,
                        embedder=LengthEmbedder())


def test_bench_budget_defaults_to_20_times_the_validation_set():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "compare.py"
    spec = importlib.util.spec_from_file_location("bench_compare_args", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.parse_args([]).budget == 200
    assert bench.parse_args(["--n-train", "7"]).budget == 140
    assert bench.parse_args(["--n-train", "7", "--budget", "30"]).budget == 30
