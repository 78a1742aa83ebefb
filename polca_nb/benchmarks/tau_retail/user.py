"""The simulated customer's interface, and a scripted customer for tests and replays.

The LLM-backed simulator (upstream strategy "llm") will implement the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

STOP_TOKEN = "###STOP###"
"""The simulator ends the conversation by saying this; the env checks for it as a substring."""


@runtime_checkable
class UserSimulator(Protocol):
    """A customer: `reset` starts a conversation for an instruction and returns the opening line;
    `reply` answers one agent message."""

    def reset(self, instruction: str) -> str: ...

    def reply(self, agent_message: str) -> str: ...


@dataclass
class ScriptedUser:
    """Says `lines` in order: lines[0] opens, each `reply` returns the next. Records what it heard."""

    lines: Sequence[str]
    instruction: str | None = None
    heard: list[str] = field(default_factory=list)
    _next: int = 0

    def reset(self, instruction: str) -> str:
        self.instruction, self.heard, self._next = instruction, [], 0
        return self._say()

    def reply(self, agent_message: str) -> str:
        self.heard.append(agent_message)
        return self._say()

    def _say(self) -> str:
        if self._next >= len(self.lines):
            raise RuntimeError(f"ScriptedUser ran out of lines after {len(self.lines)}")
        line = self.lines[self._next]
        self._next += 1
        return line
