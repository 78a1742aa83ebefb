"""A small stochastic optimization problem and a scripted (non-LLM) proposer for it.

The "program" is an instruction text; the task needs certain *skills* (keywords). Each example
requires two skills; an evaluation succeeds with probability `p_hit` if the text mentions both, else
`p_miss`, so scores are noisy Bernoulli draws around a true mean that only grows as skills are added.
Feedback names one missing skill, like a helpful judge would. The scripted proposer acts on that
feedback with a given success probability, sometimes emits near-duplicates (so the eps-Net has work)
and sometimes makes things worse, which is the paper's gamma-strict-improvement picture in miniature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .protocols import Evaluator
from .problem import Problem
from .types import Candidate, Evaluation, Example, Params, Rollout

SKILLS = ("cite", "verify", "concise", "units", "format", "steps", "examples", "check")
FILLERS = ("Please.", "Thanks.", "Be careful.", "Good luck.")
SEED_TEXT = "Answer the question."


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


def make_examples(n: int, rng: np.random.Generator, skills: Sequence[str] = SKILLS) -> list[Example]:
    """n examples, each needing two distinct skills drawn with a skew (some skills matter more)."""
    if n < 1:
        raise ValueError(f"n (number of examples) must be >= 1, got {n}")
    weights = np.linspace(2.0, 0.5, len(skills))
    weights /= weights.sum()
    return [Example(f"ex{i}", {"needs": tuple(sorted(rng.choice(skills, size=2, replace=False, p=weights)))})
            for i in range(n)]


def skills_problem(n_train: int = 40, n_val: int = 20, n_test: int = 40, seed: int = 0,
                   evaluator: SkillEvaluator | None = None) -> Problem:
    """The synthetic problem with fixed data (from `seed`) and a noisy evaluator."""
    rng = np.random.default_rng(seed)
    return Problem(
        name="skills",
        seed_params={"instructions": SEED_TEXT},
        trainset=make_examples(n_train, rng),
        valset=[Example(f"val{i}", ex.data) for i, ex in enumerate(make_examples(n_val, rng))],
        testset=[Example(f"test{i}", ex.data) for i, ex in enumerate(make_examples(n_test, rng))],
        evaluator=evaluator or SkillEvaluator(),
        score_range=(0.0, 1.0),
        objective="Write instructions that make the answerer succeed on every question.",
    )


@dataclass(frozen=True)
class ScriptedProposer:
    """Acts on feedback like a weak optimizer would, with explicit probabilities.

    With `p_fix` it adds a skill named in a failed rollout's feedback; with `p_dup` it returns a
    near-duplicate (a filler sentence appended); otherwise it drops a skill or adds an unhelpful word.
    """

    p_fix: float = 0.5
    p_dup: float = 0.3

    def propose(self, candidate: Candidate, batch: Sequence[tuple[Example, Rollout]], context: str,
                seed: int) -> list[Params]:
        rng = np.random.default_rng(seed)
        text = candidate.params["instructions"]
        named = [m.group(1) for _, r in batch if (m := re.search(r"skill '(\w+)'", r.feedback))]
        # The summary may name skills too: a "momentum" hint from other candidates' failures.
        named += [s for s in SKILLS if f"'{s}'" in context]
        u = rng.random()
        if u < self.p_fix and (todo := [s for s in named if s not in skills_in(text)]):
            new = f"{text} Always {todo[int(rng.integers(len(todo)))]}."
        elif u < self.p_fix + self.p_dup:
            new = f"{text} {FILLERS[int(rng.integers(len(FILLERS)))]}"
        else:
            have = sorted(skills_in(text))
            if have and rng.random() < 0.5:
                drop = have[int(rng.integers(len(have)))]
                new = re.sub(rf"\s*Always {drop}\.", "", text) or SEED_TEXT
            else:
                new = f"{text} Try harder."
        return [{"instructions": new}]


@dataclass(frozen=True)
class SkillsSummarizer:
    """A scripted summarizer: lists the skills most often named in failed rollouts across memory."""

    top: int = 3

    def summarize(self, candidates: Sequence[Candidate], previous: str, examples, seed: int) -> str:
        counts: dict[str, int] = {}
        for c in candidates:
            for r in c.rollouts:
                if m := re.search(r"skill '(\w+)'", r.feedback):
                    counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        if not counts:
            return previous
        ranked = sorted(counts, key=lambda s: (-counts[s], s))[: self.top]
        return "Failures most often lacked: " + ", ".join(f"'{s}'" for s in ranked) + "."


@dataclass(frozen=True)
class SkillsEmbedder:
    """Embeds a text as its skill-indicator vector (fillers and wording do not move it)."""

    name: str = "skills-indicator"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(SKILLS)))
        for i, t in enumerate(texts):
            for j, s in enumerate(SKILLS):
                out[i, j] = float(s in skills_in(t))
        return out


def true_score(evaluator: SkillEvaluator, params: Params, problem: Problem) -> float:
    """The noiseless test score of params (for plots: what the noisy estimates are chasing)."""
    return evaluator.true_mean(params, problem.testset or problem.trainset)


__all__ = ["SkillEvaluator", "ScriptedProposer", "SkillsSummarizer", "SkillsEmbedder", "skills_problem",
           "make_examples", "skills_in", "true_score", "Evaluator"]
