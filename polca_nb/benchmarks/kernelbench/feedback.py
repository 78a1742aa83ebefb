"""Feedback text in the four KernelBench guide forms; the first line always states the score.

    COMPILATION FAILURE - Score: 0.0
    CORRECTNESS FAILURE - Score: 0.0
    PERFORMANCE FAILURE - Score: 0.0
    SUCCESS - Score (Speedup): X.XXXXx
"""

from __future__ import annotations

import statistics
from typing import Literal, Sequence

Status = Literal["success", "compilation_failure", "correctness_failure", "performance_failure"]

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


def runtime_stats(runtimes_ms: Sequence[float]) -> str:
    """One line of summary statistics (ms) over timing trials."""
    if not runtimes_ms:
        return "no trials"
    std = statistics.pstdev(runtimes_ms) if len(runtimes_ms) > 1 else 0.0
    return (f"median {statistics.median(runtimes_ms):.4f} ms, mean {statistics.fmean(runtimes_ms):.4f} ms, "
            f"std {std:.4f} ms, min {min(runtimes_ms):.4f} ms, max {max(runtimes_ms):.4f} ms, "
            f"trials {len(runtimes_ms)}")


def success(speedup: float, custom_ms: Sequence[float], reference_ms: Sequence[float]) -> str:
    return (f"SUCCESS - Score (Speedup): {speedup:.4f}x\n"
            "The kernel compiled, passed correctness tests and was timed against the reference.\n"
            f"Custom kernel runtime: {statistics.median(custom_ms):.4f} ms (median)\n"
            f"Reference runtime: {statistics.median(reference_ms):.4f} ms (median)\n"
            f"Speedup: {speedup:.4f}x (reference / custom; above 1 means faster than the reference)\n"
            f"Runtime stats (custom): {runtime_stats(custom_ms)}\n"
            f"Runtime stats (reference): {runtime_stats(reference_ms)}")


def status_of(feedback: str) -> Status:
    """Inverse of the header: which of the four forms a feedback text is (ValueError if none)."""
    first = feedback.split("\n", 1)[0]
    if first.startswith("SUCCESS - Score (Speedup): "):
        return "success"
    for status, header in HEADERS.items():
        if first == header:
            return status  # type: ignore[return-value]
    raise ValueError(f"feedback does not start with a KernelBench header: {first!r}")
