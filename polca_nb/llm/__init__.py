"""LLM access: one interface (`LLM`), the real anthropic-SDK client, and test doubles."""

from .base import LLM, LedgeredLLM, LLMReply, ScriptedLLM, with_ledger
from .cache import LLMCache, canonical_request, default_cache_dir, request_key
from .backends import default_client, resolve_backend
from .client import BackendOptions, LLMClient, LLMError, LLMFatalError, RetryPolicy
from .config import DEFAULT_CLAUDE_MODEL, LOCAL_MODEL_NAME, Price, price_for
from .ledger import Ledger, RoleUsage, SpendLimit, ledger_of
from .usage import RequestUsage, UsageTracker
from .replay import ReplayPack, live_calls, reply_sources
from .server import LocalServer, LocalServerError, ServerSettings, shared_server, stop_shared_server

__all__ = [
    "DEFAULT_CLAUDE_MODEL",
    "LLM",
    "LLMCache",
    "LLMClient",
    "LLMError",
    "LLMFatalError",
    "BackendOptions",
    "LLMReply",
    "LOCAL_MODEL_NAME",
    "Ledger",
    "LedgeredLLM",
    "SpendLimit",
    "LocalServer",
    "LocalServerError",
    "Price",
    "ReplayPack",
    "RequestUsage",
    "RetryPolicy",
    "RoleUsage",
    "ScriptedLLM",
    "ServerSettings",
    "UsageTracker",
    "canonical_request",
    "default_cache_dir",
    "default_client",
    "ledger_of",
    "live_calls",
    "price_for",
    "reply_sources",
    "request_key",
    "resolve_backend",
    "shared_server",
    "stop_shared_server",
    "with_ledger",
]
