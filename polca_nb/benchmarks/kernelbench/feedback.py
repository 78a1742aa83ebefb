"""Feedback text in the paper guide's four forms; the first line always states the score.

The forms are those of the POLCA KernelBench guide (xuanfeiren/Trace-Bench `KernelBench/guide/evaluate.py`,
benchmarks.md §4), with their headers, blank lines and field names:

    COMPILATION FAILURE - Score: 0.0

    Error Type: <error type>
    Error Message: <error message>

    CORRECTNESS FAILURE - Score: 0.0

    The kernel compiled but failed correctness tests.
    Error Type: <error type>
    Error Details: <error details>

    SUCCESS - Score (Speedup): X.XXXXx

    Custom Kernel Runtime: X.XXXX ms
    Reference Runtime: X.XXXX ms
    Speedup: X.XXXXx
    Runtime Stats: {'mean': ..., 'std': ..., 'min': ..., 'max': ..., 'num_trials': N}

    PERFORMANCE FAILURE - Score: 0.0

    The kernel compiled and passed correctness tests, but failed during performance measurement.
    Error Type: <error type>
    Error: <error message>

Runtime Stats are the candidate's, as KernelBench's `get_timing_stats` gives them (`timing_stats`). Where
the guide differs, on purpose: it labels the runtimes "μs" although KernelBench measures milliseconds (we
print "ms"), and it appends "Detailed Feedback: ..." or "Full Metadata: {...}" from its KernelBench fork's
metadata, whose content is unknown (we leave them out; our error messages carry the details).
"""

from __future__ import annotations

import math
import statistics
from typing import Literal, Sequence

Status = Literal["success", "compilation_failure", "correctness_failure", "performance_failure"]
RuntimeStatistic = Literal["mean", "median"]
RUNTIME_STATISTICS: tuple[str, ...] = ("mean", "median")
"""How timing trials become one runtime: "mean" (upstream KernelBench: the mean of the trials rounded to 3
significant figures, `get_timing_stats(...)["mean"]`) or "median" (unrounded; this package's former choice,
robust to a load spike on a shared machine)."""
SIGNIFICANT_DIGITS = 3

HEADERS: dict[str, str] = {
    "compilation_failure": "COMPILATION FAILURE - Score: 0.0",
    "correctness_failure": "CORRECTNESS FAILURE - Score: 0.0",
    "performance_failure": "PERFORMANCE FAILURE - Score: 0.0",
}


SUCCESS_PREFIX = "SUCCESS - Score (Speedup): "
INCORRECT_OUTPUT = "IncorrectOutput"
"""Error type of a candidate whose outputs fail the check (wrong values, shape, dtype or type)."""


def compilation_failure(error_type: str, message: str) -> str:
    """The kernel failed to build or load (compiling the extension, executing the module, constructing ModelNew)."""
    return (f"{HEADERS['compilation_failure']}\n\n"
            f"Error Type: {error_type}\n"
            f"Error Message: {message}")


def correctness_failure(error_type: str, details: str) -> str:
    return (f"{HEADERS['correctness_failure']}\n\n"
            "The kernel compiled but failed correctness tests.\n"
            f"Error Type: {error_type}\n"
            f"Error Details: {details}")


def performance_failure(error_type: str, message: str) -> str:
    return (f"{HEADERS['performance_failure']}\n\n"
            "The kernel compiled and passed correctness tests, but failed during performance measurement.\n"
            f"Error Type: {error_type}\n"
            f"Error: {message}")


def check_runtime_statistic(statistic: str) -> None:
    if statistic not in RUNTIME_STATISTICS:
        raise ValueError(f"runtime_statistic must be one of {RUNTIME_STATISTICS}, got {statistic!r}")


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant figures, as upstream does it: float(f"{value:.3g}")."""
    return float(f"{value:.{digits}g}")


def timing_stats(runtimes_ms: Sequence[float]) -> dict[str, float | int]:
    """Upstream KernelBench's `get_timing_stats`: mean, std (population, like np.std), min and max of the
    trials, each rounded to 3 significant figures, and num_trials."""
    if not runtimes_ms:
        raise ValueError("timing_stats needs at least one timing trial")
    values = [float(t) for t in runtimes_ms]
    return {"mean": round_significant(math.fsum(values) / len(values)),
            "std": round_significant(statistics.pstdev(values)),
            "min": round_significant(min(values)), "max": round_significant(max(values)),
            "num_trials": len(values)}


def runtime_ms(runtimes_ms: Sequence[float], statistic: RuntimeStatistic = "mean") -> float:
    """One runtime from the trials: the 3-significant-figure mean (upstream) or the plain median."""
    check_runtime_statistic(statistic)
    if statistic == "median":
        if not runtimes_ms:
            raise ValueError("runtime_ms needs at least one timing trial")
        return float(statistics.median(runtimes_ms))
    return float(timing_stats(runtimes_ms)["mean"])


def speedup_of(reference_ms: Sequence[float], custom_ms: Sequence[float],
               statistic: RuntimeStatistic = "mean") -> float:
    """reference runtime / custom runtime, each aggregated by `statistic`."""
    return runtime_ms(reference_ms, statistic) / runtime_ms(custom_ms, statistic)


def success(speedup: float, custom_ms: Sequence[float], reference_ms: Sequence[float],
            statistic: RuntimeStatistic = "mean") -> str:
    """The success form; the runtimes shown are the trials aggregated by `statistic` (upstream: the mean)."""
    return (f"{SUCCESS_PREFIX}{speedup:.4f}x\n\n"
            f"Custom Kernel Runtime: {runtime_ms(custom_ms, statistic):.4f} ms\n"
            f"Reference Runtime: {runtime_ms(reference_ms, statistic):.4f} ms\n"
            f"Speedup: {speedup:.4f}x\n"
            f"Runtime Stats: {timing_stats(custom_ms)}")


def status_of(feedback: str) -> Status:
    """Inverse of the header: which of the four forms a feedback text is (ValueError if none)."""
    first = feedback.split("\n", 1)[0]
    if first.startswith(SUCCESS_PREFIX):
        return "success"
    for status, header in HEADERS.items():
        if first == header:
            return status  # type: ignore[return-value]
    raise ValueError(f"feedback does not start with a KernelBench header: {first!r}")
