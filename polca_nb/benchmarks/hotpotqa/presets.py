"""HotpotQA presets (`smoke`, `paper`) and the parts of a run they make: problem, config, roles.

Train = test = the first `n` tasks; validation = the first `PAPER_NUM_VALIDATION` (10) of them, as in
the harness (`make_problem`). `setup(preset, llm)` returns all of it as one `BenchmarkSetup`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ...budget import Budget
from ...llm.base import LLM
from ...problem import PolcaConfig, Problem
from ...roles import LLMProposer, LLMSummarizer
from ...types import Example
from ..common import BenchmarkSetup, lookup_preset
from .data import PAPER_NUM_EXAMPLES, PAPER_NUM_VALIDATION, load_examples
from .evaluator import (INITIAL_INSTRUCTIONS, OBJECTIVE, PARAM_NAME, UPSTREAM_TASK_MAX_TOKENS, HotpotQAEvaluator,
                        render_input)


@dataclass(frozen=True)
class HotpotPreset:
    """A complete HotpotQA experiment: data size, loop knobs, model-call settings, seeds.

    Train = test = the first `n_examples` tasks; validation = the first `n_validation` of them (the
    harness's setup: 10, or all `n_examples` when there are fewer; `n_validation=None` validates on all
    `n_examples`, i.e. validation = train, this package's former setup). The budget is `iterations` (the
    paper's num_steps) unless `max_metric_calls` is set. `task_max_tokens` defaults to the harness's 4096.
    """

    name: str
    n_examples: int
    iterations: int
    seeds: tuple[int, ...]
    num_candidates: int = 5
    batch_size: int = 2
    eps: float = 0.1
    use_summarizer: bool = True
    priority: str = "mean"
    test_every: int = 10
    test_repeats: int = 5
    max_metric_calls: int | None = None
    max_paragraphs: int | None = None
    n_validation: int | None = PAPER_NUM_VALIDATION
    task_max_tokens: int = UPSTREAM_TASK_MAX_TOKENS
    task_temperature: float = 0.1
    proposer_max_tokens: int = 4096
    proposer_temperature: float = 0.7
    summarizer_max_tokens: int = 2048
    workers: int = 1

    def __post_init__(self) -> None:
        positive = ("n_examples", "iterations", "num_candidates", "batch_size", "test_every", "test_repeats",
                    "task_max_tokens", "proposer_max_tokens", "summarizer_max_tokens", "workers")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HotpotPreset.{name} must be a positive int, got {value!r}")
        if self.n_examples > PAPER_NUM_EXAMPLES:
            raise ValueError(f"HotpotPreset.n_examples must be <= {PAPER_NUM_EXAMPLES}, got {self.n_examples}")
        if self.batch_size > self.n_examples:
            raise ValueError(f"HotpotPreset.batch_size {self.batch_size} exceeds n_examples {self.n_examples}")
        if not self.seeds:
            raise ValueError(f"HotpotPreset.seeds must name at least one seed, got {self.seeds!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"HotpotPreset.eps must be a finite number >= 0, got {self.eps!r}")
        if self.max_paragraphs is not None and (not isinstance(self.max_paragraphs, int) or self.max_paragraphs < 1):
            raise ValueError(f"HotpotPreset.max_paragraphs must be None or an int >= 1, got {self.max_paragraphs!r}")
        if self.max_metric_calls is not None and self.max_metric_calls < 1:
            raise ValueError(f"HotpotPreset.max_metric_calls must be None or >= 1, got {self.max_metric_calls!r}")
        if self.n_validation is not None and (not isinstance(self.n_validation, int)
                                              or isinstance(self.n_validation, bool) or self.n_validation < 1):
            raise ValueError(f"HotpotPreset.n_validation must be None or an int >= 1, got {self.n_validation!r}")
        if self.batch_size > self.validation_size:
            raise ValueError(f"HotpotPreset.batch_size {self.batch_size} exceeds the {self.validation_size} "
                             f"validation tasks (n_validation={self.n_validation!r})")

    @property
    def validation_size(self) -> int:
        """How many tasks (the first ones) form the validation set."""
        return num_validation_tasks(self.n_examples, self.n_validation)


def num_validation_tasks(n_examples: int, n_validation: int | None = PAPER_NUM_VALIDATION) -> int:
    """min(n_validation, n_examples); all `n_examples` when `n_validation` is None."""
    return n_examples if n_validation is None else min(n_validation, n_examples)


SMOKE_TASK_MAX_TOKENS = 24
"""The smoke preset's task-reply cap for the offline 135M model (the paper preset uses the harness's 4096)."""

PRESETS: dict[str, HotpotPreset] = {
    # polca-method.md §3: 100 tasks (validation: the first 10), K=5, b=2, 100 steps, eps 0.1, summarizer, test
    # every 10 on 100 x 5, 3 seeds; task replies up to the harness's 4096 tokens.
    "paper": HotpotPreset("paper", n_examples=100, iterations=100, seeds=(0, 1, 2), num_candidates=5, batch_size=2,
                          eps=0.1, use_summarizer=True, test_every=10, test_repeats=5, max_paragraphs=None,
                          n_validation=PAPER_NUM_VALIDATION, task_max_tokens=UPSTREAM_TASK_MAX_TOKENS,
                          proposer_max_tokens=4096, summarizer_max_tokens=2048, workers=8),
    # Sized for the embedded SmolLM2-135M on 2 idle cores: 6 tasks (fewer than 10, so all 6 validate),
    # contexts cut to the 2 supporting paragraphs + 1 distractor (~400 instead of ~1,600 prompt tokens), and
    # task replies capped at SMOKE_TASK_MAX_TOKENS (24, not the paper's 4096: a short answer fits, and the 135M
    # model's rambling costs ~16 ms a token on these cores). Its 47 requests (38 task, 6 proposer,
    # 3 summarizer) need ~260 s of single-thread llama.cpp time (prefill ~117 tok/s, generation ~62 tok/s, measured
    # with llama-bench as CPU time), i.e. ~3-5 minutes for the whole notebook cold.
    "smoke": HotpotPreset("smoke", n_examples=6, iterations=3, seeds=(0,), num_candidates=2, batch_size=2,
                          eps=0.1, use_summarizer=True, test_every=1, test_repeats=1, max_paragraphs=3,
                          n_validation=PAPER_NUM_VALIDATION, task_max_tokens=SMOKE_TASK_MAX_TOKENS,
                          proposer_max_tokens=192, summarizer_max_tokens=160, workers=1),
}


def make_problem(examples: Sequence[Example], evaluator: HotpotQAEvaluator,
                 seed_instructions: str = INITIAL_INSTRUCTIONS, *,
                 n_validation: int | None = PAPER_NUM_VALIDATION) -> Problem:
    """One parameter `meta_instructions`; train = test = `examples`, validation = the first `n_validation`
    of them (the harness's `all_tasks[:num_validate_samples]`, 10 by default; all of them when there are
    fewer). `n_validation=None` validates on all `examples` (validation = train, the former setup)."""
    if not examples:
        raise ValueError("examples must not be empty")
    if n_validation is not None and (not isinstance(n_validation, int) or isinstance(n_validation, bool)
                                     or n_validation < 1):
        raise ValueError(f"n_validation must be None or an int >= 1, got {n_validation!r}")
    examples = list(examples)
    valset = examples[:num_validation_tasks(len(examples), n_validation)]
    return Problem(name="hotpotqa", seed_params={PARAM_NAME: seed_instructions}, trainset=examples,
                   evaluator=evaluator, valset=valset, testset=examples, score_range=(0.0, 1.0),
                   objective=OBJECTIVE)


def make_config(preset: HotpotPreset, **overrides: Any) -> PolcaConfig:
    """The preset's `PolcaConfig`; `overrides` replace fields (e.g. eps=0, use_summarizer=False)."""
    budget = Budget(max_metric_calls=preset.max_metric_calls) if preset.max_metric_calls else \
        Budget(max_iterations=preset.iterations)
    config = PolcaConfig(budget, num_candidates=preset.num_candidates, batch_size=preset.batch_size, eps=preset.eps,
                         priority=preset.priority, use_summarizer=preset.use_summarizer,
                         test_every=preset.test_every, test_repeats=preset.test_repeats)
    return replace(config, **overrides)


@dataclass(frozen=True)
class HotpotRoles:
    """The three LLM roles of a HotpotQA run, sharing one client."""

    evaluator: HotpotQAEvaluator
    proposer: LLMProposer
    summarizer: LLMSummarizer


def make_roles(llm: LLM, preset: HotpotPreset) -> HotpotRoles:
    """Task model, proposer and summarizer on one client (one cache, one ledger)."""
    evaluator = HotpotQAEvaluator(llm, max_tokens=preset.task_max_tokens, temperature=preset.task_temperature,
                                  max_paragraphs=preset.max_paragraphs)
    proposer = LLMProposer(llm, max_tokens=preset.proposer_max_tokens, temperature=preset.proposer_temperature,
                           objective=OBJECTIVE, render_input=render_input)
    summarizer = LLMSummarizer(llm, max_tokens=preset.summarizer_max_tokens, render_input=render_input)
    return HotpotRoles(evaluator, proposer, summarizer)


def get_preset(preset: str | HotpotPreset) -> HotpotPreset:
    """`preset` itself, or `PRESETS[preset]` for a name (ValueError naming the presets otherwise)."""
    return lookup_preset(PRESETS, preset, "HotpotQA")


def setup(preset: str | HotpotPreset, llm: LLM, *, examples: Sequence[Example] | None = None,
          **overrides: Any) -> BenchmarkSetup:
    """Problem, config, proposer and summarizer of one POLCA run of `preset` (a name or a HotpotPreset),
    all roles on `llm`; the same parts `experiment.run_seed` builds. `examples` defaults to the first
    `preset.n_examples` tasks of the data file; `overrides` replace config fields (as `make_config`).
    The summarizer is None when the config does not use one. Makes no LLM call."""
    preset = get_preset(preset)
    examples = list(examples) if examples is not None else load_examples(preset.n_examples)
    roles = make_roles(llm, preset)
    config = make_config(preset, **overrides)
    problem = make_problem(examples, roles.evaluator, n_validation=preset.n_validation)
    return BenchmarkSetup(problem, config, roles.proposer, roles.summarizer if config.use_summarizer else None)
