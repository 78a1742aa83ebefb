"""What each worker builds once: the worker-setup hook and evaluators built where they run.

Nothing live travels to a worker (no LLM client, no server process, no open file). Instead:

- `WorkerSetup(env=..., prepare=...)` runs once on every worker before its first task, and again on a
  worker that replaces a dead one: it sets environment variables (e.g. `ANTHROPIC_BASE_URL` of a shared
  endpoint, `POLCA_CACHE_DIR`, `POLCA_DATA_DIR`, `CUDA_VISIBLE_DEVICES`), then calls `prepare()`, a
  module-level function that warms what the worker keeps (tau-bench data, the compiled-kernel cache).
- `OnWorker(factory, kwargs)` is an evaluator that ships as its factory and keyword arguments and is
  built by the first call in each process (`worker_resource`), so a worker builds its own LLM client
  (and, with no endpoint set, its own embedded llama-server) once and reuses it for every task.
- `worker_ledger()` is the ledger such a client should keep (`default_client(ledger=worker_ledger())`):
  a `usage.WorkerLedger`, so each call's LLM spend comes back with its result and is counted in the
  run's `Budget(max_usd)` (see `usage.py` and `DaskExecutor(ledger=...)`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, TypeVar

from ..types import Evaluation, Example, Params
from .usage import WorkerLedger

T = TypeVar("T")

_resources: dict[Hashable, Any] = {}
_resources_lock = threading.RLock()  # reentrant: a build may ask for another resource (worker_ledger)


def worker_resource(key: Hashable, build: Callable[[], T]) -> T:
    """The process's one `build()` result under `key`: built on first use, then shared by every task."""
    with _resources_lock:
        if key not in _resources:
            _resources[key] = build()
        return _resources[key]


def worker_ledger() -> WorkerLedger:
    """This process's one `WorkerLedger`: give it to the LLM clients an evaluator builds on a worker,
    so each evaluator call's spend travels back in its `Attempt` (built on first use)."""
    return worker_resource(("ledger",), WorkerLedger)


def forget_worker_resources() -> None:
    """Drop every resource this process built (tests; a worker's resources otherwise live as long as it)."""
    with _resources_lock:
        _resources.clear()


def qualified_name(fn: Callable[..., Any]) -> str:
    """module.qualname of a function or class: how a factory is named (and found again) on a worker."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


@dataclass(frozen=True)
class OnWorker:
    """An evaluator built where it runs: pickles as `factory` + `kwargs`, built once per process.

    `factory(**kwargs)` must return an Evaluator and be importable on the workers (a module-level
    function or class); `kwargs` must pickle (plain settings, paths, names). `worker_resources`
    (e.g. {"GPU": 1}) are what one call holds on a Dask worker. State the built evaluator keeps
    (records, counters) stays on the worker: the run counts metric calls from the results it gets.
    """

    factory: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    worker_resources: Mapping[str, float] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return qualified_name(self.factory), repr(sorted(self.kwargs.items()))

    def built(self) -> Any:
        """This process's evaluator (built on the first call)."""
        return worker_resource(("evaluator",) + self.key, lambda: self.factory(**self.kwargs))

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        return self.built()(params, example, seed)


@dataclass(frozen=True)
class WorkerSetup:
    """The once-per-worker hook: set `env`, then call `prepare()` (module-level, no arguments).

    Runs before the worker's first task and again on a worker that replaces one that died. Secrets
    are not copied from the parent: put `ANTHROPIC_API_KEY` in `env` only if the workers should have it.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    prepare: Callable[[], object] | None = None

    def run(self) -> None:
        """What a worker does once: the environment first, so `prepare` sees it."""
        os.environ.update({str(k): str(v) for k, v in self.env.items()})
        if self.prepare is not None:
            self.prepare()
