"""The one LLM interface every role codes against, a scripted fake for logic tests, and
`with_ledger`, which gives any LLM a ledger (for usage tracking).

The real client (Claude, any Anthropic-compatible endpoint, or the embedded local llama-server)
lives in `polca_nb.llm.client`; roles only need `LLM.complete`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from .ledger import Ledger, ledger_of
from .usage import prompt_chars


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

    Every request is recorded in `calls` so tests can assert on prompts. With a `ledger`, each reply
    is also recorded there as a free live call (zero tokens), so `ledger.track()` sees it.
    """

    replies: Sequence[str] | Callable[[dict[str, Any]], str] = ()
    calls: list[dict[str, Any]] = field(default_factory=list)
    ledger: Ledger | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def complete(self, *, system, messages, role, max_tokens=1024, temperature=0.0, sample_id=0,
                 tools=None, stop=None) -> LLMReply:
        request = {"system": system, "messages": list(messages), "role": role, "max_tokens": max_tokens,
                   "temperature": temperature, "sample_id": sample_id, "tools": tools, "stop": stop}
        with self._lock:
            index = len(self.calls)
            self.calls.append(request)
        started = time.perf_counter()
        try:
            if callable(self.replies):
                text = self.replies(request)
            else:
                if index >= len(self.replies):
                    raise RuntimeError(f"ScriptedLLM ran out of replies after {len(self.replies)} calls")
                text = self.replies[index]
        except Exception:
            if self.ledger is not None:
                record_reply(self.ledger, role, system, messages, None, time.perf_counter() - started)
            raise
        reply = LLMReply(text=text, content=({"type": "text", "text": text},), model="scripted")
        if self.ledger is not None:
            record_reply(self.ledger, role, system, messages, reply, time.perf_counter() - started)
        return reply


def record_reply(ledger: Ledger, role: str, system: str, messages: Sequence[dict[str, Any]],
                 reply: LLMReply | None, latency_s: float) -> None:
    """Record one request answered by an LLM that keeps no ledger of its own (price unknown: $0):
    a cache hit when the reply says `cached`, else a live call with the reply's tokens; `reply=None`
    is a failed request. The ledger's trackers see it as they see an LLMClient's requests."""
    if reply is None:
        ledger.record_error(role, latency_s=latency_s)
    elif reply.cached:
        ledger.record_cache_hit(role, latency_s=latency_s)
    else:
        ledger.record_call(role, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, usd=0.0,
                           latency_s=latency_s, cache_write_tokens=reply.cache_write_tokens,
                           cache_read_tokens=reply.cache_read_tokens)
    ledger.record_request(role, prompt_chars=prompt_chars(system, messages), reply=reply)


class LedgeredLLM:
    """An LLM that keeps no ledger, with one: every request is passed to `llm` and recorded on
    `ledger` (`record_reply`). Other attributes (model, calls, ...) are those of `llm`."""

    def __init__(self, llm: LLM, ledger: Ledger | None = None) -> None:
        self.llm = llm
        self.ledger = ledger if ledger is not None else Ledger()

    def complete(self, *, system: str, messages: Sequence[dict[str, Any]], role: str, max_tokens: int = 1024,
                 temperature: float = 0.0, sample_id: int = 0, tools: Sequence[dict[str, Any]] | None = None,
                 stop: Sequence[str] | None = None) -> LLMReply:
        started = time.perf_counter()
        try:
            reply = self.llm.complete(system=system, messages=messages, role=role, max_tokens=max_tokens,
                                      temperature=temperature, sample_id=sample_id, tools=tools, stop=stop)
        except Exception:
            record_reply(self.ledger, role, system, messages, None, time.perf_counter() - started)
            raise
        record_reply(self.ledger, role, system, messages, reply, time.perf_counter() - started)
        return reply

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the wrapper itself lacks (model, calls, close, ...).
        if "llm" not in self.__dict__:  # mid-unpickling or -copying
            raise AttributeError(name)
        return getattr(self.__dict__["llm"], name)

    def __repr__(self) -> str:
        return f"LedgeredLLM({self.llm!r})"


@runtime_checkable
class LedgerLLM(LLM, Protocol):
    """An LLM that keeps a Ledger (what `with_ledger` returns)."""

    ledger: Ledger


def with_ledger(llm: LLM) -> LedgerLLM:
    """`llm` itself when it keeps a Ledger (an LLMClient, a ScriptedLLM given one), else `llm` in a
    `LedgeredLLM` with a new one: either way `with_ledger(llm).ledger.track()` sees its requests."""
    return llm if ledger_of(llm) is not None else LedgeredLLM(llm)  # type: ignore[return-value]
