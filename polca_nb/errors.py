"""Exceptions that must stop a run instead of being absorbed by a role, an evaluator or the loop.

The loop's contract is that a bad *program* never ends a run: an evaluator that crashes scores 0, a
proposer that raises is dropped. Two kinds of failure are not about the program and must get through
every such `except Exception`:

- `FatalError`: the set-up or the request is wrong (no model binary, a rejected API request, a bad
  key, an unknown model, an evaluator returning the wrong type). Retrying or scoring 0 would only
  spend money on a run that cannot mean anything; the runner logs it and re-raises it.
- `BudgetExhausted`: a spend limit (e.g. `Budget.max_usd`) would be exceeded by the next call; the
  runner stops cleanly and reports the limit as its stop reason.

Code that catches broad exceptions re-raises these first: `except StopRun: raise`.
"""

from __future__ import annotations


class StopRun(Exception):
    """Base of the exceptions that end a run; never absorbed by roles, evaluators or the loop."""


class FatalError(StopRun, RuntimeError):
    """The run cannot continue meaningfully: a set-up, request or user-code error."""


class BudgetExhausted(StopRun):
    """A spend limit would be exceeded. `limit` names it (e.g. "max_usd", "max_usd[proposer]")."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class EvaluatorContractError(FatalError):
    """An evaluator broke the `Evaluator` contract (returned something other than an `Evaluation`, or a
    score that is NaN, infinite or outside `Problem.score_range`): a bug in the user's evaluator, not
    a failing program, so it stops the run instead of scoring 0. The message names the evaluator, the
    example and the value."""


class EvaluatorTypeError(EvaluatorContractError, TypeError):
    """The evaluator returned a value of the wrong type (not an `Evaluation`, a non-number score, ...)."""


class EvaluatorValueError(EvaluatorContractError, ValueError):
    """The evaluator returned a score that is NaN, infinite or outside `Problem.score_range`."""
