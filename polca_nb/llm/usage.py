"""Scoped usage tracking on a `Ledger`, like DSPy's `track_usage`: what a block of code asked of its
LLMs, per role, cache hits included.

    with client.ledger.track() as usage:
        run(...)
    usage.usage("task").input_tokens      # every reply's tokens, live or from the reply cache
    usage.requests()                      # {"proposer": 12, "task": 240, ...}

The ledger's own totals count live spend (a warm rerun costs nothing, so they show zero tokens);
a tracker counts every request its ledger's clients answered while it was active, with the token
counts each reply carries (a cache hit carries those stored with it). That is what a cost estimate
on a warm cache, or a per-run count of LLM calls on a shared client, needs. A tracker sees every
request on its ledger, from any thread: two runs tracked at once on one client see each other's.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import LLMReply
    from .ledger import Ledger


def prompt_chars(system: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """Characters of a request's prompt: the system prompt plus every message whose content is a
    string (structured content, e.g. tool results, is not counted)."""
    return len(system) + sum(len(m["content"]) if isinstance(m.get("content"), str) else 0 for m in messages)


@dataclass
class RequestUsage:
    """One role's requests while a tracker was active. `requests` counts every request (answered
    live, from the reply cache, or failed); `cache_hits` and `errors` are parts of it. Tokens are
    those of the replies, cached ones included: `input_tokens` is the uncached part of each prompt,
    `cache_write_tokens` / `cache_read_tokens` the parts the endpoint's prompt cache wrote / read."""

    requests: int = 0
    cache_hits: int = 0
    errors: int = 0
    prompt_chars: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens of the replies: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def per_request(self) -> tuple[float, float]:
        """(input tokens, output tokens) per request; NaN before the first request."""
        if self.requests == 0:
            return math.nan, math.nan
        return self.input_tokens / self.requests, self.output_tokens / self.requests

    def tokens_per_char(self) -> float:
        """Input tokens per prompt character; NaN before any prompt character."""
        return self.input_tokens / self.prompt_chars if self.prompt_chars else math.nan

    def add(self, other: RequestUsage) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class UsageTracker:
    """Per-role `RequestUsage` of the requests a ledger's clients answer while the tracker is active.

    Made active by `Ledger.track()`; inactive after `stop()` or the end of its `with` block, and
    still readable then. `roles` (None: all) limits it to those roles. Thread-safe.
    """

    def __init__(self, ledger: Ledger, roles: Iterable[str] | None = None) -> None:
        if isinstance(roles, str):
            raise TypeError(f"roles must be a collection of role names, got the string {roles!r}")
        self.ledger = ledger
        self.roles = None if roles is None else frozenset(roles)
        self._usage: dict[str, RequestUsage] = {}  # first-seen order
        self._lock = threading.Lock()
        self.active = False

    def start(self) -> UsageTracker:
        """(Re)start recording; no-op when active."""
        self.ledger._attach(self)
        return self

    def stop(self) -> UsageTracker:
        """Stop recording (what was recorded stays); no-op when stopped."""
        self.ledger._detach(self)
        return self

    def __enter__(self) -> UsageTracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, role: str, *, prompt_chars: int, reply: LLMReply | None) -> None:
        """One request of `role` with a prompt of `prompt_chars` characters, answered with `reply`
        (None: it failed). Called by the ledger for every active tracker."""
        if self.roles is not None and role not in self.roles:
            return
        with self._lock:
            usage = self._usage.setdefault(role, RequestUsage())
            usage.requests += 1
            usage.prompt_chars += int(prompt_chars)
            if reply is None:
                usage.errors += 1
                return
            usage.cache_hits += bool(reply.cached)
            usage.input_tokens += int(reply.input_tokens)
            usage.output_tokens += int(reply.output_tokens)
            usage.cache_write_tokens += int(reply.cache_write_tokens)
            usage.cache_read_tokens += int(reply.cache_read_tokens)

    def usage(self, role: str) -> RequestUsage:
        """A copy of one role's usage (zeros for a role not seen)."""
        with self._lock:
            return RequestUsage(**asdict(self._usage[role])) if role in self._usage else RequestUsage()

    def by_role(self) -> dict[str, RequestUsage]:
        """Copies of every role's usage, in the order the roles were first seen."""
        with self._lock:
            return {role: RequestUsage(**asdict(u)) for role, u in self._usage.items()}

    def requests(self) -> dict[str, int]:
        """Requests per role, in the order the roles were first seen."""
        with self._lock:
            return {role: u.requests for role, u in self._usage.items()}

    def total(self) -> RequestUsage:
        total = RequestUsage()
        for usage in self.by_role().values():
            total.add(usage)
        return total

    def snapshot(self) -> dict[str, dict[str, int]]:
        """JSON-able: {role: {...}, "total": {...}}, roles sorted."""
        usage = {role: asdict(u) for role, u in sorted(self.by_role().items())}
        usage["total"] = asdict(self.total())
        return usage

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"UsageTracker({state}, requests={self.requests()})"
