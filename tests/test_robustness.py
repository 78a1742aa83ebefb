"""Faults and bad input around the loop (issue 12): fatal errors stop the run, evaluation errors are
not program failures, and a careless user's input is refused with a message naming the value."""

import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from polca_nb.budget import Budget
from polca_nb.errors import (
    EvaluatorContractError,
    EvaluatorTypeError,
    EvaluatorValueError,
    FatalError,
    StopRun,
)
from polca_nb.llm.client import LLMError
from polca_nb.protocols import SerialExecutor, ThreadExecutor
from polca_nb.runlog import RunLog
from polca_nb.runner import PolcaConfig, Problem, polca
from polca_nb.search import evaluate_examples, explore, propose, summarize
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem
from polca_nb.types import Candidate, Evaluation, Example, Rollout


class Fatal(FatalError):
    """Stands in for the client's LLMFatalError (a rejected request, a bad key)."""


def llm_error(message="retries exhausted: 529 overloaded"):
    return LLMError(message, role="task", attempts=4, cause=None)


class Recorder:
    """A proposer that records its calls (to check nothing was asked of an LLM)."""

    def __init__(self, inner=None):
        self.inner, self.calls = inner or ScriptedProposer(), 0

    def propose(self, candidate, batch, context, seed):
        self.calls += 1
        return self.inner.propose(candidate, batch, context, seed)


def config(**kw):
    return PolcaConfig(**{"budget": Budget(max_metric_calls=60), "eps": 0, "use_summarizer": False, **kw})


def run(problem, proposer=None, cfg=None, **kw):
    return polca(problem, proposer or ScriptedProposer(), cfg or config(), progress=False, **kw)


# -- the evaluator contract -------------------------------------------------------------------------------

def returns_float(params, example, seed):
    return 0.5


@pytest.mark.parametrize("value", [0.5, None, {"score": 1.0, "feedback": "ok"}, (1.0, "ok")])
def test_evaluator_returning_not_an_evaluation_is_a_type_error_naming_evaluator_example_and_value(value):
    def bad_evaluator(params, example, seed):
        return value

    proposer = Recorder()
    with pytest.raises(TypeError) as info:
        run(replace(skills_problem(), evaluator=bad_evaluator), proposer)
    message = str(info.value)
    assert isinstance(info.value, EvaluatorTypeError) and isinstance(info.value, FatalError)
    assert "bad_evaluator" in message and repr(value)[:20] in message and "example 'ex" in message
    assert "Evaluation(score, feedback)" in message
    assert proposer.calls == 0  # refused on the first evaluation, before any proposal


def test_a_callable_object_evaluator_is_named_by_its_class():
    class MyEval:
        def __call__(self, params, example, seed):
            return None

    with pytest.raises(EvaluatorTypeError, match="MyEval instance on example"):
        run(replace(skills_problem(), evaluator=MyEval()))


@pytest.mark.parametrize("score, match", [
    (float("nan"), "nan"),
    (float("inf"), "inf"),
    (1.5, r"1.5, outside the problem's score_range \(0.0, 1.0\)"),
    (-0.1, "outside the problem's score_range"),
])
def test_nan_infinite_or_out_of_range_score_is_a_value_error(score, match):
    def evaluator(params, example, seed):
        return Evaluation(score, "fb")

    with pytest.raises(ValueError, match=match) as info:
        run(replace(skills_problem(), evaluator=evaluator))
    assert isinstance(info.value, EvaluatorValueError) and isinstance(info.value, EvaluatorContractError)
    assert "evaluator" in str(info.value) and "example 'ex" in str(info.value)


def test_score_range_none_allows_any_finite_score_but_not_nan():
    problem = replace(skills_problem(), score_range=None)
    ok = run(replace(problem, evaluator=lambda p, e, s: Evaluation(7.0, "fb")), cfg=config(budget=Budget(max_iterations=1)))
    assert ok.best.mean == 7.0
    with pytest.raises(EvaluatorValueError):
        run(replace(problem, evaluator=lambda p, e, s: Evaluation(float("nan"), "fb")))


@pytest.mark.parametrize("evaluation, match", [
    (Evaluation("1.0", "fb"), "score = '1.0'"),
    (Evaluation(1.0, None), "feedback = None"),
    (Evaluation(1.0, "fb", output=3), "output = 3"),
])
def test_wrong_field_types_are_type_errors(evaluation, match):
    with pytest.raises(EvaluatorTypeError, match=match):
        run(replace(skills_problem(), evaluator=lambda p, e, s: evaluation))


def test_a_contract_error_stops_the_run_with_a_partial_result(tmp_path):
    with pytest.raises(EvaluatorTypeError) as info:
        run(replace(skills_problem(), evaluator=returns_float), run_dir=tmp_path)
    result = info.value.result
    assert result.stop_reason == "fatal_error" and result.error.startswith("EvaluatorTypeError: ")
    assert result.best.id == 0 and result.best.mean is None
    summary = result.summary()  # the best has no rollouts yet
    assert "fatal_error" in summary and "not evaluated yet" in summary and "EvaluatorTypeError" in summary
    stopped = [e for e in result.events if e["type"] == "stopped"]
    assert stopped == [{"type": "stopped", "reason": "fatal_error", "error": result.error, "step": 0}]
    logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert logged[-1]["type"] == "stopped"


# -- fatal errors ---------------------------------------------------------------------------------------------

class FailOnce:
    """Wraps an evaluator; raises `exc` on call number `at` only (counting from 0)."""

    def __init__(self, inner, at, exc):
        self.inner, self.at, self.exc, self.calls = inner, at, exc, 0

    def __call__(self, params, example, seed):
        self.calls += 1
        if self.calls - 1 == self.at:
            raise self.exc
        return self.inner(params, example, seed)


def test_fatal_error_in_an_evaluation_stops_the_run_and_a_resume_is_exact(tmp_path):
    problem = skills_problem()
    cfg = config(budget=Budget(max_metric_calls=120), eps=0.5, use_summarizer=True)
    roles = dict(embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(), seed=4)
    reference = run(problem, cfg=cfg, run_dir=tmp_path / "ref", **roles)

    failing = FailOnce(problem.evaluator, at=45, exc=Fatal("401 invalid x-api-key"))
    with pytest.raises(Fatal) as info:
        run(replace(problem, evaluator=failing), cfg=cfg, run_dir=tmp_path / "run", **roles)
    partial = info.value.result
    assert partial.stop_reason == "fatal_error" and partial.error == "Fatal: 401 invalid x-api-key"
    assert 0 < len(partial.history) < len(reference.history)
    assert "fatal error: Fatal: 401 invalid x-api-key" in partial.summary()

    resumed = run(problem, cfg=cfg, run_dir=tmp_path / "run", **roles)
    assert resumed.events == reference.events
    assert (tmp_path / "run" / "events.jsonl").read_text() == (tmp_path / "ref" / "events.jsonl").read_text()


def test_fatal_error_before_the_first_checkpoint_resumes_exactly(tmp_path):
    problem = skills_problem()
    reference = run(problem, run_dir=tmp_path / "ref")
    with pytest.raises(Fatal):
        run(replace(problem, evaluator=FailOnce(problem.evaluator, at=3, exc=Fatal("bad model"))),
            run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.json").exists()
    counting = FailOnce(problem.evaluator, at=-1, exc=None)
    resumed = run(replace(problem, evaluator=counting), run_dir=tmp_path / "run")
    assert resumed.events == reference.events
    assert counting.calls == reference.spent.metric_calls - 3  # the 3 logged evaluations were replayed


@pytest.mark.parametrize("where", ["proposer", "summarizer"])
def test_fatal_error_in_a_role_is_not_absorbed(where):
    class FatalProposer:
        def propose(self, candidate, batch, context, seed):
            raise Fatal("403 permission denied")

    class FatalSummarizer:
        def summarize(self, candidates, previous, examples, seed):
            raise Fatal("403 permission denied")

    proposer = FatalProposer() if where == "proposer" else ScriptedProposer()
    summarizer = FatalSummarizer() if where == "summarizer" else SkillsSummarizer()
    with pytest.raises(Fatal) as info:
        run(skills_problem(), proposer, config(use_summarizer=True), summarizer=summarizer)
    assert info.value.result.stop_reason == "fatal_error"
    assert not [e for e in info.value.result.events if e["type"] == "proposal_error"]


def test_stop_run_passes_through_the_search_functions():
    problem = skills_problem()
    seed = Candidate(0, dict(problem.seed_params))
    log_ = RunLog()

    def stop(*args):
        raise StopRun("limit")

    with pytest.raises(StopRun):
        evaluate_examples(seed, problem.trainset[:2], [1, 2], evaluator=stop, step=0, source="explore", log_=log_)

    class StopProposer:
        def propose(self, *args):
            raise StopRun("limit")

    explored = explore([seed], problem.trainset[:2], batch_size=2, evaluator=problem.evaluator, step=0,
                       rng=np.random.default_rng(0), log_=log_)
    with pytest.raises(StopRun):
        propose(explored, StopProposer(), context="", num_proposals=1, step=0, rng=np.random.default_rng(0), log_=log_)

    class StopSummarizer:
        def summarize(self, *args):
            raise StopRun("limit")

    with pytest.raises(StopRun):
        summarize([explored[0].candidate], StopSummarizer(), previous="", examples={}, step=0,
                  rng=np.random.default_rng(0), log_=log_)


def test_thread_executor_propagates_an_exception_and_cancels_the_pending_calls():
    started = []
    lock = threading.Lock()

    def fn(i):
        with lock:
            started.append(i)
        if i == 0:
            raise Fatal("first call rejected")
        time.sleep(0.05)
        return i

    with pytest.raises(Fatal):
        list(ThreadExecutor(2).map(fn, list(range(20))))
    assert len(started) < 20
    assert list(ThreadExecutor(3).map(lambda i: i * 2, list(range(7)))) == [0, 2, 4, 6, 8, 10, 12]


def test_fatal_error_through_a_thread_executor_stops_the_run():
    problem = skills_problem()
    with pytest.raises(Fatal) as info:
        run(replace(problem, evaluator=FailOnce(problem.evaluator, at=2, exc=Fatal("no model binary"))), executor=4)
    assert info.value.result.stop_reason == "fatal_error"


# -- evaluation errors ---------------------------------------------------------------------------------------

def flaky_llm(problem, every=3):
    def evaluator(params, example, seed):
        if seed % every == 0:
            raise llm_error()
        return problem.evaluator(params, example, seed)
    return evaluator


def test_llm_error_in_an_evaluation_is_an_evaluation_error_not_a_program_failure():
    problem = skills_problem()
    res = run(replace(problem, evaluator=flaky_llm(problem)))
    evaluations = [e for e in res.events if e["type"] == "evaluation"]
    errors = [e for e in evaluations if "error" in e]
    assert errors and all(e["seed"] % 3 == 0 for e in errors)
    assert all(e["score"] == 0.0 and e["error"] == "LLMError: retries exhausted: 529 overloaded" for e in errors)
    assert len(evaluations) == res.spent.metric_calls
    # "zero": kept in the histories as score-0 rollouts flagged with the error
    flagged = [r for c in res.memory for r in c.rollouts if r.error is not None]
    assert len(flagged) == len(errors)
    assert sum(h.evaluation_errors for h in res.history) == len(errors) == res.evaluation_errors
    assert f"evaluation errors (an LLM call failed inside the evaluation; not program failures): {len(errors)}" \
        in res.summary()


def test_program_failures_have_no_error_field():
    problem = skills_problem()

    def crashing(params, example, seed):
        if seed % 3 == 0:
            raise RuntimeError("segfault")
        return problem.evaluator(params, example, seed)

    res = run(replace(problem, evaluator=crashing))
    failures = [e for e in res.events if e["type"] == "evaluation" and "segfault" in e["feedback"]]
    assert failures and all("error" not in e and e["score"] == 0.0 for e in failures)
    assert res.evaluation_errors == 0


def test_failure_score_is_the_range_minimum():
    problem = replace(skills_problem(), score_range=(-1.0, 1.0))
    seed = Candidate(0, dict(problem.seed_params))

    def evaluator(params, example, seed):
        raise llm_error() if example.id.endswith("0") else RuntimeError("boom")

    rollouts = evaluate_examples(seed, problem.trainset[:2], [1, 2], evaluator=evaluator, step=0, source="explore",
                                 log_=RunLog(), score_range=problem.score_range)
    assert [r.score for r in rollouts] == [-1.0, -1.0]
    assert [r.error is not None for r in rollouts] == [True, False]


def test_exclude_keeps_evaluation_errors_out_of_the_histories_but_charges_them():
    problem = skills_problem()
    cfg = config(evaluation_errors="exclude")
    res = run(replace(problem, evaluator=flaky_llm(problem)), cfg=cfg)
    evaluations = [e for e in res.events if e["type"] == "evaluation"]
    errors = [e for e in evaluations if "error" in e]
    assert errors and len(evaluations) == res.spent.metric_calls  # logged and charged
    assert all(r.error is None for c in res.memory for r in c.rollouts)
    assert sum(c.n for c in res.memory) == len(evaluations) - len(errors)
    assert res.evaluation_errors == len(errors)


def test_exclude_keeps_errors_out_of_the_proposers_minibatch():
    problem = skills_problem()
    seen = []

    class Spy(ScriptedProposer):
        def propose(self, candidate, batch, context, seed):
            seen.extend(rollout for _, rollout in batch)
            return super().propose(candidate, batch, context, seed)

    run(replace(problem, evaluator=flaky_llm(problem)), Spy(), config(evaluation_errors="exclude"))
    assert seen and all(r.error is None for r in seen)
    seen.clear()
    run(replace(problem, evaluator=flaky_llm(problem)), Spy(), config())
    assert any(r.error is not None for r in seen)


def test_an_evaluator_may_report_an_evaluation_error_itself():
    def evaluator(params, example, seed):
        return Evaluation(0.0, "judge unavailable", error="JudgeDown: 503")

    res = run(replace(skills_problem(), evaluator=evaluator), cfg=config(budget=Budget(max_iterations=1)))
    assert {e.get("error") for e in res.events if e["type"] == "evaluation"} == {"JudgeDown: 503"}


def test_evaluation_errors_config_field_is_validated_and_fingerprinted_only_when_set():
    base = PolcaConfig(Budget(max_metric_calls=100))
    assert base.fingerprint() == "fcfa331409d0d6bb"  # as before the field existed: old run dirs resume
    assert replace(base, evaluation_errors="exclude").fingerprint() != base.fingerprint()
    with pytest.raises(ValueError, match="evaluation_errors"):
        run(skills_problem(), cfg=config(evaluation_errors="skip"))


def test_rollout_error_round_trips_and_old_dicts_load():
    rollout = Rollout("x", 0.0, "fb", 1, "explore", "", 3, error="LLMError: down")
    assert Rollout.from_dict(rollout.to_dict()) == rollout
    old = {k: v for k, v in Rollout("x", 1.0, "fb", 1, "explore").to_dict().items()}
    assert "error" not in old and Rollout.from_dict(old).error is None
    candidate = Candidate(1, {"p": "v"}, rollouts=(rollout,))
    assert Candidate.from_dict(json.loads(json.dumps(candidate.to_dict()))).rollouts == (rollout,)


def test_evaluation_errors_survive_a_resume(tmp_path):
    problem = skills_problem()
    evaluator = flaky_llm(problem)
    reference = run(replace(problem, evaluator=evaluator), run_dir=tmp_path / "ref")
    with pytest.raises(Fatal):
        run(replace(problem, evaluator=FailOnce(evaluator, at=25, exc=Fatal("x"))), run_dir=tmp_path / "run")
    resumed = run(replace(problem, evaluator=evaluator), run_dir=tmp_path / "run")
    assert resumed.events == reference.events
    assert [r.error for c in resumed.memory for r in c.rollouts] == \
        [r.error for c in reference.memory for r in c.rollouts]


# -- the proposer contract ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, reason", [
    ("a new prompt", "the proposer returned 'a new prompt' (str), not a list"),
    ({"instructions": "x"}, "(dict), not a list"),
    (None, "the proposer returned None (NoneType)"),
    (["a new prompt"], "proposal 0 is 'a new prompt' (str), not a dict"),
    ([{"instructions": 3}], "proposal 0 gives parameter 'instructions' the value 3 (int), not a str"),
    ([{"instructions": "ok"}, {1: "x"}], "proposal 1 has a parameter name 1 (int), not a str"),
])
def test_a_malformed_proposal_is_dropped_and_logged_with_the_reason(value, reason):
    class Odd:
        def propose(self, candidate, batch, context, seed):
            return value

    res = run(skills_problem(), Odd(), config(budget=Budget(max_iterations=2)))
    errors = [e for e in res.events if e["type"] == "proposal_error"]
    assert errors and all(reason in e["error"] for e in errors)
    assert len(res.memory) == 1 and len(res.history) == 2


# -- data and budgets ---------------------------------------------------------------------------------------------

def test_a_training_set_smaller_than_k_times_b_runs():
    problem = skills_problem()
    small = replace(problem, trainset=problem.trainset[:3], valset=problem.trainset[3:5])
    res = polca(small, ScriptedProposer(), PolcaConfig(Budget(max_metric_calls=60), eps=0.5),
                embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(), progress=False)
    assert res.spent.metric_calls > 10 and res.history[0].explore_examples == 3


def test_a_budget_too_small_for_one_exploration_is_refused_up_front(tmp_path):
    problem = skills_problem()
    counting = FailOnce(problem.evaluator, at=-1, exc=None)
    with pytest.raises(ValueError) as info:
        run(replace(problem, evaluator=counting), cfg=config(budget=Budget(max_metric_calls=7)), run_dir=tmp_path)
    message = str(info.value)
    assert "Budget(max_metric_calls=7)" in message and "needs 10 metric calls" in message
    assert "num_candidates=5" in message and "batch_size=2" in message
    assert counting.calls == 0 and not (tmp_path / "events.jsonl").exists()
    ok = run(problem, cfg=config(budget=Budget(max_metric_calls=7), num_candidates=1, batch_size=2, num_batches=3))
    assert ok.spent.metric_calls == 6


def test_the_last_iteration_skips_proposer_and_summarizer_when_no_validation_is_affordable():
    problem = skills_problem()
    proposer = Recorder()
    summaries = []

    class CountingSummarizer(SkillsSummarizer):
        def summarize(self, *args):
            summaries.append(1)
            return super().summarize(*args)

    res = run(problem, proposer, config(budget=Budget(max_metric_calls=15), use_summarizer=True),
              summarizer=CountingSummarizer())
    assert proposer.calls == 0 and summaries == []
    skipped = [e for e in res.events if e["type"] == "skipped"]
    assert skipped == [{"type": "skipped", "step": 0, "roles": ["summarizer", "proposer"],
                        "reason": "5 metric calls left cannot pay for one validation of 10 examples"}]
    assert res.spent.metric_calls == 10 and len(res.history) == 1
    # with room for one validation the roles are asked
    res = run(problem, proposer, config(budget=Budget(max_metric_calls=20)))
    assert proposer.calls > 0 and not [e for e in res.events if e["type"] == "skipped"]


# -- run_dir reuse ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, what", [
    (lambda p: replace(p, seed_params={"instructions": "Something else."}), "the seed parameters"),
    (lambda p: replace(p, trainset=p.trainset[1:]), "the training set's example ids"),
    (lambda p: replace(p, valset=p.valset[::-1]), "the validation set's example ids"),
    (lambda p: replace(p, testset=p.testset[:5]), "the test set's example ids"),
    (lambda p: replace(p, score_range=(0.0, 2.0)), "the score_range"),
])
def test_a_run_dir_refuses_another_seed_program_or_data(tmp_path, change, what):
    problem = skills_problem()
    run(problem, run_dir=tmp_path)
    with pytest.raises(ValueError) as info:
        run(change(problem), run_dir=tmp_path)
    assert what in str(info.value) and "use a new run_dir or delete it" in str(info.value)
    assert run(problem, run_dir=tmp_path).spent.metric_calls == 60  # the same problem still resumes


def test_a_run_dir_without_checkpoint_refuses_another_problem(tmp_path):
    problem = skills_problem()
    with pytest.raises(Fatal):
        run(replace(problem, evaluator=FailOnce(problem.evaluator, at=3, exc=Fatal("x"))), run_dir=tmp_path)
    with pytest.raises(ValueError, match="the seed parameters"):
        run(replace(problem, seed_params={"instructions": "Other."}), run_dir=tmp_path)


def test_a_run_dir_from_before_data_fingerprints_still_resumes(tmp_path):
    problem = skills_problem()
    run(problem, cfg=config(budget=Budget(max_metric_calls=40)), run_dir=tmp_path / "old")
    path = tmp_path / "old" / "checkpoint.json"
    checkpoint = json.loads(path.read_text())
    del checkpoint["meta"]["problem_data"]  # what older versions wrote
    path.write_text(json.dumps(checkpoint))
    with pytest.raises(ValueError, match="the seed parameters"):  # the logged seed params are still checked
        run(replace(problem, seed_params={"instructions": "Other."}), cfg=config(budget=Budget(max_metric_calls=80)),
            run_dir=tmp_path / "old")
    resumed = run(problem, cfg=config(budget=Budget(max_metric_calls=80)), run_dir=tmp_path / "old")
    assert 40 < resumed.spent.metric_calls <= 80
    assert "problem_data" in json.loads(path.read_text())["meta"]  # checked from now on


def test_the_own_problem_error_messages_never_name_an_unset_size():
    problem = Problem("tiny", {"instructions": "p"}, trainset=[Example("0", None)],
                      evaluator=lambda p, e, s: Evaluation(1.0, "fine"))
    res = polca(problem, ScriptedProposer(), PolcaConfig(Budget(max_metric_calls=30), eps=0, use_summarizer=False),
                progress=False)
    assert res.spent.metric_calls <= 30 and res.best.mean == 1.0


def test_serial_executor_propagates_too():
    def fn(i):
        if i == 1:
            raise Fatal("x")
        return i

    it = SerialExecutor().map(fn, [0, 1, 2])
    assert next(it) == 0
    with pytest.raises(Fatal):
        next(it)


def test_llm_summarizer_absorbs_llm_failures_but_not_stop_run():
    from polca_nb.roles import LLMSummarizer

    class Raising:
        def __init__(self, exc):
            self.exc = exc

        def complete(self, **request):
            raise self.exc

    problem = skills_problem()
    rollout = Rollout(problem.trainset[0].id, 1.0, "fb", 0, "explore")
    candidates = [Candidate(0, dict(problem.seed_params), rollouts=(rollout,))]
    examples = problem.examples_by_id()
    assert LLMSummarizer(Raising(llm_error())).summarize(candidates, "old", examples, 0) == "old"
    with pytest.raises(Fatal):
        LLMSummarizer(Raising(Fatal("401"))).summarize(candidates, "old", examples, 0)


def test_an_llm_error_that_is_also_fatal_stops_the_run_instead_of_being_an_evaluation_error():
    class LLMFatal(LLMError, FatalError):  # the shape of the client's LLMFatalError
        pass

    problem = skills_problem()

    def evaluator(params, example, seed):
        raise LLMFatal("400 temperature: Extra inputs are not permitted", role="task", attempts=1, cause=None)

    with pytest.raises(LLMFatal) as info:
        run(replace(problem, evaluator=evaluator))
    assert info.value.result.error == "LLMFatal: 400 temperature: Extra inputs are not permitted"
    assert not [e for e in info.value.result.events if e["type"] == "evaluation"]
