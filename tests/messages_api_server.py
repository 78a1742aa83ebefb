"""A local stand-in for the Anthropic Messages API that enforces its documented validation rules.

Tests point the real anthropic SDK (through `LLMClient(base_url=server.url)`) at it, so a request that
Claude would reject fails here with the status, error type and message Claude would send:

    with MessagesAPIServer(script=["Paris"]) as api:
        client = LLMClient(model="claude-sonnet-5-5", base_url=api.url, api_key=api.api_key)
        ...
        assert api.rejected() == []

What it speaks: `POST /v1/messages` (JSON, or an SSE event stream when the body says `stream: true`),
`POST /v1/messages/count_tokens`, `GET /v1/models[/{id}]`. Errors have the documented shape
`{"type": "error", "error": {"type", "message"}, "request_id"}` and every response a `request-id` header.

What it enforces, for the `anthropic-version` the request carries (the installed SDK sends
`SDK_API_VERSION`); the sources are the API documentation as gathered in the project's notes:
- version 2026-10-21 removed `temperature`, `top_p`, `top_k`: any of them -> 400 "<name>: Extra inputs are
  not permitted"; on older versions models of the newer generations still reject non-default sampling;
- every other unknown field, at the top level or inside a message, block, tool or config -> 400
  "Extra inputs are not permitted";
- model ids: the table `MODELS` (current and legacy models); anything else, retired ones included -> 404;
- `max_tokens`: an int in [0, the model's maximum output];
- `system`: a string or a list of non-empty text blocks; `tools`: name (pattern), optional description,
  `input_schema` object, unique names; `tool_choice`; `thinking` and `output_config.effort` per model;
- messages: roles user/assistant, consecutive same-role turns are combined (documented), the first turn
  is a user turn; no empty or whitespace-only text; user text with citations rejected (2026-10-21);
  prefill only on models that support it; every `tool_use` of an assistant turn answered by a
  `tool_result` with its id in the next user turn, tool_result blocks first in that turn; no tool_result
  without its tool_use; requests holding tool blocks must define `tools`;
- thinking: replies of thinking models start with signed thinking blocks (HMAC); a block passed back must
  carry a valid signature, and the thinking blocks of a reply whose tool calls are being answered must be
  passed back unchanged in that assistant turn; on models with preserved thinking (Fable 5.1 onward) a
  block is valid only after the same system prompt, tools and earlier turns it was generated after;
- the prompt (crude count) must fit the model's context window;
- `cache_control`: `{"type": "ephemeral"}` with optional ttl "5m" | "1h", only on tools, system text blocks
  and message content blocks (plus the top-level automatic form), at most 4, no 1h after a 5m one.

Replies come from `script`: a list (consumed in order) or a function of the `ScriptRequest`, giving text,
`ToolUse` blocks, a list of those, or an `ApiError` to return instead. Thinking tokens count inside
`max_tokens` (a budget too small to finish thinking returns only the thinking block, stop_reason
"max_tokens"); usage reports simulated prompt caching (a prefix marked with cache_control that was
written before is read, at least the model's minimum cacheable length; tokens ~ len(text) / 4).
Every request is logged (`requests`) with its headers, body, status and reply.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Mapping, Sequence

try:  # the version the installed SDK sends; the server enforces the rules of whatever a request carries
    from anthropic._constants import ANTHROPIC_API_VERSION as SDK_API_VERSION
except ImportError:  # pragma: no cover - the SDK is a dependency of the llm extra
    SDK_API_VERSION = "2026-10-21"

import pytest

# --- API versions ------------------------------------------------------------------------------------

KNOWN_VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
SAMPLING_REMOVED_IN = "2026-10-21"
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")

# --- models ------------------------------------------------------------------------------------------

EFFORTS = ("low", "medium", "high", "xhigh", "max")
THINKING_TOKENS_BY_EFFORT = {"low": 64, "medium": 256, "high": 512, "xhigh": 1024, "max": 2048}
"""Simulated thinking length of one reply (tokens). Real thinking is often longer: a client must budget
max_tokens for it, not rely on these numbers."""


@dataclass(frozen=True)
class ModelSpec:
    """What the server knows of one model (documented facts; `guess` names the fields that are not).

    thinking: "off" (only when asked for), "on" (by default, may be turned off), "always" (cannot be off).
    thinking_types: the accepted `thinking.type` values. effort: the default `output_config.effort`,
    None when the model takes no effort parameter. fixed_sampling: rejects non-default temperature /
    top_p / top_k on every API version. forced_tools: accepts tool_choice any/tool. preserved_thinking
    (Fable 5.1 onward): a thinking block passed back is valid only if nothing before it (system, tools,
    earlier messages) changed since it was generated.
    """

    id: str
    max_output: int
    min_cache_tokens: int
    thinking: str = "off"
    thinking_types: frozenset[str] = frozenset({"disabled"})
    effort: str | None = None
    fixed_sampling: bool = False
    prefill: bool = True
    forced_tools: bool = True
    preserved_thinking: bool = False  # thinking blocks are bound to the prefix they were generated after
    context: int = 200_000
    aliases: tuple[str, ...] = ()
    guess: tuple[str, ...] = ()


def _spec(id: str, **kw: Any) -> ModelSpec:
    kw["thinking_types"] = frozenset(kw.get("thinking_types", {"disabled"}))
    return ModelSpec(id, **kw)


_FIVE_ALWAYS = dict(max_output=128_000, min_cache_tokens=512, thinking="always", thinking_types={"adaptive"},
                    fixed_sampling=True, prefill=False, forced_tools=False, context=1_000_000)
_PRESERVED = dict(_FIVE_ALWAYS, preserved_thinking=True)

MODELS: dict[str, ModelSpec] = {s.id: s for s in [
    _spec("claude-fable-5-2", effort="high", guess=("min_cache_tokens",), **_PRESERVED),
    _spec("claude-mythos-5-2", effort="high", guess=("min_cache_tokens",), **_PRESERVED),
    _spec("claude-fable-5-1", effort="high", **_PRESERVED),
    _spec("claude-mythos-5-1", effort="high", **_PRESERVED),
    _spec("claude-opus-5-5", effort="medium", **_FIVE_ALWAYS),
    _spec("claude-sonnet-5-5", max_output=128_000, min_cache_tokens=512, thinking="on",
          thinking_types={"adaptive", "between_tools"}, effort="high", fixed_sampling=True, prefill=False,
          forced_tools=False, context=1_000_000, guess=("thinking_types: disabled rejected",)),
    _spec("claude-haiku-5-5", max_output=128_000, min_cache_tokens=4096, thinking="on",
          thinking_types={"adaptive", "disabled"}, effort="medium", fixed_sampling=True, prefill=False,
          context=1_000_000, guess=("min_cache_tokens", "forced_tools")),
    _spec("claude-opus-5", max_output=128_000, min_cache_tokens=512, thinking="on",
          thinking_types={"adaptive", "disabled"}, effort="high", fixed_sampling=True, prefill=False,
          context=1_000_000, guess=("max_output", "forced_tools")),
    _spec("claude-sonnet-5", max_output=128_000, min_cache_tokens=1024, thinking="on",
          thinking_types={"adaptive", "disabled"}, effort="high", fixed_sampling=True, prefill=False,
          context=1_000_000, guess=("max_output", "effort", "forced_tools")),
    _spec("claude-fable-5", effort="high", **_FIVE_ALWAYS),
    _spec("claude-mythos-5", effort="high", **_FIVE_ALWAYS),
    _spec("claude-opus-4-8", max_output=128_000, min_cache_tokens=1024, thinking_types={"adaptive", "disabled"},
          effort="high", fixed_sampling=True, prefill=False, context=1_000_000, guess=("prefill",)),
    _spec("claude-opus-4-7", max_output=128_000, min_cache_tokens=2048, thinking_types={"adaptive", "disabled"},
          effort="high", fixed_sampling=True, prefill=False, guess=("max_output", "prefill")),
    _spec("claude-opus-4-6", max_output=128_000, min_cache_tokens=4096,
          thinking_types={"adaptive", "enabled", "disabled"}, effort="high", prefill=False, context=1_000_000,
          guess=("prefill",)),
    _spec("claude-sonnet-4-6", max_output=64_000, min_cache_tokens=1024,
          thinking_types={"adaptive", "enabled", "disabled"}, effort="high", guess=("max_output",)),
    _spec("claude-opus-4-5", max_output=64_000, min_cache_tokens=4096, thinking_types={"enabled", "disabled"},
          effort="high", aliases=("claude-opus-4-5-20251101",)),
    _spec("claude-haiku-4-5", max_output=64_000, min_cache_tokens=4096, thinking_types={"enabled", "disabled"},
          aliases=("claude-haiku-4-5-20251001",)),
]}
MODEL_IDS: dict[str, ModelSpec] = {name: s for s in MODELS.values() for name in (s.id, *s.aliases)}
RETIRED_MODELS = ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-mythos-preview", "claude-opus-4-1",
                  "claude-opus-4-0", "claude-opus-4", "claude-sonnet-4", "claude-sonnet-4-0", "claude-3-7-sonnet",
                  "claude-3-5-haiku")
"""Known to be retired (listed by GET /v1/models as such); requests to them get 404 like any unknown id."""
THINKING_MODELS = tuple(s.id for s in MODELS.values() if s.thinking != "off")


def model_spec(model: str) -> ModelSpec | None:
    return MODEL_IDS.get(model)


# --- what a test scripts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolUse:
    """A tool_use block to reply with (id assigned by the server unless given)."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ApiError(Exception):
    """Reply with this error instead of a message (to test error handling)."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


# A reply: str | ToolUse | a sequence of those | ApiError.


@dataclass(frozen=True)
class ScriptRequest:
    """What a script sees of an accepted request."""

    body: dict[str, Any]
    headers: dict[str, str]
    turns: list[dict[str, Any]]  # consecutive same-role messages combined, content as block lists
    index: int  # 0-based count of accepted /v1/messages requests before this one

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def system_text(self) -> str:
        system = self.body.get("system") or ""
        return system if isinstance(system, str) else "".join(b.get("text", "") for b in system)

    @property
    def tools(self) -> list[str]:
        return [t.get("name") for t in self.body.get("tools") or []]

    @property
    def last_user_text(self) -> str:
        blocks = self.turns[-1]["content"] if self.turns and self.turns[-1]["role"] == "user" else []
        return "".join(b.get("text", "") for b in blocks if b.get("type") == "text")

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks of the last user turn."""
        if not self.turns or self.turns[-1]["role"] != "user":
            return []
        return [b for b in self.turns[-1]["content"] if b.get("type") == "tool_result"]


# A script: a sequence of replies (consumed in order) or a callable ScriptRequest -> reply.


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    error: dict[str, Any] | None = None  # the "error" object of a rejection
    reply: dict[str, Any] | None = None  # the message (also for streamed replies)
    streamed: bool = False
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        if self.ok:
            return f"{self.method} {self.path} -> {self.status}"
        error = self.error or {}
        return f"{self.method} {self.path} -> {self.status} {error.get('type')}: {error.get('message')}"


class RequestError(Exception):
    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type_, message


def invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_request_error", message)


# --- allowed keys (the SDK's request TypedDicts of anthropic 2.x, which mirror the API's schema) -----

TOP_LEVEL_KEYS = frozenset({
    "model", "max_tokens", "messages", "cache_control", "container", "diagnostics", "inference_geo", "metadata",
    "output_config", "service_tier", "speed", "stop_sequences", "stream", "system", "thinking", "tool_choice",
    "tools", "user_profile_id", "workspace_id"})
BLOCK_KEYS = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control", "transformations"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control", "caller", "toolset_name"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control", "toolset_name"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})
TOOL_RESULT_CONTENT_BLOCKS = frozenset({"text", "image", "document"})
TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control", "allowed_callers",
                       "defer_loading", "eager_input_streaming", "input_examples", "strict"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
CACHE_TTLS = ("5m", "1h")
MAX_BREAKPOINTS = 4
CACHE_LOOKBACK_BLOCKS = 20


def _extra_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise invalid(f"{where}{key}: Extra inputs are not permitted")


def _require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise invalid(f"{where}{key}: Field required")
    return obj[key]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _nonblank(text: Any) -> bool:
    return isinstance(text, str) and text.strip() != ""


# --- the validator -----------------------------------------------------------------------------------

@dataclass
class Checked:
    """An accepted request, normalised for reply generation."""

    body: dict[str, Any]
    spec: ModelSpec
    version: str
    turns: list[dict[str, Any]]
    thinking_mode: str  # "off", "adaptive", "enabled", "between_tools"
    thinking_budget: int  # tokens the reply will think (0: none)
    stream: bool


class Validator:
    """The rules; stateful only through `issued` (the replies this server sent, by tool_use id) and
    the signing key."""

    def __init__(self, secret: bytes, issued: Mapping[str, list[dict[str, Any]]],
                 bindings: Mapping[str, str]) -> None:
        self.secret = secret
        self.issued = issued
        self.bindings = bindings  # signature -> digest of the prefix the block was generated after
        self._nonces = itertools.count(1)

    def sign(self, thinking: str, nonce: bytes | None = None) -> str:
        nonce = nonce if nonce is not None else next(self._nonces).to_bytes(8, "big")
        digest = hmac.new(self.secret, nonce + thinking.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(b"sig2" + nonce + digest).decode("ascii")

    def signature_ok(self, thinking: str, signature: str) -> bool:
        if not isinstance(signature, str):
            return False
        try:
            raw = base64.b64decode(signature.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return False
        if len(raw) != 4 + 8 + 32 or not raw.startswith(b"sig2"):
            return False
        return hmac.compare_digest(self.sign(thinking, raw[4:12]), signature)

    # -- entry point ----------------------------------------------------------------------------------
    def check(self, headers: Mapping[str, str], body: Any, *, count_tokens: bool = False) -> Checked:
        version = headers.get("anthropic-version")
        if not version:
            raise invalid("anthropic-version: header is required")
        if version not in KNOWN_VERSIONS:
            raise invalid(f"anthropic-version: unknown version {version!r}; known: {', '.join(KNOWN_VERSIONS)}")
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        allowed = TOP_LEVEL_KEYS if version >= SAMPLING_REMOVED_IN else TOP_LEVEL_KEYS | set(SAMPLING_PARAMS)
        if count_tokens:
            allowed = allowed - {"max_tokens", "stream", "stop_sequences", "metadata", "service_tier", "container",
                                 "inference_geo", "speed", "diagnostics", "user_profile_id", "workspace_id"}
        for name in SAMPLING_PARAMS:  # the documented message names the sampling field first
            if name in body and name not in allowed:
                raise invalid(f"{name}: Extra inputs are not permitted")
        _extra_keys(body, frozenset(allowed), "")
        model = _require(body, "model", "")
        if not isinstance(model, str):
            raise invalid("model: Input should be a valid string")
        if not count_tokens:
            _require(body, "max_tokens", "")
        messages = _require(body, "messages", "")
        spec = model_spec(model)
        if spec is None:
            raise RequestError(404, "not_found_error", f"model: {model}")
        max_tokens = body.get("max_tokens", 0)
        if not _is_int(max_tokens):
            raise invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 0:
            raise invalid("max_tokens: Input should be greater than or equal to 0")
        if max_tokens > spec.max_output:
            raise invalid(f"max_tokens: {max_tokens} > {spec.max_output}, which is the maximum allowed number of "
                          f"output tokens for {model}")
        self._sampling(body, spec)
        if "stream" in body and not isinstance(body["stream"], bool):
            raise invalid("stream: Input should be a valid boolean")
        if "metadata" in body:
            metadata = body["metadata"]
            if not isinstance(metadata, dict):
                raise invalid("metadata: Input should be a valid dictionary")
            _extra_keys(metadata, frozenset({"user_id"}), "metadata.")
        if "stop_sequences" in body:
            stops = body["stop_sequences"]
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise invalid("stop_sequences: Input should be a valid list of strings")
            for i, stop in enumerate(stops):
                if not stop.strip():
                    raise invalid(f"stop_sequences.{i}: each stop sequence must contain non-whitespace")
        breakpoints: list[tuple[str, str]] = []  # (where, ttl) in prefix order
        tool_names = self._tools(body, breakpoints)
        self._system(body, breakpoints)
        effort = self._output_config(body, spec)
        thinking_mode = self._thinking(body, spec, max_tokens, effort)
        self._tool_choice(body, tool_names, thinking_mode)
        turns = self._messages(messages, version, breakpoints)
        if "cache_control" in body:
            self._cache_control(body["cache_control"], "cache_control", breakpoints)
        self._breakpoints(breakpoints)
        self._conversation(body, turns, spec, thinking_mode, bool(tool_names))
        budget = 0
        if thinking_mode != "off":
            budget = THINKING_TOKENS_BY_EFFORT[effort or "high"]
            if thinking_mode == "enabled":
                budget = min(budget, int(body["thinking"]["budget_tokens"]))
            if thinking_mode == "between_tools" and not any(b.get("type") == "tool_result"
                                                            for b in turns[-1]["content"]):
                budget = 0  # up-front thinking is off: the model thinks only between tool calls
        checked = Checked(body, spec, version, turns, thinking_mode, budget,
                          bool(body.get("stream")) and not count_tokens)
        prompt = sum(count for _, count, _ in prompt_items(checked))
        if prompt > spec.context:
            raise invalid(f"prompt is too long: {prompt} tokens > {spec.context} maximum")
        return checked

    # -- parts ----------------------------------------------------------------------------------------
    @staticmethod
    def _sampling(body: Mapping[str, Any], spec: ModelSpec) -> None:
        for name, low, high in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)):
            if name in body:
                value = body[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                    raise invalid(f"{name}: Input should be a number between {low:g} and {high:g}")
        if "top_k" in body and (not _is_int(body["top_k"]) or body["top_k"] < 0):
            raise invalid("top_k: Input should be a non-negative integer")
        if spec.fixed_sampling:
            if "temperature" in body and body["temperature"] != 1:
                raise invalid(f"temperature: {spec.id} supports only the default sampling; "
                              f"remove temperature (got {body['temperature']})")
            for name in ("top_p", "top_k"):
                if name in body:
                    raise invalid(f"{name}: {spec.id} supports only the default sampling; remove {name}")

    def _cache_control(self, value: Any, where: str, breakpoints: list[tuple[str, str]]) -> None:
        if not isinstance(value, dict):
            raise invalid(f"{where}: Input should be a valid dictionary")
        _extra_keys(value, frozenset({"type", "ttl"}), f"{where}.")
        if value.get("type") != "ephemeral":
            raise invalid(f"{where}.type: Input should be 'ephemeral'")
        ttl = value.get("ttl", "5m")
        if ttl not in CACHE_TTLS:
            raise invalid(f"{where}.ttl: Input should be '5m' or '1h'")
        breakpoints.append((where, ttl))

    @staticmethod
    def _breakpoints(breakpoints: list[tuple[str, str]]) -> None:
        if len(breakpoints) > MAX_BREAKPOINTS:
            raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                          f"Found {len(breakpoints)}.")
        seen_5m = None
        for where, ttl in breakpoints:
            if ttl == "5m" and seen_5m is None:
                seen_5m = where
            elif ttl == "1h" and seen_5m is not None:
                raise invalid(f"{where}: a cache_control with ttl='1h' must not come after one with ttl='5m' "
                              f"({seen_5m})")

    def _tools(self, body: Mapping[str, Any], breakpoints: list[tuple[str, str]]) -> set[str]:
        if "tools" not in body:
            return set()
        tools = body["tools"]
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        names: set[str] = set()
        for i, tool in enumerate(tools):
            where = f"tools.{i}."
            if not isinstance(tool, dict):
                raise invalid(f"tools.{i}: Input should be a valid dictionary")
            if tool.get("type", "custom") != "custom":
                raise invalid(f"{where}type: server tool {tool.get('type')!r} is not supported by this stand-in")
            _extra_keys(tool, TOOL_KEYS, where)
            name = _require(tool, "name", where)
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise invalid(f"{where}name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if "description" in tool and not isinstance(tool["description"], str):
                raise invalid(f"{where}description: Input should be a valid string")
            schema = _require(tool, "input_schema", where)
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise invalid(f"{where}input_schema.type: Input should be 'object'")
            if "properties" in schema and not isinstance(schema["properties"], dict):
                raise invalid(f"{where}input_schema.properties: Input should be a valid dictionary")
            if name in names:
                raise invalid("tools: Tool names must be unique.")
            names.add(name)
            if "cache_control" in tool:
                self._cache_control(tool["cache_control"], f"{where}cache_control", breakpoints)
        return names

    def _text_block(self, block: Mapping[str, Any], where: str, breakpoints: list[tuple[str, str]]) -> None:
        _extra_keys(block, BLOCK_KEYS["text"], f"{where}.")
        text = _require(block, "text", f"{where}.")
        if not isinstance(text, str):
            raise invalid(f"{where}.text: Input should be a valid string")
        if text == "":
            raise invalid(f"{where}: text content blocks must be non-empty")
        if not text.strip():
            raise invalid(f"{where}: text content blocks must contain non-whitespace text")
        if "cache_control" in block:
            self._cache_control(block["cache_control"], f"{where}.cache_control", breakpoints)

    def _system(self, body: Mapping[str, Any], breakpoints: list[tuple[str, str]]) -> None:
        if "system" not in body:
            return
        system = body["system"]
        if isinstance(system, str):
            return
        if not isinstance(system, list):
            raise invalid("system: Input should be a valid string or a list of text blocks")
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise invalid(f"system.{i}.type: Input should be 'text'")
            self._text_block(block, f"system.{i}", breakpoints)

    @staticmethod
    def _output_config(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
        config = body.get("output_config")
        if config is None:
            return spec.effort
        if not isinstance(config, dict):
            raise invalid("output_config: Input should be a valid dictionary")
        _extra_keys(config, frozenset({"effort", "format"}), "output_config.")
        effort = config.get("effort")
        if effort is None:
            return spec.effort
        if effort not in EFFORTS:
            raise invalid(f"output_config.effort: Input should be one of {', '.join(EFFORTS)}")
        if spec.effort is None:
            raise invalid(f"output_config.effort: the effort parameter is not supported by {spec.id}")
        return effort

    @staticmethod
    def _thinking(body: Mapping[str, Any], spec: ModelSpec, max_tokens: int, effort: str | None) -> str:
        """The thinking mode of this request: "off", "adaptive", "enabled" or "between_tools"."""
        if "thinking" not in body:
            return "off" if spec.thinking == "off" else "adaptive"
        thinking = body["thinking"]
        if not isinstance(thinking, dict):
            raise invalid("thinking: Input should be a valid dictionary")
        kind = thinking.get("type")
        keys = {"enabled": {"type", "budget_tokens", "display"}, "adaptive": {"type", "display"},
                "disabled": {"type"}, "between_tools": {"type"}}
        if kind not in keys:
            raise invalid("thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or 'between_tools'")
        _extra_keys(thinking, frozenset(keys[kind]), "thinking.")
        if kind not in spec.thinking_types:
            hint = ('Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
                    if "adaptive" in spec.thinking_types else 'Use "thinking.type.enabled" with budget_tokens.')
            raise invalid(f'"thinking.type.{kind}" is not supported for this model. {hint}')
        if thinking.get("display") not in (None, "summarized", "omitted"):
            raise invalid("thinking.display: Input should be 'summarized' or 'omitted'")
        if kind == "enabled":
            budget = _require(thinking, "budget_tokens", "thinking.")
            if not _is_int(budget) or budget < 1024:
                raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if budget >= max_tokens:
                raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                              "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
        if kind == "disabled":
            if spec.id == "claude-opus-5" and effort in ("xhigh", "max"):
                raise invalid(f'"thinking.type.disabled" is not supported with output_config.effort "{effort}" '
                              f"on {spec.id}; use effort high or lower")
            return "off"
        return kind

    @staticmethod
    def _tool_choice(body: Mapping[str, Any], tool_names: set[str], thinking_mode: str) -> None:
        if "tool_choice" not in body:
            return
        choice = body["tool_choice"]
        if not isinstance(choice, dict):
            raise invalid("tool_choice: Input should be a valid dictionary")
        kind = choice.get("type")
        keys = {"auto": {"type", "disable_parallel_tool_use"}, "any": {"type", "disable_parallel_tool_use"},
                "tool": {"type", "name", "disable_parallel_tool_use"}, "none": {"type"}}
        if kind not in keys:
            raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        _extra_keys(choice, frozenset(keys[kind]), "tool_choice.")
        if kind == "tool" and choice.get("name") not in tool_names:
            raise invalid(f"tool_choice.name: no tool named {choice.get('name')!r} in tools")
        if kind in ("any", "tool") and thinking_mode != "off":
            raise invalid("Thinking may not be enabled when tool_choice forces tool use.")

    def _block(self, block: Any, role: str, version: str, where: str,
               breakpoints: list[tuple[str, str]]) -> dict[str, Any]:
        if not isinstance(block, dict):
            raise invalid(f"{where}: Input should be a valid dictionary")
        kind = block.get("type")
        if kind not in BLOCK_KEYS:
            raise invalid(f"{where}.type: unsupported content block type {kind!r}")
        allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
        if kind == "document" and role == "assistant" and version >= "2026-10-21":
            raise invalid(f"{where}: `document` blocks are not allowed in `assistant` messages")
        if kind not in allowed:
            raise invalid(f"{where}.type: `{kind}` blocks are not allowed in `{role}` messages")
        if kind == "text":
            self._text_block(block, where, breakpoints)
            if role == "user" and block.get("citations") and version >= "2026-10-21":
                raise invalid(f"{where}.citations: text blocks with citations are not allowed in `user` messages")
            return block
        _extra_keys(block, BLOCK_KEYS[kind], f"{where}.")
        if kind == "tool_use":
            block_id = _require(block, "id", f"{where}.")
            if not isinstance(block_id, str) or not TOOL_USE_ID.match(block_id):
                raise invalid(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(_require(block, "name", f"{where}."), str):
                raise invalid(f"{where}.name: Input should be a valid string")
            if not isinstance(_require(block, "input", f"{where}."), dict):
                raise invalid(f"{where}.input: Input should be a valid dictionary")
        elif kind == "tool_result":
            if not isinstance(_require(block, "tool_use_id", f"{where}."), str):
                raise invalid(f"{where}.tool_use_id: Input should be a valid string")
            content = block.get("content", "")
            if isinstance(content, list):
                for k, inner in enumerate(content):
                    if not isinstance(inner, dict) or inner.get("type") not in TOOL_RESULT_CONTENT_BLOCKS:
                        raise invalid(f"{where}.content.{k}.type: Input should be 'text', 'image' or 'document'")
                    self._block(inner, "user", version, f"{where}.content.{k}", breakpoints)
            elif not isinstance(content, str):
                raise invalid(f"{where}.content: Input should be a valid string or a list of blocks")
            if "is_error" in block and not isinstance(block["is_error"], bool):
                raise invalid(f"{where}.is_error: Input should be a valid boolean")
        elif kind == "thinking":
            thinking = _require(block, "thinking", f"{where}.")
            signature = _require(block, "signature", f"{where}.")
            if not isinstance(thinking, str) or not self.signature_ok(thinking, signature):
                raise invalid(f"{where}: Invalid `signature` in `thinking` block")
        elif kind == "redacted_thinking":
            if not isinstance(_require(block, "data", f"{where}."), str):
                raise invalid(f"{where}.data: Input should be a valid string")
        elif kind in ("image", "document"):
            if not isinstance(_require(block, "source", f"{where}."), dict):
                raise invalid(f"{where}.source: Input should be a valid dictionary")
        if "cache_control" in block:
            self._cache_control(block["cache_control"], f"{where}.cache_control", breakpoints)
        return block

    def _messages(self, messages: Any, version: str, breakpoints: list[tuple[str, str]]) -> list[dict[str, Any]]:
        if not isinstance(messages, list):
            raise invalid("messages: Input should be a valid list")
        if not messages:
            raise invalid("messages: at least one message is required")
        turns: list[dict[str, Any]] = []
        last = len(messages) - 1
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise invalid(f"messages.{i}: Input should be a valid dictionary")
            _extra_keys(message, frozenset({"role", "content"}), f"messages.{i}.")
            role = _require(message, "role", f"messages.{i}.")
            content = _require(message, "content", f"messages.{i}.")
            if role not in ("user", "assistant"):
                raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            final_assistant = i == last and role == "assistant"
            if isinstance(content, str):
                if not content.strip() and not (final_assistant and content == ""):
                    raise invalid(f"messages.{i}: all messages must have non-empty content except for the optional "
                                  "final assistant message")
                if final_assistant and content != content.rstrip():
                    raise invalid("final assistant content cannot end with trailing whitespace")
                blocks = [{"type": "text", "text": content}] if content else []
            elif isinstance(content, list):
                if not content and not final_assistant:
                    raise invalid(f"messages.{i}: all messages must have non-empty content except for the optional "
                                  "final assistant message")
                blocks = [self._block(b, role, version, f"messages.{i}.content.{j}", breakpoints)
                          for j, b in enumerate(content)]
            else:
                raise invalid(f"messages.{i}.content: Input should be a valid string or a list of content blocks")
            located = [(i, j, b) for j, b in enumerate(blocks)]
            if turns and turns[-1]["role"] == role:  # documented: consecutive same-role turns are combined
                turns[-1]["located"].extend(located)
                turns[-1]["content"].extend(blocks)
                turns[-1]["messages"].append(i)
            else:
                turns.append({"role": role, "content": list(blocks), "located": located, "messages": [i]})
        return turns

    def _conversation(self, body: Mapping[str, Any], turns: list[dict[str, Any]], spec: ModelSpec,
                      thinking_mode: str, has_tools: bool) -> None:
        if turns[0]["role"] != "user":
            raise invalid('messages: first message must use the "user" role')
        if any(b.get("type") in ("tool_use", "tool_result") for t in turns for b in t["content"]) and not has_tools:
            raise invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
        if turns[-1]["role"] == "assistant":
            if not spec.prefill:
                raise invalid(f"Prefilling assistant messages is not supported for {spec.id}: the conversation "
                              "must end with a user message.")
            if thinking_mode != "off":
                raise invalid("Prefilling the assistant message is not supported when thinking is enabled.")
        for k, turn in enumerate(turns):
            uses = [(i, j, b) for i, j, b in turn["located"] if b.get("type") == "tool_use"]
            if turn["role"] == "assistant":
                ids = [b["id"] for _, _, b in uses]
                if len(set(ids)) != len(ids):
                    raise invalid(f"messages.{turn['messages'][0]}: `tool_use` ids must be unique")
                if not ids:
                    continue
                answer = turns[k + 1] if k + 1 < len(turns) else None
                answered = {b.get("tool_use_id") for b in (answer["content"] if answer else ())
                            if b.get("type") == "tool_result"}
                missing = [x for x in ids if x not in answered]
                if missing:
                    at = answer["messages"][0] if answer else turn["messages"][-1] + 1
                    raise invalid(f"messages.{at}: `tool_use` ids were found without `tool_result` blocks immediately "
                                  f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                                  "`tool_result` block in the next message.")
                continue
            # a user turn: its tool_result blocks answer the previous assistant turn, and come first
            previous = turns[k - 1] if k > 0 else None
            offered = {b.get("id") for b in (previous["content"] if previous else ()) if b.get("type") == "tool_use"}
            seen_other = None
            seen_results: set[str] = set()
            for i, j, block in turn["located"]:
                if block.get("type") != "tool_result":
                    seen_other = seen_other or f"messages.{i}.content.{j}"
                    continue
                where = f"messages.{i}.content.{j}"
                if block["tool_use_id"] not in offered:
                    raise invalid(f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                  f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                                  "`tool_use` block in the previous message.")
                if block["tool_use_id"] in seen_results:
                    raise invalid(f"{where}: duplicate `tool_result` for tool_use_id {block['tool_use_id']}")
                seen_results.add(block["tool_use_id"])
                if seen_other is not None:
                    raise invalid(f"{where}: tool_result blocks must come FIRST in the content array of the user "
                                  f"message; any text must come after all tool results (found {seen_other} first)")
        self._thinking_passed_back(turns)
        if spec.preserved_thinking:
            self._thinking_bound_to_prefix(body, turns)

    def _thinking_bound_to_prefix(self, body: Mapping[str, Any], turns: list[dict[str, Any]]) -> None:
        """Preserved thinking: every thinking block this server signed must follow the same system prompt,
        tools and earlier turns as when it was generated (the default prefix_mismatch_behavior: reject)."""
        for k, turn in enumerate(turns):
            if turn["role"] != "assistant":
                continue
            for i, j, block in turn["located"]:
                bound = self.bindings.get(block.get("signature", "")) if block.get("type") == "thinking" else None
                if bound is not None and bound != prefix_digest(body, turns[:k]):
                    raise invalid(f"messages.{i}.content.{j}: the thinking block does not match the conversation "
                                  "it was generated in: the system prompt, tools or an earlier message changed "
                                  "since (thinking.block_binding.prefix_mismatch_behavior)")

    def _thinking_passed_back(self, turns: list[dict[str, Any]]) -> None:
        """The last assistant turn whose tool calls the final user turn answers must carry the thinking blocks
        of the reply those calls came from, unchanged and before the calls."""
        if len(turns) < 2 or turns[-1]["role"] != "user" or turns[-2]["role"] != "assistant":
            return
        if not any(b.get("type") == "tool_result" for b in turns[-1]["content"]):
            return
        turn = turns[-2]
        for i, j, block in turn["located"]:
            if block.get("type") != "tool_use" or block.get("id") not in self.issued:
                continue
            original = self.issued[block["id"]]
            wanted = [b for b in original if b.get("type") in ("thinking", "redacted_thinking")]
            if not wanted:
                return
            sent = [b for b in turn["content"] if b.get("type") in ("thinking", "redacted_thinking")]
            first_call = next(n for n, b in enumerate(turn["content"]) if b.get("type") == "tool_use")
            if not sent:
                raise invalid(f"messages.{turn['messages'][0]}.content.0.type: Expected `thinking` or "
                              "`redacted_thinking`, but found `"
                              f"{turn['content'][0].get('type')}`. When `thinking` is enabled, a final `assistant` "
                              "message must start with a thinking block (preceeding the lastmost set of `tool_use` "
                              "and `tool_result` blocks). We recommend you include thinking blocks from previous "
                              "turns.")
            if [dict(b) for b in sent] != [dict(b) for b in wanted]:
                raise invalid(f"messages.{turn['messages'][0]}: the thinking blocks of the assistant turn were "
                              "modified; pass them back exactly as received")
            if any(n > first_call for n, b in enumerate(turn["content"])
                   if b.get("type") in ("thinking", "redacted_thinking")):
                raise invalid(f"messages.{turn['messages'][0]}: thinking blocks must come before the `tool_use` "
                              "blocks of their turn")
            return


def prefix_digest(body: Mapping[str, Any], turns: Sequence[Mapping[str, Any]]) -> str:
    """What a thinking block is bound to: system prompt, tools and the turns before it, without
    cache_control (a moved breakpoint changes no content)."""
    system = body.get("system") or ""
    if isinstance(system, str):
        system = [{"type": "text", "text": system}] if system else []
    payload = {"system": _strip_cache_control(system), "tools": _strip_cache_control(body.get("tools") or []),
               "turns": [{"role": t["role"], "content": _strip_cache_control(t["content"])} for t in turns]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


# --- token counting and prompt caching ----------------------------------------------------------------

def tokens(text: str) -> int:
    """The crude token count of the simulation: ~4 characters a token, at least 1 for non-empty text."""
    return math.ceil(len(text) / 4) if text else 0


def _strip_cache_control(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_cache_control(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [_strip_cache_control(v) for v in obj]
    return obj


def _block_tokens(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return tokens(block.get("text", "")) + 1
    if kind == "thinking":
        return tokens(block.get("thinking", "")) + 1
    if kind == "tool_result":
        content = block.get("content", "")
        inner = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        return tokens(inner) + 4
    return tokens(json.dumps(_strip_cache_control(block), sort_keys=True)) + 2


def prompt_items(checked: Checked) -> list[tuple[str, int, dict[str, Any] | None]]:
    """The request as the cache sees it: (canonical JSON, tokens, cache_control) per block, in the cache's
    prefix order tools -> system -> messages."""
    body = checked.body
    items: list[tuple[str, int, dict[str, Any] | None]] = []
    for tool in body.get("tools") or []:
        items.append(("tool:" + json.dumps(_strip_cache_control(tool), sort_keys=True),
                      tokens(json.dumps(_strip_cache_control(tool))) + 4, tool.get("cache_control")))
    system = body.get("system")
    if isinstance(system, str) and system:
        items.append(("system:" + json.dumps(system), tokens(system) + 1, None))
    elif isinstance(system, list):
        for block in system:
            items.append(("system:" + json.dumps(_strip_cache_control(block), sort_keys=True),
                          _block_tokens(block), block.get("cache_control")))
    for n, turn in enumerate(checked.turns):
        for block in turn["content"]:
            items.append((f"{turn['role']}#{n}:" + json.dumps(_strip_cache_control(block), sort_keys=True),
                          _block_tokens(block), block.get("cache_control")))
    if isinstance(body.get("cache_control"), dict) and items:  # automatic caching: the last cacheable block
        key, count, _ = items[-1]
        items[-1] = (key, count, body["cache_control"])
    return items


@dataclass
class CacheUse:
    total: int
    read: int
    written: int
    written_1h: int

    @property
    def uncached(self) -> int:
        return self.total - self.read - self.written


class PromptCache:
    """Prefixes written at cache breakpoints, by model; a later request reads the longest one it shares,
    found at a breakpoint or up to CACHE_LOOKBACK_BLOCKS blocks before one (the documented lookback)."""

    def __init__(self) -> None:
        self._entries: set[str] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def use(self, model: str, minimum: int, items: Sequence[tuple[str, int, dict[str, Any] | None]]) -> CacheUse:
        digest = hashlib.sha256(model.encode())
        keys, sums = [], []
        running = 0
        for key, count, _ in items:
            digest.update(key.encode("utf-8") + b"\x00")
            keys.append(digest.copy().hexdigest())
            running += count
            sums.append(running)
        total = running
        points = [n for n, (_, _, cc) in enumerate(items) if cc is not None]
        with self._lock:
            read_at = -1
            for p in points:
                for q in range(p, max(-1, p - CACHE_LOOKBACK_BLOCKS), -1):
                    if keys[q] in self._entries:
                        read_at = max(read_at, q)
                        break
            read = sums[read_at] if read_at >= 0 else 0
            written = written_1h = 0
            done = read
            for p in points:
                if sums[p] < minimum or p <= read_at:
                    continue
                self._entries.add(keys[p])
                segment = sums[p] - done
                if segment > 0:
                    written += segment
                    if (items[p][2] or {}).get("ttl") == "1h":
                        written_1h += segment
                    done = sums[p]
        return CacheUse(total, read, written, written_1h)


# --- the server ---------------------------------------------------------------------------------------

THINKING_TEXT = "Weighing the request step by step before answering. "


class MessagesAPIServer:
    """The stand-in API on 127.0.0.1 (a free port), on a background thread; use it as a context manager
    or through the `messages_api` fixture. `url` is the SDK's base_url."""

    def __init__(self, script: Any = None, *, api_key: str = "test-key",
                 thinking_tokens: Mapping[str, int] | None = None, secret: bytes = b"messages-api-server") -> None:
        self.api_key = api_key
        self.script = script
        self.thinking_tokens = dict(THINKING_TOKENS_BY_EFFORT if thinking_tokens is None else thinking_tokens)
        self.requests: list[LoggedRequest] = []
        self.cache = PromptCache()
        self._issued: dict[str, list[dict[str, Any]]] = {}
        self._bindings: dict[str, str] = {}
        self.validator = Validator(secret, self._issued, self._bindings)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._accepted = 0
        self._script_index = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[Any] = set()
        self._handlers: set[threading.Thread] = set()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> "MessagesAPIServer":
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"api": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="messages-api-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:  # end kept-alive connections so their handler threads finish too
            connections, self._connections = list(self._connections), set()
            handlers, self._handlers = list(self._handlers), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in handlers:
            thread.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "MessagesAPIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests read ----------------------------------------------------------------------------------
    def messages_requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/v1/messages")]

    def rejected(self) -> list[str]:
        """`describe()` of every request that did not get a 2xx, in order."""
        with self._lock:
            return [r.describe() for r in self.requests if not r.ok]

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.messages_requests()]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- request handling ---------------------------------------------------------------------------------
    def _request_id(self) -> str:
        return f"req_{next(self._ids):024x}"

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _next_reply(self, request: ScriptRequest) -> Any:
        script = self.script
        if script is None:
            return "OK"
        if callable(script):
            return script(request)
        with self._lock:
            index = self._script_index
            self._script_index += 1
        if index >= len(script):
            raise ApiError(500, "api_error", f"test script ran out of replies after {len(script)} requests")
        return script[index]

    def handle_messages(self, headers: dict[str, str], body: Any, *, count_tokens: bool = False
                        ) -> tuple[int, dict[str, Any], Checked | None]:
        """(status, JSON reply or error, the checked request). Raises nothing."""
        self._authenticate(headers)
        checked = self.validator.check(headers, body, count_tokens=count_tokens)
        if count_tokens:
            return 200, {"input_tokens": sum(c for _, c, _ in prompt_items(checked))}, checked
        with self._lock:
            index = self._accepted
            self._accepted += 1
        request = ScriptRequest(copy.deepcopy(checked.body), dict(headers),
                                [{"role": t["role"], "content": copy.deepcopy(t["content"])} for t in checked.turns],
                                index)
        reply = self._next_reply(request)
        if isinstance(reply, ApiError):
            raise reply
        return 200, self._message(checked, reply), checked

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        key = headers.get("x-api-key")
        if key is None:
            auth = headers.get("authorization", "")
            key = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if not key:
            raise RequestError(401, "authentication_error", "x-api-key header is required")
        if key != self.api_key:
            raise RequestError(401, "authentication_error", "invalid x-api-key")

    def _message(self, checked: Checked, reply: Any) -> dict[str, Any]:
        body = checked.body
        max_tokens = int(body["max_tokens"])
        parts = list(reply) if isinstance(reply, (list, tuple)) else [reply]
        content: list[dict[str, Any]] = []
        used = 0
        stop_reason = "end_turn"
        stop_sequence = None
        thinking_budget = 0
        if checked.thinking_mode != "off" and checked.thinking_budget:
            effort = (body.get("output_config") or {}).get("effort") or checked.spec.effort or "high"
            thinking_budget = self.thinking_tokens.get(effort, checked.thinking_budget)
            if checked.thinking_mode == "enabled":
                thinking_budget = min(thinking_budget, int(body["thinking"]["budget_tokens"]))
        if thinking_budget:
            spent = min(thinking_budget, max_tokens)
            display = (body.get("thinking") or {}).get("display", "summarized")
            text = (THINKING_TEXT * (4 * spent // len(THINKING_TEXT) + 1))[: 4 * spent]
            shown = "" if display == "omitted" else text
            content.append({"type": "thinking", "thinking": shown, "signature": self.validator.sign(shown)})
            used = spent
            if spent < thinking_budget or spent == max_tokens:
                stop_reason = "max_tokens"
        if stop_reason != "max_tokens":
            stops = body.get("stop_sequences") or []
            for part in parts:
                if isinstance(part, ToolUse):
                    if not checked.body.get("tools"):
                        raise ApiError(500, "api_error", f"test script replied with tool {part.name!r} but the "
                                                         "request defines no tools")
                    block = {"type": "tool_use", "id": part.id or f"toolu_{next(self._ids):024x}",
                             "name": part.name, "input": dict(part.input)}
                    cost = tokens(json.dumps(block["input"])) + 8
                    if used + cost > max_tokens:
                        stop_reason = "max_tokens"
                        break
                    content.append(block)
                    used += cost
                    stop_reason = "tool_use"
                    continue
                text = str(part)
                hit = min(((text.find(s), s) for s in stops if s in text), default=None)
                if hit is not None:
                    text = text[: hit[0]]
                room = max_tokens - used
                if tokens(text) > room:
                    text, stop_reason = text[: 4 * room], "max_tokens"
                elif hit is not None:
                    stop_reason, stop_sequence = "stop_sequence", hit[1]
                if text:
                    content.append({"type": "text", "text": text})
                    used += tokens(text)
                if stop_reason in ("max_tokens", "stop_sequence"):
                    break
        if stop_reason == "max_tokens" or stop_reason == "stop_sequence":
            content = [b for b in content if b["type"] != "tool_use"]
        cache = self.cache.use(checked.spec.id, checked.spec.min_cache_tokens, prompt_items(checked))
        usage = {"input_tokens": cache.uncached, "output_tokens": max(used, 1),
                 "cache_creation_input_tokens": cache.written, "cache_read_input_tokens": cache.read,
                 "cache_creation": {"ephemeral_5m_input_tokens": cache.written - cache.written_1h,
                                    "ephemeral_1h_input_tokens": cache.written_1h},
                 "output_tokens_details": {"thinking_tokens": min(thinking_budget, max_tokens)},
                 "service_tier": "standard"}
        message = {"id": f"msg_{next(self._ids):024x}", "type": "message", "role": "assistant",
                   "model": checked.spec.id, "content": content, "stop_reason": stop_reason,
                   "stop_sequence": stop_sequence, "usage": usage}
        with self._lock:
            for block in content:
                if block["type"] == "tool_use":
                    self._issued[block["id"]] = copy.deepcopy(content)
                elif block["type"] == "thinking":
                    self._bindings[block["signature"]] = prefix_digest(body, checked.turns)
        return message

    def models_listing(self) -> dict[str, Any]:
        data = [self._model_info(s.id) for s in MODELS.values()] + [self._model_info(m) for m in RETIRED_MODELS]
        return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}

    def _model_info(self, model: str) -> dict[str, Any]:
        spec = model_spec(model)
        return {"type": "model", "id": model, "display_name": model, "created_at": "2026-01-01T00:00:00Z",
                "lifecycle": "active" if spec else "retired", "max_tokens": spec.max_output if spec else None,
                "max_input_tokens": spec.context if spec else None}


def sse_events(message: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The documented event sequence for one message: message_start, per block content_block_start /
    _delta(s) / _stop, message_delta (stop_reason, cumulative usage), message_stop; pings in between."""
    usage = dict(message["usage"])
    start = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence", "usage")}
    start.update(content=[], stop_reason=None, stop_sequence=None, usage={**usage, "output_tokens": 1})
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            text = block["text"]
            for k in range(0, len(text), 40):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "text_delta", "text": text[k:k + 40]}}
        elif kind == "thinking":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            text = block["thinking"]
            for k in range(0, len(text), 200):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "thinking_delta", "thinking": text[k:k + 200]}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "signature_delta", "signature": block["signature"]}}
        elif kind == "tool_use":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "tool_use", "id": block["id"],
                                                            "name": block["name"], "input": {}}}
            raw = json.dumps(block["input"])
            for k in range(0, len(raw), 30):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "input_json_delta", "partial_json": raw[k:k + 30]}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                            "usage": {k: usage[k] for k in ("input_tokens", "output_tokens",
                                                            "cache_creation_input_tokens", "cache_read_input_tokens")}}
    yield "message_stop", {"type": "message_stop"}


class _Handler(BaseHTTPRequestHandler):
    api: MessagesAPIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.api._lock:
            self.api._connections.add(self.connection)
            self.api._handlers.add(threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.api._lock:
                self.api._connections.discard(self.connection)

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _send_json(self, status: int, payload: Mapping[str, Any], request_id: str,
                   extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", request_id)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, entry: LoggedRequest, status: int, type_: str, message: str,
               extra: Mapping[str, str] | None = None) -> None:
        entry.status = status
        entry.error = {"type": type_, "message": message}
        self._send_json(status, {"type": "error", "error": entry.error, "request_id": entry.request_id},
                        entry.request_id, extra)

    def do_GET(self) -> None:  # noqa: N802
        entry = LoggedRequest("GET", self.path, self._headers(), None, request_id=self.api._request_id())
        self.api._log(entry)
        path = self.path.split("?")[0].rstrip("/")
        try:
            self.api._authenticate(entry.headers)
        except RequestError as error:
            return self._error(entry, error.status, error.type, error.message)
        if path == "/v1/models":
            entry.status = 200
            return self._send_json(200, self.api.models_listing(), entry.request_id)
        if path.startswith("/v1/models/"):
            model = path[len("/v1/models/"):]
            if model_spec(model) is None and model not in RETIRED_MODELS:
                return self._error(entry, 404, "not_found_error", f"model: {model}")
            entry.status = 200
            return self._send_json(200, self.api._model_info(model), entry.request_id)
        return self._error(entry, 404, "not_found_error", "The requested resource could not be found.")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = self._headers()
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        entry = LoggedRequest("POST", self.path, headers, body, request_id=self.api._request_id())
        self.api._log(entry)
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return self._error(entry, 404, "not_found_error", "The requested resource could not be found.")
        if isinstance(body, str):
            return self._error(entry, 400, "invalid_request_error", "request body is not valid JSON")
        try:
            status, payload, checked = self.api.handle_messages(headers, body,
                                                                count_tokens=path.endswith("count_tokens"))
        except RequestError as error:
            return self._error(entry, error.status, error.type, error.message)
        except ApiError as error:
            return self._error(entry, error.status, error.type, error.message, error.headers)
        except Exception as error:  # noqa: BLE001 - a bug in the stand-in or a test script: say so
            return self._error(entry, 500, "api_error", f"stand-in server error: {type(error).__name__}: {error}")
        entry.status = status
        if checked is not None and checked.stream:
            entry.streamed = True
            entry.reply = payload
            return self._stream(payload, entry.request_id)
        if not path.endswith("count_tokens"):
            entry.reply = payload
        self._send_json(status, payload, entry.request_id)

    def _stream(self, message: Mapping[str, Any], request_id: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", request_id)
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for event, data in sse_events(message):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode("utf-8"))
        self.wfile.flush()


@pytest.fixture
def messages_api():
    """A running `MessagesAPIServer` (script: set `messages_api.script`), shut down after the test."""
    with MessagesAPIServer() as server:
        yield server
