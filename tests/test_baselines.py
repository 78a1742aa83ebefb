"""Baselines in the shared harness: metric-call accounting, GEPA and OpenEvolve adapters, loop baselines.

Everything runs offline on a deterministic keyword task with ScriptedLLM as the optimizer, so the
program each method must return is known without running it.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from polca_nb.baselines import (
    ALL_METHODS,
    BudgetExhausted,
    MeteredEvaluator,
    MethodResult,
    ProgramPoint,
    held_out_score,
    program_curve,
    run_baseline,
)
from polca_nb.llm.base import ScriptedLLM
from polca_nb.runner import Problem
from polca_nb.types import Evaluation, Example

KEY = "RESPOND-IN-ONE-WORD"


@dataclass
class KeywordEvaluator:
    """Score 1 iff the instructions contain KEY; counts every call (the ground truth for accounting)."""

    calls: int = 0
    seeds: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, params, example, seed):
        with self._lock:
            self.calls += 1
            self.seeds.append(seed)
        if KEY in params["instructions"]:
            return Evaluation(1.0, "Correct.", example.data)
        return Evaluation(0.0, f"Incorrect: answer with only '{example.data}'.", f"The answer is {example.data}.")


def keyword_problem(evaluator, n_train=8, n_val=None) -> Problem:
    train = [Example(f"t{i}", f"answer{i}") for i in range(n_train)]
    val = None if n_val is None else [Example(f"v{i}", f"answer{i}") for i in range(n_val)]
    return Problem("keyword", {"instructions": "Answer the question."}, train, evaluator, valset=val,
                   testset=[Example(f"x{i}", f"answer{i}") for i in range(4)], objective="Answer tersely.")


def fenced(text):
    return f"Improved instructions:\n```text\n{text}\n```"


def tagged(text):
    return f'Reasoning.\n<param name="instructions">\n{text}\n</param>'


def replies(wrap, texts):
    """ScriptedLLM replies cycling through `texts`, each wrapped in the optimizer's reply format."""
    cycle = itertools.cycle(texts)
    return ScriptedLLM(lambda request: wrap(next(cycle)))


def assert_accounting(result: MethodResult, evaluator: KeywordEvaluator, budget: int) -> None:
    assert evaluator.calls <= budget
    assert result.metric_calls == evaluator.calls
    calls = [p.metric_calls for p in result.trajectory]
    assert calls == sorted(calls) and calls[-1] == result.metric_calls


# -- MeteredEvaluator ------------------------------------------------------------------------------

def test_meter_counts_and_refuses_past_the_budget_without_evaluating():
    inner = KeywordEvaluator()
    meter = MeteredEvaluator(inner, 5, np.random.default_rng(0))
    ex = Example("a", "x")
    meter.evaluate_batch({"instructions": ""}, [ex, ex, ex])
    with pytest.raises(BudgetExhausted):
        meter.evaluate_batch({"instructions": ""}, [ex, ex, ex])  # 3 > 2 left: all or nothing
    assert (meter.calls, inner.calls) == (3, 3)
    meter.evaluate({"instructions": ""}, ex)
    meter({"instructions": ""}, ex, 7)  # the Evaluator protocol: the caller's seed is passed through
    assert inner.seeds[-1] == 7 and (meter.calls, meter.remaining) == (5, 0)
    with pytest.raises(BudgetExhausted):
        meter({"instructions": ""}, ex, 8)
    assert inner.calls == 5


def test_meter_seeds_are_reproducible_and_distinct():
    def draw(seed):
        inner = KeywordEvaluator()
        meter = MeteredEvaluator(inner, 10, np.random.default_rng(seed))
        meter.evaluate_batch({"instructions": ""}, [Example("a", "x")] * 4)
        return inner.seeds

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
    assert len(set(draw(3))) == 4


def test_meter_refuses_everything_after_close():
    meter = MeteredEvaluator(KeywordEvaluator(), 10)
    meter.close()
    with pytest.raises(BudgetExhausted):
        meter.evaluate({"instructions": ""}, Example("a", "x"))


@pytest.mark.parametrize("bad", [0, -3, 2.5, None])
def test_meter_rejects_a_bad_budget(bad):
    with pytest.raises(ValueError, match="max_metric_calls"):
        MeteredEvaluator(KeywordEvaluator(), bad)


# -- curves and held-out scores --------------------------------------------------------------------

def test_program_curve_memoizes_and_takes_the_running_max():
    a, b = {"instructions": "a"}, {"instructions": "b"}
    result = MethodResult("x", 0, b, (ProgramPoint(0, 2, a), ProgramPoint(1, 4, b), ProgramPoint(2, 6, a)),
                          6, 10, "max_metric_calls")
    scored = []

    def score(params):
        scored.append(params["instructions"])
        return {"a": 0.7, "b": 0.2}[params["instructions"]]

    plain = program_curve(result, score)
    assert [(p.metric_calls, p.score) for p in plain] == [(2, 0.7), (4, 0.2), (6, 0.7)]
    assert sorted(scored) == ["a", "b"]  # each distinct program scored once
    assert [p.score for p in program_curve(result, score, running_max=True)] == [0.7, 0.7, 0.7]


def test_held_out_score_uses_the_same_seeds_for_every_program():
    evaluator = KeywordEvaluator()
    testset = [Example("a", "x"), Example("b", "y")]
    assert held_out_score(evaluator, {"instructions": KEY}, testset, seed=1, repeats=2) == 1.0
    assert held_out_score(evaluator, {"instructions": "no"}, testset, seed=1, repeats=2) == 0.0
    assert evaluator.seeds[:4] == evaluator.seeds[4:]
    with pytest.raises(ValueError, match="repeats"):
        held_out_score(evaluator, {"instructions": KEY}, testset, seed=1, repeats=0)


# -- GEPA ------------------------------------------------------------------------------------------

def test_gepa_respects_the_budget_and_returns_its_best_validated_program():
    pytest.importorskip("gepa")
    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=8, n_val=4)
    better = f"Answer the question. {KEY}."
    llm = replies(fenced, ["Answer the question, please.", better])
    budget = 22  # seed on valset 4, reject 3+3, accept 3+3+4 = 20; the next parent pass (3) cannot fit
    result = run_baseline("gepa", problem, llm, budget=budget, seed=0)
    assert_accounting(result, evaluator, budget)
    assert result.details["gepa_total_num_evals"] == evaluator.calls  # GEPA counts in our unit too
    assert budget - result.metric_calls < 3 + 3  # it stopped only when an iteration could not be paid
    assert result.final_params == {"instructions": better}
    assert result.trajectory[0] == ProgramPoint(0, 4, dict(problem.seed_params))
    assert {c["role"] for c in llm.calls} == {"proposer"}
    assert result.details["reflection_calls"] == len(llm.calls) == result.details["llm_calls"]["proposer"]
    assert [c["sample_id"] for c in llm.calls] == list(range(len(llm.calls)))  # seed 0: 0, 1, 2, ...


def test_gepa_shows_our_feedback_to_the_reflection_lm():
    pytest.importorskip("gepa")
    evaluator = KeywordEvaluator()
    llm = replies(fenced, [f"Do it. {KEY}"])
    run_baseline("gepa", keyword_problem(evaluator, n_val=2), llm, budget=12, seed=5)
    prompt = llm.calls[0]["messages"][0]["content"]
    assert "Incorrect: answer with only" in prompt and "Answer the question." in prompt
    assert llm.calls[0]["sample_id"] == 5 * 1_000_000


def test_gepa_refuses_a_budget_below_one_validation_pass():
    pytest.importorskip("gepa")
    with pytest.raises(ValueError, match="too small for GEPA"):
        run_baseline("gepa", keyword_problem(KeywordEvaluator(), n_val=10), ScriptedLLM([]), budget=12)


def test_gepa_refuses_a_run_dir_holding_a_previous_state(tmp_path):
    pytest.importorskip("gepa")
    run_baseline("gepa", keyword_problem(KeywordEvaluator(), n_val=2), replies(fenced, [KEY]), budget=10,
                 run_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds a GEPA state"):
        run_baseline("gepa", keyword_problem(KeywordEvaluator(), n_val=2), replies(fenced, [KEY]), budget=10,
                     run_dir=tmp_path)


# -- OpenEvolve ------------------------------------------------------------------------------------

def test_openevolve_respects_the_budget_and_leaves_no_threads_or_global_changes():
    pytest.importorskip("openevolve")
    from polca_nb.baselines.openevolve_adapter import OpenEvolveSettings

    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=6)
    better = f"Answer with one word. {KEY}"
    llm = replies(fenced, ["Answer the question carefully.", better])
    threads, handlers = set(threading.enumerate()), list(logging.getLogger().handlers)
    random_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    budget = 26
    result = run_baseline("openevolve", problem, llm, budget=budget, seed=0,
                          peer_settings=OpenEvolveSettings(minibatch_size=4))
    assert_accounting(result, evaluator, budget)
    # Every program that was paid for reached OpenEvolve's database (none left in flight at the end).
    assert result.details["programs"] >= result.details["distinct_evaluated_programs"]
    assert budget - result.metric_calls < 4
    assert result.final_params == {"instructions": better}
    assert result.details["evaluations"] * 4 == result.metric_calls
    assert result.details["llm_calls"]["proposer"] == len(llm.calls) >= 2
    assert {c["role"] for c in llm.calls} == {"proposer"}
    assert "Answer tersely." in llm.calls[0]["system"]  # the problem's objective reaches the prompt
    assert set(threading.enumerate()) == threads
    assert logging.getLogger().handlers == handlers
    assert random.getstate() == random_state and (np.random.get_state()[1] == numpy_state).all()


def test_openevolve_keeps_asking_through_unusable_replies_until_the_budget_is_spent():
    """A weak model's replies often carry no program; those spend nothing, so the run must go on past
    budget / minibatch iterations instead of stopping with most of the budget unspent."""
    pytest.importorskip("openevolve")
    from polca_nb.baselines.openevolve_adapter import OpenEvolveSettings

    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=4)
    count = itertools.count()

    def reply(request):  # three of every four replies hold an empty program: nothing to evaluate
        k = next(count)
        return fenced(f"Answer briefly, take {k}.") if k % 4 == 0 else "```text\n\n```"

    llm = ScriptedLLM(reply)
    budget = 20
    settings = OpenEvolveSettings(minibatch_size=4, num_islands=1)
    result = run_baseline("openevolve", problem, llm, budget=budget, seed=0, peer_settings=settings)
    assert_accounting(result, evaluator, budget)
    # seed + 4 children = 20 calls; the 4th usable reply is LLM call 13 (> 2 * 20 / 4 + 1 iterations),
    # and no LLM call is made once the budget is spent.
    assert result.metric_calls == budget
    assert result.details["llm_calls"]["proposer"] == len(llm.calls) == 13


def test_openevolve_feedback_reaches_the_prompt_as_artifacts():
    pytest.importorskip("openevolve")
    from polca_nb.baselines.openevolve_adapter import OpenEvolveSettings

    llm = replies(fenced, ["Try again."])
    run_baseline("openevolve", keyword_problem(KeywordEvaluator()), llm, budget=8, seed=0,
                 peer_settings=OpenEvolveSettings(minibatch_size=4, max_iterations=1))
    assert "Incorrect: answer with only" in llm.calls[0]["messages"][0]["content"]


def test_openevolve_program_text_round_trips_several_parameters():
    pytest.importorskip("openevolve")
    from polca_nb.baselines.openevolve_adapter import parse_program, program_text

    params = {"a": "first\nline", "b": "second"}
    assert parse_program(program_text(params), ["a", "b"]) == params
    assert parse_program("only <param name=\"a\">x</param>", ["a", "b"]) is None
    assert parse_program("  text \n", ["p"]) == {"p": "text"}


# -- loop baselines through the same entry point ---------------------------------------------------

@pytest.mark.parametrize("method", ["sequential", "best-of-n"])
def test_loop_baselines_respect_the_budget(method):
    evaluator = KeywordEvaluator()
    llm = replies(tagged, ["Answer the question, briefly.", f"Answer. {KEY}"])
    budget = 11
    result = run_baseline(method, keyword_problem(evaluator), llm, budget=budget, seed=0)
    assert_accounting(result, evaluator, budget)
    assert result.method == method and result.details["llm_calls"]["proposer"] == len(llm.calls)
    assert KEY in result.final_params["instructions"]  # the second proposal scores 1, the rest 0


def test_run_baseline_rejects_unknown_methods_and_bad_budgets():
    with pytest.raises(ValueError, match="name must be one of"):
        run_baseline("dspy", keyword_problem(KeywordEvaluator()), ScriptedLLM([]), budget=10)
    with pytest.raises(ValueError, match="budget"):
        run_baseline("sequential", keyword_problem(KeywordEvaluator()), ScriptedLLM([]), budget=0)
    assert {"gepa", "openevolve", "polca", "sequential", "best-of-n"} <= set(ALL_METHODS)


@pytest.mark.parametrize("method", ["polca", "gepa", "openevolve"])
def test_llm_calls_count_the_optimizer_roles_on_a_shared_client_not_the_task_model(method):
    """`llm_calls` comes from a tracker on the client's ledger: the optimizer's own requests, cache hits
    included, not the evaluator's task calls on the same client, nor calls made before or after the run."""
    if method in ("gepa", "openevolve"):
        pytest.importorskip(method)
    from polca_nb.benchmarks.short_answer import short_answer_problem
    from polca_nb.embedders import CharNgramEmbedder
    from polca_nb.llm import LLMCache, LLMClient, RetryPolicy

    def create(**body):
        text = (f'<param name="instructions">\nAnswer in one word ({len(str(body)) % 5}).\n</param>\n'
                "```text\nAnswer in one word.\n```\n<summary>Use one word.</summary>")
        return {"content": [{"type": "text", "text": text}], "usage": {"input_tokens": 5, "output_tokens": 2}}

    client = LLMClient(model="fake-model", create=create, cache=LLMCache(), retry=RetryPolicy(max_attempts=1))
    problem = short_answer_problem(client, n_train=6, n_test=3, seed=0)
    run = lambda: run_baseline(method, problem, client, budget=40, seed=1, embedder=CharNgramEmbedder(),
                               max_tokens=64)
    first = run()
    second = run()  # the same requests again: all answered from the reply cache
    ledger = client.ledger.snapshot()["usage"]
    assert first.details["llm_calls"] == second.details["llm_calls"] and "task" not in first.details["llm_calls"]
    for role, n in first.details["llm_calls"].items():
        assert ledger[role]["requests"] == 2 * n and ledger[role]["cache_hits"] >= n  # the second run: all cached
    assert first.details["llm_calls"].get("proposer", 0) >= 1 and ledger["task"]["requests"] > 0
