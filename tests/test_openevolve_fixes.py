"""OpenEvolve driver fixes: version guard, the "no usable child" outcome, the worker's event loop,
the returned-program fallback under a writing thread, cascade evaluation, proposals / unused calls.

Offline: the keyword task and ScriptedLLM of tests/test_baselines.py stand in for a problem and a model.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing.util
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openevolve")

from polca_nb.baselines import MeteredEvaluator, run_baseline  # noqa: E402
from polca_nb.baselines.openevolve_adapter import (  # noqa: E402
    OPENEVOLVE_TESTED_RANGE,
    OpenEvolveSettings,
    _Recorder,
    _RunContext,
    check_openevolve_version,
    evaluate_registered,
    run_openevolve,
)
from polca_nb.baselines import openevolve_adapter  # noqa: E402
from polca_nb.llm.base import ScriptedLLM  # noqa: E402
from polca_nb.roles.templates import default_input_text  # noqa: E402
from polca_nb.runner import Problem  # noqa: E402
from polca_nb.types import Evaluation, Example  # noqa: E402

from test_baselines import KEY, KeywordEvaluator, assert_accounting, fenced, keyword_problem, replies  # noqa: E402


def run(problem, llm, budget, **settings):
    return run_baseline("openevolve", problem, llm, budget=budget, seed=0,
                        peer_settings=OpenEvolveSettings(**settings))


# -- 1. version guard -------------------------------------------------------------------------------

def test_tested_range_is_the_installed_one_and_other_versions_are_refused():
    assert OPENEVOLVE_TESTED_RANGE == ">=0.4.1,<0.4.2"
    assert check_openevolve_version() == "0.4.1"
    assert check_openevolve_version("0.4.1.post2") == "0.4.1.post2"
    for version in ("0.4.2", "0.4.0", "0.5.0", "1.0", "0.4.1rc1", "0.4.1.dev3"):
        with pytest.raises(RuntimeError, match=rf"openevolve {version} is installed.*>=0\.4\.1,<0\.4\.2"):
            check_openevolve_version(version)


def test_run_refuses_an_untested_openevolve_before_doing_anything(monkeypatch):
    import openevolve

    monkeypatch.setattr(openevolve, "__version__", "0.5.0")
    evaluator, llm = KeywordEvaluator(), replies(fenced, [KEY])
    with pytest.raises(RuntimeError, match=r"openevolve 0\.5\.0 is installed.*openevolve>=0\.4\.1,<0\.4\.2"):
        run(keyword_problem(evaluator), llm, 8, minibatch_size=4)
    assert evaluator.calls == 0 and llm.calls == []


# -- 2. no usable child: a reported outcome, not an exception ---------------------------------------

def test_no_candidate_at_all_is_reported_with_openevolves_message():
    evaluator = KeywordEvaluator()
    llm = ScriptedLLM(lambda request: "```text\n\n```")  # an empty program: OpenEvolve finds no code
    result = run(keyword_problem(evaluator, n_train=4), llm, 8, minibatch_size=4, max_iterations=3)
    assert result.final_params == {"instructions": "Answer the question."}  # the seed
    assert result.stop_reason == ("no usable child: 0/3 iterations produced a candidate program. "
                                  "Last error: No valid code found in response")
    assert result.details["usable_children"] == 0 and result.details["candidate_iterations"] == 0
    assert result.metric_calls == evaluator.calls == 4  # only the seed was evaluated


def test_candidates_that_lose_a_parameter_are_not_usable_children():
    evaluator = KeywordEvaluator()
    problem = Problem("two", {"instructions": "Answer the question.", "style": "Be brief."},
                      [Example(f"t{i}", f"answer{i}") for i in range(4)], evaluator, objective="Answer tersely.")
    llm = replies(fenced, [f"Just one text. {KEY}"])  # parses as text, but not as both parameters
    result = run(problem, llm, 8, minibatch_size=4, max_iterations=2)
    assert result.final_params == dict(problem.seed_params)
    assert result.stop_reason.startswith("no usable child: 2 candidate program(s), none parsed")
    assert (result.details["usable_children"], result.details["candidate_iterations"]) == (0, 2)
    assert result.details["proposals"] == 2 and result.metric_calls == 4


def test_a_run_with_an_evaluated_child_keeps_its_usual_stop_reason():
    evaluator = KeywordEvaluator()
    result = run(keyword_problem(evaluator, n_train=4), replies(fenced, ["Try again."]), 8,
                 minibatch_size=4, max_iterations=1)
    assert result.stop_reason == "max_metric_calls" and result.details["usable_children"] == 1


# -- 3. the worker's event loop is closed after every run --------------------------------------------

def test_repeated_runs_close_their_worker_loops_and_leave_no_threads_or_finalizers():
    from openevolve import process_parallel

    loops: list[asyncio.AbstractEventLoop] = []

    def reply(request):  # _PolcaLLM runs on the worker's loop: note which one
        loops.append(asyncio.get_running_loop())
        return fenced(f"Answer with one word. {KEY}")

    threads = set(threading.enumerate())
    finalizers = len(multiprocessing.util._finalizer_registry)
    for _ in range(3):
        run(keyword_problem(KeywordEvaluator(), n_train=4), ScriptedLLM(reply), 8, minibatch_size=4,
            max_iterations=1)
        assert loops and all(loop.is_closed() for loop in loops)
        assert set(threading.enumerate()) == threads
    assert len(set(map(id, loops))) == 3  # one loop per run, each closed
    assert process_parallel._worker_event_loop is None
    # OpenEvolve's lazy loop would register a process-exit finalizer per run.
    assert len(multiprocessing.util._finalizer_registry) == finalizers


# -- 4. the returned-program fallback reads the score table safely -----------------------------------

class _NoBest:
    best_program_id = None

    def get_best_program(self):
        return None


def test_returned_program_fallback_is_safe_while_an_evaluation_thread_writes(tmp_path):
    """The fallback reads the table `evaluate_registered` writes on OpenEvolve's evaluation thread;
    iterating it unguarded while a program is added raises "dictionary changed size"."""
    problem = Problem("one", {"instructions": "x"}, [Example("a", "b")], lambda p, e, s: Evaluation(0.5, "", ""))
    ctx = _RunContext("polca-llm:race", 0, problem, ScriptedLLM([]), MeteredEvaluator(problem.evaluator, 10**9),
                      OpenEvolveSettings(minibatch_size=1), default_input_text, np.random.default_rng(0))
    ctx.scores_by_text.update({f"old {i}": 0.25 for i in range(100_000)})  # a slow max(): a wide window
    ctx.scores_by_text["best"] = 0.75
    recorder = _Recorder(ctx, _NoBest())
    done, errors = threading.Event(), []

    def write() -> None:
        path = Path(tmp_path) / "program.txt"
        for i in itertools.count():
            if done.is_set():
                return
            path.write_text(f"new {i}", encoding="utf-8")
            evaluate_registered(ctx.key, str(path))

    openevolve_adapter._ACTIVE[ctx.key] = ctx
    writer = threading.Thread(target=write, name="openevolve-eval-test")
    writer.start()
    try:
        for _ in range(40):
            try:
                assert recorder.returned_text() == "best"
            except RuntimeError as exc:
                errors.append(exc)
    finally:
        done.set()
        writer.join()
        openevolve_adapter._ACTIVE.pop(ctx.key, None)
    assert errors == [] and ctx.evaluations > 0


# -- 5. cascade evaluation ----------------------------------------------------------------------------

def test_cascade_screens_programs_on_stage_one_through_openevolves_evaluator(monkeypatch):
    from openevolve.evaluator import Evaluator

    stages: list[str] = []
    cascade = Evaluator._cascade_evaluate

    async def spy(self, program_path):
        stages.append("cascade")
        return await cascade(self, program_path)

    monkeypatch.setattr(Evaluator, "_cascade_evaluate", spy)
    evaluator = KeywordEvaluator()
    better = f"Answer with one word. {KEY}"
    llm = replies(fenced, ["Answer the question carefully.", better])
    budget = 16
    result = run(keyword_problem(evaluator, n_train=6), llm, budget, minibatch_size=4, cascade_threshold=0.5,
                 cascade_stage1_examples=2, max_iterations=4)
    assert_accounting(result, evaluator, budget)
    # The replies alternate: seed (0 on stage 1: 2 calls), "carefully" (2), the KEY program (1 on stage 1,
    # then 2 more), "carefully" (2), KEY (4): the two stage-1 passes alone cost the whole minibatch.
    assert result.final_params == {"instructions": better}
    assert (result.details["evaluations"], result.details["stage2_evaluations"]) == (5, 2)
    assert result.metric_calls == 3 * 2 + 2 * 4 == 14
    assert len(stages) == result.details["evaluations"]  # every evaluation went through OpenEvolve's cascade


def test_cascade_off_by_default_evaluates_the_whole_minibatch():
    evaluator = KeywordEvaluator()
    result = run(keyword_problem(evaluator, n_train=6), replies(fenced, ["Answer the question carefully."]), 12,
                 minibatch_size=4, max_iterations=2)
    assert OpenEvolveSettings().cascade_threshold is None
    assert result.metric_calls == 4 * result.details["evaluations"] and "stage2_evaluations" not in result.details


@pytest.mark.parametrize("bad", ["0.5", True, float("nan"), float("inf")])
def test_cascade_threshold_is_validated(bad):
    with pytest.raises(ValueError, match="cascade_threshold must be a finite number"):
        OpenEvolveSettings(cascade_threshold=bad)


def test_cascade_stage_one_must_leave_examples_for_stage_two():
    with pytest.raises(ValueError, match=r"cascade_stage1_examples \(4\) must be smaller than minibatch_size \(4\)"):
        OpenEvolveSettings(minibatch_size=4, cascade_threshold=0.5, cascade_stage1_examples=4)
    OpenEvolveSettings(minibatch_size=4, cascade_stage1_examples=4)  # cascade off: not used
    with pytest.raises(ValueError, match=r"cascade_stage1_examples \(3\) must be smaller than the minibatch \(3"):
        run_openevolve(keyword_problem(KeywordEvaluator(), n_train=3), ScriptedLLM([]), budget=8,
                       settings=OpenEvolveSettings(minibatch_size=10, cascade_threshold=0.5))


# -- 6. proposals and unused calls ---------------------------------------------------------------------

def test_details_count_proposals_and_unused_calls():
    evaluator = KeywordEvaluator()
    llm = replies(fenced, ["Answer the question carefully.", f"Answer with one word. {KEY}"])
    budget = 26
    result = run(keyword_problem(evaluator, n_train=6), llm, budget, minibatch_size=4)
    assert result.details["proposals"] == len(llm.calls) >= 2  # skipped (budget-spent) calls are not proposals
    assert result.details["unused_calls"] == budget - result.metric_calls == budget - evaluator.calls == 2
    assert result.details["usable_children"] == result.details["evaluations"] - 1
