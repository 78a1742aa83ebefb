"""DSPy's MIPROv2 and dspy.GEPA (the real `dspy` package) in the shared harness, offline.

The optimizer LM is a ScriptedLLM that speaks DSPy's reply formats (ChatAdapter fields, or the JSON
object dspy.GEPA's proposer asks for); the task is the keyword task of test_baselines, so the program
each optimizer must find is known. Budgets are checked against the evaluator's own call count.
"""

from __future__ import annotations

import json
import re
import threading
import warnings

import pytest

pytest.importorskip("dspy")

from polca_nb.baselines import run_baseline  # noqa: E402
from polca_nb.baselines import dspy_adapter  # noqa: E402
from polca_nb.baselines.dspy_adapter import (  # noqa: E402
    DspyGepaSettings,
    MiproSettings,
    PolcaEngine,
    mipro_worst_case_calls,
    plan_mipro,
    run_dspy,
)
from polca_nb.llm.base import ScriptedLLM  # noqa: E402
from polca_nb.llm.ledger import Ledger  # noqa: E402
from test_baselines import KEY, KeywordEvaluator, assert_accounting, keyword_problem  # noqa: E402

GOOD = f"Always {KEY}. Answer tersely."
BAD = "Answer in full sentences, please."


def output_fields(system: str) -> list[str]:
    """The output field names a DSPy adapter prompt asks for, in order."""
    match = re.search(r"Your output fields are:\s*\n(.*?)(?:\n\n|All interactions)", system, re.S)
    return re.findall(r"`(\w+)`", match.group(1)) if match else []


def dspy_speaker(instruction: str = GOOD):
    """A ScriptedLLM reply function answering every DSPy request in the format it asks for."""

    def reply(request):
        system = request["system"]
        values = {f: (instruction if "instruction" in f else f"some {f}") for f in output_fields(system)}
        if "Outputs will be a JSON object" in system:
            return json.dumps(values)
        return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]"

    return reply


def scripted(instruction: str = GOOD) -> ScriptedLLM:
    return ScriptedLLM(dspy_speaker(instruction), ledger=Ledger())


def run(method, budget, *, instruction=GOOD, n_train=8, n_val=8, settings=None, seed=0):
    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=n_train, n_val=n_val)
    llm = scripted(instruction)
    result = run_dspy(method, problem, llm, budget=budget, seed=seed, settings=settings)
    return result, evaluator, llm


# -- MIPROv2 ----------------------------------------------------------------------------------------------

def test_mipro_finds_the_keyword_within_budget_and_every_lm_call_is_in_the_ledger():
    result, evaluator, llm = run("dspy-mipro", 80)
    assert_accounting(result, evaluator, 80)
    assert KEY in result.final_params["instructions"]
    assert result.details["unused_calls"] == 80 - result.metric_calls
    # Every DSPy LM call reached our LLM (DSPy's cache is off) and the ledger's proposer account.
    assert result.details["lm_calls"] == len(llm.calls) > 0
    assert result.details["llm_calls"] == {"proposer": len(llm.calls)}
    assert {c["role"] for c in llm.calls} == {"proposer"}
    assert result.details["proposals"] == MiproSettings().num_candidates  # one proposer call per candidate
    assert result.stop_reason.startswith("trials done")


@pytest.mark.parametrize("minibatch_size", [35, 3])
def test_mipro_worst_case_matches_dspy_when_every_bootstrap_fails(minibatch_size):
    # Proposals never contain the keyword: every score is 0, so each bootstrap pass runs the whole
    # trainset, the worst case the plan budgets for. The formula must then equal DSPy's real spending.
    settings = MiproSettings(minibatch_size=minibatch_size, num_trials=7)
    result, evaluator, _ = run("dspy-mipro", 500, instruction=BAD, settings=settings)
    plan = plan_mipro(500, n_train=8, n_val=8, settings=settings)
    assert plan.minibatch is (minibatch_size < 8)
    assert evaluator.calls == result.metric_calls == plan.worst_case_calls
    assert result.details["full_evaluations"] >= 1


def test_mipro_plan_fills_the_budget_and_names_what_a_tiny_budget_cannot_pay():
    settings = MiproSettings()
    plan = plan_mipro(200, n_train=10, n_val=10, settings=settings)
    assert plan.worst_case_calls <= 200
    more = mipro_worst_case_calls(plan.num_trials + 1, n_train=10, n_val=10, num_candidates=6, minibatch=False,
                                  minibatch_size=10, full_eval_steps=5)[0]
    assert more > 200
    with pytest.raises(ValueError, match="too small for MIPROv2.*bootstrapping"):
        plan_mipro(40, n_train=10, n_val=10, settings=settings)


def test_mipro_hard_cap_holds_when_the_plan_is_wrong(monkeypatch):
    # A step-3 plan that overspends (as if the formula were wrong): the meter refuses the call past the
    # budget, DSPy is aborted, and the result is the program MIPROv2 had chosen by then.
    monkeypatch.setattr(dspy_adapter, "mipro_trials_for", lambda remaining, **kw: 50)
    result, evaluator, _ = run("dspy-mipro", 61)
    assert evaluator.calls == result.metric_calls == 61
    assert result.stop_reason.startswith("max_metric_calls (refused")
    assert KEY in result.final_params["instructions"]  # its 2nd full evaluation (calls 49-56) found it
    assert_accounting(result, evaluator, 61)


def test_mipro_uses_what_bootstrapping_left():
    # With the keyword found, bootstrap sets finish early: step 3 gets more trials than the worst-case plan.
    result, evaluator, _ = run("dspy-mipro", 200)
    plan = plan_mipro(200, n_train=8, n_val=8, settings=MiproSettings())
    assert result.details["trials"] >= plan.num_trials
    assert result.details["unused_calls"] < 8  # less than one more full trial
    assert_accounting(result, evaluator, 200)


def test_mipro_is_deterministic_per_seed():
    first, _, llm1 = run("dspy-mipro", 80, seed=3)
    second, _, llm2 = run("dspy-mipro", 80, seed=3)
    assert first.final_params == second.final_params and first.trajectory == second.trajectory
    assert [c["sample_id"] for c in llm1.calls] == [c["sample_id"] for c in llm2.calls]
    assert all(c["sample_id"] // dspy_adapter.SAMPLE_ID_STRIDE == 3 for c in llm1.calls)


# -- dspy.GEPA --------------------------------------------------------------------------------------------

def test_dspy_gepa_finds_the_keyword_and_stops_before_an_iteration_it_cannot_finish():
    result, evaluator, llm = run("dspy-gepa", 40)
    assert_accounting(result, evaluator, 40)
    assert KEY in result.final_params["instructions"]
    assert result.stop_reason.startswith("budget: next iteration")
    assert result.details["unused_calls"] == 40 - result.metric_calls > 0
    assert result.details["proposals"] == len(llm.calls) >= 1
    assert result.details["llm_calls"] == {"proposer": len(llm.calls)}
    assert result.details["accepted"] >= 1


@pytest.mark.parametrize("budget", [22, 27, 33, 45])
def test_dspy_gepa_never_loses_an_accepted_candidate(budget):
    # No refused call: every iteration GEPA starts, it can finish (the budget-aware stopper).
    result, evaluator, _ = run("dspy-gepa", budget, settings=DspyGepaSettings(use_merge=False))
    assert_accounting(result, evaluator, budget)
    assert "refused" not in result.stop_reason
    if result.details["accepted"]:
        assert KEY in result.final_params["instructions"]


def test_dspy_gepa_rejects_a_budget_below_one_iteration():
    with pytest.raises(ValueError, match="too small for dspy.GEPA"):
        run("dspy-gepa", 12)


# -- shared -----------------------------------------------------------------------------------------------

def test_dspy_runs_through_run_baseline_with_max_tokens_and_writes_run_dir(tmp_path):
    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=8, n_val=8)
    llm = scripted()
    result = run_baseline("dspy-gepa", problem, llm, budget=40, seed=0, max_tokens=77, run_dir=tmp_path / "r")
    assert {c["max_tokens"] for c in llm.calls} == {77}
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["metric_calls"] == result.metric_calls == evaluator.calls
    assert summary["final_params"] == result.final_params


def test_dspy_cache_does_not_hide_repeated_calls():
    # The same run twice on one client: DSPy would answer the second from its cache if it were on.
    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=8, n_val=8)
    llm = scripted()
    run_dspy("dspy-gepa", problem, llm, budget=40, seed=0)
    once = len(llm.calls)
    run_dspy("dspy-gepa", problem, llm, budget=40, seed=0)
    assert len(llm.calls) == 2 * once


def test_no_deprecated_dspy_interface_and_no_threads_left():
    before = threading.active_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        run("dspy-mipro", 80)
    assert threading.active_count() <= before


def test_task_model_slot_refuses_calls():
    engine = PolcaEngine(scripted(), "task", 0, 64, 0.0, allowed=False)
    with pytest.raises(RuntimeError, match="bypass the budget"):
        engine.complete(None)


def test_untested_dspy_version_is_refused(monkeypatch):
    import dspy

    monkeypatch.setattr(dspy, "__version__", "3.5.0")
    with pytest.raises(RuntimeError, match="dspy 3.5.0 is installed"):
        dspy_adapter.check_dspy_version()


def test_settings_name_bad_values():
    with pytest.raises(ValueError, match="num_candidates"):
        MiproSettings(num_candidates=2)
    with pytest.raises(ValueError, match="num_trials"):
        MiproSettings(num_trials=0)
    with pytest.raises(ValueError, match="candidate_selection_strategy"):
        DspyGepaSettings(candidate_selection_strategy="epsilon_greedy")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MiproSettings"):
        run("dspy-mipro", 80, settings=DspyGepaSettings())


def test_mipro_with_an_lm_dspy_cannot_parse_ends_as_a_reported_failure():
    # The embedded 135M model often answers in free prose: DSPy raises AdapterParseError out of compile().
    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=8, n_val=8)
    llm = ScriptedLLM(lambda request: "Here is some free prose without any fields.", ledger=Ledger())
    result = run_dspy("dspy-mipro", problem, llm, budget=80, seed=0)
    assert result.stop_reason.startswith("failed: DSPy could not parse")
    assert result.final_params == problem.seed_params
    assert_accounting(result, evaluator, 80)
    assert result.details["llm_calls"]["proposer"] == len(llm.calls) >= 1


# -- the strategy testbed's simulated optimizer reads DSPy's prompts ----------------------------------------

def test_simulated_optimizer_answers_every_dspy_prompt_and_dspy_improves_on_the_testbed():
    from polca_nb.testbed import NOISE_LEVELS, QUALITIES, SimulatedOptimizerLLM, testbed_problem
    from polca_nb.testbed.experiment import run_testbed

    tb = testbed_problem(NOISE_LEVELS["binary"], seed=0)
    start = tb.true_score(tb.problem.seed_params)
    for method, kinds in [("dspy-mipro", {"dspy_data", "dspy_mipro"}), ("dspy-gepa", {"dspy_gepa"})]:
        finals = []
        for seed in range(3):
            llm = SimulatedOptimizerLLM(QUALITIES["strong"])
            result = run_testbed(method, tb, QUALITIES["strong"], budget=400, seed=seed, llm=llm)
            assert set(llm.calls) == kinds, method
            assert "failed" not in result.stop_reason and result.metric_calls <= 400
            finals.append(tb.true_score(result.final_params))
        assert sum(finals) / len(finals) > start, (method, finals)


def test_simulated_data_summary_recommends_the_most_needed_skills():
    from polca_nb.testbed import SimulatedOptimizerLLM
    from polca_nb.testbed.prompts import prompt_kind

    system = "Your input fields are:\n1. `examples` (str)\nYour output fields are:\n1. `observations` (str): x\n"
    shown = [{"task_input": json.dumps({"task": f"T{i}", "needs": needs})}
             for i, needs in enumerate([["cite", "steps"], ["steps"], ["steps", "units"], ["cite"]])]
    user = f"[[ ## examples ## ]]\n{shown!r}\n\nRespond with the corresponding output fields, starting with ..."
    assert prompt_kind(system + user) == "dspy_data"
    reply = SimulatedOptimizerLLM().complete(system=system, messages=[{"role": "user", "content": user}],
                                             role="proposer").text
    assert reply.startswith("[[ ## observations ## ]]")
    assert reply.index("Always include 'steps'") < reply.index("Always include 'cite'")
    assert "units" in reply  # third most named; top_recommendations is 3


def test_an_error_raised_inside_gepa_ends_the_run_as_a_reported_failure(monkeypatch):
    # gepa 0.1.4's merge proposer can raise (random.choices over all-zero ancestor scores, seen on the
    # testbed); dspy.GEPA runs GEPA with raise_on_exception=True, so compile() aborts. The result is
    # GEPA's choice after its last completed iteration. Simulated here by a proposer that raises later.
    from gepa.proposer.reflective_mutation.reflective_mutation import ReflectiveMutationProposer

    real = ReflectiveMutationProposer.propose
    calls = []

    def flaky(self, state):
        calls.append(1)
        if len(calls) > 2:
            raise ValueError("Total of weights must be greater than zero")
        return real(self, state)

    monkeypatch.setattr(ReflectiveMutationProposer, "propose", flaky)
    result, evaluator, _ = run("dspy-gepa", 200)
    assert result.stop_reason.startswith("failed: ValueError: Total of weights")
    assert "gepa/" in result.stop_reason
    assert KEY in result.final_params["instructions"]  # accepted in its first iteration
    assert_accounting(result, evaluator, 200)


def test_a_bug_in_our_evaluator_is_raised_not_scored_zero_by_dspy():
    # DSPy scores an Exception inside a program run as a failure and goes on; the harness must not let
    # it hide a broken evaluator.
    def broken(params, example, seed):
        raise ZeroDivisionError("broken evaluator")

    problem = keyword_problem(broken, n_train=8, n_val=8)
    for method in ("dspy-gepa", "dspy-mipro"):
        with pytest.raises(ZeroDivisionError, match="broken evaluator"):
            run_dspy(method, problem, scripted(), budget=80, seed=0)


def test_engine_sends_messages_api_turns_only():
    from dspy.lm15 import Config, Message, Request, TextPart

    llm = scripted()
    engine = PolcaEngine(llm, "proposer", 2, 64, 1.0)
    request = Request(model="polca/optimizer", system="Be brief.",
                      messages=(Message.developer([TextPart("Use JSON.")]), Message.user([TextPart("Hi")])),
                      config=Config(max_tokens=500, temperature=0.3))
    engine.complete(request)
    (call,) = llm.calls
    assert call["system"] == "Be brief.\n\nUse JSON." and call["messages"] == [{"role": "user", "content": "Hi"}]
    assert call["max_tokens"] == 64 and call["temperature"] == 0.3  # capped by the run's max_tokens
    assert call["sample_id"] == 2 * dspy_adapter.SAMPLE_ID_STRIDE
