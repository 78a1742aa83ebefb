"""Reply cache: keying, the memory and disk levels, atomic files, and its use by LLMClient."""

from __future__ import annotations

import json

import pytest

from polca_nb.llm import LLMCache, LLMClient, canonical_request, request_key

USER = [{"role": "user", "content": "Name a colour."}]


def _request(**overrides):
    base = dict(model="claude-haiku-4-5", system="Be terse.", messages=USER, max_tokens=64, temperature=0.0,
                sample_id=0, tools=None, stop=None)
    base.update(overrides)
    return canonical_request(**base)


def test_key_changes_with_every_request_field():
    base = request_key(_request())
    variants = [
        dict(model="claude-opus-5-5"), dict(system="Be verbose."),
        dict(messages=[{"role": "user", "content": "Name a fruit."}]), dict(max_tokens=65),
        dict(temperature=0.5), dict(sample_id=1),
        dict(tools=[{"name": "t", "description": "d", "input_schema": {"type": "object"}}]),
        dict(stop=["\n"]),
    ]
    keys = {request_key(_request(**v)) for v in variants}
    assert base not in keys
    assert len(keys) == len(variants)


def test_equal_requests_in_different_shapes_share_a_key():
    as_tuple = _request(messages=({"role": "user", "content": "Name a colour."},), temperature=0)
    assert request_key(as_tuple) == request_key(_request())
    assert request_key(_request(tools=[], stop=())) == request_key(_request())


@pytest.mark.parametrize("field, value", [("max_tokens", 0), ("sample_id", -1), ("temperature", float("nan")),
                                          ("temperature", -0.1), ("stop", "\n")])
def test_bad_request_fields_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        _request(**{field: value})


def test_disk_level_survives_a_new_cache_object(tmp_path):
    LLMCache(tmp_path).put("ab" * 32, {"reply": {"text": "red"}})
    fresh = LLMCache(tmp_path)
    assert len(fresh) == 0
    assert fresh.get("ab" * 32) == {"reply": {"text": "red"}}
    assert len(fresh) == 1  # promoted into memory
    assert not list(tmp_path.rglob("*.tmp")), "atomic write left a temp file behind"


def test_memory_only_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = LLMCache(None)
    cache.put("cd" * 32, {"x": 1})
    assert cache.get("cd" * 32) == {"x": 1}
    assert list(tmp_path.iterdir()) == []


def test_corrupt_disk_entry_is_a_miss_and_gets_overwritten(tmp_path):
    cache = LLMCache(tmp_path)
    key = "ef" * 32
    path = cache.path_for(key)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cache.get(key) is None
    cache.put(key, {"ok": True})
    assert json.loads(path.read_text()) == {"ok": True}


class CountingCreate:
    """A fake `messages.create` that answers with the call number, so a cached reply is recognisable."""

    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        n = len(self.calls)
        return {"content": [{"type": "text", "text": f"reply {n}"}], "model": kwargs["model"],
                "usage": {"input_tokens": 10 * n, "output_tokens": n}, "stop_reason": "end_turn"}


def test_client_hits_for_same_request_and_misses_for_new_sample_id(tmp_path):
    fake = CountingCreate()
    client = LLMClient(model="claude-haiku-4-5", create=fake, cache=LLMCache(tmp_path))
    first = client.complete(system="s", messages=USER, role="proposer", temperature=0.7, sample_id=0)
    again = client.complete(system="s", messages=USER, role="proposer", temperature=0.7, sample_id=0)
    other = client.complete(system="s", messages=USER, role="proposer", temperature=0.7, sample_id=1)
    assert len(fake.calls) == 2
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert again.text == first.text == "reply 1" and other.text == "reply 2"
    assert (again.input_tokens, again.output_tokens) == (first.input_tokens, first.output_tokens)
    usage = client.ledger.usage("proposer")
    assert (usage.calls, usage.cache_hits) == (2, 1)


def test_warm_disk_cache_means_zero_calls_on_rerun(tmp_path):
    def run(create):
        client = LLMClient(model="claude-haiku-4-5", create=create, cache=LLMCache(tmp_path))
        return [client.complete(system="s", messages=[{"role": "user", "content": f"q{i}"}], role="task",
                                sample_id=i % 2).text for i in range(5)], client

    cold_fake = CountingCreate()
    cold, _ = run(cold_fake)

    def must_not_be_called(**kwargs):
        raise AssertionError("warm rerun made an LLM call")

    warm, client = run(must_not_be_called)
    assert warm == cold and len(cold_fake.calls) == 5
    assert client.ledger.snapshot()["usage"]["task"]["cache_hits"] == 5


def test_failed_calls_are_not_cached(tmp_path):
    from polca_nb.llm import LLMError, RetryPolicy

    def broken(**kwargs):
        raise ValueError("malformed request")

    client = LLMClient(model="claude-haiku-4-5", create=broken, cache=LLMCache(tmp_path),
                       retry=RetryPolicy(max_attempts=1))
    with pytest.raises(LLMError):
        client.complete(system="s", messages=USER, role="task")
    assert not list(tmp_path.rglob("*.json"))
