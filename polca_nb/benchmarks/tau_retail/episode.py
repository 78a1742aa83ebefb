"""Running agent episodes: one (instructions, task, seed) -> an `Episode` with its full transcript.

`run_episode` never raises for a failing run: an exception (an LLM error, a bad reply) ends the
episode with reward 0 and the error text, as upstream's runner scores it; `Episode.llm_failed` says
when that was an LLM call failing for good (an evaluation error, not the program's failure). A
`StopRun` (fatal error, spend limit) is not a failing run and propagates. `run_episodes` runs many
on a bounded thread pool; every episode starts from its own copy-on-write DB (`env.reset`).
"""

from __future__ import annotations

import html
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...errors import StopRun
from ...llm.client import LLMError
from .agent import AgentStep, TauAgent
from .data import Action, RetailData, Task
from .env import MAX_STEPS, EnvState, Turn, reset, step
from .reward import RESPOND, RewardInfo, changed_paths, replay_gold
from .user import UserSimulator

UserFactory = Callable[[int], UserSimulator]
"""Builds a fresh customer for an episode from the episode seed."""


@dataclass
class Episode:
    """One finished episode. `reward_info` is None when it was truncated or failed (reward 0).
    `db_mismatch` lists the "collection/key/field" paths where the final DB differs from the gold end
    state (computed for every episode, truncated ones too: it says what the agent left undone)."""

    task: Task
    seed: int
    instructions: str
    mode: str
    opening: str = ""
    turns: list[Turn] = field(default_factory=list)
    steps: list[AgentStep] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    reward_info: RewardInfo | None = None
    truncated: bool = False
    error: str | None = None
    llm_failed: bool = False    # `error` is an LLM call that failed for good, not the program's doing
    seconds: float = 0.0
    db_mismatch: tuple[str, ...] = ()

    @property
    def reward(self) -> float:
        return self.reward_info.reward if self.reward_info is not None else 0.0

    @property
    def ended(self) -> str:
        """How the episode ended: "stop", "transfer", "truncated", "error" or "unfinished"."""
        if self.error is not None:
            return "error"
        if self.truncated:
            return "truncated"
        if self.reward_info is None:
            return "unfinished"
        last = self.turns[-1] if self.turns else None
        return "transfer" if last is not None and last.action.name != RESPOND else "stop"

    def summary(self) -> dict[str, Any]:
        """One table row: task, seed, reward, how it ended, steps, seconds."""
        return {"task": self.task.id, "seed": self.seed, "reward": self.reward, "ended": self.ended,
                "steps": len(self.turns), "seconds": round(self.seconds, 2)}


def run_episode(data: RetailData, task: Task, agent: TauAgent, user: UserSimulator, *, instructions: str,
                seed: int, max_steps: int = MAX_STEPS) -> Episode:
    """Play one episode to its end (###STOP###, a transfer, or `max_steps` agent steps)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0 (it is the LLM sample_id), got {seed!r}")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    episode = Episode(task=task, seed=seed, instructions=instructions, mode=agent.mode)
    started = time.perf_counter()
    state: EnvState | None = None
    try:
        system = agent.system_prompt(instructions)
        state = reset(data, task, user, max_steps=max_steps)
        episode.opening = state.first_observation
        opening = state.first_observation if state.first_observation.strip() else "(the customer said nothing)"
        episode.messages = [{"role": "user", "content": opening}]  # the Messages API rejects blank text
        while not state.done:
            decision = agent.act(system, episode.messages, seed)
            episode.steps.append(decision)
            result = step(state, decision.action)
            agent.record(episode.messages, decision, result.observation)
    except StopRun:  # a fatal error or a spent limit ends the run, not just this episode
        raise
    except Exception as error:  # noqa: BLE001 -- any failure scores 0 and is reported, as upstream
        episode.error = f"{type(error).__name__}: {error}"
        episode.llm_failed = isinstance(error, LLMError)
    if state is not None:
        episode.turns = list(state.turns)
        episode.reward_info = state.reward_info if episode.error is None else None
        episode.truncated = state.truncated
        episode.db_mismatch = tuple(changed_paths(replay_gold(task, data), state.db))
    episode.seconds = time.perf_counter() - started
    return episode


def run_episodes(data: RetailData, tasks: Sequence[Task], seeds: Sequence[int], agent: TauAgent,
                 user_factory: UserFactory, *, instructions: str, max_steps: int = MAX_STEPS,
                 max_workers: int = 4) -> list[Episode]:
    """`run_episode` for each (task, seed) pair on up to `max_workers` threads; results in input order."""
    if len(tasks) != len(seeds):
        raise ValueError(f"seeds must pair with tasks: {len(seeds)} seeds for {len(tasks)} tasks")
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")

    def one(pair: tuple[Task, int]) -> Episode:
        task, seed = pair
        return run_episode(data, task, agent, user_factory(seed), instructions=instructions, seed=seed,
                           max_steps=max_steps)

    pairs = list(zip(tasks, (int(s) for s in seeds)))
    if max_workers == 1 or len(pairs) <= 1:
        return [one(p) for p in pairs]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(pairs))) as pool:
        return list(pool.map(one, pairs))


# -- transcripts ---------------------------------------------------------------------------------------

def _call_text(action: Action) -> str:
    return f"{action.name}({json.dumps(dict(action.kwargs), ensure_ascii=False)})"


def _clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f" ...[{len(text) - limit} chars]"


def transcript_lines(episode: Episode, observation_chars: int | None = 300) -> list[str]:
    """The conversation as text lines: customer and agent lines, tool calls with their (clipped) results."""
    lines = [f"Customer: {episode.opening}"] if episode.opening else []
    for turn in episode.turns:
        if turn.action.name == RESPOND:
            lines.append(f"Agent: {turn.action.kwargs.get('content', '')}")
            lines.append(f"Customer: {turn.observation}")
        else:
            lines.append(f"Agent calls {_call_text(turn.action)}")
            lines.append(f"  -> {_clip(turn.observation, observation_chars)}")
    if episode.error:
        lines.append(f"[episode failed: {episode.error}]")
    elif episode.truncated:
        lines.append(f"[cut off after {len(episode.turns)} agent steps without an end]")
    return lines


def transcript_text(episode: Episode, max_chars: int = 3000, observation_chars: int | None = 300) -> str:
    """`transcript_lines` joined and cut to `max_chars`, keeping the start and the end."""
    text = "\n".join(transcript_lines(episode, observation_chars))
    if len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    return f"{text[:head]}\n[... {len(text) - max_chars} characters omitted ...]\n{text[len(text) - tail:]}"


_CSS = ("<style>.tau-ep{font-family:sans-serif;font-size:13px;max-width:900px}"
        ".tau-ep .c{background:#eef4ff;padding:4px 8px;margin:3px 0;border-radius:6px}"
        ".tau-ep .a{background:#f2f2f2;padding:4px 8px;margin:3px 0 3px 40px;border-radius:6px}"
        ".tau-ep .t{font-family:monospace;font-size:12px;margin:3px 0 3px 40px;padding:4px 8px;"
        "border-left:3px solid #c90;background:#fffaf0;white-space:pre-wrap}"
        ".tau-ep .o{color:#555}.tau-ep .h{font-weight:bold;margin:6px 0}</style>")


def render_html(episode: Episode, observation_chars: int | None = 400) -> str:
    """The episode as HTML: customer and agent bubbles, tool calls with their results, the outcome."""
    esc = html.escape
    info = episode.reward_info
    outcome = f"reward {episode.reward:g}, ended by {episode.ended}, {len(episode.turns)} agent steps"
    if info is not None:
        outcome += f"; DB matches gold: {info.r_actions}"
        if info.missing_outputs:
            outcome += f"; missing outputs: {', '.join(info.missing_outputs)}"
    parts = [_CSS, '<div class="tau-ep">',
             f'<div class="h">Task {esc(episode.task.id)} (seed {episode.seed}, {esc(episode.mode)} mode): '
             f'{esc(outcome)}</div>']
    if episode.opening:
        parts.append(f'<div class="c"><b>Customer:</b> {esc(episode.opening)}</div>')
    for turn in episode.turns:
        if turn.action.name == RESPOND:
            parts.append(f'<div class="a"><b>Agent:</b> {esc(str(turn.action.kwargs.get("content", "")))}</div>')
            parts.append(f'<div class="c"><b>Customer:</b> {esc(turn.observation)}</div>')
        else:
            parts.append(f'<div class="t">🔧 {esc(_call_text(turn.action))}\n'
                         f'<span class="o">→ {esc(_clip(turn.observation, observation_chars))}</span></div>')
    if episode.error:
        parts.append(f'<div class="h">Failed: {esc(episode.error)}</div>')
    elif episode.truncated:
        parts.append(f'<div class="h">Cut off after {len(episode.turns)} agent steps.</div>')
    parts.append("</div>")
    return "".join(parts)
