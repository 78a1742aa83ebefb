"""Which LLM a run talks to: `default_client()` picks Claude, an endpoint or the embedded local model
from the environment, and builds the `LLMClient` for it."""

from __future__ import annotations

import os
from typing import Any, Literal

from . import config
from .cache import LLMCache
from .client import LLMClient
from .ledger import Ledger
from .server import LocalServer, shared_server


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
