"""GEPA (the real `gepa` package) on a polca_nb Problem, under the same metric-call budget.

    result = run_gepa(problem, llm, budget=200, seed=0)

- `ProblemAdapter` implements GEPA's adapter protocol over our evaluator: `evaluate` returns one score
  and one trajectory (example + Evaluation) per example; `make_reflective_dataset` turns our feedback
  into GEPA's {"Inputs", "Generated Outputs", "Feedback"} records.
- The reflection LM is our `LLM` (role "proposer"), so its calls are cached and show in the ledger;
  `sample_id` = seed * 1_000_000 + call index keeps resamples distinct and reruns cached.
- Every evaluation goes through one `MeteredEvaluator` capped at `budget`. GEPA checks its stoppers only
  between iterations, so `BudgetAwareStopper` stops it before an iteration whose worst case
  (`gepa_iteration_cost`) the meter could not pay: otherwise a child that passed the minibatch gate would
  be refused its validation pass and lost. The meter stays as a backstop that refuses any overspending
  call. The result is GEPA's own choice (`GEPAResult.best_idx`) over the candidates it validated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol, Sequence

import numpy as np

from ..llm.base import LLM, with_ledger
from ..roles.templates import InputRenderer, default_input_text
from ..runner import Problem
from ..types import Example, Params
from .accounting import OPTIMIZER_ROLES, BudgetExhausted, MeteredEvaluator, MethodResult, ProgramPoint

SAMPLE_ID_STRIDE = 1_000_000
"""Reflection call k of the run with seed s uses sample_id s * SAMPLE_ID_STRIDE + k."""

MERGE_SUBSAMPLE_SIZE = 5
"""Validation ids GEPA's MergeProposer scores a merged program on (`select_eval_subsample_for_merged_program`)."""


def gepa_iteration_cost(valset_size: int, reflection_minibatch_size: int, trainset_size: int, use_merge: bool,
                        merge_subsample_size: int = MERGE_SUBSAMPLE_SIZE) -> int:
    """Worst-case metric calls of one GEPA iteration (gepa 0.1.4, one proposal per iteration, no eval cache).

    Reflective: parent + child minibatch, then a full validation pass if the child passes the gate. GEPA pads
    a trainset shorter than the minibatch with repeats, so `trainset_size` (>= 1) never lowers the cost.
    A merge iteration (subsample, then full validation) skips the reflective step, so merge costs the max.
    """
    for name, value in (("valset_size", valset_size), ("reflection_minibatch_size", reflection_minibatch_size),
                        ("trainset_size", trainset_size), ("merge_subsample_size", merge_subsample_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    reflective = 2 * reflection_minibatch_size + valset_size
    # The merge subsample has merge_subsample_size ids even when fewer are shared (GEPA samples with repeats).
    merge = merge_subsample_size + valset_size
    return max(reflective, merge) if use_merge else reflective


def check_gepa_budget(budget: int, valset_size: int, iteration_cost: int, optimizer: str) -> None:
    """ValueError unless `budget` pays for the seed's validation pass and one worst-case iteration."""
    if budget < valset_size + iteration_cost:
        raise ValueError(f"budget {budget} is too small for {optimizer}: the seed's validation pass takes "
                         f"{valset_size} calls and one iteration up to {iteration_cost} more")


class HasRemaining(Protocol):
    """Anything that knows how many metric calls are left (a `MeteredEvaluator`, dspy.GEPA's meter, ...)."""

    @property
    def remaining(self) -> int: ...


@dataclass
class BudgetAwareStopper:
    """GEPA stopper (`StopperProtocol`, also for dspy.GEPA): True once `meter.remaining < iteration_cost`.

    Called between iterations, it stops GEPA before one it might not finish; once it fired, `stopped` is True
    and `reason` says why ("" until then).
    """

    meter: HasRemaining
    iteration_cost: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.iteration_cost, int) or self.iteration_cost < 1:
            raise ValueError(f"iteration_cost must be a positive int, got {self.iteration_cost!r}")

    @property
    def stopped(self) -> bool:
        return bool(self.reason)

    def __call__(self, gepa_state: Any) -> bool:
        left = int(self.meter.remaining)
        if left < self.iteration_cost:
            self.reason = f"budget: next iteration could cost {self.iteration_cost} calls, {left} left"
            return True
        return False


@dataclass(frozen=True)
class GepaSettings:
    """GEPA's knobs we expose; defaults are GEPA's own (api.py), except the reflection LM sampling."""

    reflection_minibatch_size: int = 3
    candidate_selection_strategy: Literal["pareto", "current_best", "epsilon_greedy", "top_k_pareto"] = "pareto"
    module_selector: Literal["round_robin", "all"] = "round_robin"
    skip_perfect_score: bool = True
    perfect_score: float | None = None  # None: the problem's score_range maximum (1.0 without one)
    use_merge: bool = False
    max_tokens: int = 1024
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.reflection_minibatch_size, int) or self.reflection_minibatch_size < 1:
            raise ValueError("reflection_minibatch_size must be a positive int, "
                             f"got {self.reflection_minibatch_size!r}")
        if self.candidate_selection_strategy not in ("pareto", "current_best", "epsilon_greedy", "top_k_pareto"):
            raise ValueError(f"candidate_selection_strategy is invalid: {self.candidate_selection_strategy!r}")
        if self.module_selector not in ("round_robin", "all"):
            raise ValueError(f"module_selector must be 'round_robin' or 'all', got {self.module_selector!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")


@dataclass
class ReflectionLM:
    """GEPA's `LanguageModel` (prompt -> text) over our `LLM`, with the token totals GEPA's cost stopper reads."""

    llm: LLM
    seed: int
    max_tokens: int
    temperature: float
    calls: int = 0
    total_tokens_in: int = 0
    total_tokens_out: int = 0
    total_cost: float = 0.0  # USD is kept by our ledger; GEPA only needs the attribute

    def __call__(self, prompt: str | list[dict[str, Any]]) -> str:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        sample_id = self.seed * SAMPLE_ID_STRIDE + self.calls
        self.calls += 1
        reply = self.llm.complete(system="", messages=messages, role="proposer", max_tokens=self.max_tokens,
                                  temperature=float(self.temperature), sample_id=sample_id)
        self.total_tokens_in += reply.input_tokens
        self.total_tokens_out += reply.output_tokens
        return reply.text


@dataclass(frozen=True)
class Trace:
    """What GEPA keeps per evaluated example (opaque to GEPA, read by make_reflective_dataset)."""

    example: Example
    score: float
    feedback: str
    output: str


@dataclass
class ProblemAdapter:
    """GEPA's adapter protocol over a metered polca_nb evaluator (GEPA's DataInst is our Example)."""

    meter: MeteredEvaluator
    render_input: InputRenderer = default_input_text
    propose_new_texts: None = None  # GEPA's default reflective proposer does the rewriting

    def evaluate(self, batch: list[Example], candidate: dict[str, str], capture_traces: bool = False):
        from gepa.core.adapter import EvaluationBatch

        evaluations = self.meter.evaluate_batch(dict(candidate), batch)
        traces = [Trace(ex, e.score, e.feedback, e.output) for ex, e in zip(batch, evaluations)]
        return EvaluationBatch(outputs=[e.output for e in evaluations], scores=[e.score for e in evaluations],
                               trajectories=traces if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch,
                                components_to_update: list[str]) -> dict[str, list[dict[str, Any]]]:
        records = [{"Inputs": self.render_input(t.example),
                    "Generated Outputs": t.output or "(no output)",
                    "Feedback": f"Score {t.score:.4g}. {t.feedback}".strip()}
                   for t in (eval_batch.trajectories or [])]
        # Every component sees the whole run: our evaluator scores the program, not one component.
        return {name: records for name in components_to_update}


class GepaRecorder:
    """GEPA callback: keeps the live state and the returned program after every iteration.

    `names` maps GEPA's component names to the problem's parameter names where they differ (dspy.GEPA's
    components are predictor attributes); unmapped names are kept.
    """

    def __init__(self, meter: MeteredEvaluator, names: Mapping[str, str] | None = None) -> None:
        self.meter = meter
        self.names: Mapping[str, str] = dict(names or {})
        self.state: Any = None
        self.points: list[ProgramPoint] = []
        self.accepted = 0

    def returned(self) -> Params | None:
        from gepa.core.result import GEPAResult

        if self.state is None or not self.state.program_candidates:
            return None
        result = GEPAResult.from_state(self.state)
        return {self.names.get(k, k): v for k, v in result.candidates[result.best_idx].items()}

    def _record(self, iteration: int) -> None:
        params = self.returned()
        if params is None:
            return
        point = ProgramPoint(iteration, self.meter.calls, params)
        if self.points and (self.points[-1].metric_calls, self.points[-1].params) == (point.metric_calls, params):
            self.points[-1] = point  # an iteration that spent nothing and changed nothing
        else:
            self.points.append(point)

    def on_iteration_start(self, event: Mapping[str, Any]) -> None:
        if self.state is None:
            self.state = event["state"]
            self._record(0)  # the seed, after its validation pass

    def on_iteration_end(self, event: Mapping[str, Any]) -> None:
        self.state = event["state"]
        self._record(self.iteration)

    @property
    def iteration(self) -> int:
        """GEPA's own 1-based iteration number (its events report state.i + 1); 0 before the loop."""
        return int(self.state.i) + 1 if self.state is not None else 0

    def on_candidate_accepted(self, event: Mapping[str, Any]) -> None:
        self.accepted += 1


class _FileLogger:
    """GEPA's LoggerProtocol, writing to run_dir/gepa_log.txt (or nowhere) instead of stdout."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def log(self, message: str) -> None:
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(message.rstrip() + "\n")


def run_gepa(problem: Problem, llm: LLM, *, budget: int, seed: int = 0,
             settings: GepaSettings | None = None, run_dir: str | Path | None = None,
             render_input: InputRenderer = default_input_text) -> MethodResult:
    """Run GEPA with at most `budget` metric calls; GEPA's valset is the problem's validation examples.

    Raises ValueError if the budget cannot pay for the seed's validation pass plus one worst-case iteration
    (`gepa_iteration_cost`), or if `run_dir` already holds a GEPA state (GEPA would resume it with a budget
    our meter never saw). `details["proposals"]`/`["unused_calls"]`: reflection texts written, budget left.
    """
    import gepa

    settings = settings or GepaSettings()
    valset = list(problem.validation_examples)
    trainset = list(problem.trainset)
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    iteration_cost = gepa_iteration_cost(len(valset), settings.reflection_minibatch_size, len(trainset),
                                         settings.use_merge)
    check_gepa_budget(budget, len(valset), iteration_cost, "GEPA")
    directory = None
    if run_dir is not None:
        directory = Path(run_dir)
        if (directory / "gepa_state.bin").exists():
            raise ValueError(f"run_dir {directory} already holds a GEPA state; use a fresh run_dir")
        directory.mkdir(parents=True, exist_ok=True)
    perfect = settings.perfect_score
    if perfect is None:
        perfect = problem.score_range[1] if problem.score_range is not None else 1.0

    meter = MeteredEvaluator(problem.evaluator, budget, np.random.default_rng(seed))
    recorder = GepaRecorder(meter)
    stopper = BudgetAwareStopper(meter, iteration_cost)
    stop_reason = "GEPA's own stopper (run_dir/gepa.stop or max_metric_calls)"
    llm = with_ledger(llm)
    reflection = ReflectionLM(llm, seed, settings.max_tokens, settings.temperature)
    llm_calls = llm.ledger.track(roles=OPTIMIZER_ROLES)
    try:
        gepa.optimize(
            seed_candidate=dict(problem.seed_params),
            trainset=trainset,
            valset=valset,
            adapter=ProblemAdapter(meter, render_input),  # type: ignore[arg-type]  # GEPA's generic protocol
            reflection_lm=reflection,
            candidate_selection_strategy=settings.candidate_selection_strategy,
            module_selector=settings.module_selector,
            reflection_minibatch_size=settings.reflection_minibatch_size,
            skip_perfect_score=settings.skip_perfect_score,
            perfect_score=perfect,
            use_merge=settings.use_merge,
            max_metric_calls=budget,  # never the first to fire: the stopper below is stricter
            stop_callbacks=[stopper],
            logger=_FileLogger(directory / "gepa_log.txt" if directory else None),
            run_dir=str(directory) if directory else None,
            callbacks=[recorder],  # type: ignore[list-item]  # implements the hooks it needs
            display_progress_bar=False,
            seed=seed,
            raise_on_exception=True,
        )
    except BudgetExhausted:
        stop_reason = "max_metric_calls (refused a call that would overspend)"
    else:
        stop_reason = stopper.reason or stop_reason
    finally:
        meter.close()
        llm_calls.stop()
    final = recorder.returned()
    if final is None:  # not even the seed's validation pass completed
        final = dict(problem.seed_params)
    points = recorder.points
    if not points or points[-1].metric_calls != meter.calls or points[-1].params != final:
        points.append(ProgramPoint(recorder.iteration, meter.calls, final))
    state = recorder.state
    details = {
        "gepa_total_num_evals": int(state.total_num_evals) if state is not None else 0,
        "iterations": recorder.iteration,
        "candidates": len(state.program_candidates) if state is not None else 0,
        "accepted": recorder.accepted,
        "reflection_calls": reflection.calls,
        # Each reflection call writes one new component text (gepa's StatelessReflectionLM: one call per component).
        "proposals": reflection.calls,
        "unused_calls": budget - meter.calls,
        "llm_calls": llm_calls.requests(),
    }
    if directory is not None:
        (directory / "summary.json").write_text(json.dumps({"final_params": final, "metric_calls": meter.calls,
                                                            **details}, indent=1))
    return MethodResult("gepa", seed, final, tuple(_monotone(points)), meter.calls, budget, stop_reason, details)


def _monotone(points: Sequence[ProgramPoint]) -> list[ProgramPoint]:
    """Drop points whose metric-call count went backwards (none expected; a guard for the curve code)."""
    out: list[ProgramPoint] = []
    for p in points:
        if not out or p.metric_calls >= out[-1].metric_calls:
            out.append(p)
    return out
