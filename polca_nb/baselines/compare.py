"""Every method x several seeds at one metric-call budget, scored on the held-out test set.

    comparison = compare_methods(["polca", "gepa"], problem, llm, budget=60, seeds=range(5))
    print(format_table(summary_rows(comparison)))  # from polca_nb.tables

Test scores are not budgeted. To keep them affordable, a run's curve is read at `grid` points (the
program the method would return after that many metric calls) and each distinct program is scored once
(`held_out_score`). The test protocol is one for every method: the same test examples x repeats, the same
task-model seeds for every program, drawn from their own stream (`accounting.TEST_SEED_STREAM`), apart
from every method's own seeds (`describe_test_protocol` states it). The result is a `curves.Comparison`;
`tables.summary_rows` / `tables.format_table` summarise it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..curves import Comparison, CurvePoint, memoized, run_comparison
from ..llm.base import LLM
from ..protocols import Embedder
from ..problem import PolcaConfig, Problem
from ..progress import tallied_warnings
from ..types import Params
from .accounting import TEST_SEED_STREAM, MethodResult, held_out_score
from .estimates import BudgetWarning, budget_warnings
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

    Test protocol (`describe_test_protocol`): every returned program on all of `problem.testset` x
    `test_repeats`, with the same task-model seeds for every program and method (`held_out_seeds(test_seed,
    ...)`, a stream no method's own RNG draws from). A `BudgetWarning` is issued for each method that
    `budget_warnings` finds short of search steps at `budget`. `max_tokens` caps every optimizer's replies
    alike (proposer, summarizer, GEPA's reflection LM, OpenEvolve's LLM). `peer_settings` maps peer names
    ("gepa", "openevolve", ...) to their settings objects. `on_run`
    is called after each run with (method, seed, result, final test score, seconds).
    """
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f"methods must be among {list(ALL_METHODS)}, got {unknown}")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    testset = problem.testset
    if not testset:
        raise ValueError("Problem.testset is empty: the comparison scores returned programs on it")
    grid = default_grid(budget, grid_points)
    seed_params = dict(problem.seed_params)
    score = memoized(lambda params: held_out_score(problem.evaluator, params, testset, seed=test_seed,
                                                   repeats=test_repeats))
    settings = dict(peer_settings or {})
    for message in budget_warnings(methods, problem, budget, base_config=base_config, peer_settings=settings):
        # Named by module, not by file: a notebook's saved output then shows no path of the machine it ran on.
        warnings.warn_explicit(message, BudgetWarning, filename="polca_nb.baselines.compare", lineno=0,
                               module="polca_nb.baselines.compare")
    initial = score(seed_params)

    def run(method: str, seed: int) -> MethodResult:
        run_dir = None if run_root is None or method == "gepa" else Path(run_root) / method / f"seed{seed}"
        return run_baseline(method, problem, llm, budget=budget, seed=seed, base_config=base_config,
                            peer_settings=settings.get(method), max_tokens=max_tokens, embedder=embedder,
                            run_dir=run_dir)

    def read(method: str, result: MethodResult) -> tuple[list[CurvePoint], float]:
        curve = [CurvePoint(i, c, score(program_at(result, c, seed_params))) for i, c in enumerate(grid)]
        return curve, score(result.final_params)

    with tallied_warnings(f"comparison of {', '.join(methods)}"):  # one warnings summary for all runs
        return run_comparison(methods, seeds, run, read, initial=initial, budget=budget, grid=grid, on_run=on_run)


def describe_test_protocol(n_test: int, *, test_seed: int = 0, test_repeats: int = 1) -> str:
    """One line stating how `compare_methods` scores every method's programs (bench/compare.py prints it)."""
    return (f"test protocol: every returned program scored on the same {n_test} test examples x {test_repeats} "
            f"repeat(s), the same task-model seeds for every program, drawn from SeedSequence({test_seed}, "
            f"spawn_key=({TEST_SEED_STREAM:#x},)), a stream apart from every method's own seeds")


__all__ = ["compare_methods", "default_grid", "describe_test_protocol", "program_at"]
