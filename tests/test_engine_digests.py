"""Whole runs give byte-identical event logs, memories and curves to the code before the engine's
fast paths (vectorized priorities, carried reference embeddings): digests recorded from commit c04e95a.

Run this file as a script to print the digests of the code in use (how DIGESTS was recorded).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from polca_nb.budget import Budget
from polca_nb.runner import PolcaConfig, polca
from polca_nb.synthetic import SKILLS, ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem
from polca_nb.types import Candidate


@dataclass(frozen=True)
class ShortestFirst:
    """A user-defined rule (not built in: pop_top_k calls it per candidate)."""

    name: str = field(default="shortest", init=False)

    def __call__(self, candidate: Candidate, t: int) -> float:
        return -float(candidate.n) + (0.0 if candidate.mean is None else candidate.mean)


class NoisyEmbedder:
    """The skills indicator plus a small text-hash jitter: near-duplicates at non-round distances."""

    name = "skills-noisy"

    def embed(self, texts):
        base = SkillsEmbedder().embed(texts)
        jitter = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little"))
                  .normal(scale=0.15, size=len(SKILLS)) for t in texts]
        return base + np.array(jitter)


def digest(result) -> str:
    """sha256 of the event log as written (JSON lines), the final memory in its order, and the curve."""
    h = hashlib.sha256()
    h.update("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in result.events).encode())
    h.update(json.dumps([c.to_dict() for c in result.memory]).encode())
    h.update(json.dumps([dict(vars(s)) for s in result.history]).encode())
    return h.hexdigest()[:20]


RUNS = {
    "mean-skills": dict(embedder=SkillsEmbedder(), cfg=dict(eps=0.5, test_every=2, final_reevaluation=2)),
    "ucb-skills": dict(embedder=SkillsEmbedder(), cfg=dict(eps=0.5, priority="ucb", num_candidates=3,
                                                           num_proposals=2)),
    "newest-eps0": dict(embedder=SkillsEmbedder(), cfg=dict(eps=0.0, priority="newest", num_candidates=2)),
    "oldest-noembedder": dict(embedder=None, cfg=dict(eps=0.0, priority="oldest", use_summarizer=False)),
    "mean-noisy": dict(embedder=NoisyEmbedder(), cfg=dict(eps=0.3, num_candidates=4, num_batches=2)),
    "user-rule": dict(embedder=NoisyEmbedder(), cfg=dict(eps=0.2, priority=ShortestFirst(), num_proposals=2)),
}

# Recorded with the code before the fast paths (commit c04e95a), by running this file.
DIGESTS = {
    "mean-skills": "f4949b6b63094063b0b8",
    "ucb-skills": "96e7f0874f7b5136fc09",
    "newest-eps0": "6221ebeaee263bbf4d6f",
    "oldest-noembedder": "6704e2184e16f32599af",
    "mean-noisy": "4d3deac5469942908f44",
    "user-rule": "3858e31c79a6032b8136",
}


def run_named(name, run_dir=None, evaluator=None):
    spec = RUNS[name]
    problem = skills_problem()
    if evaluator is not None:
        problem = evaluator(problem)
    config = PolcaConfig(Budget(max_metric_calls=300), **spec["cfg"])
    return polca(problem, ScriptedProposer(), config, embedder=spec["embedder"],
                 summarizer=SkillsSummarizer() if config.use_summarizer else None, seed=3, run_dir=run_dir,
                 progress=False)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_is_unchanged_by_the_fast_paths(name):
    assert digest(run_named(name)) == DIGESTS[name]


class Crash(BaseException):
    """The process dying mid-iteration (not an Exception: the loop cannot absorb it)."""


def test_resume_after_a_kill_rebuilds_the_caches_exactly(tmp_path):
    calls = []

    def crashing(problem):
        inner = problem.evaluator

        def evaluator(params, example, seed):
            if len(calls) >= 150:
                raise Crash()
            calls.append(1)
            return inner(params, example, seed)
        return replace(problem, evaluator=evaluator)

    with pytest.raises(Crash):
        run_named("mean-noisy", run_dir=tmp_path, evaluator=crashing)
    assert digest(run_named("mean-noisy", run_dir=tmp_path)) == DIGESTS["mean-noisy"]


if __name__ == "__main__":
    for run_name in sorted(RUNS):
        print(f'    "{run_name}": "{digest(run_named(run_name))}",')
