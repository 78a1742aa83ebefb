"""τ-bench retail's evaluator: one episode per metric call, scored by the binary reward, with feedback.

    evaluator = TauEvaluator(data, TauAgent(llm, data.wiki), user_llm=llm)
    problem = tau_problem(data, evaluator, PRESETS["paper"])      # presets.py
    result = polca(problem, proposer, PRESETS["paper"].config(), ...)

One metric call = one episode of one task with one seed; score = the binary reward. The feedback
gives the reward, what went wrong (truncation, missing outputs, which DB fields differ from the gold
end state, the agent's writes) and the conversation truncated to a limit. Examples carry only the
task id and the customer instruction: the gold actions never reach the optimizer's prompt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ...errors import StopRun
from ...llm.base import LLM
from ...llm.client import LLMError
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

SEED_PARAMS: dict[str, str] = {PARAM: SEED_INSTRUCTIONS}
"""The seed program (what `tau_problem` starts from by default)."""


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

