"""DSPy's own optimizers (MIPROv2 and dspy.GEPA, from the real `dspy` package) on a polca_nb Problem.

    result = run_dspy("dspy-mipro", problem, llm, budget=200, seed=0)
    result = run_dspy("dspy-gepa", problem, llm, budget=200, seed=0)

What is DSPy's and what is ours:
- DSPy's: the optimizers (MIPROv2's bootstrapping, grounded instruction proposer and Optuna TPE search;
  dspy.GEPA's adapter, reflection prompts and merge), its adapters' prompt formats and reply parsing.
- Ours: the program and the LM. The program is `InstructionProgram`, a `dspy.Module` with one
  `dspy.Predict` per parameter whose signature's *instructions* are that parameter's text (the optimized
  parameter). Running it makes one metric call: the problem's evaluator scores the instructions on the
  example through one `MeteredEvaluator` capped at the budget, and the evaluation goes back to DSPy as
  the prediction (its output) and to the metric (score, feedback). Every DSPy LM call goes through
  `PolcaEngine` (DSPy's custom-engine protocol) to our `LLM` with role "proposer": cached by our cache,
  counted and priced by our ledger; DSPy's own cache is off, so no call hides from the ledger.

Budgets are hard. MIPROv2 checks before it runs that the budget pays for worst-case bootstrapping and one
trial (`plan_mipro`), and after bootstrapping runs as many trials as the calls really left pay for;
dspy.GEPA runs GEPA's engine with the same budget-aware stopper as our GEPA adapter (it stops before an
iteration it could not finish). The meter refuses any call past the budget anyway; such a refusal aborts
DSPy (a `BaseException`, which DSPy does not swallow) and the result is the program DSPy would have
returned after its last completed full evaluation.

Instruction-only: our programs are texts, so MIPROv2 runs zero-shot (no few-shot demos in the program;
it still bootstraps demos to show the proposer, as DSPy does) and its program-aware proposer is off (the
module's code is this harness, not a task program: describing it would mislead the proposer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

from ..llm.base import LLM, with_ledger
from ..roles.templates import InputRenderer, default_input_text
from ..runner import Problem
from ..types import Params
from .accounting import OPTIMIZER_ROLES, MeteredEvaluator, MethodResult, ProgramPoint
from .dspy_mipro import (MiproPlan, MiproSettings, _budgeted_mipro_class, _callback_base, mipro_bootstrap_calls,
                         mipro_search_calls, mipro_trials_for, mipro_worst_case_calls, plan_mipro)
from .dspy_program import (DSPY_METHODS, DSPY_TESTED, SAMPLE_ID_STRIDE, BudgetStop, PolcaEngine, _check_temperature,
                           _EvaluatorError, _Harness, _make_program_class, _peer_failure, _quiet_dspy,
                           check_dspy_version, gepa_metric, mipro_metric, polca_lm)


@dataclass(frozen=True)
class DspyGepaSettings:
    """dspy.GEPA's knobs we expose; defaults are dspy.GEPA's (which, unlike GEPA itself, merges)."""

    reflection_minibatch_size: int = 3
    candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto"
    skip_perfect_score: bool = True
    use_merge: bool = True
    max_merge_invocations: int = 5
    max_tokens: int = 1024
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("reflection_minibatch_size", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.max_merge_invocations, int) or self.max_merge_invocations < 0:
            raise ValueError(f"max_merge_invocations must be an int >= 0, got {self.max_merge_invocations!r}")
        if self.candidate_selection_strategy not in ("pareto", "current_best"):
            raise ValueError("candidate_selection_strategy must be 'pareto' or 'current_best', "
                             f"got {self.candidate_selection_strategy!r}")
        _check_temperature(self.temperature, "temperature")


# --- the runs ------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One DSPy run's shared pieces (built by `_setup`)."""

    meter: MeteredEvaluator
    harness: _Harness
    program: Any
    trainset: list[Any]
    valset: list[Any]
    engine: PolcaEngine
    llm: Any


def _setup(problem: Problem, llm: LLM, budget: int, seed: int, max_tokens: int, temperature: float,
           render_input: InputRenderer) -> _Run:
    examples = [*problem.trainset, *problem.validation_examples]
    meter = MeteredEvaluator(problem.evaluator, budget, np.random.default_rng(seed))
    harness = _Harness(meter, examples, render_input)
    program = _make_program_class()(dict(problem.seed_params), harness)
    ledgered = with_ledger(llm)
    engine = PolcaEngine(ledgered, "proposer", seed, max_tokens, temperature)
    return _Run(meter, harness, program, [harness.dspy_example(e) for e in problem.trainset],
                [harness.dspy_example(e) for e in problem.validation_examples], engine, ledgered)


def run_dspy(method: str, problem: Problem, llm: LLM, *, budget: int, seed: int = 0,
             settings: MiproSettings | DspyGepaSettings | None = None, run_dir: str | Path | None = None,
             render_input: InputRenderer = default_input_text) -> MethodResult:
    """Run DSPy's MIPROv2 ("dspy-mipro") or dspy.GEPA ("dspy-gepa") with at most `budget` metric calls.

    Raises ValueError if the budget cannot pay for one step of the method (named with its cost).
    `run_dir` receives summary.json (returned program, calls, details); DSPy runs do not resume, so a
    rerun into the same run_dir starts over (its LLM calls are cache hits).
    """
    if method not in DSPY_METHODS:
        raise ValueError(f"method must be one of {list(DSPY_METHODS)}, got {method!r}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    check_dspy_version()
    try:
        result = _run(method, problem, llm, budget, seed, settings, render_input)
    except _EvaluatorError as wrapped:
        raise wrapped.__cause__ from None  # type: ignore[misc]
    if run_dir is not None:
        directory = Path(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
        summary = {"method": method, "seed": seed, "final_params": result.final_params,
                   "metric_calls": result.metric_calls, "budget": budget, "stop_reason": result.stop_reason,
                   **{k: v for k, v in result.details.items() if isinstance(v, (int, float, str, bool, dict))}}
        (directory / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return result


def _run(method: str, problem: Problem, llm: LLM, budget: int, seed: int,
         settings: MiproSettings | DspyGepaSettings | None, render_input: InputRenderer) -> MethodResult:
    if method == "dspy-mipro":
        mipro = settings if settings is not None else MiproSettings()
        if not isinstance(mipro, MiproSettings):
            raise TypeError(f"dspy-mipro takes MiproSettings, got {type(settings).__name__}")
        return _run_mipro(problem, llm, budget, seed, mipro, render_input)
    gepa_settings = settings if settings is not None else DspyGepaSettings()
    if not isinstance(gepa_settings, DspyGepaSettings):
        raise TypeError(f"dspy-gepa takes DspyGepaSettings, got {type(settings).__name__}")
    return _run_dspy_gepa(problem, llm, budget, seed, gepa_settings, render_input)


def _finish(method: str, run: _Run, budget: int, seed: int, points: list[ProgramPoint], final: Params | None,
            stop_reason: str, details: Mapping[str, Any], seed_params: Params) -> MethodResult:
    final = dict(final) if final is not None else dict(seed_params)
    if not points or points[-1].metric_calls != run.meter.calls or points[-1].params != final:
        iteration = points[-1].iteration if points else 0
        points = [*points, ProgramPoint(iteration, run.meter.calls, final)]
    return MethodResult(method, seed, final, tuple(points), run.meter.calls, budget, stop_reason,
                        {**details, "unused_calls": budget - run.meter.calls,
                         "lm_requests_by_output": dict(run.engine.requests_by_output)})


@dataclass(frozen=True)
class _Outcome:
    """How a `compile()` ended: None when it returned, else the stop reason; its LLM calls and DSPy's output."""

    stop_reason: str | None
    llm_calls: Mapping[str, int]
    console_tail: str


def _compile(run: _Run, compile: Callable[[], None]) -> _Outcome:
    """Run one DSPy `compile()` with DSPy kept quiet and the optimizer's LLM calls tracked; the meter is closed
    after. A refused metric call or a failure inside DSPy/GEPA becomes the stop reason (`_peer_failure`)."""
    llm_calls = run.llm.ledger.track(roles=OPTIMIZER_ROLES)
    quiet = _quiet_dspy()
    stop_reason = None
    try:
        with quiet:
            compile()
    except BudgetStop as exc:
        stop_reason = f"max_metric_calls (refused a call that would overspend: {exc})"
    except Exception as exc:
        stop_reason = _peer_failure(exc)
    finally:
        run.meter.close()
        llm_calls.stop()
    return _Outcome(stop_reason, llm_calls.requests(), quiet.tail())


def _run_mipro(problem: Problem, llm: LLM, budget: int, seed: int, settings: MiproSettings,
               render_input: InputRenderer) -> MethodResult:
    import dspy

    plan = plan_mipro(budget, n_train=len(problem.trainset), n_val=len(problem.validation_examples),
                      settings=settings)
    run = _setup(problem, llm, budget, seed, settings.max_tokens, settings.temperature, render_input)
    prompt_lm = polca_lm(run.engine)
    task_lm = polca_lm(PolcaEngine(run.llm, "task", seed, settings.max_tokens, 0.0, allowed=False))
    recorder = _callback_base()(run.meter)
    n_val = len(problem.validation_examples)
    optimizer = _budgeted_mipro_class()(
        metric=mipro_metric, prompt_model=prompt_lm, task_model=task_lm, auto=None,
        num_candidates=settings.num_candidates, max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1,
        seed=seed, init_temperature=settings.init_temperature, verbose=False, track_stats=True,
        trials_for=lambda remaining: mipro_trials_for(remaining, n_val=n_val, settings=settings), meter=run.meter)
    def compile() -> None:
        with dspy.context(lm=task_lm, callbacks=[recorder]):
            optimizer.compile(run.program, trainset=run.trainset, valset=run.valset, num_trials=plan.num_trials,
                              minibatch=plan.minibatch, minibatch_size=plan.minibatch_size,
                              minibatch_full_eval_steps=settings.minibatch_full_eval_steps,
                              program_aware_proposer=False, data_aware_proposer=settings.data_aware_proposer,
                              tip_aware_proposer=settings.tip_aware_proposer,
                              fewshot_aware_proposer=settings.fewshot_aware_proposer)

    outcome = _compile(run, compile)
    stop_reason = outcome.stop_reason or (f"trials done ({optimizer.trials_run} trials, as many as the calls "
                                          "left after bootstrapping pay for)")
    details = {"trials": optimizer.trials_run, "planned_trials": plan.num_trials, "minibatch": plan.minibatch,
               "worst_case_calls": plan.worst_case_calls, "full_evaluations": recorder.full_evals,
               "proposals": run.engine.requests_by_output.get("proposed_instruction", 0),
               "lm_calls": run.engine.calls, "llm_calls": outcome.llm_calls, "console_tail": outcome.console_tail}
    return _finish("dspy-mipro", run, budget, seed, recorder.points, recorder.returned(), stop_reason, details,
                   problem.seed_params)


def _run_dspy_gepa(problem: Problem, llm: LLM, budget: int, seed: int, settings: DspyGepaSettings,
                   render_input: InputRenderer) -> MethodResult:
    import dspy

    from .gepa_adapter import BudgetAwareStopper, GepaRecorder, check_gepa_budget, gepa_iteration_cost

    n_val, n_train = len(problem.validation_examples), len(problem.trainset)
    iteration_cost = gepa_iteration_cost(n_val, settings.reflection_minibatch_size, n_train, settings.use_merge)
    check_gepa_budget(budget, n_val, iteration_cost, "dspy.GEPA")
    run = _setup(problem, llm, budget, seed, settings.max_tokens, settings.temperature, render_input)
    reflection_lm = polca_lm(run.engine)
    # GEPA's components are the program's predictor attributes; the result speaks parameter names.
    recorder = GepaRecorder(run.meter, {attr: name for name, attr in run.program._attrs.items()})
    stopper = BudgetAwareStopper(run.meter, iteration_cost)
    perfect = problem.score_range[1] if problem.score_range is not None else 1.0
    optimizer = dspy.GEPA(metric=gepa_metric, max_metric_calls=budget, reflection_lm=reflection_lm,
                          reflection_minibatch_size=settings.reflection_minibatch_size,
                          candidate_selection_strategy=settings.candidate_selection_strategy,
                          skip_perfect_score=settings.skip_perfect_score, use_merge=settings.use_merge,
                          max_merge_invocations=settings.max_merge_invocations, num_threads=1,
                          perfect_score=perfect, seed=seed, track_stats=False,
                          gepa_kwargs={"stop_callbacks": [stopper], "callbacks": [recorder]})
    def compile() -> None:
        with dspy.context(lm=None):
            optimizer.compile(run.program, trainset=run.trainset, valset=run.valset)

    outcome = _compile(run, compile)
    stop_reason = outcome.stop_reason or (stopper.reason if stopper.stopped else "max_metric_calls")
    state = recorder.state
    details = {"iterations": recorder.iteration, "candidates": len(state.program_candidates) if state else 0,
               "accepted": recorder.accepted, "proposals": run.engine.calls,
               "lm_calls": run.engine.calls, "llm_calls": outcome.llm_calls, "console_tail": outcome.console_tail}
    return _finish("dspy-gepa", run, budget, seed, recorder.points, recorder.returned(), stop_reason, details,
                   problem.seed_params)


__all__ = [
    "DSPY_METHODS",
    "DSPY_TESTED",
    "SAMPLE_ID_STRIDE",
    "BudgetStop",
    "DspyGepaSettings",
    "MiproPlan",
    "MiproSettings",
    "PolcaEngine",
    "check_dspy_version",
    "gepa_metric",
    "mipro_metric",
    "mipro_bootstrap_calls",
    "mipro_search_calls",
    "mipro_trials_for",
    "mipro_worst_case_calls",
    "plan_mipro",
    "polca_lm",
    "run_dspy",
]

