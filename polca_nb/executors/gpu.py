"""KernelBench on a Dask cluster: kernel evaluations on workers that declare a `GPU` resource.

    with kernel_cluster() as cluster, Client(cluster) as client:   # one worker per visible GPU
        problem = replace(problem, evaluator=kernel_evaluator(client))
        polca(problem, proposer, config, executor=DaskExecutor(client))

A GPU worker is pinned to one device (`CUDA_VISIBLE_DEVICES`) and declares `GPU=1`; each CUDA
evaluation holds `GPU=1`, so a GPU runs one evaluation at a time, and its timing phase takes that
GPU's own lock (`kernelbench.evaluate.timing_lock_path`). On a machine without a GPU the cluster has
single-threaded `cpu` backend workers and the evaluations need no resource. The evaluator is built on
each worker (`OnWorker`), with the machine's compiled-kernel cache.
"""

from __future__ import annotations

from typing import Any

from .worker import OnWorker

GPU = "GPU"
"""The worker resource a CUDA kernel evaluation holds (one unit per GPU)."""


def visible_gpus() -> int:
    """How many CUDA devices torch sees here (0 without torch or without a GPU)."""
    try:
        import torch  # noqa: PLC0415 - the optional `kernel` extra
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def gpu_worker_specs(n_gpus: int) -> dict[str, dict[str, Any]]:
    """SpecCluster worker specs: one single-threaded nanny per GPU, pinned to it, declaring GPU=1."""
    from distributed import Nanny  # noqa: PLC0415 - the optional `cluster` extra

    return {f"gpu-{i}": {"cls": Nanny, "options": {"nthreads": 1, "resources": {GPU: 1},
                                                    "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
            for i in range(n_gpus)}


def kernel_cluster(n_gpus: int | None = None, *, cpu_workers: int = 1, dashboard_address: str | None = ":8787") -> Any:
    """A local cluster for kernel evaluations: one worker per GPU (all visible ones by default) or,
    with none, `cpu_workers` single-threaded process workers for the `cpu` backend."""
    from distributed import LocalCluster, Scheduler, SpecCluster  # noqa: PLC0415

    n = visible_gpus() if n_gpus is None else n_gpus
    if n < 0:
        raise ValueError(f"n_gpus must be >= 0, got {n_gpus}")
    if n == 0:
        return LocalCluster(n_workers=cpu_workers, threads_per_worker=1, processes=True,
                            dashboard_address=dashboard_address)
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard_address}}
    return SpecCluster(workers=gpu_worker_specs(n), scheduler=scheduler)


def cluster_gpus(client: Any) -> float:
    """Total `GPU` resource the client's workers declare."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return float(sum((w.get("resources") or {}).get(GPU, 0) for w in workers))


def build_kernel_evaluator(backend: str = "cpu", screened: bool = True, **settings: Any) -> Any:
    """The KernelBench evaluator a worker builds (screened: certain failures answered without a process)."""
    from ..benchmarks.kernelbench.evaluator import KernelBenchEvaluator, ScreenedKernelEvaluator  # noqa: PLC0415

    inner = KernelBenchEvaluator(backend=backend, **settings)  # type: ignore[arg-type]
    return ScreenedKernelEvaluator(inner) if screened else inner


def kernel_evaluator(client: Any = None, *, backend: str | None = None, screened: bool = True,
                     **settings: Any) -> OnWorker:
    """A KernelBench evaluator built on the workers: `cuda` holding GPU=1 when the cluster has GPUs
    (or `backend="cuda"`), else `cpu`. `settings` go to `KernelBenchEvaluator` (timeout_s, ...)."""
    chosen = backend or ("cuda" if client is not None and cluster_gpus(client) > 0 else "cpu")
    if chosen not in ("cpu", "cuda"):
        raise ValueError(f"backend must be 'cpu' or 'cuda', got {chosen!r}")
    resources = {GPU: 1.0} if chosen == "cuda" else None
    return OnWorker(build_kernel_evaluator, {"backend": chosen, "screened": screened, **settings},
                    worker_resources=resources)
