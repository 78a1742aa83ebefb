"""The loop end to end on the synthetic problem: budgets, reproducibility, resume, bad input."""

import json
from dataclasses import replace

import numpy as np
import pytest

from polca_nb.budget import Budget
from polca_nb.runlog import RunLog, read_events
from polca_nb.runner import PolcaConfig, polca
from polca_nb.search import exploration_batches, explore, reevaluate_top_k
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem
from polca_nb.types import Candidate


class Crash(BaseException):
    """Simulates the process dying (not an Exception, so the loop cannot swallow it)."""


class CountingEvaluator:
    def __init__(self, inner, crash_after=None):
        self.inner, self.crash_after, self.calls = inner, crash_after, []

    def __call__(self, params, example, seed):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise Crash()
        self.calls.append((params["instructions"], example.id, seed))
        return self.inner(params, example, seed)


def run(problem, budget=80, seed=0, run_dir=None, **cfg):
    config = PolcaConfig(Budget(max_metric_calls=budget), **{"eps": 0.5, **cfg})
    return polca(problem, ScriptedProposer(), config, embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(),
                 seed=seed, run_dir=run_dir, progress=False)


def test_metric_call_budget_is_never_exceeded():
    problem = skills_problem()
    for budget in (10, 13, 30, 61):
        res = run(problem, budget=budget)
        calls = sum(1 for e in res.events if e["type"] == "evaluation")
        assert calls == res.spent.metric_calls <= budget
        assert res.stop_reason == "max_metric_calls"


def test_iteration_budget_and_history():
    res = polca(skills_problem(), ScriptedProposer(), PolcaConfig(Budget(max_iterations=4), eps=0, use_summarizer=False),
                progress=False)
    assert res.stop_reason == "max_iterations" and len(res.history) == 4
    # iteration 0 explores only the seed, on K sub-batches of b examples; the proposals are then
    # validated on a batch scaled the same way (b*m = 10 examples each, as the paper's code)
    first = res.history[0]
    assert first.metric_calls == 5 * 2 + first.admitted * 10


def test_search_improves_on_the_synthetic_problem():
    problem = skills_problem()
    res = run(problem, budget=400, seed=3)
    seed_true = problem.evaluator.true_mean(problem.seed_params, problem.testset)
    best_true = problem.evaluator.true_mean(res.best.params, problem.testset)
    assert best_true > seed_true + 0.2


def test_same_seed_same_log_different_seed_different_log(tmp_path):
    problem = skills_problem()
    a = run(problem, seed=5, run_dir=tmp_path / "a")
    b = run(problem, seed=5, run_dir=tmp_path / "b")
    run(problem, seed=6, run_dir=tmp_path / "c")
    log_a = (tmp_path / "a" / "events.jsonl").read_text()
    assert log_a == (tmp_path / "b" / "events.jsonl").read_text()
    assert log_a != (tmp_path / "c" / "events.jsonl").read_text()
    assert a.events == b.events


def test_resume_after_crash_repeats_no_evaluation(tmp_path):
    problem = skills_problem()
    reference = CountingEvaluator(problem.evaluator)
    run(replace(problem, evaluator=reference), budget=120, seed=2, run_dir=tmp_path / "ref")

    for crash_after in (3, 37, 64):  # mid-iteration crashes at different points
        d = tmp_path / f"crash{crash_after}"
        first = CountingEvaluator(problem.evaluator, crash_after=crash_after)
        with pytest.raises(Crash):
            run(replace(problem, evaluator=first), budget=120, seed=2, run_dir=d)
        second = CountingEvaluator(problem.evaluator)
        res = run(replace(problem, evaluator=second), budget=120, seed=2, run_dir=d)
        # every evaluation happened exactly once across the two processes
        assert sorted(first.calls + second.calls) == sorted(reference.calls)
        assert (d / "events.jsonl").read_text() == (tmp_path / "ref" / "events.jsonl").read_text()
        assert res.spent.metric_calls == 120 and not (d / "replay.jsonl").exists()


def test_resume_of_finished_run_does_nothing_and_can_extend(tmp_path):
    problem = skills_problem()
    run(problem, budget=40, run_dir=tmp_path)
    counter = CountingEvaluator(problem.evaluator)
    res = run(replace(problem, evaluator=counter), budget=40, run_dir=tmp_path)
    assert counter.calls == [] and res.spent.metric_calls <= 40
    res = run(replace(problem, evaluator=counter), budget=80, run_dir=tmp_path)
    assert res.spent.metric_calls > 40 and len(counter.calls) == res.spent.metric_calls - 40


def test_resume_refuses_other_settings(tmp_path):
    problem = skills_problem()
    run(problem, budget=20, run_dir=tmp_path)
    with pytest.raises(ValueError, match="different settings"):
        run(problem, budget=20, run_dir=tmp_path, num_candidates=3)


def test_torn_last_line_is_ignored(tmp_path):
    problem = skills_problem()
    first = CountingEvaluator(problem.evaluator, crash_after=30)
    with pytest.raises(Crash):
        run(replace(problem, evaluator=first), budget=60, run_dir=tmp_path)
    with (tmp_path / "events.jsonl").open("a") as fh:
        fh.write('{"type": "evaluation", "step"')  # killed mid-write
    res = run(problem, budget=60, run_dir=tmp_path)
    assert res.spent.metric_calls == 60
    assert all(isinstance(e, dict) for e in read_events(tmp_path / "events.jsonl"))


def test_evaluator_exception_is_a_failed_rollout_not_a_crash():
    problem = skills_problem()

    def flaky(params, example, seed):
        if seed % 3 == 0:
            raise RuntimeError("sandbox died")
        return problem.evaluator(params, example, seed)

    res = run(replace(problem, evaluator=flaky), budget=60)
    evaluations = [e for e in res.events if e["type"] == "evaluation"]
    errors = [e for e in evaluations if e["seed"] % 3 == 0]
    assert errors and all(e["score"] == 0.0 and "sandbox died" in e["feedback"] for e in errors)
    assert len(evaluations) == res.spent.metric_calls


def test_failing_proposer_is_logged_and_dropped():
    class Broken:
        def propose(self, candidate, batch, context, seed):
            raise RuntimeError("LLM said nonsense")

    res = polca(skills_problem(), Broken(), PolcaConfig(Budget(max_iterations=2), eps=0, use_summarizer=False),
                progress=False)
    kinds = [e["type"] for e in res.events]
    assert "proposal_error" in kinds and "proposal" not in kinds and len(res.memory) == 1


def test_epsnet_rejections_are_logged_with_distances():
    res = run(skills_problem(), budget=200, seed=1)
    rejected = [e for e in res.events if e["type"] == "rejection"]
    admitted = [e for e in res.events if e["type"] == "admission"]
    assert rejected and admitted
    assert all(e["distance"] <= 0.5 for e in rejected) and all(e["distance"] > 0.5 for e in admitted)
    evaluated = {e["candidate_id"] for e in res.events if e["type"] == "evaluation"}
    assert not evaluated & {e["candidate_id"] for e in rejected}  # rejected proposals are never evaluated


def test_summary_reaches_proposer_only_when_enabled():
    seen = []

    class Spy(ScriptedProposer):
        def propose(self, candidate, batch, context, seed):
            seen.append(context)
            return super().propose(candidate, batch, context, seed)

    problem = skills_problem()
    polca(problem, Spy(), PolcaConfig(Budget(max_iterations=3), eps=0, use_summarizer=False), progress=False)
    assert set(seen) == {""}
    seen.clear()
    polca(problem, Spy(), PolcaConfig(Budget(max_iterations=3), eps=0), summarizer=SkillsSummarizer(),
          progress=False)
    assert any("Failures most often lacked" in c for c in seen)


@pytest.mark.parametrize("field,value,match", [
    ("num_candidates", 0, "num_candidates"),
    ("eps", -0.1, "eps"),
    ("batch_size", 0, "batch_size"),
    ("num_proposals", 0, "num_proposals"),
    ("validation_batch_size", 0, "validation_batch_size"),
    ("summary_sampler", "latest", "summary_sampler"),
    ("final_reevaluation", 0, "final_reevaluation"),
    ("test_repeats", 0, "test_repeats"),
])
def test_bad_config_raises_before_any_evaluation(field, value, match):
    problem = skills_problem()
    counter = CountingEvaluator(problem.evaluator)
    config = replace(PolcaConfig(Budget(max_iterations=2), eps=0, use_summarizer=False), **{field: value})
    with pytest.raises(ValueError, match=match):
        polca(replace(problem, evaluator=counter), ScriptedProposer(), config, progress=False)
    assert counter.calls == []


def test_bad_problem_and_roles():
    problem = skills_problem()
    cfg = PolcaConfig(Budget(max_iterations=2), eps=0, use_summarizer=False)
    with pytest.raises(ValueError, match="trainset is empty"):
        polca(replace(problem, trainset=[]), ScriptedProposer(), cfg, progress=False)
    with pytest.raises(ValueError, match="seed_params"):
        polca(replace(problem, seed_params={}), ScriptedProposer(), cfg, progress=False)
    with pytest.raises(ValueError, match="score_range"):
        polca(replace(problem, score_range=None), ScriptedProposer(), replace(cfg, priority="ucb"), progress=False)
    with pytest.raises(ValueError, match="embedder"):
        polca(problem, ScriptedProposer(), replace(cfg, eps=0.1), progress=False)
    with pytest.raises(ValueError, match="summarizer"):
        polca(problem, ScriptedProposer(), replace(cfg, use_summarizer=True), progress=False)
    with pytest.raises(ValueError, match="test_every"):
        polca(replace(problem, testset=None), ScriptedProposer(), replace(cfg, test_every=1), progress=False)
    with pytest.raises(ValueError, match="at least one limit"):
        Budget()
    with pytest.raises(ValueError, match="max_metric_calls"):
        Budget(max_metric_calls=0)


def test_ucb_run_and_test_evaluations_are_counted_apart():
    problem = skills_problem()
    cfg = PolcaConfig(Budget(max_metric_calls=60), eps=0, use_summarizer=False, priority="ucb", test_every=2)
    res = polca(problem, ScriptedProposer(), cfg, progress=False)
    tests = [h.test_score for h in res.history if h.test_score is not None]
    assert len(tests) == len(res.history) // 2
    assert res.spent.test_calls == len(tests) * len(problem.testset)
    assert sum(1 for e in res.events if e["type"] == "evaluation" and e["source"] != "test") == res.spent.metric_calls


def test_explore_scaling_when_fewer_than_k_were_popped():
    assert exploration_batches(1, 5, 1) == 5 and exploration_batches(1, 5, 2) == 2 and exploration_batches(2, 5, 5) == 2
    seed_only = [Candidate(0, {"instructions": "x"})]
    problem = skills_problem()
    explored = explore(seed_only, problem.trainset[:10], batch_size=2, evaluator=problem.evaluator, step=0,
                       rng=np.random.default_rng(0), log_=RunLog())
    assert len(explored) == 5 and explored[0].candidate.n == 10  # one candidate, K sub-batches
    with pytest.raises(ValueError, match="sub-batches"):
        explore(seed_only, problem.trainset[:3], batch_size=2, evaluator=problem.evaluator, step=0,
                rng=np.random.default_rng(0), log_=RunLog())


def test_reevaluate_top_k_orders_by_fresh_scores():
    problem = skills_problem()
    res = run(problem, budget=150)
    top = reevaluate_top_k(list(res.memory), 3, problem.testset, evaluator=problem.evaluator, repeats=1,
                           step=99, rng=np.random.default_rng(0), log_=RunLog())
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]


def test_checkpoint_is_json_and_holds_memory(tmp_path):
    run(skills_problem(), budget=30, run_dir=tmp_path)
    ckpt = json.loads((tmp_path / "checkpoint.json").read_text())
    assert ckpt["meta"]["problem"] == "skills" and ckpt["state"]["memory"]
