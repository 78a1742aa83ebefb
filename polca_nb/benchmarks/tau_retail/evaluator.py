"""τ-bench retail as a POLCA problem: optimize the agent's "additional instructions".

    evaluator = TauEvaluator(data, TauAgent(llm, data.wiki), user_llm=llm)
    problem = tau_problem(data, evaluator, PRESETS["paper"])
    result = polca(problem, proposer, PRESETS["paper"].config(), ...)

One metric call = one episode of one task with one seed; score = the binary reward. The feedback
gives the reward, what went wrong (truncation, missing outputs, which DB fields differ from the gold
end state, the agent's writes) and the conversation truncated to a limit. Examples carry only the
task id and the customer instruction: the gold actions never reach the optimizer's prompt.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np

from ...budget import Budget
from ...errors import StopRun
from ...llm.base import LLM
from ...llm.client import LLMError
from ...llm.config import Price
from ...roles import LLMProposer, LLMSummarizer
from ...problem import PolcaConfig, Problem
from ...search import exploration_batches
from ...types import Evaluation, Example, Params
from .agent import TauAgent
from .data import RetailData, Task
from .env import MAX_STEPS
from .episode import Episode, run_episode, transcript_text
from .llm_user import LLMUser
from .reward import RESPOND, outputs_found
from .tools import TOOLS
from .user import STOP_TOKEN

PARAM = "additional_instructions"
SEED_INSTRUCTIONS = ""
"""The base prompt is the wiki alone (upstream's agent): the seed program has empty instructions."""

OBJECTIVE = (
    "The parameter holds additional instructions appended to the system prompt of a customer-service agent "
    "for an online retail store. The agent follows a fixed policy (authenticate the customer, confirm before "
    "any change, only modify pending orders, only return or exchange delivered ones, one tool call at a time) "
    "and acts through tools on the store database. A task succeeds only if, at the end of the conversation, the "
    "database is exactly in the state the customer's request calls for and the agent told the customer every "
    "fact the task needs. Write general instructions that make the agent succeed on tasks like these; do not "
    "mention specific customers, orders or item ids."
)


# -- examples and feedback ------------------------------------------------------------------------------

def task_example(task: Task) -> Example:
    """An Example for one task: id "test/3", data = {task id, customer instruction} (no gold)."""
    return Example(task.id, {"task": task.id, "instruction": task.instruction})


def task_examples(data: RetailData, indices: Sequence[int], split: str = "test") -> list[Example]:
    return [task_example(data.task(split, int(i))) for i in indices]


def resolve_task(data: RetailData, example: Example) -> Task:
    """The Task an Example points to ("split/index" in its id or in data["task"])."""
    key = example.data.get("task", example.id) if isinstance(example.data, Mapping) else example.id
    split, _, index = str(key).partition("/")
    if not index.isdigit():
        raise ValueError(f"example {example.id!r} does not name a task as 'split/index': {key!r}")
    return data.task(split, int(index))


def agent_writes(episode: Episode) -> list[str]:
    """The agent's write-tool calls that succeeded (did not observe "Error: ..."), as name(args) text."""
    return [f"{t.action.name}({', '.join(f'{k}={v!r}' for k, v in t.action.kwargs.items())})"
            for t in episode.turns
            if t.action.name in TOOLS and TOOLS[t.action.name].writes and not t.observation.startswith("Error")]


def action_trace(episode: Episode) -> str:
    """The agent's steps as one line: tool names and 'respond', consecutive repeats folded (x3)."""
    names = [t.action.name for t in episode.turns]
    folded: list[str] = []
    for name in names:
        if folded and folded[-1].split(" x")[0] == name:
            count = int(folded[-1].split(" x")[1]) + 1 if " x" in folded[-1] else 2
            folded[-1] = f"{name} x{count}"
        else:
            folded.append(name)
    return " -> ".join(folded) if folded else "(no steps)"


def what_went_wrong(episode: Episode, max_paths: int = 12) -> list[str]:
    """Plain-language reasons for a failed episode (empty for reward 1)."""
    if episode.reward >= 1.0:
        return []
    reasons = []
    if episode.error is not None:
        reasons.append(f"The episode crashed: {episode.error}")
    elif episode.truncated:
        reasons.append(f"The conversation was cut off after {len(episode.turns)} agent steps: the customer never "
                       f"ended it ({STOP_TOKEN}) and the agent did not transfer, so the task counts as failed.")
    elif episode.ended == "transfer":
        reasons.append("The agent transferred the customer to a human agent.")
    if episode.db_mismatch:
        shown = ", ".join(episode.db_mismatch[:max_paths])
        more = f" (+{len(episode.db_mismatch) - max_paths} more)" if len(episode.db_mismatch) > max_paths else ""
        reasons.append(f"The final database differs from the expected end state at: {shown}{more}.")
    elif episode.error is None:
        reasons.append("The database ended in the expected state.")
    writes = agent_writes(episode)
    reasons.append("The agent's successful database writes: " + ("; ".join(writes) if writes else "none") + ".")
    if episode.task.outputs:
        said = [str(t.action.kwargs.get("content", "")) for t in episode.turns if t.action.name == RESPOND]
        missing = [o for o, found in outputs_found(episode.task.outputs, said).items() if not found]
        if missing:
            reasons.append("The agent never told the customer these required facts: "
                           + ", ".join(f'"{m}"' for m in missing) + ".")
    return reasons


def episode_feedback(episode: Episode, conversation_chars: int = 3000) -> str:
    """Reward, what went wrong, and the conversation cut to `conversation_chars` characters."""
    if episode.reward >= 1.0:
        head = "Reward: 1 (success: the database matches the expected end state and all required facts were said)."
    else:
        head = "Reward: 0 (failure)."
    lines = [head, *[f"- {reason}" for reason in what_went_wrong(episode)]]
    lines += ["Conversation:", transcript_text(episode, max_chars=conversation_chars)]
    return "\n".join(lines)


# -- the evaluator ----------------------------------------------------------------------------------------

@dataclass
class TauEvaluator:
    """Implements `Evaluator`: one episode of `agent` with an `LLMUser` customer per (params, task, seed).

    The seed is the `sample_id` of every agent and customer call, so repeated evaluations are fresh
    samples while reruns hit the LLM cache. With `keep_episodes`, every episode is kept in `episodes`
    (thread-safe) for transcripts and tables.
    """

    data: RetailData
    agent: TauAgent
    user_llm: LLM
    user_max_tokens: int = 256
    user_temperature: float = 1.0
    max_steps: int = MAX_STEPS
    conversation_chars: int = 3000
    param: str = PARAM
    keep_episodes: bool = True
    episodes: list[Episode] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if not isinstance(self.conversation_chars, int) or self.conversation_chars < 100:
            raise ValueError(f"conversation_chars must be an int >= 100, got {self.conversation_chars!r}")
        LLMUser(self.user_llm, max_tokens=self.user_max_tokens, temperature=self.user_temperature)  # validates

    def user(self, seed: int) -> LLMUser:
        return LLMUser(self.user_llm, seed=seed, max_tokens=self.user_max_tokens, temperature=self.user_temperature)

    def run(self, params: Params, task: Task, seed: int) -> Episode:
        """One episode of `task` with the instructions in `params[self.param]`."""
        if self.param not in params:
            raise ValueError(f"params must contain {self.param!r}, got keys {sorted(params)}")
        episode = run_episode(self.data, task, self.agent, self.user(int(seed)), instructions=params[self.param],
                              seed=int(seed), max_steps=self.max_steps)
        if self.keep_episodes:
            with self._lock:
                self.episodes.append(episode)
        return episode

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        try:
            episode = self.run(params, resolve_task(self.data, example), seed)
        except StopRun:  # a fatal error or a spent limit ends the run
            raise
        except LLMError as error:  # the episode could not be played: an evaluation error, not a program failure
            text = f"{type(error).__name__}: {error}"
            return Evaluation(0.0, f"Reward: 0 (not scored).\n- The evaluation failed: {text}", error=text)
        except Exception as error:  # noqa: BLE001 -- the Evaluator contract: a bad program scores 0
            return Evaluation(0.0, f"Reward: 0 (failure).\n- The evaluation failed: {type(error).__name__}: {error}")
        feedback = episode_feedback(episode, self.conversation_chars)
        if episode.llm_failed:  # an agent or customer LLM call failed for good mid-episode
            return Evaluation(0.0, feedback, action_trace(episode), error=episode.error)
        return Evaluation(episode.reward, feedback, action_trace(episode))


def evaluate_program(evaluator: TauEvaluator, params: Params, tasks: Sequence[Task], *, seed: int,
                     repeats: int = 1, max_workers: int = 4) -> list[Episode]:
    """Episodes of `params` on every task, `repeats` times, on a bounded thread pool.

    Episode seeds come from `np.random.default_rng(seed)` by position, so two programs evaluated with
    the same `seed` meet the same customer samples (and an unchanged program reuses cached replies).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
    jobs = [task for _ in range(repeats) for task in tasks]
    seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(jobs))]
    if max_workers == 1 or len(jobs) <= 1:
        return [evaluator.run(params, task, s) for task, s in zip(jobs, seeds)]
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only for the parallel path

    with ThreadPoolExecutor(max_workers=min(max_workers, len(jobs))) as pool:
        return list(pool.map(lambda job: evaluator.run(params, job[0], job[1]), zip(jobs, seeds)))


# -- the paper's table --------------------------------------------------------------------------------------

PAPER_GROUPS: dict[str, tuple[int, ...]] = {
    "first 10": tuple(range(10)),
    "last 105": tuple(range(10, 115)),
    "all 115": tuple(range(115)),
}
"""The column groups of the paper's Pass@1 table (test-split indices)."""


def pass_at_1(episodes: Sequence[Episode], groups: Mapping[str, Sequence[int]]) -> dict[str, tuple[float, int]]:
    """For each group: (mean reward over the episodes of its tasks, number of episodes); NaN if none."""
    out = {}
    for name, indices in groups.items():
        wanted = set(int(i) for i in indices)
        rewards = [e.reward for e in episodes if e.task.index in wanted]
        out[name] = (float(np.mean(rewards)) if rewards else math.nan, len(rewards))
    return out


# -- presets ------------------------------------------------------------------------------------------------

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
                   mode: str = "auto") -> TauEvaluator:
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


# -- reference numbers and cost ---------------------------------------------------------------------------

def paper_reference() -> dict[str, Any]:
    """The paper's τ-bench numbers (`polca_nb/reference/tau_bench.json`, each with its source)."""
    text = resources.files("polca_nb").joinpath("reference").joinpath("tau_bench.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class CostModel:
    """Token assumptions for pricing a run before it happens (per call, Claude tokenizer).

    Defaults are our estimates, not measurements: the agent's system prompt (wiki ~1.3k tokens) plus the
    16 tool schemas (~2k) plus a history that grows to a few thousand tokens gives ~6.5k input tokens
    per agent call on average over a ~12-step episode; the customer sees a short prompt. The proposer
    reads two full feedbacks; the summarizer up to five candidates with two trajectories each.

    With prompt caching (the client marks the tools, the system prompt and the conversation's last
    message), each agent or customer call reads everything it sent before from the cache and writes
    only the turns added since (`*_new_tokens_per_call`); the first agent call of an episode also
    writes the wiki and instructions. The proposer's and summarizer's prompts are one-offs.
    """

    agent_calls_per_episode: float = 12.0
    agent_input_tokens: float = 6500.0
    agent_output_tokens: float = 80.0
    user_calls_per_episode: float = 6.0
    user_input_tokens: float = 1000.0
    user_output_tokens: float = 30.0
    proposer_input_tokens: float = 8000.0
    proposer_output_tokens: float = 1500.0
    summarizer_input_tokens: float = 10000.0
    summarizer_output_tokens: float = 1000.0
    agent_new_tokens_per_call: float = 550.0
    agent_system_tokens: float = 1400.0
    user_new_tokens_per_call: float = 150.0

    def episodes(self, preset: TauPreset, table_programs: int = 2) -> int:
        """Episodes of a run whose memory holds K candidates from iteration 1 on: per iteration K*b*m
        exploration + K*m*P validation batches of b*m; the first iteration explores only the seed, with
        m scaled to K*m (a round popping fewer than K costs more: its validation batches grow too);
        plus `table_programs` full passes over the table's tasks."""
        config = preset.config()

        def iteration_episodes(popped: int) -> int:
            m = exploration_batches(config.num_batches, config.num_candidates, popped)
            return (popped * config.batch_size * m
                    + popped * m * config.num_proposals * config.validation_batch(m))

        rest = max(0, preset.iterations - 1) * iteration_episodes(config.num_candidates)
        return iteration_episodes(1) + rest + table_programs * len(preset.test)

    def usd(self, preset: TauPreset, price: Price, table_programs: int = 2, *,
            caching: bool = False) -> dict[str, float]:
        """Estimated USD per role (task, user_sim, proposer, summarizer) and the total, at `price`,
        without or with prompt caching."""
        config = preset.config()
        episodes = self.episodes(preset, table_programs)
        proposals = preset.iterations * config.num_candidates * config.num_batches * config.num_proposals
        summaries = preset.iterations if config.use_summarizer else 0

        def conversation_call(tokens_in: float, tokens_out: float, new: float) -> float:
            if not caching:
                return price.cost(tokens_in, tokens_out)
            new = min(new, tokens_in)
            return price.cost(0, tokens_out, cache_write_tokens=new, cache_read_tokens=tokens_in - new)

        first_write = (price.cache_write_per_mtok - price.cache_read_per_mtok) * self.agent_system_tokens / 1e6
        cost = {
            "task": episodes * (self.agent_calls_per_episode * conversation_call(
                self.agent_input_tokens, self.agent_output_tokens, self.agent_new_tokens_per_call)
                + (first_write if caching else 0.0)),
            "user_sim": episodes * self.user_calls_per_episode * conversation_call(
                self.user_input_tokens, self.user_output_tokens, self.user_new_tokens_per_call),
            "proposer": proposals * price.cost(self.proposer_input_tokens, self.proposer_output_tokens),
            "summarizer": summaries * price.cost(self.summarizer_input_tokens, self.summarizer_output_tokens),
        }
        cost["total"] = sum(cost.values())
        return cost


def comparison_table(ours: Mapping[str, Sequence[Episode]], groups: Mapping[str, Sequence[int]],
                     reference: Mapping[str, Any] | None = None, reference_rows: Sequence[str] = ("Base prompt", "POLCA")):
    """Pass@1 per table column: one row per program of ours ("ours: <name>"), then the paper's rows
    ("paper: <name>") from `reference` (the `paper_reference()` dict). A pandas DataFrame."""
    import pandas as pd  # noqa: PLC0415 - notebooks-only dependency

    rows = {}
    for name, episodes in ours.items():
        table = pass_at_1(episodes, groups)
        rows[f"ours: {name}"] = {column: round(value, 3) for column, (value, _) in table.items()}
    if reference is not None:
        paper = reference["table"]["rows"]
        for name in reference_rows:
            rows[f"paper: {name}"] = {column: paper[name].get(column, math.nan) for column in groups}
    return pd.DataFrame(rows).T[list(groups)]


def plot_comparison(ax, table, title: str = "") -> None:
    """Grouped bars of a `comparison_table`: one group per column, ours solid, the paper's hatched."""
    columns = list(table.columns)
    names = list(table.index)
    width = 0.8 / max(1, len(names))
    x = np.arange(len(columns))
    colors = {"base": "#8c8c8c", "other": "#1f77b4"}
    for i, name in enumerate(names):
        is_base = "base" in name.lower()
        paper = name.startswith("paper")
        values = table.loc[name].astype(float).to_numpy()
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, np.nan_to_num(values), width,
                      color=colors["base" if is_base else "other"], alpha=0.45 if paper else 0.95,
                      hatch="//" if paper else None, edgecolor="black", linewidth=0.5, label=name)
        for bar, value in zip(bars, values):
            label = "n/a" if math.isnan(value) else f"{value:.2f}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, columns)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("Pass@1")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", ncols=2)
    if title:
        ax.set_title(title, fontsize=10)
