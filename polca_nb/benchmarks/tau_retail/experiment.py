"""POLCA on τ-bench retail over seeds: one run per seed, and optionally the Pass@1 table of each.

    result = run("smoke", llm, seeds=(0,), run_root="build/runs", embedder=default_embedder(), table=True)
    result.per_seed[0]["pass_at_1"]     # {"base prompt": {column: (mean, n)}, "POLCA": {...}}

What notebook 11 does cell by cell, as one function: `presets.setup`, `polca` (run directory
`<run_root>/tau-<preset>-seed<seed>`, so a rerun resumes), then with `table` the seed program and the
best program evaluated on every table task with episode seed `seed + 1`.
"""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Sequence

from ...llm.base import LLM
from ...protocols import Embedder
from ...runner import polca
from ..common import ExperimentResult
from .data import RetailData, load_retail
from .evaluator import TauEvaluator, evaluate_program
from .metrics import pass_at_1
from .presets import TauPreset, get_preset, setup


def _ledger_snapshot(llm: LLM) -> Callable[[], dict[str, Any]] | None:
    ledger = getattr(llm, "ledger", None)
    return ledger.snapshot if ledger is not None and hasattr(ledger, "snapshot") else None


def run(preset: str | TauPreset, llm: LLM, *, seeds: Sequence[int] = (0,), run_root: str | Path | None = None,
        embedder: Embedder | None, data: RetailData | None = None, user_llm: LLM | None = None,
        executor: Executor | int | None = None, table: bool = False, table_workers: int | None = None,
        progress: bool = False) -> ExperimentResult:
    """One POLCA run of `preset` per seed (the data loaded once). `executor` defaults to the preset's
    `max_workers`; `table` adds the Pass@1 of the seed and the best program over `preset.groups`
    (episodes on `table_workers` threads, default `max_workers`). `per_seed[i]` holds "seed",
    "best_params", "best_mean", "metric_calls", "evaluator" and, with `table`, "episodes" and "pass_at_1"."""
    preset = get_preset(preset)
    seeds = tuple(int(s) for s in seeds)
    data = data if data is not None else load_retail()
    runs, per_seed = [], []
    for seed in seeds:
        parts = setup(preset, llm, data=data, user_llm=user_llm)
        run_dir = Path(run_root) / f"tau-{preset.name}-seed{seed}" if run_root is not None else None
        result = polca(parts.problem, parts.proposer, parts.config,
                       embedder=embedder if parts.config.eps > 0 else None, summarizer=parts.summarizer,
                       seed=seed, run_dir=run_dir, executor=executor if executor is not None else preset.max_workers,
                       progress=progress, extra_log=_ledger_snapshot(llm))
        evaluator = parts.problem.evaluator
        assert isinstance(evaluator, TauEvaluator)
        row: dict[str, Any] = {"seed": seed, "best_params": dict(result.best.params), "best_mean": result.best.mean,
                               "metric_calls": result.spent.metric_calls, "evaluator": evaluator}
        if table:
            tasks = [data.task("test", i) for i in preset.test]
            workers = table_workers if table_workers is not None else preset.max_workers
            episodes = {name: evaluate_program(evaluator, params, tasks, seed=seed + 1, max_workers=workers)
                        for name, params in (("base prompt", parts.problem.seed_params),
                                             ("POLCA", result.best.params))}
            row["episodes"] = episodes
            row["pass_at_1"] = {name: pass_at_1(eps, preset.groups) for name, eps in episodes.items()}
        runs.append(result)
        per_seed.append(row)
    return ExperimentResult(preset, seeds, runs, per_seed)
