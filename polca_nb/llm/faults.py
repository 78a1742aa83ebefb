"""How LLM calls fail, and what to do about it: the error types and the classification of a failed
attempt (retry it, stop the run, or give up on this call), plus the backoff policy."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import FatalError
from . import config


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
