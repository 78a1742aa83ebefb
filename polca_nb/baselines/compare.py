"""Every method x several seeds at one metric-call budget, scored on the held-out test set.

    comparison = compare_methods(["polca", "gepa"], problem, llm, budget=60, seeds=range(5))
    print(format_table(summary_rows(comparison)))

Test scores are not budgeted. To keep them affordable, a run's curve is read at `grid` points (the
program the method would return after that many metric calls) and each distinct program is scored once
(`held_out_score`, the same task-model seeds for every program).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..curves import (
    Comparison,
    CurvePoint,
    calls_to_reach,
    mean_best_so_far,
    mean_returned,
    memoized,
    run_comparison,
    running_best,
)
from ..llm.base import LLM
from ..protocols import Embedder
from ..problem import PolcaConfig, Problem
from ..types import Params
from .accounting import MethodResult, held_out_score
from .registry import ALL_METHODS, run_baseline


def program_at(result: MethodResult, calls: int, seed_params: Params) -> Params:
    """The program `result` would have returned after `calls` metric calls (the seed before any point)."""
    params = seed_params
    for point in result.trajectory:
        if point.metric_calls > calls:
            break
        params = point.params
    return params


def default_grid(budget: int, points: int) -> tuple[int, ...]:
    """`points` evenly spaced metric-call counts ending at the budget."""
    if not isinstance(points, int) or points < 1:
        raise ValueError(f"grid points must be a positive int, got {points!r}")
    return tuple(sorted({int(round(budget * k / points)) for k in range(1, points + 1)}))


def compare_methods(
    methods: Sequence[str],
    problem: Problem,
    llm: LLM,
    *,
    budget: int,
    seeds: Sequence[int],
    grid_points: int = 6,
    test_seed: int = 0,
    test_repeats: int = 1,
    max_tokens: int | None = None,
    base_config: PolcaConfig | None = None,
    peer_settings: Mapping[str, Any] | None = None,
    embedder: Embedder | None = None,
    run_root: str | Path | None = None,
    on_run: Callable[[str, int, MethodResult, float, float], None] | None = None,
) -> Comparison:
    """Run each method for each seed with `budget` metric calls; score programs on `problem.testset`.

    `max_tokens` caps every optimizer's replies alike (proposer, summarizer, GEPA's reflection LM,
    OpenEvolve's LLM). `peer_settings` maps "gepa"/"openevolve" to their settings objects. `on_run`
    is called after each run with (method, seed, result, final test score, seconds).
    """
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f"methods must be among {list(ALL_METHODS)}, got {unknown}")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if not problem.testset:
        raise ValueError("Problem.testset is empty: the comparison scores returned programs on it")
    grid = default_grid(budget, grid_points)
    seed_params = dict(problem.seed_params)
    score = memoized(lambda params: held_out_score(problem.evaluator, params, problem.testset, seed=test_seed,
                                                   repeats=test_repeats))
    initial = score(seed_params)
    settings = dict(peer_settings or {})

    def run(method: str, seed: int) -> MethodResult:
        run_dir = None if run_root is None or method == "gepa" else Path(run_root) / method / f"seed{seed}"
        return run_baseline(method, problem, llm, budget=budget, seed=seed, base_config=base_config,
                            peer_settings=settings.get(method), max_tokens=max_tokens, embedder=embedder,
                            run_dir=run_dir)

    def read(method: str, result: MethodResult) -> tuple[list[CurvePoint], float]:
        curve = [CurvePoint(i, c, score(program_at(result, c, seed_params))) for i, c in enumerate(grid)]
        return curve, score(result.final_params)

    return run_comparison(methods, seeds, run, read, budget=budget, grid=grid, initial=initial, on_run=on_run)


def summary_rows(comparison: Comparison, *, polca: str = "polca", baselines: Sequence[str] | None = None,
                 best_so_far: bool = False) -> list[dict[str, Any]]:
    """One row per method: final test score mean and s.e. (std ddof=0 / sqrt n), metric calls to reach the
    best baseline's final mean (see `calls_to_reach`), POLCA / method ratios of final score and of
    calls to reach, and the metric and optimizer-LLM calls each run actually spent (mean over seeds).

    Baselines are every method except `polca` unless given. Without `polca` in the comparison, the ratio
    columns are None.
    """
    names = list(comparison.finals)
    baselines = [m for m in (baselines or names) if m != polca and m in comparison.finals]
    if not baselines:
        raise ValueError(f"no baseline among {names} besides {polca!r}")
    means = {m: float(np.mean(v)) for m, v in comparison.finals.items()}
    best_baseline = max(baselines, key=lambda m: means[m])
    target = means[best_baseline]
    reach = {m: calls_to_reach(comparison, m, target, best_so_far=best_so_far) for m in names}
    rows = []
    for m in names:
        v = np.asarray(comparison.finals[m], dtype=float)
        row = {"method": m, "final": means[m], "se": float(v.std() / np.sqrt(len(v))), "seeds": len(v),
               "calls_to_target": reach[m], "target": target, "best_baseline": best_baseline,
               "curve": "best-so-far" if best_so_far else "returned program",
               "final_ratio": None, "calls_ratio": None,
               "mean_seconds": float(np.mean(comparison.seconds[m])),
               "mean_calls": _mean_or_none([r.metric_calls for r in comparison.results.get(m, [])]),
               "mean_llm_calls": _mean_or_none([sum(r.details.get("llm_calls", {}).values())
                                                for r in comparison.results.get(m, [])])}
        if polca in comparison.finals and m != polca:
            row["final_ratio"] = means[polca] / means[m] if means[m] > 0 else None
            if reach[polca] is not None and reach[m]:
                row["calls_ratio"] = reach[polca] / reach[m]
        rows.append(row)
    return rows


def _mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def format_table(rows: Sequence[Mapping[str, Any]], *, polca: str = "polca") -> str:
    """The rows as a fixed-width text table (what bench/compare.py prints)."""
    target = rows[0]["target"]
    best = rows[0]["best_baseline"]
    header = (f"{'method':<16}{'final test score':>20}{'seeds':>7}{'calls to reach':>16}"
              f"{polca + '/method':>14}{polca + '/method':>14}{'calls used':>12}{'LLM calls':>11}{'s/run':>8}")
    sub = (f"{'':<16}{'mean +- s.e.':>20}{'':>7}{f'{target:.3f}':>16}{'final':>14}{'calls':>14}"
           f"{'mean/run':>12}{'mean/run':>11}{'':>8}")
    curve = rows[0]["curve"]
    lines = [f"target = final mean of the best baseline ({best}) = {target:.3f}; calls to reach: first grid point "
             f"where the mean test score of the {curve} reaches it", header, sub, "-" * len(header)]

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for r in rows:
        reach = "never" if r["calls_to_target"] is None else str(r["calls_to_target"])
        lines.append(f"{r['method']:<16}{r['final']:>12.3f} +- {r['se']:.3f}{r['seeds']:>7}{reach:>16}"
                     f"{fmt(r['final_ratio'], '.2f'):>14}{fmt(r['calls_ratio'], '.2f'):>14}"
                     f"{fmt(r.get('mean_calls'), '.1f'):>12}{fmt(r.get('mean_llm_calls'), '.1f'):>11}"
                     f"{r['mean_seconds']:>8.0f}")
    return "\n".join(lines)


__all__ = ["Comparison", "calls_to_reach", "compare_methods", "default_grid", "format_table", "mean_best_so_far",
           "mean_returned", "program_at", "running_best", "summary_rows"]
