"""Scoring programs: evaluate a candidate on examples (one metric call each), check what the user's
evaluator returned, and the winner's-curse helpers (`evaluate_on`, `reevaluate_top_k`).

An evaluator that raises is a failing program (the range minimum, its error as feedback); an
`LLMError` inside it is an evaluation *error* (`Rollout.error`); a result of the wrong type or out of
range is a bug in the evaluator and stops the run (`EvaluatorTypeError` / `EvaluatorValueError`).
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import EvaluatorTypeError, EvaluatorValueError, FatalError
from .executors.calls import Attempt, EvaluatorCall
from .memory import ScoreRange
from .protocols import Evaluator, Executor, SerialExecutor
from .runlog import RunLog
from .types import EVALUATION_ERRORS, SEED_BOUND, Candidate, Evaluation, EvaluationErrors, Example, Rollout, Source

log = logging.getLogger(__name__)


def draw_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """n integer seeds for evaluations or LLM samples, drawn up front so order never depends on threads."""
    return [int(s) for s in rng.integers(0, SEED_BOUND, size=n)]


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def describe_evaluator(evaluator: Any) -> str:
    """How error messages name an evaluator: a function's qualified name, else its class."""
    name = getattr(evaluator, "__qualname__", None)
    if isinstance(name, str):
        module = getattr(evaluator, "__module__", None)
        return f"{module}.{name}" if module else name
    cls = type(evaluator)
    return f"{cls.__module__}.{cls.__qualname__} instance"


def failure_score(score_range: ScoreRange | None) -> float:
    """The score of a crashed or failed evaluation: the range minimum when it is known and finite, else 0."""
    if score_range is not None and math.isfinite(float(score_range[0])):
        return float(score_range[0])
    return 0.0


def check_evaluation(result: Any, evaluator: Any, example: Example, score_range: ScoreRange | None) -> Evaluation:
    """`result` if it honours the Evaluator contract, else an EvaluatorTypeError / EvaluatorValueError.

    These are bugs in the user's evaluator, not failing programs: they stop the run (a FatalError)
    with a message naming the evaluator, the example and the value.
    """
    where = f"evaluator {describe_evaluator(evaluator)} on example {example.id!r}"
    if not isinstance(result, Evaluation):
        raise EvaluatorTypeError(
            f"{where} returned {_short(result)} ({type(result).__name__}); an evaluator must return "
            "polca_nb.types.Evaluation(score, feedback), e.g. Evaluation(1.0, 'correct')")
    score = result.score
    if isinstance(score, (bool, np.bool_)) or not isinstance(score, numbers.Real):
        raise EvaluatorTypeError(f"{where} returned Evaluation.score = {_short(score)} ({type(score).__name__}); "
                                 "the score must be a real number")
    value = float(score)
    if not math.isfinite(value):
        raise EvaluatorValueError(f"{where} returned Evaluation.score = {value!r}; the score must be finite "
                                  "(a NaN or infinite score poisons every mean it enters)")
    if score_range is not None:
        lo, hi = float(score_range[0]), float(score_range[1])
        if value < lo or value > hi:
            raise EvaluatorValueError(f"{where} returned Evaluation.score = {value!r}, outside the problem's "
                                      f"score_range {tuple(score_range)!r}; fix the evaluator or the score_range")
    for name in ("feedback", "output"):
        text = getattr(result, name)
        if not isinstance(text, str):
            raise EvaluatorTypeError(f"{where} returned Evaluation.{name} = {_short(text)} "
                                     f"({type(text).__name__}); it must be a str")
    if result.error is not None and not isinstance(result.error, str):
        raise EvaluatorTypeError(f"{where} returned Evaluation.error = {_short(result.error)} "
                                 f"({type(result.error).__name__}); it must be a str or None")
    return result


def kept_rollouts(rollouts: Sequence[Rollout], evaluation_errors: EvaluationErrors = "zero") -> list[Rollout]:
    """The rollouts that enter a candidate's history under the `evaluation_errors` policy."""
    if evaluation_errors not in EVALUATION_ERRORS:
        raise ValueError(f"evaluation_errors must be one of {EVALUATION_ERRORS}, got {evaluation_errors!r}")
    if evaluation_errors == "zero":
        return list(rollouts)
    return [r for r in rollouts if r.error is None]


def evaluate_examples(
    candidate: Candidate,
    examples: Sequence[Example],
    seeds: Sequence[int],
    *,
    evaluator: Evaluator,
    step: int,
    source: Source,
    log_: RunLog,
    executor: Executor | None = None,
    score_range: ScoreRange | None = None,
) -> list[Rollout]:
    """Score `candidate` on each example (one metric call each; replayed ones are free).

    - An evaluator that raises is a failing *program*: a rollout with the failure score (the range
      minimum, else 0) and the error as feedback, so one bad program can never end a run.
    - An `LLMError` raised inside the evaluator (an LLM call that failed for good) is an evaluation
      *error*, not the program's fault: the same placeholder score, and `Rollout.error` set. An
      evaluator may also report one itself with `Evaluation(error=...)`.
    - A `StopRun` (fatal error, spend limit) is never absorbed, and neither is a result that breaks
      the Evaluator contract (not an `Evaluation`, a NaN/inf score, a score outside `score_range`):
      that raises EvaluatorTypeError / EvaluatorValueError (FatalErrors) naming evaluator, example, value.
    """
    executor = executor or SerialExecutor()
    keys = [("evaluation", step, source, candidate.id, ex.id, seed) for ex, seed in zip(examples, seeds)]
    replays = [log_.replayed(key) for key in keys]
    # Only the evaluator call leaves this process (it pickles for a distributed executor); replays,
    # contract checks, warnings and the metric-call count stay here, in input order.
    pending = [(examples[i], seeds[i]) for i, hit in enumerate(replays) if hit is None]
    attempts = iter(executor.map(EvaluatorCall(evaluator, candidate.params), pending))
    rollouts = []
    try:
        for ex, seed, hit in zip(examples, seeds, replays):
            res = _replayed_evaluation(hit) if hit is not None else \
                _settled(_next_attempt(attempts, executor, len(pending)), candidate, ex, evaluator, score_range)
            rollouts.append(_logged_rollout(ex, seed, step, source, res, candidate, log_))
    finally:
        close = getattr(attempts, "close", None)
        if close is not None:
            close()  # an evaluator contract error stops here: the calls not yet run are dropped
    return rollouts


def _next_attempt(attempts: Iterator[Attempt], executor: Executor, expected: int) -> Attempt:
    """The next evaluator call's attempt; an executor that yields fewer results than calls is a bug
    to stop on (a missing evaluation would otherwise end the loop as a bare StopIteration)."""
    try:
        return next(attempts)
    except StopIteration:
        name = type(executor).__name__
        raise FatalError(f"{name}.map returned fewer than the {expected} results asked for") from None


def _replayed_evaluation(hit: dict[str, Any]) -> Evaluation:
    return Evaluation(hit["score"], hit["feedback"], hit.get("output", ""), hit.get("error"))


def _settled(attempt: Attempt, candidate: Candidate, example: Example, evaluator: Evaluator,
             score_range: ScoreRange | None) -> Evaluation:
    """The evaluation one evaluator call stands for: its checked result, or the failure it raised."""
    failed = failure_score(score_range)
    if attempt.llm_error:  # the evaluation could not be done: not the program's failure
        log.warning("LLM call failed inside the evaluation of candidate %s, example %s: %s",
                    candidate.id, example.id, attempt.error)
        return Evaluation(failed, f"Evaluation error (not scored): {attempt.error}", error=attempt.error)
    if attempt.raised:  # a crashing program is a failed evaluation
        log.warning("evaluator raised on candidate %s, example %s: %s", candidate.id, example.id, attempt.error_repr)
        return Evaluation(failed, f"Evaluation error: {attempt.error}")
    return check_evaluation(attempt.value, evaluator, example, score_range)


def _logged_rollout(ex: Example, seed: int, step: int, source: Source, res: Evaluation, candidate: Candidate,
             log_: RunLog) -> Rollout:
    """The rollout of one settled evaluation, logged as an `evaluation` event."""
    rollout = Rollout(ex.id, float(res.score), res.feedback, step, source, res.output, seed, res.error)
    event = {"type": "evaluation", "step": step, "source": source, "candidate_id": candidate.id,
             "example_id": ex.id, "seed": seed, "score": rollout.score,
             "feedback": rollout.feedback, "output": rollout.output}
    if rollout.error is not None:
        event["error"] = rollout.error
    log_.emit(event)
    return rollout


def evaluate_on(
    candidate: Candidate,
    dataset: Sequence[Example],
    *,
    evaluator: Evaluator,
    repeats: int,
    step: int,
    rng: np.random.Generator,
    log_: RunLog,
    source: Source = "test",
    executor: Executor | None = None,
    score_range: ScoreRange | None = None,
    evaluation_errors: EvaluationErrors = "zero",
) -> float:
    """Mean score of `candidate` over the whole dataset, `repeats` times (test-time evaluation).

    With `evaluation_errors="exclude"` the mean is over the rollouts without an evaluation error
    (NaN when every one had one).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    examples = [ex for _ in range(repeats) for ex in dataset]
    seeds = draw_seeds(rng, len(examples))
    rollouts = evaluate_examples(candidate, examples, seeds, evaluator=evaluator, step=step, source=source,
                                 log_=log_, executor=executor, score_range=score_range)
    rollouts = kept_rollouts(rollouts, evaluation_errors)
    return float(np.mean([r.score for r in rollouts])) if rollouts else float("nan")


def reevaluate_top_k(
    candidates: Sequence[Candidate],
    k: int,
    dataset: Sequence[Example],
    *,
    evaluator: Evaluator,
    repeats: int,
    step: int,
    rng: np.random.Generator,
    log_: RunLog,
    executor: Executor | None = None,
    score_range: ScoreRange | None = None,
    evaluation_errors: EvaluationErrors = "zero",
) -> list[tuple[Candidate, float]]:
    """The winner's-curse correction: re-score the top-k by mean on a whole dataset, best first.

    A candidate picked by the max of noisy means is biased upward; fresh scores on a full set are not.
    Ties in the fresh score keep the order by mean.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked_by_mean = sorted(candidates, key=lambda c: (c.mean if c.mean is not None else -np.inf,
                                                      c.step_created, c.id), reverse=True)[:k]
    scored = [(c, evaluate_on(c, dataset, evaluator=evaluator, repeats=repeats, step=step, rng=rng, log_=log_,
                              source="reevaluate", executor=executor, score_range=score_range,
                              evaluation_errors=evaluation_errors)) for c in ranked_by_mean]
    # A NaN fresh score (every re-evaluation an excluded evaluation error) ranks last.
    return sorted(scored, key=lambda cs: cs[1] if not math.isnan(cs[1]) else -math.inf, reverse=True)
