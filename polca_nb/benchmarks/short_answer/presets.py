"""Short-answer presets (`smoke`, `paper`: notebook 00's LLM-section knobs) and `setup`, which turns one
into the parts of a POLCA run. The paper has no short-answer task: `paper` is the quickstart's larger
scale (the paper's K=5, b=2 on 20 + 20 questions), not a published setting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...budget import Budget
from ...llm.base import LLM
from ...problem import PolcaConfig, Problem
from ...roles import LLMProposer, LLMSummarizer
from ..common import BenchmarkSetup, lookup_preset
from .data import QUESTIONS, examples
from .evaluator import OBJECTIVE, SEED_INSTRUCTIONS, ShortAnswerEvaluator


def short_answer_problem(task_llm: LLM, *, n_train: int = 20, n_test: int = 20, seed: int = 0,
                         temperature: float = 0.5) -> Problem:
    """Train (also validation) and test splits drawn from the questions with `seed`."""
    if n_train < 1 or n_test < 1 or n_train + n_test > len(QUESTIONS):
        raise ValueError(f"n_train + n_test must be between 2 and {len(QUESTIONS)}, got {n_train} + {n_test}")
    shuffled = examples(np.random.default_rng(seed))
    return Problem(
        name="short-answer",
        seed_params={"instructions": SEED_INSTRUCTIONS},
        trainset=shuffled[:n_train],
        testset=shuffled[n_train:n_train + n_test],
        evaluator=ShortAnswerEvaluator(task_llm, temperature=temperature),
        score_range=(0.0, 1.0),
        objective=OBJECTIVE,
    )


@dataclass(frozen=True)
class ShortAnswerPreset:
    """One short-answer experiment: the split, the loop's knobs and budget, the roles' settings, seeds."""

    name: str
    n_train: int
    n_test: int
    max_metric_calls: int
    seeds: tuple[int, ...]
    num_candidates: int = 5
    batch_size: int = 2
    eps: float = 0.15
    """Relative to the MiniLM embedder (notebook 00); the paper's 0.1 / 0.02 were for Gemini embeddings."""
    use_summarizer: bool = True
    data_seed: int = 0
    task_temperature: float = 0.5
    proposer_max_tokens: int = 512
    proposer_temperature: float = 0.8
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "max_metric_calls", "num_candidates", "batch_size",
                     "proposer_max_tokens", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ShortAnswerPreset.{name} must be a positive int, got {value!r}")
        if self.n_train + self.n_test > len(QUESTIONS):
            raise ValueError(f"ShortAnswerPreset n_train + n_test must be <= {len(QUESTIONS)}, "
                             f"got {self.n_train} + {self.n_test}")
        if not self.seeds:
            raise ValueError(f"ShortAnswerPreset.seeds must name at least one seed, got {self.seeds!r}")

    @property
    def summarizer_max_tokens(self) -> int:
        return 2 * self.proposer_max_tokens


PRESETS: dict[str, ShortAnswerPreset] = {
    # notebook 00's LLM section, KNOBS["smoke"]["llm"]: minutes on the embedded 135M model
    "smoke": ShortAnswerPreset("smoke", n_train=10, n_test=6, max_metric_calls=16, seeds=(0, 1, 2, 3, 4),
                               num_candidates=2, batch_size=1, eps=0.15, proposer_max_tokens=48, workers=2),
    # KNOBS["paper"]["llm"]: the paper's K and b on the full split, meant for a hosted model
    "paper": ShortAnswerPreset("paper", n_train=20, n_test=20, max_metric_calls=200, seeds=(0, 1, 2, 3, 4),
                               num_candidates=5, batch_size=2, eps=0.15, proposer_max_tokens=512, workers=8),
}


def get_preset(preset: str | ShortAnswerPreset) -> ShortAnswerPreset:
    """`preset` itself, or `PRESETS[preset]` for a name (ValueError naming the presets otherwise)."""
    return lookup_preset(PRESETS, preset, "short-answer")


def make_config(preset: ShortAnswerPreset, **overrides: Any) -> PolcaConfig:
    """The preset's `PolcaConfig`; `overrides` replace fields (e.g. eps=0, use_summarizer=False)."""
    config = PolcaConfig(Budget(max_metric_calls=preset.max_metric_calls), num_candidates=preset.num_candidates,
                         batch_size=preset.batch_size, eps=preset.eps, use_summarizer=preset.use_summarizer)
    return replace(config, **overrides)


def setup(preset: str | ShortAnswerPreset, llm: LLM, **overrides: Any) -> BenchmarkSetup:
    """Problem (task model on `llm`), config, proposer and summarizer of one POLCA run of `preset`, built
    as notebook 00 builds them; `overrides` replace config fields. Makes no LLM call."""
    preset = get_preset(preset)
    problem = short_answer_problem(llm, n_train=preset.n_train, n_test=preset.n_test, seed=preset.data_seed,
                                   temperature=preset.task_temperature)
    config = make_config(preset, **overrides)
    proposer = LLMProposer(llm, max_tokens=preset.proposer_max_tokens, temperature=preset.proposer_temperature,
                           objective=problem.objective)
    summarizer = LLMSummarizer(llm, max_tokens=preset.summarizer_max_tokens) if config.use_summarizer else None
    return BenchmarkSetup(problem, config, proposer, summarizer)
