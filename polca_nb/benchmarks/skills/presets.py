"""The skills problem's presets and the one function that turns a preset into a run's parts.

Its roles are simulated (`roles.py`): `setup` ignores `llm`, so the quickstart runs without a model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ...budget import Budget
from ...problem import PolcaConfig, Problem
from ..common import BenchmarkSetup, lookup_preset
from .data import load_examples
from .evaluator import SEED_PARAMS, SkillEvaluator
from .roles import ScriptedProposer, SkillsSummarizer


def skills_problem(n_train: int = 40, n_val: int = 20, n_test: int = 40, seed: int = 0,
                   evaluator: SkillEvaluator | None = None) -> Problem:
    """The synthetic problem with fixed data (from `seed`) and a noisy evaluator."""
    train, val, test = load_examples(n_train, n_val, n_test, seed)
    return Problem(
        name="skills",
        seed_params=dict(SEED_PARAMS),
        trainset=train,
        valset=val,
        testset=test,
        evaluator=evaluator or SkillEvaluator(),
        score_range=(0.0, 1.0),
        objective="Write instructions that make the answerer succeed on every question.",
    )


@dataclass(frozen=True)
class SkillsPreset:
    """A skills run: data sizes, the simulated proposer's quality, the budget."""

    max_metric_calls: int = 300
    p_fix: float = 0.5
    p_dup: float = 0.3
    eps: float = 0.5
    note: str = ""


PRESETS: dict[str, SkillsPreset] = {
    "smoke": SkillsPreset(300, note="the quickstart's default"),
    "paper": SkillsPreset(1000, note="a longer run (the paper has no skills problem; this is the quickstart at scale)"),
}


def setup(preset: SkillsPreset | str, llm: Any = None, **overrides: Any) -> BenchmarkSetup:
    """Problem, config and the simulated roles of `preset`; `llm` is unused (the roles are simulated);
    `overrides` replace PolcaConfig fields."""
    p = lookup_preset(PRESETS, preset, "skills")
    config = replace(PolcaConfig(Budget(max_metric_calls=p.max_metric_calls), eps=p.eps), **overrides)
    return BenchmarkSetup(skills_problem(), config, ScriptedProposer(p.p_fix, p.p_dup), SkillsSummarizer())
