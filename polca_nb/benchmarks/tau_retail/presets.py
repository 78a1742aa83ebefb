"""τ-bench retail presets (`smoke`, `paper`) and the one function that turns a preset into a run's parts.

    parts = setup("paper", llm)             # BenchmarkSetup: problem, config, proposer, summarizer
    result = polca(parts.problem, parts.proposer, parts.config, summarizer=parts.summarizer, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ...budget import Budget
from ...llm.base import LLM
from ...problem import PolcaConfig, Problem
from ...roles import LLMProposer, LLMSummarizer
from ..common import BenchmarkSetup, lookup_preset
from .agent import ModeChoice, TauAgent
from .data import RetailData, load_retail
from .env import MAX_STEPS
from .evaluator import OBJECTIVE, PARAM, SEED_INSTRUCTIONS, TauEvaluator, task_examples
from .metrics import PAPER_GROUPS


@dataclass(frozen=True)
class TauPreset:
    """A full experimental setting: data split, POLCA knobs, and agent/customer/optimizer limits.

    Task fields are indices into the test split. `groups` maps table columns to the tasks evaluated
    for them (the paper: first 10 / last 105 / all 115).
    """

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    groups: Mapping[str, tuple[int, ...]]
    num_candidates: int
    batch_size: int
    iterations: int
    eps: float
    use_summarizer: bool
    max_steps: int
    validation_batch_size: int | None = None
    num_batches: int = 1
    agent_max_tokens: int = 1024
    user_max_tokens: int = 256
    user_temperature: float = 1.0
    observation_chars: int | None = None
    catalog_detail: bool = True
    proposer_max_tokens: int = 4096
    proposer_temperature: float = 0.7
    summarizer_max_tokens: int = 2048
    conversation_chars: int = 3000
    max_workers: int = 20
    note: str = ""

    @property
    def test(self) -> tuple[int, ...]:
        """Every task any table column evaluates, sorted."""
        return tuple(sorted({i for indices in self.groups.values() for i in indices}))

    def config(self, **overrides: Any) -> PolcaConfig:
        """The PolcaConfig of this preset (budget = `iterations`); `overrides` replace PolcaConfig fields."""
        config = PolcaConfig(Budget(max_iterations=self.iterations), num_candidates=self.num_candidates,
                             batch_size=self.batch_size, num_batches=self.num_batches,
                             validation_batch_size=self.validation_batch_size, eps=self.eps,
                             use_summarizer=self.use_summarizer)
        return replace(config, **overrides)

    def with_(self, **changes: Any) -> "TauPreset":
        return replace(self, **changes)


PRESETS: dict[str, TauPreset] = {
    "paper": TauPreset(
        name="paper", train=tuple(range(10)), val=tuple(range(10)), groups=PAPER_GROUPS,
        num_candidates=5, batch_size=2, iterations=101, eps=0.1, use_summarizer=True, max_steps=MAX_STEPS,
        max_workers=20,
        note="polca-method.md §3: first 10 test tasks train and validate, K=5, b=2, 101 iterations, eps 0.1, "
             "summarizer on; table over all 115 test tasks",
    ),
    "smoke": TauPreset(
        name="smoke", train=(0, 5), val=(0, 5), groups={"first 10": (0, 5), "last 105": (10, 11),
                                                          "all 115": (0, 5, 10, 11)},
        num_candidates=2, batch_size=1, validation_batch_size=1, iterations=1, eps=0.1, use_summarizer=True,
        max_steps=6, agent_max_tokens=120, user_max_tokens=48, observation_chars=500, catalog_detail=False,
        proposer_max_tokens=300, summarizer_max_tokens=200, conversation_chars=1500, max_workers=2,
        note="offline plumbing run: tasks 0 and 5 train/validate; the table uses tasks 0, 5 (of the first 10) "
             "and 10, 11 (of the last 105); max_steps lowered from 30 to 6 and short replies so it fits the "
             "notebook's time box",
    ),
}


def tau_problem(data: RetailData, evaluator: TauEvaluator, preset: TauPreset, *,
                seed_instructions: str = SEED_INSTRUCTIONS) -> Problem:
    """The POLCA Problem of a preset: train/val examples from the test split, test = every table task."""
    return Problem(
        name=f"tau-retail-{preset.name}",
        seed_params={PARAM: seed_instructions},
        trainset=task_examples(data, preset.train),
        valset=task_examples(data, preset.val),
        testset=task_examples(data, preset.test),
        evaluator=evaluator,
        score_range=(0.0, 1.0),
        objective=OBJECTIVE,
    )


def make_evaluator(data: RetailData, llm: LLM, preset: TauPreset, *, user_llm: LLM | None = None,
                   mode: ModeChoice = "auto") -> TauEvaluator:
    """The evaluator of a preset: `llm` drives the agent (and the customer unless `user_llm`)."""
    agent = TauAgent(llm, data.wiki, mode=mode, max_tokens=preset.agent_max_tokens,
                     observation_chars=preset.observation_chars, catalog_detail=preset.catalog_detail)
    return TauEvaluator(data, agent, user_llm if user_llm is not None else llm,
                        user_max_tokens=preset.user_max_tokens, user_temperature=preset.user_temperature,
                        max_steps=preset.max_steps, conversation_chars=preset.conversation_chars)


def make_optimizer_roles(llm: LLM, preset: TauPreset) -> tuple[LLMProposer, LLMSummarizer]:
    """The proposer and summarizer of a preset, with room in their prompts for the whole feedback."""
    feedback_chars = preset.conversation_chars + 1500  # the reasons come before the conversation
    proposer = LLMProposer(llm, max_tokens=preset.proposer_max_tokens, temperature=preset.proposer_temperature,
                           objective=OBJECTIVE, feedback_chars=feedback_chars)
    summarizer = LLMSummarizer(llm, max_tokens=preset.summarizer_max_tokens,
                               feedback_chars=min(feedback_chars, 2000))
    return proposer, summarizer



def get_preset(preset: str | TauPreset) -> TauPreset:
    """A preset by name ("smoke", "paper"), or the given TauPreset itself."""
    return lookup_preset(PRESETS, preset, "τ-bench")


def setup(preset: str | TauPreset, llm: LLM, *, data: RetailData | None = None, user_llm: LLM | None = None,
          mode: ModeChoice = "auto", **overrides: Any) -> BenchmarkSetup:
    """Problem, config, proposer and summarizer of one POLCA run of `preset` (a name or a TauPreset):
    `make_evaluator` (agent on `llm`, the customer on `user_llm` or `llm`), `tau_problem`,
    `make_optimizer_roles` and `preset.config(**overrides)` (`overrides` replace PolcaConfig fields).
    `data` defaults to `load_retail()`. The summarizer is None when the config does not use one.
    Makes no LLM call."""
    preset = get_preset(preset)
    data = data if data is not None else load_retail()
    evaluator = make_evaluator(data, llm, preset, user_llm=user_llm, mode=mode)
    config = preset.config(**overrides)
    proposer, summarizer = make_optimizer_roles(llm, preset)
    return BenchmarkSetup(tau_problem(data, evaluator, preset), config, proposer,
                          summarizer if config.use_summarizer else None)
