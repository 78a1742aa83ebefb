"""Each method's own machinery per metric call, with the roles' time taken out.

Without LLM latency the engine's cost shows: a run's wall time minus the time spent inside the roles
(evaluator, simulated optimizer, embedder), divided by its metric calls, is what the method's own code
(queue, eps-Net, GEPA's Pareto bookkeeping, OpenEvolve's database and prompt sampler, our adapters and
meter) costs per metric call. Measured side by side in one process, so ratios are comparable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..types import Evaluation, Example, Params
from .embedder import TestbedEmbedder
from .experiment import Cell, run_testbed
from .optimizer import SimulatedOptimizerLLM
from .problem import testbed_problem


@dataclass
class RoleClock:
    """Seconds spent inside the roles (thread-unsafe: the testbed runs serially)."""

    seconds: float = 0.0


@dataclass
class _TimedEvaluator:
    evaluator: Any
    clock: RoleClock

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        started = time.perf_counter()
        try:
            return self.evaluator(params, example, seed)
        finally:
            self.clock.seconds += time.perf_counter() - started


@dataclass
class _TimedLLM:
    llm: SimulatedOptimizerLLM
    clock: RoleClock

    def complete(self, **request: Any):
        started = time.perf_counter()
        try:
            return self.llm.complete(**request)
        finally:
            self.clock.seconds += time.perf_counter() - started


@dataclass
class _TimedEmbedder:
    embedder: TestbedEmbedder
    clock: RoleClock
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.embedder.name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.embedder.embed(texts)
        finally:
            self.clock.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class Overhead:
    """One method's mean seconds per metric call: its own machinery, and the roles' (for scale)."""

    method: str
    machinery_s_per_call: float
    roles_s_per_call: float
    metric_calls: float
    runs: int


def measure_overhead(cell: Cell, methods: Sequence[str], *, seeds: Sequence[int], budget: int) -> list[Overhead]:
    """Every method's machinery time per metric call on `cell`, runs interleaved method by method per seed."""
    tb = testbed_problem(cell.noise)
    totals = {m: [0.0, 0.0, 0] for m in methods}
    for seed in seeds:
        for method in methods:
            clock = RoleClock()
            timed = replace(tb, problem=replace(tb.problem, evaluator=_TimedEvaluator(tb.problem.evaluator, clock)))
            started = time.perf_counter()
            result = run_testbed(method, timed, cell.model, budget=budget, seed=seed,
                                 llm=_TimedLLM(SimulatedOptimizerLLM(cell.model), clock),
                                 embedder=_TimedEmbedder(TestbedEmbedder(), clock))
            wall = time.perf_counter() - started
            totals[method][0] += wall - clock.seconds
            totals[method][1] += clock.seconds
            totals[method][2] += result.metric_calls
    return [Overhead(m, t[0] / t[2], t[1] / t[2], t[2] / len(seeds), len(seeds)) for m, t in totals.items()]
