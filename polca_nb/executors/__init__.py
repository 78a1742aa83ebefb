"""Executors beyond one process: a run's evaluations on a Dask cluster.

- `calls`: what travels to a worker (`EvaluatorCall`: evaluator + params; `Attempt`: what comes back).
- `worker`: what a worker builds once (`WorkerSetup`, `OnWorker`, `worker_resource`, `worker_ledger`).
- `usage`: a worker's LLM spend, back with each result (`WorkerLedger`, `UsageRecord`, `record_usage`).
- `chunks`: several evaluations per Dask task (`ChunkCall`, the "auto" chunk size).
- `dask_executor`: `DaskExecutor` over a `distributed.Client` (the optional `cluster` extra).
- `spec`: `executor=N`, `"dask://host:port"` or a `distributed.Client`, as `polca(..., executor=)` takes it.
- `gpu`: KernelBench on workers that declare a `GPU` resource (`kernel_cluster`, `kernel_evaluator`).
- `loads`: synthetic I/O- and CPU-bound evaluators for `bench/executors.py` and the tests.

`DaskExecutor` and `WorkerSetupPlugin` are imported on first access, so `polca_nb.executors` imports
without `distributed` installed.
"""

from __future__ import annotations

from typing import Any

from .calls import Attempt, EvaluatorCall
from .spec import DaskAddress, dask_executor_for, is_dask_client
from .usage import UsageRecord, WorkerLedger, record_usage
from .worker import OnWorker, WorkerSetup, forget_worker_resources, worker_ledger, worker_resource

__all__ = ["Attempt", "DaskAddress", "DaskExecutor", "EvaluatorCall", "OnWorker", "UsageRecord", "WorkerLedger",
           "WorkerSetup", "dask_executor_for", "forget_worker_resources", "install_setup", "is_dask_client",
           "record_usage", "worker_ledger", "worker_resource"]

_LAZY = {"DaskExecutor", "WorkerSetupPlugin", "install_setup"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import dask_executor  # noqa: PLC0415 - needs distributed

        return getattr(dask_executor, name)
    raise AttributeError(f"module 'polca_nb.executors' has no attribute {name!r}")
