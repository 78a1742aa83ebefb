"""Evaluate one candidate kernel in a separate, limited process (the `Evaluator` is in evaluator.py).

Each evaluation runs `_worker.py` in a fresh Python process in its own session (so its process
group, compilers included, can be killed as one), with a wall-clock timeout, a per-process memory
cap, and its own temp directory. A crashing, hanging or memory-hungry candidate costs one failed
evaluation and never the caller. Builds are cached per source hash (see `_BuildCache`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import json
import operator
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from . import feedback as fb
from .feedback import RuntimeStatistic, Status, check_runtime_statistic
from .data import Backend, KernelTask, check_backend

WORKER = Path(__file__).with_name("_worker.py")
PARAM_NAME = "kernel"
# Failures in these phases happen before any candidate code ran: they are harness problems.
HARNESS_PHASES = ("started", "import_torch", "reference")
LOG_TAIL_CHARS = 3000
AllcloseOrder = Literal["reference_first", "candidate_first"]
ALLCLOSE_ORDERS: tuple[str, ...] = ("reference_first", "candidate_first")
"""Argument order of the correctness check torch.allclose(a, b), which tests |a - b| <= atol + rtol * |b|:
"reference_first" = upstream KernelBench's allclose(reference_output, candidate_output) (rtol scales with
the candidate), "candidate_first" = this package's former order (rtol scales with the reference)."""


def check_allclose_order(order: str) -> None:
    if order not in ALLCLOSE_ORDERS:
        raise ValueError(f"allclose_order must be one of {ALLCLOSE_ORDERS}, got {order!r}")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (e.g. CUDA without a GPU)."""


class KernelEvalError(RuntimeError):
    """The evaluation harness itself failed (before the candidate's code ran); not a candidate fault."""


@functools.lru_cache(maxsize=None)
def backend_status(backend: Backend) -> tuple[bool, str]:
    """(available, reason) for a backend; CUDA needs torch built with CUDA and a visible GPU."""
    check_backend(backend)
    try:
        import torch
    except ImportError as exc:
        return False, f"torch is not installed ({exc}); install torch==2.13.0 and ninja"
    if shutil.which("ninja", path=_worker_path_env()) is None:
        return False, "ninja is not on PATH (pip install ninja); torch.utils.cpp_extension needs it"
    if backend == "cpu":
        return True, f"torch {torch.__version__} on CPU"
    if not torch.cuda.is_available():
        return False, (f"the CUDA backend needs an NVIDIA GPU, but torch.cuda.is_available() is False "
                       f"(torch {torch.__version__}, torch.version.cuda={torch.version.cuda}); "
                       "use backend='cpu' on this machine")
    return True, f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"


def require_backend(backend: Backend) -> None:
    """Raise BackendUnavailable (with the reason) unless `backend` can run here."""
    available, reason = backend_status(backend)
    if not available:
        raise BackendUnavailable(reason)


@dataclass(frozen=True)
class KernelResult:
    """Outcome of one evaluation. `speedup` is reference/custom runtime, 0.0 on any failure, where a
    runtime is its trials aggregated by `runtime_statistic` ("mean": upstream's 3-significant-figure
    mean; "median": the former choice); `runtimes` holds per-trial milliseconds under "reference" and
    "custom"; `phase_seconds` is the wall time spent per phase (process_start, import_torch,
    reference, build, correctness, timing_wait, timing, total)."""

    task_idx: int
    backend: Backend
    status: Status
    compiled: bool
    correct: bool
    speedup: float
    feedback: str
    error: str | None = None
    runtimes: dict[str, list[float]] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    out_of_memory: bool = False
    build_cache_hit: bool = False
    runtime_statistic: RuntimeStatistic = "mean"

    @property
    def score(self) -> float:
        return self.speedup

    @property
    def reference_ms(self) -> float | None:
        """The reference's runtime (ms) by `runtime_statistic`; None when it was not timed."""
        ref = self.runtimes.get("reference")
        return fb.runtime_ms(ref, self.runtime_statistic) if ref else None

    @property
    def custom_ms(self) -> float | None:
        """The candidate's runtime (ms) by `runtime_statistic`; None when it was not timed."""
        custom = self.runtimes.get("custom")
        return fb.runtime_ms(custom, self.runtime_statistic) if custom else None

    def summary(self) -> dict[str, Any]:
        """Compact, JSON-able view (no feedback text) for logs and Evaluation.output."""
        return {"task_idx": self.task_idx, "backend": self.backend, "status": self.status,
                "compiled": self.compiled, "correct": self.correct, "speedup": self.speedup,
                "reference_ms": self.reference_ms, "custom_ms": self.custom_ms,
                "runtime_statistic": self.runtime_statistic, "error": self.error,
                "timed_out": self.timed_out, "out_of_memory": self.out_of_memory,
                "build_cache_hit": self.build_cache_hit, "phase_seconds": self.phase_seconds}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polca_nb" / "kernelbench_extensions"


def timing_lock_path(backend: Backend = "cpu") -> Path:
    """Lock file that serializes the timing phase of concurrent evaluations: machine-wide for the CPU
    backend (they share its cores), one per GPU set for CUDA (`$CUDA_VISIBLE_DEVICES`, as a Dask GPU
    worker pins it: `polca_nb.executors.gpu`), so evaluations on different GPUs time at once."""
    name = "polca_nb_kernelbench_timing"
    if backend == "cuda":
        name += "_gpu" + (os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_").strip() or "none")
    return Path(tempfile.gettempdir()) / f"{name}.lock"


class _BuildCache:
    """TORCH_EXTENSIONS_DIR per (backend, torch, python, source) hash, so re-evaluating a source
    skips its build.

    Safe because: an exclusive flock per entry serializes evaluations of the same source (across
    threads and processes), so torch's own build lock files found under it are stale and can be
    removed; and an entry survives only if its build succeeded; a failed, killed or crashed build
    is wiped, so no half-written object files are ever reused.
    """

    OK_MARKER = ".polca_build_ok"

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key(backend: Backend, source: str) -> str:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = "none"
        text = "\0".join([backend, torch_version, sys.version, source])
        return f"{backend}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"

    @contextmanager
    def entry(self, backend: Backend, source: str) -> Iterator[tuple[Path, bool]]:
        """Yields (extensions dir, hit); caller calls `commit(dir, built)` before leaving."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.key(backend, source)
        directory = self.root / key
        with open(self.root / f"{key}.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                hit = (directory / self.OK_MARKER).exists()
                if not hit and directory.exists():
                    shutil.rmtree(directory, ignore_errors=True)
                for stale in directory.rglob("lock"):
                    stale.unlink(missing_ok=True)
                directory.mkdir(parents=True, exist_ok=True)
                yield directory, hit
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def commit(self, directory: Path, built: bool) -> None:
        """Keep the entry only if the candidate loaded and it actually built something (pure-torch
        candidates leave the directory empty: nothing to cache)."""
        if built and any(p.name != self.OK_MARKER for p in directory.iterdir()):
            (directory / self.OK_MARKER).touch()
        else:
            # The entry's .lock file stays: unlinking a lock others may be waiting on breaks flock.
            shutil.rmtree(directory, ignore_errors=True)


def _worker_path_env() -> str:
    # torch.utils.cpp_extension shells out to `ninja`, which lives beside the venv's python.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_progress(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2:
            entries.append((parts[0], float(parts[1])))
    return entries


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text if len(text) <= chars else "... " + text[-chars:]


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed: likely out of memory or killed externally)" if name == "SIGKILL" else ""
        return f"the evaluation process died with {name}{hint}"
    return f"the evaluation process exited with code {returncode} without reporting a result"


def _failure_status(phase: str) -> Status:
    if phase == "build":
        return "compilation_failure"
    if phase == "correctness":
        return "correctness_failure"
    return "performance_failure"


def _failure_feedback(status: Status, error_type: str, message: str) -> str:
    if status == "compilation_failure":
        return fb.compilation_failure(error_type, message)
    if status == "correctness_failure":
        return fb.correctness_failure(error_type, message)
    return fb.performance_failure(error_type, message)


def evaluate_kernel(
    task: KernelTask,
    source: str,
    backend: Backend = "cpu",
    *,
    timeout_s: float = 300.0,
    memory_mb: int | None = 4096,
    seed: int = 42,
    num_correct_trials: int = 3,
    num_warmup: int = 3,
    num_perf_trials: int = 10,
    atol: float = 1e-2,
    rtol: float = 1e-2,
    num_threads: int | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    exclusive_timing: bool = True,
    runtime_statistic: RuntimeStatistic = "mean",
    allclose_order: AllcloseOrder = "reference_first",
) -> KernelResult:
    """Build, check and time `source` (a module defining ModelNew) against `task` in a child process.

    Returns a KernelResult for every candidate outcome, including crashes and timeouts. Raises
    ValueError on bad arguments, BackendUnavailable if the backend cannot run here, and
    KernelEvalError if the harness fails before the candidate's code runs.
    `memory_mb` caps the heap of the worker and of each process it starts (compilers included).
    `exclusive_timing` makes concurrent evaluations on this machine take turns for the timing phase.
    `runtime_statistic` turns the timing trials into the runtimes of the speedup: "mean" (upstream
    KernelBench, rounded to 3 significant figures) or "median" (the former choice). `allclose_order`
    "reference_first" checks torch.allclose(reference, candidate) as upstream (see ALLCLOSE_ORDERS).
    """
    check_backend(backend)
    check_runtime_statistic(runtime_statistic)
    check_allclose_order(allclose_order)
    if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    try:
        seed = operator.index(seed)  # accepts numpy integers drawn from the run's Generator
    except TypeError:
        raise ValueError(f"seed must be an integer, got {seed!r}") from None
    for name, value in (("num_correct_trials", num_correct_trials), ("num_perf_trials", num_perf_trials)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not isinstance(num_warmup, int) or num_warmup < 0:
        raise ValueError(f"num_warmup must be an int >= 0, got {num_warmup!r}")
    if memory_mb is not None and (not isinstance(memory_mb, int) or memory_mb < 256):
        raise ValueError(f"memory_mb must be None or an int >= 256, got {memory_mb!r}")
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads!r}")
    if not isinstance(source, str):
        raise ValueError(f"source must be a str, got {type(source).__name__}")
    require_backend(backend)

    base: dict[str, Any] = dict(task_idx=task.idx, backend=backend, runtime_statistic=runtime_statistic)
    # A syntax error needs no process: report it at once, like the compiler would.
    try:
        compile(source, "<candidate>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        message = f"{exc.msg if isinstance(exc, SyntaxError) else exc} (candidate line {getattr(exc, 'lineno', '?')})"
        return KernelResult(**base, status="compilation_failure", compiled=False, correct=False, speedup=0.0,
                            feedback=fb.compilation_failure(type(exc).__name__, message),
                            error=f"{type(exc).__name__}: {message}")

    request = {
        "backend": backend, "reference_source": task.source(backend), "candidate_source": source,
        "seed": int(seed), "num_correct_trials": num_correct_trials, "num_warmup": num_warmup,
        "num_perf_trials": num_perf_trials, "atol": float(atol), "rtol": float(rtol),
        "allclose_order": allclose_order,
        "memory_mb": memory_mb, "num_threads": num_threads,
        "timing_lock_path": str(timing_lock_path(backend)) if exclusive_timing else None,
    }
    with tempfile.TemporaryDirectory(prefix="polca_kb_") as tmp:
        workdir = Path(tmp)
        if not cache:
            ext_dir = workdir / "torch_extensions"
            ext_dir.mkdir()
            return _run_worker(request, workdir, ext_dir, timeout_s, num_threads, base, cache_hit=False)[0]
        build_cache = _BuildCache(Path(cache_dir) if cache_dir is not None else default_cache_dir())
        with build_cache.entry(backend, source) as (ext_dir, hit):
            result, built = _run_worker(request, workdir, ext_dir, timeout_s, num_threads, base, cache_hit=hit)
            build_cache.commit(ext_dir, built)
            return result


def _run_worker(request: dict[str, Any], workdir: Path, ext_dir: Path, timeout_s: float,
                num_threads: int | None, base: dict[str, Any], cache_hit: bool) -> tuple[KernelResult, bool]:
    """Run one worker process; returns (result, whether the candidate module built and loaded)."""
    progress_path, result_path, log_path = workdir / "progress.txt", workdir / "result.json", workdir / "worker.log"
    request = {**request, "progress_path": str(progress_path), "result_path": str(result_path)}
    request_path = workdir / "request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(ext_dir), "TMPDIR": str(workdir),
           "PATH": _worker_path_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    if num_threads is not None:
        env["OMP_NUM_THREADS"] = str(num_threads)

    launched = time.time()
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-I", str(WORKER), str(request_path)], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Always kill the group: also reaps compilers or strays the candidate left behind.
            _kill_group(proc.pid)
            proc.wait()
    finished = time.time()

    progress = _read_progress(progress_path)
    phase_seconds: dict[str, float] = {}
    if progress:
        phase_seconds["process_start"] = round(progress[0][1] - launched, 6)
    phase_seconds["total"] = round(finished - launched, 6)

    payload: dict[str, Any] | None = None
    if result_path.exists() and not timed_out:
        try:
            payload = json.loads(result_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            payload = None
    if payload is not None:
        phase_seconds = {**payload.get("phase_seconds", {}), **phase_seconds}
        phase_seconds.pop("started", None)
        return _result_from_payload(payload, base, phase_seconds, cache_hit), bool(payload.get("compiled"))

    # No result: the worker hung, crashed or exited early. Blame the phase it was in.
    last_phase = progress[-1][0] if progress else "started"
    for (a, ta), (_, tb) in zip(progress, progress[1:] + [("", finished)]):
        if a != "started":
            phase_seconds[a] = round(tb - ta, 6)
    if timed_out:
        error_type = "TimeoutError"
        message = (f"the evaluation exceeded its wall-clock limit of {timeout_s:g} s during the '{last_phase}' "
                   "phase and its whole process group was killed")
    else:
        error_type = "WorkerDied"
        message = _describe_exit(proc.returncode) + f" during the '{last_phase}' phase"
    log_tail = _tail(log_path)
    if last_phase in HARNESS_PHASES:
        raise KernelEvalError(f"KernelBench harness failed before the candidate ran: {message}\n{log_tail}")
    if log_tail.strip() and not timed_out:
        message += f"\nProcess output (tail):\n{log_tail}"
    status = _failure_status(last_phase)
    result = KernelResult(**base, status=status, compiled=last_phase not in ("build",), correct=False,
                          speedup=0.0, feedback=_failure_feedback(status, error_type, message),
                          error=f"{error_type}: {message}", phase_seconds=phase_seconds,
                          timed_out=timed_out, build_cache_hit=cache_hit,
                          out_of_memory=(not timed_out and proc.returncode == -signal.SIGKILL))
    return result, result.compiled


def _result_from_payload(payload: dict[str, Any], base: dict[str, Any], phase_seconds: dict[str, float],
                         cache_hit: bool) -> KernelResult:
    runtimes = {k: [float(x) for x in v] for k, v in payload.get("runtimes_ms", {}).items()}
    common = dict(**base, compiled=bool(payload.get("compiled")), runtimes=runtimes,
                  phase_seconds=phase_seconds, build_cache_hit=cache_hit)
    error = payload.get("error")
    if error is not None:
        if error["phase"] in HARNESS_PHASES:
            raise KernelEvalError(f"KernelBench harness failed in phase '{error['phase']}' before the candidate "
                                  f"ran: {error['type']}: {error['message']}")
        status = _failure_status(error["phase"])
        return KernelResult(**common, status=status, correct=False, speedup=0.0,
                            feedback=_failure_feedback(status, error["type"], error["message"]),
                            error=f"{error['type']}: {error['message']}", out_of_memory=bool(error.get("oom")))
    if not payload.get("correct"):
        trials = payload.get("correctness", {}).get("trials", [])
        failed = [t for t in trials if not t["passed"]]
        details = (f"{len(failed)}/{len(trials)} correctness trials failed; first failure: "
                   f"{failed[0]['reason'] if failed else 'unknown'}")
        return KernelResult(**common, status="correctness_failure", correct=False, speedup=0.0,
                            feedback=fb.correctness_failure(fb.INCORRECT_OUTPUT, details), error=details)
    statistic = base.get("runtime_statistic", "mean")
    speedup = fb.speedup_of(runtimes["reference"], runtimes["custom"], statistic)
    return KernelResult(**common, status="success", correct=True, speedup=speedup,
                        feedback=fb.success(speedup, runtimes["custom"], runtimes["reference"], statistic))
