"""Shared accounting for every method: metric calls counted in one unit, one result shape.

A metric call is one evaluation of one program on one example (the unit of `Budget.max_metric_calls`).
`MeteredEvaluator` wraps a problem's evaluator, counts every call and refuses any call past the budget,
so a peer optimizer cannot overspend even when its own stopper checks only between iterations.
`MethodResult` is what every method (POLCA's loop configurations, GEPA, OpenEvolve) hands back: the
program it would return after each iteration, against metric calls, and the final program. A run's
LLM calls per role come from a tracker on the LLM's ledger (`OPTIMIZER_ROLES`). `held_out_score` is the
one test protocol: every program on the same test examples and task-model seeds, from a stream of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..curves import CurvePoint
from ..methods import returned_id, returned_program
from ..protocols import Evaluator
from ..runner import RunResult
from ..types import SEED_BOUND, Evaluation, Example, Params, params_key

class BudgetExhausted(RuntimeError):
    """Raised instead of making a metric call the budget cannot pay for (nothing is evaluated then)."""


@dataclass
class MeteredEvaluator:
    """Counts metric calls on `evaluator` and refuses calls beyond `max_metric_calls`.

    Used directly as an `Evaluator` (the caller supplies seeds), or through `evaluate`/`evaluate_batch`,
    which draw each seed from `rng` so peer optimizers without a seed notion still get fresh, reproducible
    samples. `evaluate_batch` is all-or-nothing: a batch the budget cannot cover is not started.
    """

    evaluator: Evaluator
    max_metric_calls: int
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_metric_calls, (int, np.integer)) or self.max_metric_calls < 1:
            raise ValueError(f"max_metric_calls must be a positive int, got {self.max_metric_calls!r}")

    @property
    def remaining(self) -> int:
        return self.max_metric_calls - self.calls

    def close(self) -> None:
        """Refuse every later call (a straggler thread of a finished run must not spend anything)."""
        with self._lock:
            self._closed = True

    def _reserve(self, n: int, *, draw_seeds: bool) -> list[int]:
        with self._lock:
            if self._closed:
                raise BudgetExhausted("the run this evaluator metered has finished")
            if self.calls + n > self.max_metric_calls:
                raise BudgetExhausted(f"{n} metric call(s) requested, {self.remaining} of "
                                      f"{self.max_metric_calls} left")
            self.calls += n
            # Seeds are drawn under the lock, in reservation order, so a serial run is reproducible.
            return [int(s) for s in self.rng.integers(0, SEED_BOUND, size=n)] if draw_seeds else []

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        self._reserve(1, draw_seeds=False)
        return self.evaluator(params, example, seed)

    def evaluate(self, params: Params, example: Example) -> Evaluation:
        """One metric call with a seed from `rng`."""
        (seed,) = self._reserve(1, draw_seeds=True)
        return self.evaluator(params, example, seed)

    def evaluate_batch(self, params: Params, examples: Sequence[Example]) -> list[Evaluation]:
        """len(examples) metric calls, reserved together; raises BudgetExhausted before any if unaffordable."""
        seeds = self._reserve(len(examples), draw_seeds=True)
        return [self.evaluator(params, ex, s) for ex, s in zip(examples, seeds)]


OPTIMIZER_ROLES = ("proposer", "summarizer")
"""The ledger roles of an optimizer's own LLM calls (POLCA's proposer and summarizer, GEPA's reflection
LM, OpenEvolve's LLM): what a MethodResult's `details["llm_calls"]` counts, with a tracker on the
LLM's ledger (`with_ledger(llm).ledger.track(roles=OPTIMIZER_ROLES)`) while the run lasts. The task
model's calls (the evaluator's, also on a shared client) are metric calls, counted by MeteredEvaluator."""


@dataclass(frozen=True)
class ProgramPoint:
    """The program a method would return after `iteration`, when it had spent `metric_calls`."""

    iteration: int
    metric_calls: int
    params: Params


@dataclass(frozen=True)
class MethodResult:
    """One run of one method, in the same units for every method.

    `trajectory` is non-decreasing in metric_calls; `metric_calls` <= `budget` always. `details` holds
    method-specific counts (the peer's own metric-call count, candidates, LLM calls per role, ...) and two
    every method reports: "proposals" (candidate programs its optimizer LLM wrote) and "unused_calls"
    (budget - metric_calls); tables show "-" for results from before they existed.
    """

    method: str
    seed: int
    final_params: Params
    trajectory: tuple[ProgramPoint, ...]
    metric_calls: int
    budget: int
    stop_reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


def from_run_result(method: str, result: RunResult, budget: int, seed: int,
                    details: Mapping[str, Any] | None = None) -> MethodResult:
    """A POLCA-loop run (any entry of `methods.METHODS`) as a MethodResult; `details` gains the shared
    counts every method reports: "proposals" (programs its proposer wrote) and "unused_calls" (budget left)."""
    epsnet = result.epsnet
    trajectory = tuple(
        ProgramPoint(h.iteration, h.metric_calls, dict(result.memory.candidates[returned_id(method, h)].params))
        for h in result.history
    )
    return MethodResult(method, seed, dict(returned_program(method, result).params), trajectory,
                        result.spent.metric_calls, budget, result.stop_reason,
                        {"iterations": result.spent.iterations,
                         # Programs the proposer returned (before the eps-Net and budget drops): what it wrote.
                         "proposals": result.spent.proposals,
                         "unused_calls": budget - result.spent.metric_calls,
                         "memory_size": len(result.memory),
                         "eps_rejections": epsnet.rejected,
                         "epsnet": epsnet,
                         "identical_evaluated": sum(h.identical_evaluated for h in result.history),
                         **(details or {})})


def program_curve(result: MethodResult, score: Callable[[Params], float], *,
                  running_max: bool = False) -> list[CurvePoint]:
    """`score` of the returned program at each trajectory point (memoized per distinct program).

    Same shape as `curves.score_curve`, so `plots.plot_score_curves` draws peers and POLCA alike;
    `running_max=True` gives the paper's "highest score so far" curve.
    """
    memo: dict[str, float] = {}
    best = float("-inf")
    points = []
    for p in result.trajectory:
        key = params_key(p.params)
        if key not in memo:
            memo[key] = float(score(p.params))
        best = max(best, memo[key])
        points.append(CurvePoint(p.iteration, p.metric_calls, best if running_max else memo[key]))
    return points


TEST_SEED_STREAM = 0x7E57_5EED
"""Spawn key of the held-out test seeds: `SeedSequence(test_seed, spawn_key=(TEST_SEED_STREAM,))`.

Methods draw their own seeds from `default_rng(seed)` / `default_rng([seed, k])` (and SeedSequence children
with small spawn keys); a spawn key none of them uses keeps the test samples apart from every method's
validation samples even when `test_seed` equals a run's seed."""


def held_out_seeds(test_seed: int, repeats: int, n_examples: int) -> np.ndarray:
    """The (repeats, n_examples) task-model seeds `held_out_score` uses, from the test stream only."""
    rng = np.random.default_rng(np.random.SeedSequence(int(test_seed), spawn_key=(TEST_SEED_STREAM,)))
    return rng.integers(0, SEED_BOUND, size=(repeats, n_examples))


def held_out_score(problem_evaluator: Evaluator, params: Params, testset: Sequence[Example], *, seed: int,
                   repeats: int = 1) -> float:
    """Mean score of `params` over `testset` x `repeats` (not budgeted), seeds `held_out_seeds(seed, ...)`.

    The same seeds for every program (two programs are compared on the same task-model samples), drawn
    from their own stream (`TEST_SEED_STREAM`), which no method draws its validation seeds from.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    if not testset:
        raise ValueError("testset is empty")
    seeds = held_out_seeds(seed, repeats, len(testset))
    scores = [problem_evaluator(params, ex, int(seeds[r, i])).score
              for r in range(repeats) for i, ex in enumerate(testset)]
    return float(np.mean(scores))
