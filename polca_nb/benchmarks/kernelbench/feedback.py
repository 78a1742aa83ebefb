"""Feedback text in the four KernelBench guide forms; the first line always states the score.

    COMPILATION FAILURE - Score: 0.0
    CORRECTNESS FAILURE - Score: 0.0
    PERFORMANCE FAILURE - Score: 0.0
    SUCCESS - Score (Speedup): X.XXXXx
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


def compilation_failure(error_type: str, message: str) -> str:
    return (f"{HEADERS['compilation_failure']}\n"
            "The kernel failed to build or load (compiling the extension, executing the module, or "
            "constructing ModelNew).\n"
            f"Error type: {error_type}\nError message: {message}")


def correctness_failure(details: str) -> str:
    return (f"{HEADERS['correctness_failure']}\n"
            "The kernel compiled but failed correctness tests.\n"
            f"Error details: {details}")


def performance_failure(details: str) -> str:
    return (f"{HEADERS['performance_failure']}\n"
            "The kernel compiled and passed correctness tests, but its runtime could not be measured.\n"
            f"Error details: {details}")


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
    return (f"SUCCESS - Score (Speedup): {speedup:.4f}x\n"
            "The kernel compiled, passed correctness tests and was timed against the reference.\n"
            f"Custom kernel runtime: {runtime_ms(custom_ms, statistic):.4f} ms ({statistic})\n"
            f"Reference runtime: {runtime_ms(reference_ms, statistic):.4f} ms ({statistic})\n"
            f"Speedup: {speedup:.4f}x (reference / custom; above 1 means faster than the reference)\n"
            f"Runtime stats (custom): {timing_stats(custom_ms)}\n"
            f"Runtime stats (reference): {timing_stats(reference_ms)}")


def status_of(feedback: str) -> Status:
    """Inverse of the header: which of the four forms a feedback text is (ValueError if none)."""
    first = feedback.split("\n", 1)[0]
    if first.startswith("SUCCESS - Score (Speedup): "):
        return "success"
    for status, header in HEADERS.items():
        if first == header:
            return status  # type: ignore[return-value]
    raise ValueError(f"feedback does not start with a KernelBench header: {first!r}")
