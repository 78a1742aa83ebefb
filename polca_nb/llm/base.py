"""The one LLM interface every role codes against, plus a scripted fake for logic tests.

The real client (Claude, any Anthropic-compatible endpoint, or the embedded local llama-server)
lives in `polca_nb.llm.client`; roles only need `LLM.complete`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class LLMReply:
    """One model reply. `content` holds the Anthropic content blocks exactly as received (text,
    tool_use, thinking with its signature): a conversation passes them back unchanged.
    `input_tokens` is the uncached part of the prompt; cache writes/reads are counted apart."""

    text: str
    content: tuple[dict[str, Any], ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False
    latency_s: float = 0.0
    stop_reason: str | None = None
    model: str = ""
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


@runtime_checkable
class LLM(Protocol):
    """Messages-API completion. `role` names the ledger account (proposer, summarizer, task, ...);
    `sample_id` distinguishes deliberate resamples of the same request in the cache."""

    def complete(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        role: str,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        sample_id: int = 0,
        tools: Sequence[dict[str, Any]] | None = None,
        stop: Sequence[str] | None = None,
    ) -> LLMReply: ...


@dataclass
class ScriptedLLM:
    """A fake LLM for tests: replies come from a list (in order) or a function of the request.

    Every request is recorded in `calls` so tests can assert on prompts.
    """

    replies: Sequence[str] | Callable[[dict[str, Any]], str] = ()
    calls: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def complete(self, *, system, messages, role, max_tokens=1024, temperature=0.0, sample_id=0,
                 tools=None, stop=None) -> LLMReply:
        request = {"system": system, "messages": list(messages), "role": role, "max_tokens": max_tokens,
                   "temperature": temperature, "sample_id": sample_id, "tools": tools, "stop": stop}
        with self._lock:
            index = len(self.calls)
            self.calls.append(request)
        if callable(self.replies):
            text = self.replies(request)
        else:
            if index >= len(self.replies):
                raise RuntimeError(f"ScriptedLLM ran out of replies after {len(self.replies)} calls")
            text = self.replies[index]
        return LLMReply(text=text, content=({"type": "text", "text": text},), model="scripted")
