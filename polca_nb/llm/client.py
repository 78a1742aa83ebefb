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
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..data import shown_path
from . import config
from .base import LLMReply
from .cache import LLMCache, canonical_request, checked_temperature, request_key
from .config import ModelSpec, Price, model_spec, price_for
from .faults import (  # re-exported: callers catch these from here
    LLMError,
    LLMFatalError,
    MalformedReply,
    RetryPolicy,
    _retry_after_s,
    _status_code,
    api_message,
    fault_kind,
    is_connection_failure,
    is_fatal_status,
    is_malformed,
    is_refused,
    is_retryable,
    is_timeout,
)
from .ledger import Ledger
from .request import (  # re-exported: part of the client's documented surface
    DRY_REPLY,
    BackendOptions,
    DryRequest,
    _reply,
    estimate_prompt_tokens,
    mark_cache_breakpoints,
    redact_url,
    reply_fields,
    sample_seed,
)
from .server import LocalServer, LocalServerError
from .usage import prompt_chars

__all__ = ["DRY_REPLY", "BackendOptions", "DryRequest", "LLMClient", "LLMError", "LLMFatalError",
           "MalformedReply", "RetryPolicy", "api_message", "estimate_prompt_tokens", "fault_kind",
           "is_connection_failure", "is_fatal_status", "is_malformed", "is_refused", "is_retryable", "is_timeout",
           "mark_cache_breakpoints", "redact_url", "reply_fields", "sample_seed"]


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
        checked_temperature(temperature)  # the role's value is validated even where it is not sent
        sent_temperature = temperature if self.options.send_temperature else None
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
        except Exception:
            self.ledger.record_request(role, prompt_chars=chars, reply=None)  # refused: for the trackers
            raise
        # The worst-case reservation ends only once the call's real cost is in the ledger, so a
        # concurrent call can never pass a limit in between.
        try:
            try:
                fields, latency, retries = self._call_with_retries(body, role, started)
            except Exception:
                self.ledger.record_request(role, prompt_chars=chars, reply=None)  # failed: for the trackers
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
        finally:
            self.ledger.release_spend(role, worst_case)
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
        cache = "off" if self.cache is None else (
            shown_path(self.cache.directory) if self.cache.directory else "memory")
        return f"LLMClient(model={self.model!r}, endpoint={where}, cache={cache})"
