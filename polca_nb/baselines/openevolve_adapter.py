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
It seeds Python's global `random` and `numpy.random` and adds root-logger handlers; we restore both.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from openevolve.llm.base import LLMInterface

from ..llm.base import LLM, with_ledger
from ..roles.templates import InputRenderer, default_input_text, truncate_middle
from ..runner import Problem
from ..types import Example, Params
from .openevolve_runtime import (
    _GlobalStateGuard,
    _SeededUUIDs,
    _run_in_fresh_thread,
    _scratch_dir,
    _shutdown_openevolve_threads,
    _thread_controller_class,
)
from .accounting import OPTIMIZER_ROLES, BudgetExhausted, MeteredEvaluator, MethodResult, ProgramPoint

SAMPLE_ID_STRIDE = 1_000_000
"""LLM call k of the run with seed s uses sample_id s * SAMPLE_ID_STRIDE + k."""

_MODEL_PREFIX = "polca-llm:"
_RUN_LOCK = threading.Lock()  # OpenEvolve keeps worker state in module globals: one run at a time
_ACTIVE: dict[str, "_RunContext"] = {}

SYSTEM_MESSAGE = (
    "You improve a text program: the instructions a language model follows to solve tasks. "
    "{objective}\nThe program is plain text, not code. When asked for the complete new program, reply "
    "with the full new text inside one ```text block and nothing else in that block."
)


@dataclass(frozen=True)
class OpenEvolveSettings:
    """OpenEvolve knobs we expose. Defaults: the paper's HotpotQA baseline (polca-method.md §3:
    full rewrites, temperature 0.4, 3 top + 2 diverse programs, population 500, archive 50), on the
    package's other defaults (5 islands, migration every 50 generations)."""

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

    def __post_init__(self) -> None:
        for name in ("minibatch_size", "max_tokens", "population_size", "archive_size", "num_islands",
                     "feedback_chars", "evaluation_timeout_s"):
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

    def __init__(self, ctx: "_RunContext") -> None:
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
        self.last_usage = {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                           "total_tokens": reply.input_tokens + reply.output_tokens}
        return reply.text


# -- the evaluation side ----------------------------------------------------------------------------

@dataclass
class _RunContext:
    """Everything the evaluation file and the LLM hook of one run reach through `_ACTIVE[key]`."""

    key: str
    seed: int
    problem: Problem
    llm: LLM
    meter: MeteredEvaluator
    settings: OpenEvolveSettings
    render_input: InputRenderer
    batch_rng: np.random.Generator
    llm_call_index: Any = field(default_factory=itertools.count)
    scores_by_text: dict[str, float] = field(default_factory=dict)
    refused: int = 0
    skipped_llm_calls: int = 0
    evaluations: int = 0

    def minibatch(self) -> list[Example]:
        pool = list(self.problem.validation_examples)
        if self.settings.minibatch_size >= len(pool):
            return pool
        return [pool[int(i)] for i in self.batch_rng.choice(len(pool), size=self.settings.minibatch_size,
                                                             replace=False)]

    def budget_spent(self) -> bool:
        """True once the next evaluation could not be paid for.

        The run is not stopped through OpenEvolve's shutdown event: that leaves finished iterations
        uncollected, so programs that were evaluated (and paid for) would never reach the database and
        could not be returned. Instead the remaining iterations end at once (empty LLM reply)."""
        return self.meter.remaining < min(self.settings.minibatch_size, len(self.problem.validation_examples))


def evaluate_registered(key: str, program_path: str):
    """The body of the generated evaluation file: score the evolved text on one minibatch."""
    from openevolve.evaluation_result import EvaluationResult

    ctx = _ACTIVE[key]
    text = Path(program_path).read_text(encoding="utf-8")
    params = parse_program(text, list(ctx.problem.seed_params))
    if params is None:
        return EvaluationResult(metrics={"error": 0.0},
                                artifacts={"feedback": "The program lost one of its parameters: "
                                                       f"{list(ctx.problem.seed_params)}. Nothing was run."})
    batch = ctx.minibatch()
    try:
        evaluations = ctx.meter.evaluate_batch(params, batch)
    except BudgetExhausted:
        ctx.refused += 1
        # OpenEvolve's shape for a failed evaluation (no combined_score); nothing was spent.
        return EvaluationResult(metrics={"error": 0.0},
                                artifacts={"feedback": "Not evaluated: the metric-call budget is spent."})
    score = float(np.mean([e.score for e in evaluations]))
    ctx.scores_by_text[text] = score
    ctx.evaluations += 1
    failures = [(ex, e) for ex, e in zip(batch, evaluations) if e.score < (ctx.problem.score_range or (0, 1))[1]]
    shown = failures[: ctx.settings.max_feedback_examples]
    limit = ctx.settings.feedback_chars
    feedback = "\n\n".join(
        f"Input: {truncate_middle(ctx.render_input(ex), limit)}\nOutput: {truncate_middle(e.output, limit)}\n"
        f"Score: {e.score:.4g}\nFeedback: {truncate_middle(e.feedback, limit)}"
        for ex, e in shown) or "Every example in this minibatch got the top score."
    return EvaluationResult(metrics={"combined_score": score},
                            artifacts={"feedback": f"{len(failures)} of {len(batch)} examples below the top score.\n"
                                                   + feedback})


EVALUATION_FILE = '''"""Generated by polca_nb.baselines.openevolve_adapter for one run; safe to delete."""
from polca_nb.baselines.openevolve_adapter import evaluate_registered


def evaluate(program_path):
    return evaluate_registered({key!r}, program_path)
'''


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
    config.evaluator.cascade_evaluation = False
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
        best = None
        if self.database.best_program_id:
            best = self.database.get(self.database.best_program_id)
        if best is None:
            best = self.database.get_best_program()
        if best is not None and best.code in self.ctx.scores_by_text:
            return best.code
        # Only a refused (never evaluated) program could be "best" here, by a tie at 0: skip it.
        scored = self.ctx.scores_by_text
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


async def _drive(oe: Any, ctx: _RunContext, recorder: _Recorder, iterations: int) -> None:
    """OpenEvolve.run's steps without its signal handlers and process pool."""
    from openevolve.database import Program

    initial_id = str(uuid.uuid4())
    metrics = await oe.evaluator.evaluate_program(oe.initial_program_code, initial_id)
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


def run_openevolve(problem: Problem, llm: LLM, *, budget: int, seed: int = 0,
                   settings: OpenEvolveSettings | None = None, run_dir: str | Path | None = None,
                   render_input: InputRenderer = default_input_text) -> MethodResult:
    """Run OpenEvolve with at most `budget` metric calls (each evaluation: one minibatch of the
    problem's validation examples). `run_dir` keeps OpenEvolve's files and log; default a temp dir."""
    settings = settings or OpenEvolveSettings()
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    batch = min(settings.minibatch_size, len(problem.validation_examples))
    if budget < 2 * batch:
        raise ValueError(f"budget {budget} is too small for OpenEvolve: the seed and one child take "
                         f"{2 * batch} metric calls (minibatch_size {settings.minibatch_size})")
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
                _run_in_fresh_thread(lambda: asyncio.run(_drive(oe, ctx, recorder, iterations)))
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
        details = {"programs": len(oe.database.programs), "evaluations": ctx.evaluations,
                   "distinct_evaluated_programs": len(ctx.scores_by_text),
                   "iterations": int(oe.database.last_iteration), "refused_evaluations": ctx.refused,
                   "skipped_llm_calls": ctx.skipped_llm_calls,
                   "llm_calls": llm_calls.requests()}
        if run_dir is not None:
            (workdir / "summary.json").write_text(json.dumps({"final_params": final,
                                                              "metric_calls": ctx.meter.calls, **details}, indent=1))
    stop = "max_metric_calls" if ctx.budget_spent() else "max_iterations"
    return MethodResult("openevolve", seed, final, tuple(points), ctx.meter.calls, budget, stop, details)


