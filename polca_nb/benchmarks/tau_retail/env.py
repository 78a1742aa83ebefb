"""One τ-bench retail episode as plain data (`EnvState`) driven by two functions, `reset` and `step`.

Episode rules: every `step` is one agent step (a tool call or a `respond`). The episode ends when
the customer's reply contains ###STOP###, when the agent calls a terminate tool
(transfer_to_human_agents), or, with reward 0 and no reward computed, after `max_steps` steps.
The reward is computed once, at the step that ends the episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .data import Action, Db, RetailData, Task, fresh_db
from .reward import RESPOND, RewardInfo, compute_reward
from .tools import TERMINATE_TOOLS, TOOLS, execute_tool
from .user import STOP_TOKEN, UserSimulator

MAX_STEPS = 30


@dataclass(frozen=True)
class Turn:
    """One step of the transcript. `source` is "user" for a respond, else the tool name."""

    action: Action
    observation: str
    source: str


@dataclass(frozen=True)
class StepResult:
    """What `step` returns. `reward` is 0.0 until the step that ends the episode."""

    observation: str
    source: str
    done: bool
    reward: float = 0.0
    truncated: bool = False
    reward_info: RewardInfo | None = None


@dataclass
class EnvState:
    """A running episode: its own DB, the customer, the transcript and the end-of-episode flags.

    `db` shares untouched records with the pristine data (copy-on-write, see `fresh_db`): change it
    only through tool actions.
    """

    data: RetailData
    task: Task
    db: Db
    user: UserSimulator | None
    first_observation: str
    max_steps: int = MAX_STEPS
    turns: list[Turn] = field(default_factory=list)
    done: bool = False
    truncated: bool = False
    reward_info: RewardInfo | None = None

    @property
    def steps(self) -> int:
        return len(self.turns)

    @property
    def actions(self) -> list[Action]:
        return [turn.action for turn in self.turns]

    @property
    def agent_messages(self) -> list[str]:
        """The contents of every `respond` so far: the only text the outputs check looks at."""
        return [str(turn.action.kwargs["content"]) for turn in self.turns if turn.action.name == RESPOND]

    @property
    def reward(self) -> float:
        """The episode reward: 0.0 unless the episode ended by STOP or transfer and scored 1."""
        return self.reward_info.reward if self.reward_info is not None else 0.0


def reset(data: RetailData, task: Task, user: UserSimulator | None = None, *, max_steps: int = MAX_STEPS) -> EnvState:
    """Start an episode on a pristine DB copy; the customer (if any) opens with `first_observation`.
    Without a user simulator only tool actions can be taken."""
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    if not isinstance(task, Task):
        raise ValueError(f"task must be a Task, got {type(task).__name__}")
    opening = user.reset(task.instruction) if user is not None else ""
    return EnvState(data=data, task=task, db=fresh_db(data), user=user, first_observation=opening, max_steps=max_steps)


def as_action(action: Action | Mapping[str, Any]) -> Action:
    """An Action from an Action or a {"name", "kwargs"} mapping (the task-file format)."""
    if isinstance(action, Action):
        return action
    if isinstance(action, Mapping) and "name" in action:
        return Action(name=action["name"], kwargs=action.get("kwargs", {}))
    raise ValueError(f"action must be an Action or a {{'name', 'kwargs'}} mapping, got {action!r}")


def _observe(state: EnvState, action: Action) -> tuple[str, str, bool]:
    """(observation, source, ends the episode) for one action, applied to `state.db`."""
    if action.name == RESPOND:
        content = action.kwargs.get("content")
        if not isinstance(content, str):
            raise ValueError(f"respond kwargs.content must be a string, got {content!r}")
        if state.user is None:
            raise ValueError("respond needs a user simulator; reset was called with user=None")
        reply = state.user.reply(content)
        return reply, "user", STOP_TOKEN in reply
    if action.name in TOOLS:
        return execute_tool(state.db, action.name, action.kwargs), action.name, action.name in TERMINATE_TOOLS
    return f"Unknown action {action.name}", action.name, False


def step(state: EnvState, action: Action | Mapping[str, Any]) -> StepResult:
    """Apply one agent action to the episode, updating `state` in place; ValueError once it is done."""
    if state.done:
        raise ValueError(f"step called on a finished episode of task {state.task.id}")
    action = as_action(action)
    observation, source, ends = _observe(state, action)
    state.turns.append(Turn(action, observation, source))
    if ends:
        state.done = True
        state.reward_info = compute_reward(state.db, state.task, state.agent_messages, state.data)
        return StepResult(observation, source, True, state.reward_info.reward, False, state.reward_info)
    if state.steps >= state.max_steps:
        state.done = state.truncated = True
        return StepResult(observation, source, True, 0.0, True, None)
    return StepResult(observation, source, False)
