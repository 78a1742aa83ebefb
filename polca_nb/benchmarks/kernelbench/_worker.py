"""Child-process side of a KernelBench evaluation: build, check and time one candidate.

Run as a script (`python -I _worker.py request.json`) by `evaluate.py`, never imported by the package,
so it depends on the standard library and torch only. It caps its own memory before torch is
imported, appends `<phase> <unix time>` lines to the progress file as it goes (so the parent can
tell where a crash or hang happened), and writes one JSON result at the end. Candidate exceptions
are caught and reported; crashes, hangs and os._exit are the parent's to handle.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import resource
import sys
import time
import traceback
from typing import Any

PHASES = ("started", "import_torch", "reference", "build", "correctness", "timing_wait", "timing", "done")
MAX_MESSAGE_CHARS = 6000


class Progress:
    """Append-only phase log; each line is flushed and fsync'ed so it survives a SIGKILL."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self.started: dict[str, float] = {}

    def enter(self, phase: str) -> None:
        now = time.time()
        self.started[phase] = now
        self._file.write(f"{phase} {now:.6f}\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def seconds(self) -> dict[str, float]:
        """Duration of every phase so far (a phase ends where the next one starts, the last one now)."""
        ordered = sorted(self.started.items(), key=lambda kv: kv[1]) + [("", time.time())]
        return {a: round(tb - ta, 6) for (a, ta), (_, tb) in zip(ordered, ordered[1:]) if a != "done"}


def _limit_memory(memory_mb: int | None) -> None:
    # RLIMIT_DATA (heap + private writable mappings) rather than RLIMIT_AS: torch and CUDA reserve
    # large inaccessible address ranges that are not memory use, which RLIMIT_AS would count.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb is not None:
        limit = int(memory_mb) * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("can't allocate memory", "cannot allocate memory", "out of memory",
                                   "bad_alloc", "not enough memory"))


_BUILD_NOISE = re.compile(r"^(\[\d+/\d+\] |FAILED: |(\S*/)?(c\+\+|g\+\+|gcc|cc|nvcc) )")


def _clean_build_log(message: str) -> str:
    """Drop the long compiler command lines from a torch build error; keep the diagnostics."""
    if not message.startswith("Error building extension"):
        return message
    extensions_dir = os.environ.get("TORCH_EXTENSIONS_DIR")
    first, *rest = message.splitlines()
    head, _, command = first.partition(": ")
    lines = [head + ":" if _BUILD_NOISE.match(command) else first]
    lines += [line for line in rest if not _BUILD_NOISE.match(line)]
    cleaned = "\n".join(lines)
    return cleaned.replace(extensions_dir + os.sep, "") if extensions_dir else cleaned


def _error(phase: str, exc: BaseException, memory_mb: int | None) -> dict[str, Any]:
    message = _clean_build_log(str(exc) or repr(exc))
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + f"\n... [{len(message) - MAX_MESSAGE_CHARS} more characters cut]"
    frames = traceback.extract_tb(exc.__traceback__)
    candidate_frames = [f for f in frames if f.filename == "<candidate>"]
    where = f" (candidate line {candidate_frames[-1].lineno})" if candidate_frames else ""
    oom = _is_out_of_memory(exc)
    if oom:
        message = f"memory limit exceeded (limit {memory_mb} MB): {message}"
    return {"phase": phase, "type": type(exc).__name__, "message": message + where, "oom": oom}


def _exec_source(source: str, filename: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__kernelbench__", "__file__": filename}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def _synchronize(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seeded_inputs(torch: Any, reference: dict[str, Any], seed: int, device: Any) -> list[Any]:
    # The worker is a throwaway process, so seeding torch's default generator is the explicit seed
    # KernelBench's get_inputs() needs (it calls torch.rand without a generator).
    torch.manual_seed(seed)
    inputs = reference["get_inputs"]()
    return [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]


def _clone(torch: Any, inputs: list[Any]) -> list[Any]:
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]


ALLCLOSE_ORDERS = ("reference_first", "candidate_first")


def _check_output(torch: Any, expected: Any, got: Any, atol: float, rtol: float,
                  allclose_order: str = "reference_first") -> tuple[bool, str, float, float]:
    """(passed, reason, max |diff|, mean |diff|) for one correctness trial.

    torch.allclose(a, b) tests |a - b| <= atol + rtol * |b|. "reference_first" is upstream KernelBench's
    torch.allclose(reference_output, candidate_output), so rtol scales with the candidate's values;
    "candidate_first" (the former order) scales it with the reference's.
    """
    if allclose_order not in ALLCLOSE_ORDERS:
        raise ValueError(f"allclose_order must be one of {ALLCLOSE_ORDERS}, got {allclose_order!r}")
    if not isinstance(got, torch.Tensor):
        nan = float("nan")
        return False, f"ModelNew.forward returned {type(got).__name__}, expected a torch.Tensor", nan, nan
    if tuple(got.shape) != tuple(expected.shape):
        message = f"output shape mismatch: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
        return False, message, float("nan"), float("nan")
    if got.dtype != expected.dtype:
        return False, f"output dtype mismatch: expected {expected.dtype}, got {got.dtype}", float("nan"), float("nan")
    got = got.to(expected.device)
    diff = (got.double() - expected.double()).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    mean_diff = float(diff.mean()) if diff.numel() else 0.0
    first, second = (expected, got) if allclose_order == "reference_first" else (got, expected)
    if torch.allclose(first, second, atol=atol, rtol=rtol):
        return True, "", max_diff, mean_diff
    message = f"output mismatch: max |diff| {max_diff:.6g}, mean |diff| {mean_diff:.6g} (atol={atol}, rtol={rtol})"
    return False, message, max_diff, mean_diff


def _time_once_ms(torch: Any, model: Any, inputs: list[Any], device: Any) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(*inputs)
        end.record()
        torch.cuda.synchronize(device)
        return float(start.elapsed_time(end))
    begin = time.perf_counter()
    model(*inputs)
    return (time.perf_counter() - begin) * 1000.0


def run(request: dict[str, Any]) -> dict[str, Any]:
    progress = Progress(request["progress_path"])
    progress.enter("started")
    memory_mb = request.get("memory_mb")
    _limit_memory(memory_mb)
    result: dict[str, Any] = {"compiled": False, "correct": False, "error": None, "correctness": {},
                              "runtimes_ms": {"reference": [], "custom": []}}

    def fail(phase: str, exc: BaseException) -> dict[str, Any]:
        result["error"] = _error(phase, exc, memory_mb)
        result["phase_seconds"] = progress.seconds()
        return result

    phase = "import_torch"
    progress.enter(phase)
    try:
        import torch

        if request.get("num_threads"):
            torch.set_num_threads(int(request["num_threads"]))
        device = torch.device(request["backend"] if request["backend"] == "cuda" else "cpu")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("backend 'cuda' requested but torch.cuda.is_available() is False in the worker")
        phase = "reference"
        progress.enter(phase)
        reference = _exec_source(request["reference_source"], "<reference>")
        ref_model = reference["Model"](*reference["get_init_inputs"]()).to(device)
    except BaseException as exc:  # noqa: BLE001 - the parent must learn about every failure
        return fail(phase, exc)

    phase = "build"
    progress.enter(phase)
    try:
        candidate = _exec_source(request["candidate_source"], "<candidate>")
        if "ModelNew" not in candidate:
            raise NameError("the candidate source does not define ModelNew")
        torch.manual_seed(int(request["seed"]))
        new_model = candidate["ModelNew"](*reference["get_init_inputs"]())
        if hasattr(new_model, "to"):
            new_model = new_model.to(device)
        _synchronize(torch, device)
    except BaseException as exc:  # noqa: BLE001
        return fail(phase, exc)
    result["compiled"] = True

    phase = "correctness"
    progress.enter(phase)
    trials = []
    try:
        with torch.no_grad():
            for trial in range(int(request["num_correct_trials"])):
                inputs = _seeded_inputs(torch, reference, int(request["seed"]) + trial, device)
                expected = ref_model(*_clone(torch, inputs))
                got = new_model(*_clone(torch, inputs))
                _synchronize(torch, device)
                passed, reason, max_diff, mean_diff = _check_output(
                    torch, expected, got, float(request["atol"]), float(request["rtol"]),
                    request.get("allclose_order", "reference_first"))
                trials.append({"passed": passed, "reason": reason, "max_abs_diff": max_diff,
                               "mean_abs_diff": mean_diff})
    except BaseException as exc:  # noqa: BLE001
        result["correctness"] = {"trials": trials}
        return fail(phase, exc)
    result["correctness"] = {"trials": trials}
    result["correct"] = all(t["passed"] for t in trials)
    if not result["correct"]:
        result["phase_seconds"] = progress.seconds()
        return result

    phase = "timing"
    timing_lock = None
    try:
        if request.get("timing_lock_path"):
            # One timed candidate per machine at a time: concurrent evaluations may build and
            # check in parallel, but timing two kernels against each other on 2 cores is noise.
            progress.enter("timing_wait")
            timing_lock = open(request["timing_lock_path"], "a")
            fcntl.flock(timing_lock, fcntl.LOCK_EX)
        progress.enter(phase)
        with torch.no_grad():
            inputs = _seeded_inputs(torch, reference, int(request["seed"]), device)
            for _ in range(int(request["num_warmup"])):
                ref_model(*inputs)
                new_model(*inputs)
            _synchronize(torch, device)
            # Alternate reference and candidate so load drift on a shared machine hits both alike.
            for _ in range(int(request["num_perf_trials"])):
                result["runtimes_ms"]["reference"].append(_time_once_ms(torch, ref_model, inputs, device))
                result["runtimes_ms"]["custom"].append(_time_once_ms(torch, new_model, inputs, device))
        bad = [t for t in result["runtimes_ms"]["custom"] if not (t > 0.0 and t == t and t != float("inf"))]
        if bad:
            raise RuntimeError(f"non-positive or non-finite candidate runtimes: {bad}")
    except BaseException as exc:  # noqa: BLE001
        return fail(phase, exc)
    finally:
        if timing_lock is not None:
            timing_lock.close()  # closing releases the flock
    progress.enter("done")
    result["phase_seconds"] = progress.seconds()
    return result  # the parent aggregates the trials (KernelResult.runtime_statistic)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: _worker.py REQUEST_JSON", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        request = json.load(f)
    result = run(request)
    partial = request["result_path"] + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(partial, request["result_path"])
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a candidate's stray non-daemon threads or crashing destructors
    # must not keep the process alive (or kill it) after the result is safely on disk.
    os._exit(status)
