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

Chunking (`chunk_size`): several evaluations go in one task (`chunks.ChunkCall`), a contiguous slice
of the iteration's jobs, so the scheduler round trip is paid once per chunk. "auto" cuts n evaluations
into about 2 tasks per worker thread (ceil(n / (threads x 2)) each); calls that hold worker resources
(a GPU) go one per task. A chunk whose worker died runs again as a whole; one that killed every
worker it ran on is split into one task per evaluation, so only the evaluation that kills scores as
a crash. Results are still yielded one by one in input order, and the run's process still counts
each metric call once, so the event log does not depend on the chunk size.

LLM spend on workers: the evaluator's worker-side client keeps `worker_ledger()` (a `WorkerLedger`),
so each call's ledger records come back in its `Attempt.usage`; with `ledger=` (the ledger of the
`llm` given to `polca`), they are recorded there as each result is handed over, so the run's USD
totals, `Budget(max_usd)` and `ledger.track()` include worker spend. The limit is checked in the
run's process as results arrive, not on the workers before their calls: once a result's spend passes
it, the next result (or batch) is refused with BudgetExhausted (a clean "max_usd" stop), so a run
can pass max_usd by what its evaluations in flight spend (one batch's); a serial run stops before
the call that could pass it.
Spend of an attempt whose worker died is not brought back (it ran on a worker that is gone).
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
from ..llm.ledger import Ledger
from ..protocols import Executor, ThreadExecutor
from .chunks import ChunkPolicy, check_policy, chunk_calls, chunk_size_for, plan_chunks
from .usage import over_limit, record_usage, spent_usd, usage_of
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

    `local` runs the calls that may not leave the process; `resubmits` is how often a task the
    scheduler dropped (a restart, a lost connection) is submitted again; `setup` is installed on the
    workers at construction; `owns_client` makes `close()` close the client (a `dask://` address);
    `chunk_size` is evaluations per task (an int >= 1, or "auto"); `ledger` (the run's, e.g.
    `llm.ledger`) receives the workers' LLM spend, which is otherwise left on the workers' ledgers.
    """

    client: Client
    local: Executor = field(default_factory=_default_local)
    resubmits: int = 2
    setup: WorkerSetup | None = None
    owns_client: bool = False
    chunk_size: ChunkPolicy = "auto"
    ledger: Ledger | None = None
    _warned_unbilled: bool = field(default=False, init=False, repr=False)
    _billed_roles: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.resubmits < 0:
            raise ValueError(f"resubmits must be >= 0, got {self.resubmits}")
        check_policy(self.chunk_size)
        if self.setup is not None:
            install_setup(self.client, self.setup)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """`fn` over `items`, results in input order: on the cluster if `fn` ships, else on `local`."""
        if not getattr(fn, "ships_to_workers", False):
            return self.local.map(fn, items)
        return self._remote(fn, list(items))

    def chunk_size_for(self, fn: Callable[[T], R], n: int) -> int:
        """Evaluations per task for n calls of `fn`: one per task for calls holding worker resources
        under "auto", else `chunks.chunk_size_for` on the cluster's worker threads."""
        if self.chunk_size == "auto" and getattr(fn, "resources", None):
            return 1
        slots = sum(self.client.nthreads().values()) if self.chunk_size == "auto" else 1
        return chunk_size_for(n, slots, self.chunk_size)

    def _remote(self, fn: Callable[[T], R], items: list[T]) -> Iterator[R]:
        """Results in input order, each yielded once it and its predecessors are back; chunks are
        fetched in batches as tasks complete (one round trip per batch, not per result)."""
        if not items:
            return
        self._check_limits()  # spend recorded after the previous batch's last result
        chunks = plan_chunks(len(items), self.chunk_size_for(fn, len(items)))
        futures = self._submit(fn, items, chunks)
        position = {future.key: c for c, future in enumerate(futures)}
        arrived: dict[int, R] = {}
        next_index = 0
        try:
            for batch in as_completed(futures).batches():
                finished = [f for f in batch if f.status == "finished"]
                for future, results in zip(finished, self.client.gather(finished)):
                    arrived.update(zip(chunks[position[future.key]], results))
                for future in batch:  # an erred or dropped task is read on its own: retried or settled there
                    if future.status != "finished":
                        c = position[future.key]
                        arrived.update(zip(chunks[c], self._chunk_result(fn, items, chunks[c], futures, c)))
                while next_index in arrived:
                    result = arrived.pop(next_index)
                    self._bill(result)
                    yield result
                    self._check_limits()  # when the next result is asked for
                    next_index += 1
            # as_completed can end without a chunk whose worker died after the task was reported (its result
            # went with the worker): read each such chunk on its own (waited for, or resubmitted).
            for c, chunk in enumerate(chunks):
                if chunk.stop > next_index and any(i not in arrived for i in chunk if i >= next_index):
                    arrived.update(zip(chunk, self._chunk_result(fn, items, chunk, futures, c)))
            while next_index in arrived:
                result = arrived.pop(next_index)
                self._bill(result)
                yield result
                self._check_limits()
                next_index += 1
            if next_index < len(items):
                raise FatalError(f"the cluster returned {next_index} of {len(items)} results")
        finally:
            self.client.cancel([f for f in futures if not f.done()])  # the caller stopped early

    def _submit(self, fn: Callable[[T], R], items: list[T], chunks: Sequence[range]) -> list[Future]:
        """One task per chunk (a `ChunkCall`), keyed by the items it holds."""
        resources: Mapping[str, float] | None = getattr(fn, "resources", None)
        prefix = f"{type(fn).__name__}-{uuid.uuid4().hex[:12]}"
        return self.client.map(_run_chunk, chunk_calls(fn, items, chunks), pure=False,
                               key=[f"{prefix}-{chunk.start}-{chunk.stop}" for chunk in chunks],
                               resources=dict(resources) if resources else None)

    def _chunk_result(self, fn: Callable[[T], R], items: list[T], chunk: range, futures: list[Future],
                      c: int) -> list[R]:
        """Chunk c's results; a dropped task is resubmitted, one that killed its workers is `_lost`."""
        for attempt in range(self.resubmits + 1):
            try:
                return list(futures[c].result())
            except KilledWorker as exc:
                return self._lost(fn, items, chunk, str(futures[c].key), exc)
            except CancelledError as exc:
                if attempt == self.resubmits:
                    raise FatalError(f"task {futures[c].key} was dropped by the scheduler "
                                     f"{self.resubmits + 1} times: {exc!r}") from exc
                log.warning("task %s was dropped by the scheduler; submitting it again", futures[c].key)
                futures[c] = self._submit(fn, items, [chunk])[0]
            except StopRun:
                raise
            except Exception as exc:
                raise FatalError(f"task {futures[c].key} failed on the cluster: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _lost(self, fn: Callable[[T], R], items: list[T], chunk: range, key: str, exc: BaseException) -> list[R]:
        """A task that killed every worker it ran on: a chunk runs again one evaluation per task;
        a single evaluation is a crashing program (`on_lost`), or a FatalError for a call without one."""
        if len(chunk) > 1:
            log.warning("task %s killed every worker it ran on; running its %d calls one per task", key, len(chunk))
            singles = [range(i, i + 1) for i in chunk]
            futures = self._submit(fn, items, singles)
            return [self._chunk_result(fn, items, one, futures, j)[0] for j, one in enumerate(singles)]
        on_lost: Callable[[T, BaseException], R] | None = getattr(fn, "on_lost", None)
        if on_lost is None:
            raise FatalError(f"task {key} killed every worker it ran on: {exc}") from exc
        log.warning("task %s killed every worker it ran on; scored as a crash: %s", key, exc)
        return [on_lost(items[chunk.start], exc)]

    def _bill(self, result: object) -> None:
        """Record the LLM usage `result` carries on `ledger` (warned about once when there is none)."""
        records = usage_of(result)
        if records and self.ledger is not None:
            record_usage(self.ledger, records)
            self._billed_roles.update(r.role for r in records if r.kind == "call")
        elif records and spent_usd(records) > 0 and not self._warned_unbilled:
            self._warned_unbilled = True
            log.warning("evaluations on the workers spent $%.4f of LLM calls that no ledger counts: give "
                        "DaskExecutor(ledger=<the run's llm>.ledger) so Budget(max_usd) includes it",
                        spent_usd(records))

    def _check_limits(self) -> None:
        """BudgetExhausted when the workers' spend recorded on `ledger` has passed one of its installed
        USD limits (checked for each role the workers billed)."""
        if self.ledger is None:
            return
        for role in sorted(self._billed_roles):
            exc = over_limit(self.ledger, role)
            if exc is not None:
                raise exc

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


def _run_chunk(call: Callable[[], list[Any]]) -> list[Any]:
    """What a chunk's task runs on the worker (module-level, so the task pickles by reference)."""
    return call()
