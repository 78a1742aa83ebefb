"""POLCA over KernelBench tasks: one run per task, per-step best speedups and fast_p curves, over seeds.

    run = run_kernelbench(PRESETS["smoke"], llm, embedder=default_embedder(), runs_dir="build/runs")
    run.fast_p_curves()        # {0.5: array over proposal steps, 1.0: ...}
    result = run("smoke", llm, seeds=(0, 1), run_root="build/runs", embedder=...)   # ExperimentResult

A "proposal step" is one POLCA iteration (explore, propose, validate). Step 0 is the seed program,
the paper's dummy comment, which scores 0; step s >= 1 is the state after s iterations. The score of
a task at step s is the empirical mean of the best-by-mean candidate then (what POLCA returns), and
curves take its running maximum, as the paper's "highest score so far" plots do (polca-method.md §2.5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...llm.base import LLM
from ...protocols import Embedder, Evaluator
from ...runner import RunResult, polca
from ...types import Candidate
from ..common import ExperimentResult
from . import presets
from .data import KernelTask, load_tasks
from .evaluator import ScreenedKernelEvaluator
from .metrics import best_so_far, fast_p_curves
from .presets import KernelBenchSetup


@dataclass(frozen=True)
class TaskRun:
    """One task's POLCA run: the run result, its per-step scores and how the evaluations went."""

    task: KernelTask
    result: RunResult
    step_scores: tuple[float, ...]
    evaluation_counts: dict[str, int]
    seconds: float

    @property
    def best_speedup(self) -> float:
        """The running-max score at the last step (0 when nothing was ever correct)."""
        return float(best_so_far([self.step_scores])[0, -1])

    @property
    def best_candidate(self) -> Candidate:
        """The candidate POLCA returns: best empirical mean in memory."""
        return self.result.best

    def summary(self) -> dict[str, Any]:
        best = self.best_candidate
        return {"idx": self.task.idx, "problem_id": self.task.problem_id, "name": self.task.name,
                "best_speedup": round(self.best_speedup, 4), "best_id": best.id,
                "best_n": best.n, "memory": len(self.result.memory), "iterations": self.result.spent.iterations,
                "metric_calls": self.result.spent.metric_calls, **self.evaluation_counts,
                "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class KernelBenchRun:
    """POLCA over several tasks with one setup."""

    setup: KernelBenchSetup
    tasks: tuple[TaskRun, ...]

    def step_scores(self) -> list[list[float]]:
        """step_scores[task][step], in task order (the input of `fast_p_curves`)."""
        return [list(t.step_scores) for t in self.tasks]

    def fast_p_curves(self, ps: Sequence[float] = (0.5, 1.0)) -> dict[float, np.ndarray]:
        """fast_p at each proposal step (index = step) over the tasks of this run."""
        return fast_p_curves(self.step_scores(), ps)

    def best_speedups(self) -> dict[int, float]:
        return {t.task.idx: t.best_speedup for t in self.tasks}

    def rows(self) -> list[dict[str, Any]]:
        return [t.summary() for t in self.tasks]


def step_scores(result: RunResult) -> tuple[float, ...]:
    """Score per proposal step of a run: step 0 the seed's mean on its first exploration, step s the
    mean of the best-by-mean candidate after iteration s - 1 (0 where no mean exists yet)."""
    seed_candidate = result.memory.candidates.get(0)
    first = [r.score for r in seed_candidate.rollouts if r.step == 0] if seed_candidate is not None else []
    scores = [float(np.mean(first)) if first else 0.0]
    for stats in result.history:
        scores.append(float(stats.best_mean) if stats.best_mean is not None else 0.0)
    return tuple(scores)


def run_task(
    task: KernelTask,
    setup: KernelBenchSetup,
    llm: LLM,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = False,
) -> TaskRun:
    """Run POLCA on one task. `evaluator` defaults to `setup.evaluator()`; pass one to reuse its build-
    failure memo across tasks or to test with a stub. A finished `run_dir` is loaded, not recomputed."""
    evaluator = evaluator if evaluator is not None else setup.evaluator()
    parts = presets.setup(setup, llm, task=task, evaluator=evaluator)
    before = evaluator.counts() if isinstance(evaluator, ScreenedKernelEvaluator) else {}
    started = time.perf_counter()
    result = polca(parts.problem, parts.proposer, parts.config, embedder=embedder if setup.eps > 0 else None,
                   summarizer=parts.summarizer, seed=seed, run_dir=run_dir, progress=progress,
                   extra_log=_ledger_snapshot(llm), llm=llm)
    seconds = time.perf_counter() - started
    after = evaluator.counts() if isinstance(evaluator, ScreenedKernelEvaluator) else {}
    counts = {k: after[k] - before.get(k, 0) for k in after}
    return TaskRun(task, result, step_scores(result), counts, seconds)


def run_kernelbench(
    setup: KernelBenchSetup,
    llm: LLM,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    runs_dir: str | Path | None = None,
    tasks: Sequence[KernelTask] | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    on_task: Callable[[TaskRun], None] | None = None,
) -> KernelBenchRun:
    """POLCA on every task of `setup.task_indices`, one after another (the paper ran one thread).

    Task idx runs with seed `seed + idx`. Run directories are
    `<runs_dir>/kernelbench-<setup.label()>-seed<seed>/task<idx>`, so rerunning the same setup resumes
    or reloads; `tasks` defaults to `load_tasks()`. One evaluator serves all tasks (its memo is per task).
    """
    all_tasks = list(tasks) if tasks is not None else load_tasks()
    by_idx = {t.idx: t for t in all_tasks}
    missing = [i for i in setup.task_indices if i not in by_idx]
    if missing:
        raise ValueError(f"setup.task_indices {missing} are not among the given tasks {sorted(by_idx)}")
    evaluator = evaluator if evaluator is not None else setup.evaluator()
    base = Path(runs_dir) / f"kernelbench-{setup.label()}-seed{seed}" if runs_dir is not None else None
    done: list[TaskRun] = []
    for position, idx in enumerate(setup.task_indices):
        if progress:
            print(f"task {idx} ({position + 1}/{len(setup.task_indices)}): {by_idx[idx].name}", flush=True)
        task_run = run_task(by_idx[idx], setup, llm, embedder=embedder, seed=seed + idx,
                            run_dir=base / f"task{idx}" if base is not None else None, evaluator=evaluator,
                            progress=progress)
        done.append(task_run)
        if on_task is not None:
            on_task(task_run)
    return KernelBenchRun(setup, tuple(done))


def _ledger_snapshot(llm: LLM) -> Callable[[], dict[str, Any]] | None:
    ledger = getattr(llm, "ledger", None)
    if ledger is None or not hasattr(ledger, "snapshot"):
        return None
    return lambda: {"ledger": ledger.snapshot()}


def run(preset: str | KernelBenchSetup, llm: LLM, *, seeds: Sequence[int] = (0,), run_root: str | Path | None = None,
        embedder: Embedder | None, tasks: Sequence[KernelTask] | None = None, evaluator: Evaluator | None = None,
        progress: bool = False, on_task: Callable[[TaskRun], None] | None = None) -> ExperimentResult:
    """`run_kernelbench` for every seed (the tasks loaded once, one evaluator for all, so its build-failure
    memo carries over). KernelBench runs one POLCA per task, so `runs` holds every task's RunResult,
    seed by seed in task order (one per seed when the preset has one task); `per_seed[i]` holds "seed",
    the `KernelBenchRun` ("run"), "best_speedups" {idx: speedup} and "fast_p" (curves at p = 0.5, 1.0)."""
    settings = presets.get_preset(preset)
    seeds = tuple(int(s) for s in seeds)
    all_tasks = list(tasks) if tasks is not None else load_tasks()
    evaluator = evaluator if evaluator is not None else settings.evaluator()
    runs: list[RunResult] = []
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        done = run_kernelbench(settings, llm, embedder=embedder, seed=seed, runs_dir=run_root, tasks=all_tasks,
                               evaluator=evaluator, progress=progress, on_task=on_task)
        runs.extend(t.result for t in done.tasks)
        per_seed.append({"seed": seed, "run": done, "best_speedups": done.best_speedups(),
                         "fast_p": done.fast_p_curves()})
    return ExperimentResult(settings, seeds, runs, per_seed)
