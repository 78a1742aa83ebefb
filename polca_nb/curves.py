"""Score curves and the one comparison harness: every method x every seed at one budget -> `Comparison`.

A curve is a list of `CurvePoint`s: the score of the program a method would return, against metric
calls. `compare` runs configurations of the loop (`methods.METHODS`) with any proposer and reads a
point per iteration (the quickstart); `baselines.compare.compare_methods` runs the loop methods and the
peer optimizers with LLM roles and reads points on a metric-call grid (the ablations, bench/compare.py).
Both go through `run_comparison` and return the same `Comparison`, so tables, `calls_to_reach` and the
plots read either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .methods import Method, get_method, returned_id, returned_program, run_method
from .progress import tallied_warnings
from .protocols import Embedder, Executor, Proposer, Summarizer
from .problem import PolcaConfig, Problem
from .state import RunResult
from .types import Params, params_key


@dataclass(frozen=True)
class CurvePoint:
    iteration: int
    metric_calls: int
    score: float


def score_curve(method: str | Method, result: RunResult, score: Callable[[Params], float],
                running_max: bool = False) -> list[CurvePoint]:
    """Score of the returned program after each iteration (memoized per distinct program).

    `running_max=True` gives the paper's "highest test score so far" curve.
    """
    memo: dict[str, float] = {}
    points = []
    best = float("-inf")
    for stats in result.history:
        params = result.memory.candidates[returned_id(method, stats)].params
        key = params_key(params)
        if key not in memo:
            memo[key] = float(score(params))
        value = memo[key]
        best = max(best, value)
        points.append(CurvePoint(stats.iteration, stats.metric_calls, best if running_max else value))
    return points


def curve_at(points: Sequence[CurvePoint], calls: Sequence[int], initial: float) -> list[float]:
    """Step-function value of a curve at the given metric-call counts (`initial` before the first point)."""
    out = []
    for c in calls:
        value = initial
        for p in points:
            if p.metric_calls <= c:
                value = p.score
            else:
                break
        out.append(value)
    return out


def running_best(curve: Sequence[CurvePoint], initial: float) -> list[CurvePoint]:
    """The running max of one curve, the seed program's score included (a best-so-far never drops below
    where the run started)."""
    running = np.maximum.accumulate([initial, *(p.score for p in curve)])[1:]
    return [CurvePoint(p.iteration, p.metric_calls, float(v)) for p, v in zip(curve, running)]


def mean_best_so_far(curves: Sequence[Sequence[CurvePoint]], initial: float) -> np.ndarray:
    """Across seeds, the mean of each seed's best-so-far score on the grid (the paper's plotted curve)."""
    return np.array([[p.score for p in running_best(curve, initial)] for curve in curves]).mean(axis=0)


def mean_returned(curves: Sequence[Sequence[CurvePoint]]) -> np.ndarray:
    """Across seeds, the mean test score of the program each seed would return at each grid point."""
    return np.array([[p.score for p in curve] for curve in curves], dtype=float).mean(axis=0)


@dataclass(frozen=True)
class Comparison:
    """Per method, one entry per seed: the run, its score curve, its final score and its seconds.

    `results` holds what the runs returned (`RunResult` from `compare`, `baselines.MethodResult` from
    `compare_methods`); `initial` is the seed program's score (every curve starts there); `grid` the
    metric-call counts the curves were read at (empty: one point per iteration).
    """

    curves: dict[str, list[list[CurvePoint]]]
    finals: dict[str, list[float]]
    results: dict[str, list[Any]]
    initial: float
    seconds: dict[str, list[float]] = field(default_factory=dict)
    budget: int | None = None
    seeds: tuple[int, ...] = ()
    grid: tuple[int, ...] = ()

    def run_details(self, method: str) -> list[Mapping[str, Any]]:
        """Per run of `method`, its counts: a MethodResult's `details`; for a loop `RunResult` (from
        `compare`), its proposals, iterations and, with a metric-call budget, its unused calls."""
        return [run_details(result, self.budget) for result in self.results.get(method, [])]

    def table(self):
        """Final score mean and standard error (std ddof=0 / sqrt(n), as in the paper's bands) per method."""
        import pandas as pd

        return pd.DataFrame({
            name: {"final score": float(np.mean(v)), "s.e.": float(np.std(v) / np.sqrt(len(v))), "seeds": len(v)}
            for name, v in self.finals.items()
        }).T


def run_details(result: Any, budget: int | None = None) -> Mapping[str, Any]:
    """The counts one run reports (`Comparison.run_details`); {} for a result that carries none."""
    if isinstance(result, RunResult):
        spent = result.spent
        counts: dict[str, Any] = {"proposals": spent.proposals, "iterations": spent.iterations}
        if budget is not None:
            counts["unused_calls"] = budget - spent.metric_calls
        return counts
    details = getattr(result, "details", None)
    return dict(details) if isinstance(details, Mapping) else {}


def calls_to_reach(comparison: Comparison, method: str, target: float, *, best_so_far: bool = False) -> int | None:
    """First grid point where `method`'s mean test score is >= target (None: never; 0: the seed already is).

    By default the score of the program the method would return there (what a user would get if the run
    stopped); `best_so_far=True` uses the paper's running maximum instead (optimistic: it credits a
    program the method did not keep). Needs a comparison read on a grid (`compare_methods`)."""
    if not comparison.grid:
        raise ValueError("calls_to_reach needs a comparison read on a grid (compare_methods)")
    if comparison.initial >= target:
        return 0
    curves = comparison.curves[method]
    curve = mean_best_so_far(curves, comparison.initial) if best_so_far else mean_returned(curves)
    hits = np.nonzero(curve >= target - 1e-12)[0]
    return None if len(hits) == 0 else comparison.grid[int(hits[0])]


Run = Callable[[str, int], Any]
"""(method name, seed) -> the run's result."""
Read = Callable[[str, Any], tuple[list[CurvePoint], float]]
"""(method name, result) -> (its score curve, its final score)."""


def run_comparison(
    methods: Sequence[str],
    seeds: Sequence[int],
    run: Run,
    read: Read,
    *,
    initial: float | Callable[[], float],
    budget: int | None = None,
    grid: Sequence[int] = (),
    on_run: Callable[[str, int, Any, float, float], None] | None = None,
) -> Comparison:
    """The harness: `run` each method for each seed (in that order), `read` its curve and final score.

    `initial` is the seed program's score, or a function giving it after the runs. `seconds` times
    `run` only (not the scoring). `on_run` is called after each run with (method, seed, result, final
    score, seconds).
    """
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    results: dict[str, list[Any]] = {}
    curves: dict[str, list[list[CurvePoint]]] = {}
    finals: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for method in methods:
        results[method], curves[method], finals[method], seconds[method] = [], [], [], []
        for seed in seeds:
            started = time.perf_counter()
            result = run(method, seed)
            elapsed = time.perf_counter() - started
            curve, final = read(method, result)
            results[method].append(result)
            curves[method].append(curve)
            finals[method].append(final)
            seconds[method].append(elapsed)
            if on_run is not None:
                on_run(method, seed, result, final, elapsed)
    start = initial() if callable(initial) else initial
    return Comparison(curves, finals, results, start, seconds, budget, tuple(seeds), tuple(grid))


def memoized(score: Callable[[Params], float]) -> Callable[[Params], float]:
    """`score` called once per distinct program (by `params_key`)."""
    memo: dict[str, float] = {}

    def scored(params: Params) -> float:
        key = params_key(params)
        if key not in memo:
            memo[key] = float(score(params))
        return memo[key]

    return scored


def compare(
    methods: Sequence[str | Method],
    problem: Problem,
    proposer: Proposer,
    base_config: PolcaConfig,
    *,
    seeds: Sequence[int],
    score: Callable[[Params], float],
    embedder: Embedder | None = None,
    summarizer: Summarizer | None = None,
    executor: Executor | int | None = None,
    run_root: str | Path | None = None,
    progress: bool = False,
) -> Comparison:
    """Run every loop method for every seed at the same budget; score returned programs with `score`.

    `score` should be deterministic per program (e.g. a cached test-set evaluation); it is called once
    per distinct returned program, and once for the seed program (`Comparison.initial`). The curves have
    one point per iteration. With `run_root`, each run gets `<run_root>/<method>/seed<k>` and so
    resumes if interrupted.
    """
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    by_name = {m.name: m for m in map(get_method, methods)}
    scored = memoized(score)

    def run(name: str, seed: int) -> RunResult:
        run_dir = None if run_root is None else Path(run_root) / name / f"seed{seed}"
        return run_method(by_name[name], problem, proposer, base_config, embedder=embedder, summarizer=summarizer,
                          seed=seed, run_dir=run_dir, executor=executor, progress=progress)

    def read(name: str, result: RunResult) -> tuple[list[CurvePoint], float]:
        m = by_name[name]
        return score_curve(m, result, scored), scored(returned_program(m, result).params)

    # The seed program is scored after the runs: `score` sees the runs' programs first, in run order.
    with tallied_warnings(f"comparison of {', '.join(by_name)}"):  # one warnings summary for all runs
        return run_comparison(list(by_name), seeds, run, read, initial=lambda: scored(problem.seed_params),
                              budget=base_config.budget.max_metric_calls)


__all__ = ["Comparison", "CurvePoint", "calls_to_reach", "compare", "curve_at", "mean_best_so_far",
           "mean_returned", "memoized", "run_comparison", "run_details", "running_best", "score_curve"]
