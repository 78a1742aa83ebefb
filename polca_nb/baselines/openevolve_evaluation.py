"""The evaluation side of the OpenEvolve baseline: the per-run context the generated evaluation file
and the LLM hook reach through `_ACTIVE`, the scoring functions, and that file's template."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..llm.base import LLM
from ..roles.templates import InputRenderer, truncate_middle
from ..runner import Problem
from ..types import Example, Params
from .accounting import BudgetExhausted, MeteredEvaluator

if TYPE_CHECKING:
    from .openevolve_adapter import OpenEvolveSettings

_ACTIVE: dict[str, "_RunContext"] = {}


@dataclass(frozen=True)
class _Stage1:
    """A program that passed cascade stage 1, waiting for stage 2 (keyed by its evaluated file)."""

    text: str
    params: Params
    batch: list[Example]
    evaluations: list[Any]
    score: float
    feedback: str


@dataclass
class _RunContext:
    """Everything the evaluation file and the LLM hook of one run reach through `_ACTIVE[key]`.

    The score table is written on OpenEvolve's evaluation threads and read on the driver: go
    through `record_score` and `scores` (under `_lock`), not `scores_by_text` directly."""

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
    proposals: int = 0            # LLM replies (each one child program OpenEvolve asked for)
    evaluations: int = 0          # programs evaluated (seed included; a cascade counts once)
    seed_evaluations: int = 0     # evaluations before evolution started (the seed's)
    stage2_evaluations: int = 0   # programs that passed cascade stage 1 and were scored on the rest
    stage1_passed: dict[str, _Stage1] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_score(self, text: str, score: float, *, new_program: bool) -> None:
        """Store `text`'s latest score; `new_program`: one more program evaluated."""
        with self._lock:
            self.scores_by_text[text] = score
            self.evaluations += int(new_program)

    def scores(self) -> dict[str, float]:
        """A snapshot of the score table (safe while an evaluation thread is writing it)."""
        with self._lock:
            return dict(self.scores_by_text)

    def hold_for_stage2(self, program_path: str, passed: _Stage1) -> None:
        with self._lock:
            self.stage1_passed[program_path] = passed

    def take_stage1(self, program_path: str) -> _Stage1 | None:
        with self._lock:
            return self.stage1_passed.pop(program_path, None)

    @property
    def batch_size(self) -> int:
        return min(self.settings.minibatch_size, len(self.problem.validation_examples))

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
        # The whole minibatch, also under the cascade: a child that passes stage 1 is then always
        # affordable in stage 2 (iterations run one at a time).
        return self.meter.remaining < self.batch_size


def _read_program(ctx: _RunContext, program_path: str) -> tuple[str, Params | None]:
    from .openevolve_adapter import parse_program  # lazy: the adapter imports this module

    text = Path(program_path).read_text(encoding="utf-8")
    return text, parse_program(text, list(ctx.problem.seed_params))


def _failed(feedback: str):
    """OpenEvolve's shape for a failed evaluation (no combined_score)."""
    from openevolve.evaluation_result import EvaluationResult

    return EvaluationResult(metrics={"error": 0.0}, artifacts={"feedback": feedback})


def _lost_parameter(ctx: _RunContext):
    return _failed(f"The program lost one of its parameters: {list(ctx.problem.seed_params)}. Nothing was run.")


_REFUSED = "Not evaluated: the metric-call budget is spent."


def _feedback(ctx: _RunContext, batch: Sequence[Example], evaluations: Sequence[Any]) -> str:
    failures = [(ex, e) for ex, e in zip(batch, evaluations) if e.score < (ctx.problem.score_range or (0, 1))[1]]
    shown = failures[: ctx.settings.max_feedback_examples]
    limit = ctx.settings.feedback_chars
    feedback = "\n\n".join(
        f"Input: {truncate_middle(ctx.render_input(ex), limit)}\nOutput: {truncate_middle(e.output, limit)}\n"
        f"Score: {e.score:.4g}\nFeedback: {truncate_middle(e.feedback, limit)}"
        for ex, e in shown) or "Every example in this minibatch got the top score."
    return f"{len(failures)} of {len(batch)} examples below the top score.\n" + feedback


def _scored(score: float, feedback: str):
    from openevolve.evaluation_result import EvaluationResult

    return EvaluationResult(metrics={"combined_score": score}, artifacts={"feedback": feedback})


def evaluate_registered(key: str, program_path: str):
    """The evaluation file's `evaluate`: score the evolved text on one minibatch."""
    ctx = _ACTIVE[key]
    text, params = _read_program(ctx, program_path)
    if params is None:
        return _lost_parameter(ctx)
    batch = ctx.minibatch()
    try:
        evaluations = ctx.meter.evaluate_batch(params, batch)
    except BudgetExhausted:
        ctx.refused += 1
        return _failed(_REFUSED)  # nothing was spent
    score = float(np.mean([e.score for e in evaluations]))
    ctx.record_score(text, score, new_program=True)
    return _scored(score, _feedback(ctx, batch, evaluations))


def evaluate_stage1_registered(key: str, program_path: str):
    """The evaluation file's `evaluate_stage1` (cascade on): score the text on the first
    cascade_stage1_examples examples of a fresh minibatch; keep the rest for stage 2 if it passes."""
    ctx = _ACTIVE[key]
    text, params = _read_program(ctx, program_path)
    if params is None:
        return _lost_parameter(ctx)
    batch = ctx.minibatch()
    first = batch[: ctx.settings.cascade_stage1_examples]
    try:
        evaluations = ctx.meter.evaluate_batch(params, first)
    except BudgetExhausted:
        ctx.refused += 1
        return _failed(_REFUSED)
    score = float(np.mean([e.score for e in evaluations]))
    ctx.record_score(text, score, new_program=True)
    feedback = _feedback(ctx, first, evaluations)
    # The comparison OpenEvolve's Evaluator makes (`_passes_threshold` on combined_score): exactly the
    # programs it sends to stage 2 wait here.
    if score >= float(ctx.settings.cascade_threshold):  # type: ignore[arg-type]  # cascade on: not None
        ctx.hold_for_stage2(program_path, _Stage1(text, params, batch, list(evaluations), score, feedback))
    return _scored(score, feedback)


def evaluate_stage2_registered(key: str, program_path: str):
    """The evaluation file's `evaluate_stage2`: score a stage-1 pass on the rest of its minibatch; its
    combined_score (which replaces stage 1's in OpenEvolve's merge) is the whole minibatch's mean."""
    ctx = _ACTIVE[key]
    passed = ctx.take_stage1(program_path)
    if passed is None:
        return _failed("Stage 2 without a stage-1 pass: nothing was run.")  # stage 1's score stands
    rest = passed.batch[len(passed.evaluations):]
    try:
        evaluations = passed.evaluations + ctx.meter.evaluate_batch(passed.params, rest)
    except BudgetExhausted:
        ctx.refused += 1
        return _scored(passed.score, passed.feedback + "\n\nStage 2 not evaluated: the metric-call budget is spent.")
    score = float(np.mean([e.score for e in evaluations]))
    ctx.record_score(passed.text, score, new_program=False)
    ctx.stage2_evaluations += 1  # only OpenEvolve's one evaluation thread at a time runs stage 2
    return _scored(score, _feedback(ctx, passed.batch, evaluations))


EVALUATION_FILE = '''"""Generated by polca_nb.baselines.openevolve_adapter for one run; safe to delete."""
from polca_nb.baselines.openevolve_evaluation import (
    evaluate_registered,
    evaluate_stage1_registered,
    evaluate_stage2_registered,
)


def evaluate(program_path):
    return evaluate_registered({key!r}, program_path)


# OpenEvolve's cascade calls these instead of `evaluate` when config.evaluator.cascade_evaluation is on.
def evaluate_stage1(program_path):
    return evaluate_stage1_registered({key!r}, program_path)


def evaluate_stage2(program_path):
    return evaluate_stage2_registered({key!r}, program_path)
'''
