"""POLCA over VeriBench tasks: one run per task, per-step scores, the mean best-so-far curve, pass rates.

    done = run_veribench(PRESETS["smoke"], llm, embedder=default_embedder(), runs_dir="build/runs")
    done.mean_curve()          # mean over tasks of the running max of the per-step score
    result = run("smoke", llm, seeds=(0,), run_root=None, embedder=...)   # ExperimentResult

Step 0 is the seed program (the paper's comment); step s >= 1 is the best-by-mean candidate's mean after
s iterations (POLCA's returned program), and curves take the running max, as the paper's
"forward-filled" per-task curves do. The compile pass rate counts a task as passed when any candidate
evaluated on it compiled (only where Lean ran: None in judge-only mode).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...llm.base import LLM
from ...protocols import Embedder
from ...runner import RunResult, polca
from ..common import ExperimentResult
from . import presets
from .data import VeriTask, load_tasks
from .evaluator import VeriBenchEvaluator
from .presets import VeriBenchPreset


def step_scores(result: RunResult) -> tuple[float, ...]:
    """Score per step: the seed's first mean, then the best-by-mean mean after each iteration (0 before any)."""
    seed = result.memory.candidates.get(0)
    first = [r.score for r in seed.rollouts if r.step == 0] if seed is not None else []
    scores = [float(np.mean(first)) if first else 0.0]
    scores += [float(h.best_mean) if h.best_mean is not None else 0.0 for h in result.history]
    return tuple(scores)


def outputs_of(result: RunResult) -> list[dict[str, Any]]:
    """The evaluator's JSON summaries of every rollout in memory (unreadable ones skipped)."""
    found = []
    for candidate in result.memory.candidates.values():
        for rollout in candidate.rollouts:
            try:
                data = json.loads(rollout.output) if rollout.output else None
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                found.append(data)
    return found


@dataclass(frozen=True)
class TaskRun:
    """One task's POLCA run, its per-step scores and what its evaluations found."""

    task: VeriTask
    result: RunResult
    step_scores: tuple[float, ...]
    mode: str
    seconds: float

    @property
    def best_score(self) -> float:
        return float(max(self.step_scores))

    @property
    def compiled_any(self) -> bool | None:
        """Whether any evaluated candidate compiled; None when Lean never ran (judge-only)."""
        flags = [o.get("compiled") for o in outputs_of(self.result) if o.get("compiled") is not None]
        return any(flags) if flags else None

    def summary(self) -> dict[str, Any]:
        best = self.result.best
        return {"idx": self.task.idx, "title": self.task.title, "mode": self.mode,
                "best score so far": round(self.best_score, 4), "returned id": best.id, "returned n": best.n,
                "returned mean": None if best.mean is None else round(best.mean, 4),
                "compiled any": self.compiled_any, "memory": len(self.result.memory),
                "iterations": self.result.spent.iterations, "metric calls": self.result.spent.metric_calls,
                "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class VeriBenchRun:
    """POLCA over several tasks with one preset and seed."""

    preset: VeriBenchPreset
    seed: int
    tasks: tuple[TaskRun, ...]

    def mean_curve(self) -> np.ndarray:
        """Mean over tasks of the running max of step scores (shorter runs forward-filled)."""
        if not self.tasks:
            return np.zeros(0)
        width = max(len(t.step_scores) for t in self.tasks)
        rows = [np.maximum.accumulate(np.pad(t.step_scores, (0, width - len(t.step_scores)), mode="edge"))
                for t in self.tasks]
        return np.mean(rows, axis=0)

    def compile_pass_rate(self) -> float | None:
        """Share of tasks on which some candidate compiled (None where Lean never ran)."""
        flags = [t.compiled_any for t in self.tasks]
        return None if any(f is None for f in flags) else float(np.mean([bool(f) for f in flags]))

    def rows(self) -> list[dict[str, Any]]:
        return [t.summary() for t in self.tasks]


def run_task(task: VeriTask, preset: VeriBenchPreset, llm: LLM, *, embedder: Embedder | None, seed: int = 0,
             run_dir: str | Path | None = None, evaluator: VeriBenchEvaluator | None = None,
             progress: bool = False) -> TaskRun:
    """POLCA on one task; `evaluator` defaults to the preset's (`presets.make_evaluator`)."""
    evaluator = evaluator if evaluator is not None else presets.make_evaluator(preset, llm)
    parts = presets.setup(preset, llm, task=task, evaluator=evaluator)
    started = time.perf_counter()
    result = polca(parts.problem, parts.proposer, parts.config, embedder=embedder if preset.eps > 0 else None,
                   summarizer=parts.summarizer, seed=seed, run_dir=run_dir, progress=progress, llm=llm)
    return TaskRun(task, result, step_scores(result), str(evaluator.mode), time.perf_counter() - started)


def run_veribench(preset: VeriBenchPreset, llm: LLM, *, embedder: Embedder | None, seed: int = 0,
                  runs_dir: str | Path | None = None, tasks: Sequence[VeriTask] | None = None,
                  evaluator: VeriBenchEvaluator | None = None, progress: bool = False,
                  on_task: Callable[[TaskRun], None] | None = None) -> VeriBenchRun:
    """POLCA on every task of the preset, one after another; task idx runs with seed `seed + idx` and logs
    to `<runs_dir>/veribench-<preset.label()>-seed<seed>/task<idx>` (a rerun resumes or reloads)."""
    all_tasks = list(tasks) if tasks is not None else load_tasks(preset.task_indices)
    by_idx = {t.idx: t for t in all_tasks}
    missing = [i for i in preset.task_indices if i not in by_idx]
    if missing:
        raise ValueError(f"preset.task_indices {missing} are not among the given tasks {sorted(by_idx)}")
    evaluator = evaluator if evaluator is not None else presets.make_evaluator(preset, llm)
    base = Path(runs_dir) / f"veribench-{preset.label()}-seed{seed}" if runs_dir is not None else None
    done = []
    for idx in preset.task_indices:
        task_run = run_task(by_idx[idx], preset, llm, embedder=embedder, seed=seed + idx, evaluator=evaluator,
                            run_dir=base / f"task{idx}" if base is not None else None, progress=progress)
        done.append(task_run)
        if on_task is not None:
            on_task(task_run)
    return VeriBenchRun(preset, seed, tuple(done))


def run(preset: str | VeriBenchPreset, llm: LLM, *, seeds: Sequence[int] | None = None,
        run_root: str | Path | None = None, embedder: Embedder | None, tasks: Sequence[VeriTask] | None = None,
        evaluator: VeriBenchEvaluator | None = None, progress: bool = False) -> ExperimentResult:
    """`run_veribench` for every seed (default: the preset's). `runs` holds every task's RunResult, seed by
    seed; `per_seed[i]` holds "seed", the `VeriBenchRun` ("run"), "mean_curve" and "compile_pass_rate"."""
    settings = presets.get_preset(preset)
    seeds = tuple(settings.seeds if seeds is None else seeds)
    all_tasks = list(tasks) if tasks is not None else load_tasks(settings.task_indices)
    evaluator = evaluator if evaluator is not None else presets.make_evaluator(settings, llm)
    runs: list[RunResult] = []
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        done = run_veribench(settings, llm, embedder=embedder, seed=seed, runs_dir=run_root, tasks=all_tasks,
                             evaluator=evaluator, progress=progress)
        runs.extend(t.result for t in done.tasks)
        per_seed.append({"seed": seed, "run": done, "mean_curve": done.mean_curve(),
                         "compile_pass_rate": done.compile_pass_rate()})
    return ExperimentResult(settings, seeds, runs, per_seed)
