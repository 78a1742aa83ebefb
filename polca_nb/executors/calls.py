"""What travels to a worker: one evaluator call, shipped as data, and what comes back from it.

`EvaluatorCall(evaluator, params)` is the function an executor maps over `(example, seed)` jobs. It
holds only the evaluator and the candidate's parameters, so it pickles when the evaluator does (a
module-level function, a dataclass of plain settings, or an `OnWorker` that builds the evaluator where
it runs). It never raises for a failing program: the exception comes back as text in an `Attempt`, and
the caller (`evaluation.evaluate_examples`, in the run's process) turns it into a rollout, logs it and
counts the metric call. Only a `StopRun` (fatal error, spend limit) propagates.

What the call's LLM clients recorded on a `WorkerLedger` (`usage.py`) comes back with it, as
`Attempt.usage`, for the run's process to record on the run's ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from ..errors import StopRun
from ..llm.client import LLMError
from ..types import Example, Params
from .usage import UsageRecord, usage_tab

Job = tuple[Example, int]
"""One metric call's inputs besides the program: the example and the evaluation seed."""


@dataclass(frozen=True)
class Attempt:
    """What one evaluator call came back with: its return value, or the exception it raised as text.

    Text, not the exception object, so it survives pickling whatever the exception holds. `usage`:
    the ledger records the call's LLM clients made on a `WorkerLedger`, in order (plain data).
    """

    value: Any = None
    error_type: str | None = None
    error_message: str = ""
    error_repr: str = ""
    llm_error: bool = False
    usage: tuple[UsageRecord, ...] = ()

    @classmethod
    def of_exception(cls, exc: BaseException, usage: Sequence[UsageRecord] = ()) -> "Attempt":
        """The attempt of a call that raised `exc` (an `LLMError` is flagged as an evaluation error)."""
        return cls(None, type(exc).__name__, str(exc), repr(exc), isinstance(exc, LLMError), tuple(usage))

    @property
    def raised(self) -> bool:
        return self.error_type is not None

    @property
    def error(self) -> str:
        """"Type: message", as the run's feedback and logs spell an exception."""
        return f"{self.error_type}: {self.error_message}"


@dataclass(frozen=True)
class EvaluatorCall:
    """`evaluator(params, example, seed)` for one job, as an executor's worker runs it.

    `ships_to_workers` tells a distributed executor this call may leave the process (a closure over
    the run's log must not); `resources` are the worker resources one call holds (e.g. {"GPU": 1}),
    taken from the evaluator's `worker_resources` attribute when it has one.
    """

    evaluator: Any
    params: Params
    ships_to_workers: ClassVar[bool] = True

    @property
    def resources(self) -> Mapping[str, float] | None:
        return getattr(self.evaluator, "worker_resources", None)

    def __call__(self, job: Job) -> Attempt:
        example, seed = job
        with usage_tab() as usage:
            try:
                return Attempt(self.evaluator(self.params, example, seed), usage=tuple(usage))
            except StopRun:
                raise
            except Exception as exc:  # noqa: BLE001 - a crashing program comes back as a failed attempt
                return Attempt.of_exception(exc, usage)

    def on_lost(self, job: Job, exc: BaseException) -> Attempt:
        """The attempt of a call whose workers kept dying under it: a crashing program, scored as one."""
        return Attempt.of_exception(exc)

