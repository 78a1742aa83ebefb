"""Runs of the skills problem over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ...runner import polca
from ..common import ExperimentResult, lookup_preset
from .evaluator import SkillEvaluator, true_score
from .presets import PRESETS, SkillsPreset, setup
from .roles import SkillsEmbedder


def run(preset: SkillsPreset | str = "smoke", llm: Any = None, *, seeds: Sequence[int] = (0,),
        run_root: str | Path | None = None, embedder: Any = None) -> ExperimentResult:
    """POLCA on the skills problem for each seed; `per_seed` holds the returned program's true score."""
    p = lookup_preset(PRESETS, preset, "skills")
    runs, per_seed = [], []
    for seed in seeds:
        parts = setup(p)
        result = polca(parts.problem, parts.proposer, parts.config, embedder=embedder or SkillsEmbedder(),
                       summarizer=parts.summarizer, seed=seed, progress=False,
                       run_dir=None if run_root is None else Path(run_root) / f"seed{seed}")
        runs.append(result)
        evaluator = parts.problem.evaluator
        assert isinstance(evaluator, SkillEvaluator)
        per_seed.append({"true_score": true_score(evaluator, result.best.params, parts.problem)})
    return ExperimentResult(p, tuple(seeds), tuple(runs), tuple(per_seed))
