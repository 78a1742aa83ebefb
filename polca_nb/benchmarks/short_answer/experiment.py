"""Short-answer runs over seeds: `setup` once, then POLCA per seed, each best program scored on the test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...llm.base import LLM
from ...problem import Problem
from ...protocols import Embedder
from ...runner import polca
from ...types import Params
from ..common import ExperimentResult
from .presets import ShortAnswerPreset, get_preset, setup


def score_on_test(problem: Problem, params: Params, sample_id: int = 0) -> float:
    """Mean score of `params` over the test questions, one fixed sample each (cached, repeatable)."""
    return float(np.mean([problem.evaluator(params, ex, sample_id).score for ex in problem.testset or ()]))


def run(preset: str | ShortAnswerPreset, llm: LLM, *, seeds: Sequence[int] | None = None,
        run_root: str | Path | None = None, embedder: Embedder | None, progress: bool = False,
        **overrides: Any) -> ExperimentResult:
    """POLCA on `preset` for every seed (default: the preset's). With `run_root`, seed s logs to
    `run_root/short-answer-<preset>-<config fingerprint>-seed<s>`, so a rerun resumes. `per_seed[i]`:
    the seed, its best program's instructions and "test_score" (`score_on_test`)."""
    preset = get_preset(preset)
    seeds = tuple(preset.seeds if seeds is None else seeds)
    parts = setup(preset, llm, **overrides)
    runs, per_seed = [], []
    for seed in seeds:
        run_dir = (Path(run_root) / f"short-answer-{preset.name}-{parts.config.fingerprint()}-seed{seed}"
                   if run_root is not None else None)
        result = polca(parts.problem, parts.proposer, parts.config,
                       embedder=embedder if parts.config.eps > 0 else None, summarizer=parts.summarizer,
                       seed=seed, run_dir=run_dir, executor=preset.workers, progress=progress)
        runs.append(result)
        per_seed.append({"seed": seed, "best_instructions": result.best.params["instructions"],
                         "test_score": score_on_test(parts.problem, result.best.params)})
    return ExperimentResult(preset, seeds, runs, per_seed)
