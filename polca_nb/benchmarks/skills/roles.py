"""Simulated (non-LLM) roles for the skills problem, with the optimizer's quality as stated knobs:
a proposer that acts on feedback with explicit probabilities, a summarizer that counts missing
skills, and an embedder that sees only which skills a text names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...types import Candidate, Example, Params, Rollout
from .data import SKILLS
from .evaluator import SEED_TEXT, skills_in

FILLERS = ("Please.", "Thanks.", "Be careful.", "Good luck.")


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
