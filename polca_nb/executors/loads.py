"""Synthetic evaluators with a known cost, importable on workers: for `bench/executors.py` and tests.

`SleepEvaluator` waits (an LLM call or a subprocess: I/O-bound, the GIL released), `SpinEvaluator`
burns the CPU in pure Python (CPU-bound: only processes run it in parallel), `DieOnce` kills the
worker process it runs in the first time it meets one example (a worker dying mid-iteration).
Each is deterministic in (params, example, seed), so a run's event log does not depend on where
its calls ran.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import Evaluation, Example, Params


def pseudo_score(params: Params, example: Example, seed: int) -> float:
    """A score in [0, 1) fixed by the inputs (crc32; the same in every process, unlike hash())."""
    text = f"{sorted(params.items())}|{example.id}|{seed}".encode()
    return (zlib.crc32(text) % 1000) / 1000.0


@dataclass(frozen=True)
class SleepEvaluator:
    """Waits `seconds` per call, then scores `pseudo_score`: an I/O-bound metric call."""

    seconds: float = 0.05

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        time.sleep(self.seconds)
        score = pseudo_score(params, example, seed)
        return Evaluation(score, f"slept {self.seconds:g} s; score {score:.3f}")


@dataclass(frozen=True)
class SpinEvaluator:
    """Runs `iterations` of a pure-Python loop per call (GIL held): a CPU-bound metric call."""

    iterations: int = 200_000

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        acc = seed
        for i in range(self.iterations):
            acc = (acc * 1103515245 + i) % 2147483648
        score = pseudo_score(params, example, seed + acc % 7)
        return Evaluation(score, f"spun {self.iterations} iterations; score {score:.3f}")


@dataclass(frozen=True)
class DieOnce:
    """Runs `inner`, except that the first call on `example_id` (machine-wide, marked by creating
    `marker`) kills the process it runs in: with a Dask nanny, the worker dies mid-task."""

    inner: Any
    example_id: str
    marker: str

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        if example.id == self.example_id:
            try:
                Path(self.marker).open("x").close()
            except FileExistsError:
                pass
            else:
                os._exit(17)  # no cleanup, no exception: as a crash or the OOM killer would
        return self.inner(params, example, seed)
