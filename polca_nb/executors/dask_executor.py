"""`DaskExecutor`: a run's evaluations as futures on a Dask cluster (`distributed.Client`).

    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
        result = polca(problem, proposer, config, executor=DaskExecutor(client))

Only calls marked `ships_to_workers` (the evaluator calls of `polca_nb.executors.calls`) leave the
process; everything else the loop maps (proposals, with the run's LLM client) runs on `local`, a
thread pool here. Results come back in input order and the run's process logs and counts them, so
the event log is the serial run's for the same seed, and a call run twice (its first worker died) is
still one metric call. The scheduler moves a task whose worker died to another worker (up to its
`distributed.scheduler.allowed-failures`, 3 by default); a task that keeps killing its workers comes
back as a crashing program (`on_lost`).
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from distributed import Client, Future, KilledWorker, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import FatalError, StopRun
from ..protocols import Executor, ThreadExecutor
from .worker import WorkerSetup

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

SETUP_PLUGIN_NAME = "polca-worker-setup"


class WorkerSetupPlugin(WorkerPlugin):
    """Runs a `WorkerSetup` on each worker as it joins (replacements of dead workers included)."""

    name = SETUP_PLUGIN_NAME

    def __init__(self, hook: WorkerSetup) -> None:
        self.hook = hook

    def setup(self, worker: Any) -> None:
        self.hook.run()


def install_setup(client: Client, setup: WorkerSetup) -> None:
    """Register `setup` with the scheduler: every current and future worker runs it once."""
    client.register_plugin(WorkerSetupPlugin(setup), name=SETUP_PLUGIN_NAME)


def _default_local() -> Executor:
    return ThreadExecutor(4)


@dataclass
class DaskExecutor:
    """`Executor` over a synchronous `distributed.Client` (see the module docstring for the contract).

    `local` runs the calls that may not leave the process; `resubmits` is how often a future the
    scheduler dropped (a restart, a lost connection) is submitted again; `setup` is installed on the
    workers at construction; `owns_client` makes `close()` close the client (a `dask://` address).
    """

    client: Client
    local: Executor = field(default_factory=_default_local)
    resubmits: int = 2
    setup: WorkerSetup | None = None
    owns_client: bool = False

    def __post_init__(self) -> None:
        if self.resubmits < 0:
            raise ValueError(f"resubmits must be >= 0, got {self.resubmits}")
        if self.setup is not None:
            install_setup(self.client, self.setup)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """`fn` over `items`, results in input order: on the cluster if `fn` ships, else on `local`."""
        if not getattr(fn, "ships_to_workers", False):
            return self.local.map(fn, items)
        return self._remote(fn, list(items))

    def _remote(self, fn: Callable[[T], R], items: list[T]) -> Iterator[R]:
        """Results in input order, each yielded once it and its predecessors are back; they are
        fetched in batches as tasks complete (one round trip per batch, not per result)."""
        if not items:
            return
        futures = self._submit(fn, items)
        position = {future.key: i for i, future in enumerate(futures)}
        arrived: dict[int, R] = {}
        next_index = 0
        try:
            for batch in as_completed(futures).batches():
                finished = [f for f in batch if f.status == "finished"]
                arrived.update(zip((position[f.key] for f in finished), self.client.gather(finished)))
                for future in batch:  # an erred or dropped task is read on its own: retried or settled there
                    if future.status != "finished":
                        i = position[future.key]
                        arrived[i] = self._result(fn, items[i], futures, i)
                while next_index in arrived:
                    yield arrived.pop(next_index)
                    next_index += 1
        finally:
            self.client.cancel([f for f in futures if not f.done()])  # the caller stopped early

    def _submit(self, fn: Callable[[T], R], items: list[T]) -> list[Future]:
        resources: Mapping[str, float] | None = getattr(fn, "resources", None)
        prefix = f"{type(fn).__name__}-{uuid.uuid4().hex[:12]}"
        return self.client.map(fn, items, key=[f"{prefix}-{i}" for i in range(len(items))], pure=False,
                               resources=dict(resources) if resources else None)

    def _result(self, fn: Callable[[T], R], item: T, futures: list[Future], i: int) -> R:
        """Item i's result; a dropped future is resubmitted, a task that killed its workers is `on_lost`."""
        for attempt in range(self.resubmits + 1):
            try:
                return futures[i].result()
            except KilledWorker as exc:
                on_lost: Callable[[T, BaseException], R] | None = getattr(fn, "on_lost", None)
                if on_lost is None:
                    raise FatalError(f"task {futures[i].key} killed every worker it ran on: {exc}") from exc
                log.warning("task %s killed every worker it ran on; scored as a crash: %s", futures[i].key, exc)
                return on_lost(item, exc)
            except CancelledError as exc:
                if attempt == self.resubmits:
                    raise FatalError(f"task {futures[i].key} was dropped by the scheduler "
                                     f"{self.resubmits + 1} times: {exc!r}") from exc
                log.warning("task %s was dropped by the scheduler; submitting it again", futures[i].key)
                futures[i] = self._submit(fn, [item])[0]
            except StopRun:
                raise
            except Exception as exc:
                raise FatalError(f"task {futures[i].key} failed on the cluster: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def workers(self) -> dict[str, dict[str, Any]]:
        """Each worker's address -> its threads and declared resources (e.g. {"GPU": 1})."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {address: {"nthreads": w.get("nthreads"), "resources": dict(w.get("resources") or {})}
                for address, w in info.items()}

    def close(self) -> None:
        """Close the client if this executor opened it (an address given as `dask://host:port`)."""
        if self.owns_client:
            self.client.close()

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
