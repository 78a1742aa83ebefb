"""A family of text-parameter problems with an exact true reward mu(theta), for testing search strategies.

The program is one instruction text; what matters in it is the set S of *skills* it names ("Always
cite."). Each example needs 1-3 skills. Its success probability is

    p_x(S) = floor + (top - floor) * (|needs(x) & S| / |needs(x)|)^credit_exponent   (partial credit,
                                                                            diminishing returns)
             - conflict_penalty * (#conflicting pairs both in S)            (edits can regress)
             - length_penalty * max(0, |S| - free_skills)                   (diminishing returns)

clipped to [0, 1]; mu(theta) is its mean over the test set, computed exactly (`true_score`). Wording
outside the skills (fillers, "Try harder.") leaves mu unchanged: a cosmetic rewrite is a duplicate.

Noise sources are knobs (`NoiseSpec`): minibatch sampling (always), per-evaluation execution noise
(binary Bernoulli(p) outcomes, or p + N(0, sigma) for continuous rewards), and a noisy judge that
flips verdicts and writes misleading feedback (a skill the example did not need) at given rates.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Sequence

import numpy as np

from ..problem import Problem
from ..types import Evaluation, Example, Params

PARAM = "instructions"
SEED_TEXT = "Answer the question."
SKILLS = ("cite", "verify", "concise", "units", "steps", "format", "examples", "define", "check", "tone")
CONFLICTS = (("concise", "steps"), ("format", "tone"))
"""Skill pairs that pull in opposite directions: both present costs every example `conflict_penalty`."""


def check_probabilities(knobs: object, names: Sequence[str]) -> None:
    """ValueError naming the first of `knobs`' attributes `names` that is not a probability in [0, 1]."""
    for name in names:
        value = getattr(knobs, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def skills_in(text: str, skills: Sequence[str] = SKILLS) -> frozenset[str]:
    """The skills a text names (whole words, case-insensitive)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return frozenset(s for s in skills if s in words)


def add_skill(text: str, skill: str) -> str:
    """`text` with one more instruction sentence naming `skill`."""
    return f"{text.rstrip()} Always {skill}."


def drop_skill(text: str, skill: str) -> str:
    """`text` without any sentence that names `skill` (the seed text if nothing is left)."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept = [s for s in sentences if skill not in re.findall(r"[a-z]+", s.lower())]
    return " ".join(kept) or SEED_TEXT


@dataclass(frozen=True)
class RewardSpec:
    """The true reward's shape: partial credit per needed skill (concave for credit_exponent < 1: the
    first covered skill of a task helps most), conflicts and a length penalty."""

    floor: float = 0.1
    top: float = 0.9
    credit_exponent: float = 0.7
    conflict_penalty: float = 0.25
    length_penalty: float = 0.04
    free_skills: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= self.top <= 1.0:
            raise ValueError(f"need 0 <= floor <= top <= 1, got floor={self.floor!r}, top={self.top!r}")
        if not self.credit_exponent > 0:
            raise ValueError(f"credit_exponent must be > 0, got {self.credit_exponent!r}")
        for name in ("conflict_penalty", "length_penalty"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.free_skills, int) or self.free_skills < 0:
            raise ValueError(f"free_skills must be an int >= 0, got {self.free_skills!r}")


@dataclass(frozen=True)
class NoiseSpec:
    """How noisy one evaluation is. `reward="binary"`: the outcome is Bernoulli(p) (tau-bench-like;
    sigma is unused); `"continuous"`: p + N(0, sigma), clipped to [0, 1] (sigma = 0: deterministic).
    The judge flips a verdict with `judge_flip` and, on a failure, names a skill the example did not
    need with `misleading_rate`."""

    reward: Literal["binary", "continuous"] = "binary"
    sigma: float = 0.0
    judge_flip: float = 0.0
    misleading_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.reward not in ("binary", "continuous"):
            raise ValueError(f"reward must be 'binary' or 'continuous', got {self.reward!r}")
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma!r}")
        check_probabilities(self, ("judge_flip", "misleading_rate"))

    @property
    def label(self) -> str:
        base = "binary" if self.reward == "binary" else f"sigma={self.sigma:g}"
        judge = f", judge flip {self.judge_flip:.0%} / misleading {self.misleading_rate:.0%}" \
            if self.judge_flip or self.misleading_rate else ""
        return base + judge


@dataclass(frozen=True)
class TestbedEvaluator:
    """Scores one (program, example): a noisy draw around p_x(S), with feedback naming one shortfall.

    Deterministic per `seed`. The feedback of a failure names a missing needed skill, a conflicting
    pair the program holds, or its length; with `misleading_rate` it names a skill the example did not
    need instead (a noisy judge)."""

    __test__ = False  # not a pytest class

    reward: RewardSpec = field(default_factory=RewardSpec)
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    skills: tuple[str, ...] = SKILLS
    conflicts: tuple[tuple[str, str], ...] = CONFLICTS

    def probability(self, have: frozenset[str], needs: Sequence[str]) -> float:
        """p_x(S): the success probability of a program naming `have` on an example needing `needs`."""
        r = self.reward
        covered = sum(1 for s in needs if s in have) / len(needs)
        clashes = sum(1 for a, b in self.conflicts if a in have and b in have)
        p = r.floor + (r.top - r.floor) * covered ** r.credit_exponent - r.conflict_penalty * clashes \
            - r.length_penalty * max(0, len(have) - r.free_skills)
        return float(min(max(p, 0.0), 1.0))

    def true_mean(self, params: Params, examples: Sequence[Example]) -> float:
        """mu(theta) over `examples`: the exact expectation of p_x (what noisy scores chase)."""
        have = skills_in(params[PARAM], self.skills)
        return float(np.mean([self.probability(have, ex.data["needs"]) for ex in examples]))

    def _shortfalls(self, have: frozenset[str], needs: Sequence[str]) -> list[str]:
        out = [f"Incorrect. The answer needed the skill '{s}'." for s in needs if s not in have]
        out += [f"Incorrect. The instructions '{a}' and '{b}' pulled in opposite directions."
                for a, b in self.conflicts if a in have and b in have]
        if len(have) > self.reward.free_skills:
            out.append("Incorrect. The instructions were too long to follow.")
        return out

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        rng = np.random.default_rng(seed)
        have = skills_in(params[PARAM], self.skills)
        needs = example.data["needs"]
        p = self.probability(have, needs)
        u_outcome, u_flip, u_mislead, u_pick = rng.random(4)
        if self.noise.reward == "binary":
            score = 1.0 if u_outcome < p else 0.0
        else:
            score = float(np.clip(p + self.noise.sigma * rng.standard_normal(), 0.0, 1.0))
        if u_flip < self.noise.judge_flip:
            score = 1.0 - score
        output = "Answered using: " + (", ".join(sorted(have)) if have else "no particular skill") + "."
        if score >= self.reward.top - 1e-9 or (self.noise.reward == "binary" and score == 1.0):
            return Evaluation(score, "Correct.", output)
        if u_mislead < self.noise.misleading_rate:
            wrong = [s for s in self.skills if s not in needs]
            return Evaluation(score, f"Incorrect. The answer needed the skill '{wrong[int(u_pick * len(wrong))]}'.",
                              output)
        causes = self._shortfalls(have, needs)
        if not causes:
            return Evaluation(score, "Incorrect (an unlucky slip; nothing was missing).", output)
        return Evaluation(score, causes[int(u_pick * len(causes))], output)


def make_examples(n: int, rng: np.random.Generator, prefix: str, skills: Sequence[str] = SKILLS) -> list[Example]:
    """n examples, each needing 1-3 distinct skills drawn with a skew (some skills matter more)."""
    if n < 1:
        raise ValueError(f"n (number of examples) must be >= 1, got {n}")
    weights = np.linspace(2.0, 0.3, len(skills))
    weights /= weights.sum()
    out = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        needs = tuple(sorted(str(s) for s in rng.choice(skills, size=k, replace=False, p=weights)))
        out.append(Example(f"{prefix}{i}", {"task": f"Task {prefix}{i}", "needs": list(needs)}))
    return out


@dataclass(frozen=True)
class TestbedProblem:
    """A `Problem` with known truth: `true_score` is exact, `optimum` is found by enumeration."""

    __test__ = False

    problem: Problem
    evaluator: TestbedEvaluator

    def true_score(self, params: Params) -> float:
        """mu(theta) on the test set, exact (no sampling)."""
        return self.evaluator.true_mean(params, self.problem.testset or self.problem.trainset)

    @cached_property
    def optimum(self) -> tuple[float, frozenset[str]]:
        """The best true score any skill set reaches, and that set (ties: the smaller set)."""
        best: tuple[float, frozenset[str]] = (-1.0, frozenset())
        testset = self.problem.testset or self.problem.trainset
        needs = [ex.data["needs"] for ex in testset]
        for k in range(len(self.evaluator.skills) + 1):
            for subset in itertools.combinations(self.evaluator.skills, k):
                have = frozenset(subset)
                score = float(np.mean([self.evaluator.probability(have, n) for n in needs]))
                if score > best[0] + 1e-12:
                    best = (score, have)
        return best


def testbed_problem(noise: NoiseSpec | None = None, reward: RewardSpec | None = None, *, n_train: int = 40,
                    n_val: int = 20, n_test: int = 200, seed: int = 0) -> TestbedProblem:
    """The testbed problem: data generated from `seed` (the same seed, the same sets)."""
    rng = np.random.default_rng(seed)
    evaluator = TestbedEvaluator(reward or RewardSpec(), noise or NoiseSpec())
    problem = Problem(
        name="testbed",
        seed_params={PARAM: SEED_TEXT},
        trainset=make_examples(n_train, rng, "train"),
        valset=make_examples(n_val, rng, "val"),
        testset=make_examples(n_test, rng, "test"),
        evaluator=evaluator,
        score_range=(0.0, 1.0),
        objective="Write instructions that make the answerer succeed on every task.",
    )
    return TestbedProblem(problem, evaluator)


def needs_in_input(text: str) -> list[frozenset[str]]:
    """The skill sets that example inputs rendered in `text` declare (their JSON "needs" lists)."""
    return [frozenset(json.loads(f"[{m}]")) for m in re.findall(r'"needs":\s*\[([^\]]*)\]', text)]


testbed_problem.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
