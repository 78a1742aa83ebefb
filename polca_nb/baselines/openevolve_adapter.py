"""OpenEvolve (the real `openevolve` package) on a polca_nb Problem, under the same metric-call budget.

    result = run_openevolve(problem, llm, budget=200, seed=0)

What is OpenEvolve's and what is ours:
- OpenEvolve's: the program database (MAP-Elites, islands, archive, migration), its prompt sampler and
  templates, reply parsing (full rewrites by default, diffs optional), its `Evaluator` (timeouts,
  artifacts) and its `ProcessParallelController.run_evolution` loop.
- Ours: the LLM, plugged in through OpenEvolve's documented `init_client` hook as an `LLMInterface`
  that calls our `LLM` (role "proposer": cached, in the ledger); the evaluation file, which scores the
  evolved text with our evaluator on a minibatch (one metric call per example, through one
  `MeteredEvaluator` capped at the budget; our feedback goes back to OpenEvolve as artifacts); and the
  driver. OpenEvolve's own `OpenEvolve.run` installs signal handlers (main thread only) and runs its
  controller on a spawn process pool; our driver does the same steps (evaluate and add the initial
  program, then `run_evolution`) on one worker *thread*, so nothing outlives the run, it works inside
  Jupyter's event loop, and evaluations share our cache, ledger and budget.

OpenEvolve evaluates each program once (no averaging) and returns its best by that single score.
With `cascade_threshold` set, that one evaluation is OpenEvolve's cascade (its `Evaluator` calls the
evaluation file's `evaluate_stage1`, then `evaluate_stage2` for programs scoring >= the threshold): the
minibatch's first `cascade_stage1_examples` examples, then the rest. It seeds Python's global `random`
and `numpy.random` and adds root-logger handlers; we restore both. `run_openevolve` refuses openevolve
versions outside OPENEVOLVE_TESTED_RANGE (the driver uses internals of `process_parallel`).

A run whose LLM never wrote a program that parsed and was evaluated returns the seed, as a reported
outcome: stop_reason "no usable child: ..." and details["usable_children"] == 0 (OpenEvolve's own
`OpenEvolve.run` raises EvolutionFailedError for the part of this it sees).

The evaluation side (the run context, the scoring functions, the evaluation file's template) is in
`openevolve_evaluation`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from openevolve.llm.base import LLMInterface

from ..llm.base import LLM, with_ledger
from ..roles.templates import InputRenderer, default_input_text
from ..runner import Problem
from ..types import Params
from .openevolve_evaluation import (
    _ACTIVE,
    EVALUATION_FILE,
    _RunContext,
    evaluate_registered,  # noqa: F401 - re-exported: tests import it from here
)
from .openevolve_runtime import (
    OPENEVOLVE_TESTED_RANGE,
    _GlobalStateGuard,
    _SeededUUIDs,
    _run_in_fresh_thread,
    _scratch_dir,
    _shutdown_openevolve_threads,
    _thread_controller_class,
    check_openevolve_version,
)
from .accounting import OPTIMIZER_ROLES, MeteredEvaluator, MethodResult, ProgramPoint

__all__ = ["OPENEVOLVE_TESTED_RANGE", "SAMPLE_ID_STRIDE", "OpenEvolveSettings", "check_openevolve_version",
           "parse_program", "program_text", "run_openevolve"]

SAMPLE_ID_STRIDE = 1_000_000
"""LLM call k of the run with seed s uses sample_id s * SAMPLE_ID_STRIDE + k."""

_MODEL_PREFIX = "polca-llm:"
_RUN_LOCK = threading.Lock()  # OpenEvolve keeps worker state in module globals: one run at a time

SYSTEM_MESSAGE = (
    "You improve a text program: the instructions a language model follows to solve tasks. "
    "{objective}\nThe program is plain text, not code. When asked for the complete new program, reply "
    "with the full new text inside one ```text block and nothing else in that block."
)


@dataclass(frozen=True)
class OpenEvolveSettings:
    """OpenEvolve knobs we expose. Defaults: the paper's HotpotQA baseline (polca-method.md §3:
    full rewrites, temperature 0.4, 3 top + 2 diverse programs, population 500, archive 50), on the
    package's other defaults (5 islands, migration every 50 generations), cascade evaluation off.

    `cascade_threshold` (the paper: 0.5) turns on OpenEvolve's two-stage cascade: stage 1 scores the
    first `cascade_stage1_examples` examples of the minibatch, and only a program whose stage-1 mean
    is >= the threshold is scored on the rest; its score is then the mean over the whole minibatch,
    else its stage-1 mean. A screened-out program costs cascade_stage1_examples metric calls."""

    minibatch_size: int = 10        # examples per program evaluation (one metric call each)
    max_iterations: int | None = None  # None: 4 * ceil(budget / minibatch_size) + num_islands
    diff_based_evolution: bool = False
    temperature: float = 0.4
    max_tokens: int = 1024
    num_top_programs: int = 3
    num_diverse_programs: int = 2
    population_size: int = 500
    archive_size: int = 50
    num_islands: int = 5
    max_feedback_examples: int = 3  # failed examples shown back as artifacts
    feedback_chars: int = 600
    evaluation_timeout_s: int = 600
    cascade_threshold: float | None = None  # None: one evaluation on the whole minibatch
    # 3 of the default 10: a cheap screen that a single lucky or unlucky example does not decide.
    cascade_stage1_examples: int = 3

    def __post_init__(self) -> None:
        for name in ("minibatch_size", "max_tokens", "population_size", "archive_size", "num_islands",
                     "feedback_chars", "evaluation_timeout_s", "cascade_stage1_examples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("num_top_programs", "num_diverse_programs", "max_feedback_examples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.max_iterations is not None and (not isinstance(self.max_iterations, int) or self.max_iterations < 1):
            raise ValueError(f"max_iterations must be a positive int or None, got {self.max_iterations!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        threshold = self.cascade_threshold
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"cascade_threshold must be a finite number (a stage-1 mean score) or None, "
                                 f"got {threshold!r}")
            if self.cascade_stage1_examples >= self.minibatch_size:
                raise ValueError(f"cascade_stage1_examples ({self.cascade_stage1_examples}) must be smaller than "
                                 f"minibatch_size ({self.minibatch_size}) when cascade_threshold is set: "
                                 "stage 2 scores the rest of the minibatch")

    @property
    def cascade(self) -> bool:
        return self.cascade_threshold is not None

    def iterations_for(self, budget: int) -> int:
        # Iterations whose reply is unusable spend nothing, so allow several times budget / minibatch
        # (a weak model wastes most replies); the meter stops the run when the budget is gone.
        return self.max_iterations or 4 * math.ceil(budget / self.minibatch_size) + self.num_islands


# -- the program as a text file ---------------------------------------------------------------------

def program_text(params: Params) -> str:
    """The file OpenEvolve evolves: the value itself for one parameter, tagged sections for several."""
    if len(params) == 1:
        return next(iter(params.values()))
    return "\n\n".join(f'<param name="{name}">\n{value}\n</param>' for name, value in params.items())


def parse_program(text: str, names: Sequence[str]) -> Params | None:
    """Inverse of `program_text`; None when a multi-parameter text lost a parameter."""
    if len(names) == 1:
        value = text.strip()
        return {names[0]: value} if value else None
    found = dict(re.findall(r'<param name="([^"]+)">\n?(.*?)\n?</param>', text, flags=re.DOTALL))
    if any(name not in found for name in names):
        return None
    return {name: found[name] for name in names}


# -- our LLM as an OpenEvolve LLMInterface ----------------------------------------------------------

def _make_llm(model_cfg: Any):
    """OpenEvolve's `init_client` hook: a module-level function so config copies keep working."""
    return _PolcaLLM(_ACTIVE[model_cfg.name])


class _PolcaLLM(LLMInterface):
    """OpenEvolve's LLMInterface over our `LLM`: role "proposer", one sample_id per call."""

    def __init__(self, ctx: _RunContext) -> None:
        self.ctx = ctx
        self.model = ctx.key  # OpenEvolve logs vars(model)["model"]
        self.last_usage: dict[str, int] | None = None

    async def generate(self, prompt: str, **kwargs: Any) -> str:
        return await self.generate_with_context("", [{"role": "user", "content": prompt}], **kwargs)

    async def generate_with_context(self, system_message: str, messages: list[dict[str, str]], **kwargs: Any) -> str:
        ctx = self.ctx
        if ctx.budget_spent():
            # An empty reply is OpenEvolve's "no valid code" error: the iteration ends at once, costs no
            # LLM call, and OpenEvolve keeps collecting the results still in flight (see `budget_spent`).
            self.last_usage = None
            ctx.skipped_llm_calls += 1
            return ""
        sample_id = ctx.seed * SAMPLE_ID_STRIDE + next(ctx.llm_call_index)
        reply = ctx.llm.complete(system=system_message or "", messages=list(messages), role="proposer",
                                 max_tokens=ctx.settings.max_tokens, temperature=float(ctx.settings.temperature),
                                 sample_id=sample_id)
        ctx.proposals += 1
        self.last_usage = {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                           "total_tokens": reply.input_tokens + reply.output_tokens}
        return reply.text


# -- the driver ------------------------------------------------------------------------------------


def _build_config(ctx: _RunContext, iterations: int):
    from openevolve.config import Config, LLMModelConfig

    s = ctx.settings
    config = Config()
    config.max_iterations = iterations
    config.checkpoint_interval = 1  # our checkpoint callback records the returned program every iteration
    config.log_level = "WARNING"
    config.random_seed = ctx.seed
    config.language = "text"
    config.file_suffix = ".txt"
    config.diff_based_evolution = s.diff_based_evolution
    config.max_code_length = 20_000
    config.llm.models = [LLMModelConfig(name=ctx.key, init_client=_make_llm, weight=1.0)]
    config.llm.evaluator_models = []
    config.llm.temperature = s.temperature
    config.llm.max_tokens = s.max_tokens
    config.llm.update_model_params({"temperature": s.temperature, "max_tokens": s.max_tokens,
                                    "random_seed": ctx.seed})
    config.llm.evaluator_models = list(config.llm.models)
    config.prompt.system_message = SYSTEM_MESSAGE.format(objective=ctx.problem.objective.strip())
    config.prompt.num_top_programs = s.num_top_programs
    config.prompt.num_diverse_programs = s.num_diverse_programs
    config.database.population_size = s.population_size
    config.database.archive_size = s.archive_size
    config.database.num_islands = s.num_islands
    config.database.random_seed = ctx.seed
    config.evaluator.cascade_evaluation = s.cascade
    if s.cascade:
        config.evaluator.cascade_thresholds = [float(s.cascade_threshold)]  # type: ignore[arg-type]  # cascade: set
    config.evaluator.timeout = s.evaluation_timeout_s
    config.evaluator.max_retries = 0  # a retry would re-spend metric calls
    config.evaluator.parallel_evaluations = 1
    return config


class _Recorder:
    """OpenEvolve's checkpoint callback (every iteration): the program it would return right now."""

    def __init__(self, ctx: _RunContext, database: Any) -> None:
        self.ctx = ctx
        self.database = database
        self.points: list[ProgramPoint] = []

    def returned_text(self) -> str | None:
        """OpenEvolve's best program if it was scored, else the best-scored text (None: nothing scored)."""
        best = None
        if self.database.best_program_id:
            best = self.database.get(self.database.best_program_id)
        if best is None:
            best = self.database.get_best_program()
        # A snapshot: a timed-out evaluation's thread may still be writing the table.
        scored = self.ctx.scores()
        if best is not None and best.code in scored:
            return best.code
        # Only a refused (never evaluated) program could be "best" here, by a tie at 0: skip it.
        return max(scored, key=lambda text: scored[text]) if scored else None

    def record(self, iteration: int) -> None:
        text = self.returned_text()
        if text is None:
            return
        params = parse_program(text, list(self.ctx.problem.seed_params)) or dict(self.ctx.problem.seed_params)
        point = ProgramPoint(iteration, self.ctx.meter.calls, params)
        if self.points and (self.points[-1].metric_calls, self.points[-1].params) == (point.metric_calls, params):
            self.points[-1] = point
        else:
            self.points.append(point)

    def __call__(self, iteration: int) -> None:
        self.record(iteration)


@dataclass(frozen=True)
class _Outcome:
    """What OpenEvolve's controller reports about its iterations (`OpenEvolve.run` reads the same)."""

    completed_iterations: int = 0
    successful_iterations: int = 0  # iterations whose reply became a candidate program
    produced_no_candidates: bool = False
    last_error: str | None = None


async def _drive(oe: Any, ctx: _RunContext, recorder: _Recorder, iterations: int) -> _Outcome:
    """OpenEvolve.run's steps without its signal handlers and process pool."""
    from openevolve.database import Program

    initial_id = str(uuid.uuid4())
    metrics = await oe.evaluator.evaluate_program(oe.initial_program_code, initial_id)
    ctx.seed_evaluations = ctx.evaluations
    oe.database.add(Program(id=initial_id, code=oe.initial_program_code, language=oe.config.language,
                            metrics=metrics, iteration_found=0))
    artifacts = oe.evaluator.get_pending_artifacts(initial_id)
    if artifacts:
        oe.database.store_artifacts(initial_id, artifacts)
    recorder.record(0)
    controller = _thread_controller_class()(oe.config, oe.evaluation_file, oe.database, None,
                                            file_suffix=oe.config.file_suffix)
    controller.start()
    try:
        if not ctx.budget_spent():
            await controller.run_evolution(1, iterations, target_score=None, checkpoint_callback=recorder)
    finally:
        controller.stop()
    return _Outcome(controller.completed_iterations, controller.successful_iterations,
                    controller.produced_no_candidates, controller.last_iteration_error)


def _no_usable_child(outcome: _Outcome) -> str:
    """The stop reason of a run whose LLM never wrote a program that parsed and was evaluated."""
    if outcome.produced_no_candidates or outcome.successful_iterations == 0:
        # OpenEvolve's EvolutionFailedError message (controller.py, OpenEvolve.run).
        return (f"no usable child: 0/{outcome.completed_iterations} iterations produced a candidate program. "
                f"Last error: {outcome.last_error}")
    return (f"no usable child: {outcome.successful_iterations} candidate program(s), none parsed into the "
            "problem's parameters and evaluated")


def run_openevolve(problem: Problem, llm: LLM, *, budget: int, seed: int = 0,
                   settings: OpenEvolveSettings | None = None, run_dir: str | Path | None = None,
                   render_input: InputRenderer = default_input_text) -> MethodResult:
    """Run OpenEvolve with at most `budget` metric calls (each evaluation: one minibatch of the
    problem's validation examples). `run_dir` keeps OpenEvolve's files and log; default a temp dir.

    Raises RuntimeError for an openevolve outside OPENEVOLVE_TESTED_RANGE. A run with no usable child
    returns the seed (stop_reason "no usable child: ..."). details["proposals"]: LLM replies written,
    details["unused_calls"]: budget - metric calls spent, details["usable_children"]: evolved programs
    that parsed and were evaluated."""
    settings = settings or OpenEvolveSettings()
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    check_openevolve_version()
    batch = min(settings.minibatch_size, len(problem.validation_examples))
    if budget < 2 * batch:
        raise ValueError(f"budget {budget} is too small for OpenEvolve: the seed and one child take "
                         f"{2 * batch} metric calls (minibatch_size {settings.minibatch_size})")
    if settings.cascade and settings.cascade_stage1_examples >= batch:
        raise ValueError(f"cascade_stage1_examples ({settings.cascade_stage1_examples}) must be smaller than the "
                         f"minibatch ({batch}: minibatch_size {settings.minibatch_size}, "
                         f"{len(problem.validation_examples)} validation examples)")
    key = f"{_MODEL_PREFIX}{uuid.uuid4().hex[:12]}"
    llm = with_ledger(llm)
    ctx = _RunContext(key, seed, problem, llm, MeteredEvaluator(problem.evaluator, budget,
                                                                     np.random.default_rng([seed, 0])),
                      settings, render_input, np.random.default_rng([seed, 1]))
    iterations = settings.iterations_for(budget)
    with _RUN_LOCK, _scratch_dir(run_dir) as workdir:
        initial = workdir / "initial_program.txt"
        initial.write_text(program_text(problem.seed_params), encoding="utf-8")
        evaluation_file = workdir / "evaluator.py"
        evaluation_file.write_text(EVALUATION_FILE.format(key=key), encoding="utf-8")
        _ACTIVE[key] = ctx
        guard = _GlobalStateGuard()
        oe = None
        llm_calls = llm.ledger.track(roles=OPTIMIZER_ROLES)  # inside _RUN_LOCK: only this run's calls
        try:
            from openevolve.controller import OpenEvolve

            oe = OpenEvolve(str(initial), str(evaluation_file), _build_config(ctx, iterations),
                            output_dir=str(workdir / "openevolve_output"))
            guard.drop_console_handlers()
            recorder = _Recorder(ctx, oe.database)
            with _SeededUUIDs(seed):
                outcome = _run_in_fresh_thread(lambda: asyncio.run(_drive(oe, ctx, recorder, iterations)))
        finally:
            ctx.meter.close()
            llm_calls.stop()
            _shutdown_openevolve_threads(oe)
            guard.restore()
            _ACTIVE.pop(key, None)
        final_text = recorder.returned_text()
        final = (parse_program(final_text, list(problem.seed_params)) if final_text else None) \
            or dict(problem.seed_params)
        points = recorder.points
        if not points or points[-1].metric_calls != ctx.meter.calls or points[-1].params != final:
            points.append(ProgramPoint(int(oe.database.last_iteration), ctx.meter.calls, final))
        usable_children = ctx.evaluations - ctx.seed_evaluations
        details = {"programs": len(oe.database.programs), "evaluations": ctx.evaluations,
                   "distinct_evaluated_programs": len(ctx.scores_by_text),
                   "iterations": int(oe.database.last_iteration), "refused_evaluations": ctx.refused,
                   "skipped_llm_calls": ctx.skipped_llm_calls,
                   "llm_calls": llm_calls.requests(),
                   "proposals": ctx.proposals, "unused_calls": budget - ctx.meter.calls,
                   "usable_children": usable_children,
                   "candidate_iterations": outcome.successful_iterations}
        if settings.cascade:
            details["stage2_evaluations"] = ctx.stage2_evaluations
        if run_dir is not None:
            (workdir / "summary.json").write_text(json.dumps({"final_params": final,
                                                              "metric_calls": ctx.meter.calls, **details}, indent=1))
    if usable_children == 0:
        stop = _no_usable_child(outcome)
    else:
        stop = "max_metric_calls" if ctx.budget_spent() else "max_iterations"
    return MethodResult("openevolve", seed, final, tuple(points), ctx.meter.calls, budget, stop, details)


