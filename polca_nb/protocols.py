"""The swappable roles of the search: evaluator, proposer, summarizer, embedder, executor.

Each role is a small Protocol; any object (or, for the evaluator, any function) with the right
signature plugs in. Randomness always arrives as an explicit integer `seed` drawn from the run's one
numpy Generator, so a role never needs a global RNG and a cached LLM role can tell deliberate
resamples apart.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

from .types import Candidate, Evaluation, Example, Params, Rollout

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Evaluator(Protocol):
    """Scores params on one example: exactly one metric call.

    Must return an `Evaluation` whose score is finite and inside `Problem.score_range`; anything else
    is a bug in the evaluator and stops the run (EvaluatorTypeError / EvaluatorValueError, fatal).
    Should not raise for a bad program: return score 0 (or the range minimum) with feedback saying
    why; an exception is scored that way by the loop. An `LLMError` raised inside it (or a returned
    `Evaluation(error=...)`) is an evaluation *error*, not a failing program. A `StopRun` (fatal
    error, spend limit) ends the run. `seed` makes stochastic execution reproducible and
    distinguishes repeated evaluations.
    """

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation: ...


@runtime_checkable
class Proposer(Protocol):
    """Proposes new parameter dicts from a candidate and its fresh minibatch feedback.

    `batch` pairs each example with the rollout it just produced; `context` is the summarizer's
    global context ("" when off). Returns a list of zero or more proposals, each a dict of parameter
    name -> text; may raise, and the loop then drops that proposal call and logs the error (a return
    value of any other shape is dropped and logged the same way; a `StopRun` ends the run).
    """

    def propose(
        self,
        candidate: Candidate,
        batch: Sequence[tuple[Example, Rollout]],
        context: str,
        seed: int,
    ) -> list[Params]: ...


@runtime_checkable
class Summarizer(Protocol):
    """Condenses the memory into context for the next proposals (the paper's "momentum")."""

    def summarize(
        self,
        candidates: Sequence[Candidate],
        previous: str,
        examples: Mapping[str, Example],
        seed: int,
    ) -> str: ...


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to vectors; eps is only meaningful relative to one embedder, so it has a name."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class Executor(Protocol):
    """Runs independent calls; yields results lazily in input order, so the caller can log each
    result as soon as it and its predecessors are done, and runs stay deterministic."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]: ...


class SerialExecutor:
    """Runs calls one after another in the caller's thread."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        return (fn(item) for item in items)


class ThreadExecutor:
    """Runs calls on a bounded thread pool (LLM calls and subprocess evaluations release the GIL).

    An exception raised by a call is re-raised, in input order, by the iterator; calls not yet
    started are then cancelled (those running finish first)."""

    def __init__(self, max_workers: int = 4) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        if len(items) <= 1 or self.max_workers == 1:
            yield from (fn(item) for item in items)
            return
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(items))) as pool:
            yield from pool.map(fn, items)


def as_executor(executor: Executor | int | str | None) -> Executor:
    """None or 1 -> serial; an int -> a thread pool of that size; "dask://host:port" or a
    `distributed.Client` -> a `DaskExecutor` (polca_nb.executors); an Executor is used as is."""
    if executor is None:
        return SerialExecutor()
    if isinstance(executor, int):
        return SerialExecutor() if executor == 1 else ThreadExecutor(executor)
    from .executors.spec import dask_executor_for, is_dask_client  # noqa: PLC0415 - optional extra

    if isinstance(executor, str) or is_dask_client(executor):
        return dask_executor_for(executor)
    return executor
