"""The simulated judge of the skills problem: a noisy Bernoulli score around a true mean that only
grows as the instructions mention the skills an example needs. Feedback names one missing skill."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...problem import Problem
from ...types import Evaluation, Example, Params
from .data import SKILLS

PARAM = "instructions"
SEED_TEXT = "Answer the question."
SEED_PARAMS = {PARAM: SEED_TEXT}


def skills_in(text: str, skills: Sequence[str] = SKILLS) -> set[str]:
    """The skills a text mentions (whole words, case-insensitive)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return {s for s in skills if s in words}


@dataclass(frozen=True)
class SkillEvaluator:
    """Noisy judge: success prob p_hit if both required skills are present, else p_miss."""

    p_hit: float = 0.9
    p_miss: float = 0.15

    def true_mean(self, params: Params, examples: Sequence[Example]) -> float:
        """mu(theta): the expected score over `examples` (what noisy scores average to)."""
        have = skills_in(params["instructions"])
        return float(np.mean([self.p_hit if set(ex.data["needs"]) <= have else self.p_miss for ex in examples]))

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        have = skills_in(params["instructions"])
        missing = [s for s in example.data["needs"] if s not in have]
        p = self.p_miss if missing else self.p_hit
        success = np.random.default_rng(seed).random() < p
        if success:
            return Evaluation(1.0, "Correct.", "ok")
        if missing:
            return Evaluation(0.0, f"Incorrect. The answer needed the skill '{missing[0]}'.", "wrong")
        return Evaluation(0.0, "Incorrect (an unlucky slip; nothing was missing).", "wrong")


def true_score(evaluator: SkillEvaluator, params: Params, problem: Problem) -> float:
    """The noiseless test score of params (for plots: what the noisy estimates are chasing)."""
    return evaluator.true_mean(params, problem.testset or problem.trainset)
