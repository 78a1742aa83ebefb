"""tau-bench evaluator: an LLM failure mid-episode is an evaluation error, a StopRun ends the run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from polca_nb.benchmarks.tau_retail import ScriptedUser, fresh_db, load_retail
from polca_nb.benchmarks.tau_retail.agent import TauAgent
from polca_nb.benchmarks.tau_retail.calculator import calculate_text
from polca_nb.benchmarks.tau_retail.episode import run_episode
from polca_nb.benchmarks.tau_retail.evaluator import PARAM, TauEvaluator, task_example
from polca_nb.benchmarks.tau_retail.tools import TOOLS, execute_tool
from polca_nb.errors import FatalError, StopRun
from polca_nb.llm.base import LLMReply, ScriptedLLM
from polca_nb.llm.client import LLMError


class Fatal(FatalError):
    pass


class RaisingLLM:
    """An agent model whose every call raises `exc`."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def complete(self, **request) -> LLMReply:
        raise self.exc


@pytest.fixture(scope="module")
def data():
    return load_retail()


def evaluator_with(data, exc, **kw):
    return TauEvaluator(data, TauAgent(RaisingLLM(exc), data.wiki, mode="tools"), user_llm=ScriptedLLM(["Hi."]), **kw)


def test_an_llm_error_in_the_episode_is_an_evaluation_error(data):
    evaluator = evaluator_with(data, LLMError("retries exhausted: 529", role="task", attempts=4, cause=None))
    evaluation = evaluator({PARAM: ""}, task_example(data.task("test", 0)), seed=0)
    assert evaluation.score == 0.0
    assert evaluation.error == "LLMError: retries exhausted: 529"
    episode = evaluator.episodes[-1]
    assert episode.llm_failed and episode.ended == "error"


def test_a_program_failure_is_not_an_evaluation_error(data):
    evaluator = evaluator_with(data, RuntimeError("bad reply"))
    evaluation = evaluator({PARAM: ""}, task_example(data.task("test", 0)), seed=0)
    assert evaluation.score == 0.0 and evaluation.error is None
    assert not evaluator.episodes[-1].llm_failed


def test_an_llm_error_outside_the_episode_is_an_evaluation_error_too(data, monkeypatch):
    evaluator = evaluator_with(data, RuntimeError("unused"))

    def failing_run(params, task, seed):
        raise LLMError("connection refused", role="user", attempts=4, cause=None)

    monkeypatch.setattr(evaluator, "run", failing_run)
    evaluation = evaluator({PARAM: ""}, task_example(data.task("test", 0)), seed=0)
    assert evaluation.error == "LLMError: connection refused" and evaluation.score == 0.0


@pytest.mark.parametrize("exc", [Fatal("401 invalid key"), StopRun("max_usd")])
def test_a_stop_run_is_not_absorbed_by_the_episode_or_the_evaluator(data, exc):
    task = data.task("test", 0)
    with pytest.raises(type(exc)):
        run_episode(data, task, TauAgent(RaisingLLM(exc), data.wiki, mode="tools"), ScriptedUser(["Hi."]),
                    instructions="", seed=0)
    with pytest.raises(type(exc)):
        evaluator_with(data, exc)({PARAM: ""}, task_example(task), seed=0)


def test_a_stop_run_inside_a_tool_or_the_calculator_propagates(data, monkeypatch):
    import polca_nb.benchmarks.tau_retail.calculator as calculator

    def stop(*args, **kwargs):
        raise StopRun("limit")

    name = next(iter(TOOLS))
    monkeypatch.setitem(TOOLS, name, replace(TOOLS[name], fn=stop))
    with pytest.raises(StopRun):
        execute_tool(fresh_db(data), name, {})
    monkeypatch.setitem(TOOLS, name, replace(TOOLS[name], fn=lambda db, **kw: 1 / 0))
    assert execute_tool(fresh_db(data), name, {}).startswith("Error:")  # other failures stay observations
    monkeypatch.setattr(calculator, "evaluate_expression", stop)
    with pytest.raises(StopRun):
        calculate_text("1+1")
    monkeypatch.setattr(calculator, "evaluate_expression", lambda e: 1 / 0)
    assert calculate_text("1+1").startswith("Error:")
