"""The LLM customer (spec §7, strategy "llm"): the task instruction is its private goal.

Its history starts with the fixed agent greeting "Hi! How can I help you today?" as a user turn; its
replies are assistant turns and every agent message is a user turn. It says ###STOP### when the goal
is met. All randomness comes from `seed`, passed as `sample_id` (so resamples differ, reruns cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...llm.base import LLM
from .user import STOP_TOKEN

GREETING = "Hi! How can I help you today?"
NO_REPLY = "(no reply)"
"""Stands in for a blank simulator reply, which the Messages API would reject in the next call."""
NO_MESSAGE = "(no message)"
"""Stands in for a blank agent message, for the same reason."""

USER_SYSTEM_PROMPT = """You are a user talking to a customer service agent of an online retail store. You are the customer, not the agent.

Instruction: {instruction}

Rules:
- Write one short line per turn: the next thing this customer would say.
- Reveal the instruction gradually: give only what the current step of the conversation needs.
- Never make up facts the instruction does not give you (such as an order id, email or address); if asked for one, say you do not remember it or do not have it.
- When the goal in the instruction is met, reply with only {stop} to end the conversation.
- Do not repeat the instruction word for word; say it in your own words.
- Stay in character and sound natural."""


@dataclass
class LLMUser:
    """A `UserSimulator` over the `LLM` protocol (ledger role "user_sim"). Use one per episode."""

    llm: LLM
    seed: int = 0
    max_tokens: int = 256
    temperature: float = 1.0
    role: str = "user_sim"
    instruction: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    @property
    def system_prompt(self) -> str:
        if self.instruction is None:
            raise ValueError("LLMUser has no instruction yet: call reset(instruction) first")
        return USER_SYSTEM_PROMPT.format(instruction=self.instruction, stop=STOP_TOKEN)

    def reset(self, instruction: str) -> str:
        """Start a conversation for `instruction`; returns the customer's opening line."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        self.instruction = instruction
        self.messages = [{"role": "user", "content": GREETING}]
        return self._say()

    def reply(self, agent_message: str) -> str:
        """The customer's answer to one agent message."""
        if self.instruction is None:
            raise ValueError("LLMUser.reply called before reset(instruction)")
        self.messages.append({"role": "user", "content": agent_message if agent_message.strip() else NO_MESSAGE})
        return self._say()

    def _say(self) -> str:
        reply = self.llm.complete(system=self.system_prompt, messages=list(self.messages), role=self.role,
                                  max_tokens=self.max_tokens, temperature=float(self.temperature),
                                  sample_id=self.seed)
        text = reply.text.strip() or NO_REPLY
        self.messages.append({"role": "assistant", "content": text})
        return text
