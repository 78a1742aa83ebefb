"""KernelBench's evaluators: `KernelBenchEvaluator` (score = speedup, one isolated process per call,
see evaluate.py) and `ScreenedKernelEvaluator` around it, which answers certain failures at once.

As in the paper (polca-method.md §3) the evaluator is deterministic (a compile or correctness verdict
does not depend on the seed), so the only noise is timing jitter.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ...protocols import Evaluator
from ...types import Evaluation, Example, Params
from . import feedback as fb
from .data import Backend, KernelTask, check_backend
from .evaluate import AllcloseOrder, KernelResult, PARAM_NAME, check_allclose_order, evaluate_kernel, require_backend
from .feedback import RuntimeStatistic, check_runtime_statistic, status_of
from .prompts import INITIAL_KERNEL
from .sources import MODEL_NEW, defines_model_new, source_digest

PARAM = PARAM_NAME
"""The optimized parameter: the kernel module's source."""
SEED_PARAMS: dict[str, str] = {PARAM: INITIAL_KERNEL}
"""The seed program: the paper's dummy comment (scores 0)."""


@dataclass
class KernelBenchEvaluator:
    """`Evaluator` for KernelBench: params {"kernel": source}, example.data a KernelTask, score = speedup.

    The evaluation `seed` seeds the correctness inputs (trial t uses seed + t). `runtime_statistic`:
    "mean" (upstream) or "median" (the former choice); `allclose_order` "reference_first" (upstream) or
    "candidate_first" (the former order); see `evaluate_kernel`. Construction fails
    with BackendUnavailable when the backend cannot run on this machine.
    """

    backend: Backend = "cpu"
    timeout_s: float = 300.0
    memory_mb: int | None = 4096
    num_correct_trials: int = 3
    num_warmup: int = 3
    num_perf_trials: int = 10
    num_threads: int | None = None
    cache: bool = True
    cache_dir: str | Path | None = None
    exclusive_timing: bool = True
    runtime_statistic: RuntimeStatistic = "mean"
    allclose_order: AllcloseOrder = "reference_first"
    results: list[KernelResult] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        check_backend(self.backend)
        check_runtime_statistic(self.runtime_statistic)
        check_allclose_order(self.allclose_order)
        require_backend(self.backend)

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        if PARAM_NAME not in params:
            raise ValueError(f"params must contain {PARAM_NAME!r} (the kernel source), got keys {sorted(params)}")
        task = example.data
        if not isinstance(task, KernelTask):
            raise ValueError(f"example.data must be a KernelTask, got {type(task).__name__} (example {example.id!r})")
        result = evaluate_kernel(
            task, params[PARAM_NAME], self.backend, timeout_s=self.timeout_s, memory_mb=self.memory_mb, seed=seed,
            num_correct_trials=self.num_correct_trials, num_warmup=self.num_warmup,
            num_perf_trials=self.num_perf_trials, num_threads=self.num_threads, cache=self.cache,
            cache_dir=self.cache_dir, exclusive_timing=self.exclusive_timing,
            runtime_statistic=self.runtime_statistic, allclose_order=self.allclose_order)
        self.results.append(result)
        return Evaluation(score=result.speedup, feedback=result.feedback, output=json.dumps(result.summary()))


How = Literal["evaluated", "screened", "memoized"]


@dataclass(frozen=True)
class EvaluationRecord:
    """One metric call as the screening evaluator saw it: how it was answered and what it cost."""

    task_idx: int
    example_id: str
    source_digest: str
    how: How
    status: str
    score: float
    seconds: float
    reason: str = ""


def screen_source(source: str) -> str | None:
    """Why `source` certainly fails before any process is started (None if it might work).

    Only certain failures are screened: an empty source, or one that never defines ModelNew (the
    harness needs it). Syntax errors are left to the evaluator, which reports them without a process.
    """
    if not isinstance(source, str) or not source.strip():
        return "the kernel source is empty"
    if not defines_model_new(source):
        return (f"the module does not define {MODEL_NEW} (no class, assignment or import binds that name), "
                "so the harness cannot construct it")
    return None


@dataclass
class ScreenedKernelEvaluator:
    """`Evaluator` around a kernel evaluator (normally `KernelBenchEvaluator`) that never pays a
    worker process or a build for a certain failure.

    Screened sources (see `screen_source`) and repeats of a source that already failed to build or
    load for the same task are answered at once with the four-form feedback; every such answer still
    is a metric call, logged like any other evaluation and marked in `output` and `records`.
    Build failures are memoized only when deterministic (not timeouts, kills or crashes).
    """

    inner: Evaluator
    memoize_build_failures: bool = True
    records: list[EvaluationRecord] = field(default_factory=list, repr=False)
    _failures: dict[tuple[str, str], Evaluation] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        if PARAM_NAME not in params:
            raise ValueError(f"params must contain {PARAM_NAME!r} (the kernel source), got keys {sorted(params)}")
        task = example.data
        if not isinstance(task, KernelTask):
            raise ValueError(f"example.data must be a KernelTask, got {type(task).__name__} (example {example.id!r})")
        source = params[PARAM_NAME]
        digest = source_digest(source) if isinstance(source, str) else "-"
        started = time.perf_counter()
        reason = screen_source(source)
        if reason is not None:
            evaluation = Evaluation(
                0.0, fb.compilation_failure("ScreenedOut", reason + " (found before building; no process was run)"),
                json.dumps({"task_idx": task.idx, "status": "compilation_failure", "compiled": False,
                            "correct": False, "speedup": 0.0, "screened": True, "error": reason}))
            self._record(task, example, digest, "screened", evaluation, started, reason)
            return evaluation
        key = (f"{task.idx}:{task.name}", digest)
        with self._lock:
            remembered = self._failures.get(key)
        if remembered is not None:
            output = _with_flag(remembered.output, "memoized")
            evaluation = Evaluation(remembered.score, remembered.feedback, output)
            self._record(task, example, digest, "memoized", evaluation, started, "same source failed to build before")
            return evaluation
        evaluation = self.inner(params, example, seed)
        if self.memoize_build_failures and _deterministic_build_failure(evaluation):
            with self._lock:
                self._failures[key] = evaluation
        self._record(task, example, digest, "evaluated", evaluation, started)
        return evaluation

    def _record(self, task: KernelTask, example: Example, digest: str, how: How, evaluation: Evaluation,
                started: float, reason: str = "") -> None:
        status: str
        try:
            status = status_of(evaluation.feedback)
        except ValueError:
            status = "unknown"
        record = EvaluationRecord(task.idx, example.id, digest, how, status, float(evaluation.score),
                                  round(time.perf_counter() - started, 3), reason)
        with self._lock:
            self.records.append(record)

    def counts(self) -> dict[str, int]:
        """How many calls were evaluated, screened and memoized, and how many succeeded."""
        with self._lock:
            records = list(self.records)
        out = {"calls": len(records), "evaluated": 0, "screened": 0, "memoized": 0, "success": 0}
        for r in records:
            out[r.how] += 1
            out["success"] += r.status == "success"
        return out


def _with_flag(output: str, flag: str) -> str:
    try:
        data = json.loads(output) if output else {}
    except json.JSONDecodeError:
        return output
    if not isinstance(data, dict):
        return output
    return json.dumps({**data, flag: True})


def _deterministic_build_failure(evaluation: Evaluation) -> bool:
    """A build/load failure that would recur for the same source: not a timeout, kill or crash."""
    try:
        if status_of(evaluation.feedback) != "compilation_failure":
            return False
    except ValueError:
        return False
    try:
        summary = json.loads(evaluation.output) if evaluation.output else {}
    except json.JSONDecodeError:
        return False
    if not isinstance(summary, dict) or summary.get("timed_out") or summary.get("out_of_memory"):
        return False
    return not str(summary.get("error") or "").startswith(("TimeoutError", "WorkerDied"))
