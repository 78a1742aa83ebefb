"""The Claude path: requests today's API accepts, prices, prompt caching, fatal errors, USD limits,
secrets, and the reply cache under faults and concurrent writers (all offline, with fakes)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from polca_nb.errors import BudgetExhausted, FatalError
from polca_nb.llm import LLMCache, LLMClient, LLMError, LLMFatalError, Ledger, RetryPolicy, SpendLimit
from polca_nb.llm import config
from polca_nb.llm.backends import default_client, model_from_env
from polca_nb.llm.client import BackendOptions, MalformedReply, redact_url

USER = [{"role": "user", "content": "Name a colour."}]
CONVERSATION = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]


def message(text="Blue.", **usage):
    return {"type": "message", "role": "assistant", "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 2, **usage}}


class Recorder:
    def __init__(self, *replies):
        self.replies = list(replies) or [message()]
        self.calls = []

    def __call__(self, **body):
        self.calls.append(body)
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        if isinstance(reply, BaseException):
            raise reply
        return reply


def fast_retry(attempts=4):
    return RetryPolicy(max_attempts=attempts, initial_s=0.0, jitter=0.0)


# -- requests Claude accepts --------------------------------------------------------------------------
def test_no_sampling_parameter_ever_reaches_claude_and_the_key_holds_only_what_is_sent():
    fake = Recorder()
    client = LLMClient(model=config.DEFAULT_CLAUDE_MODEL, create=fake, cache=LLMCache())
    client.complete(system="s", messages=USER, role="task", temperature=0.7, max_tokens=24)
    client.complete(system="s", messages=USER, role="task", temperature=0.0, max_tokens=24)
    body = fake.calls[0]
    assert "temperature" not in body and "top_p" not in body and "extra_body" not in body
    # Two temperatures are one request for Claude: the second is a cache hit, not a second paid call.
    assert len(fake.calls) == 1 and client.ledger.usage("task").cache_hits == 1


def test_a_thinking_model_gets_low_effort_and_a_thinking_allowance_on_top_of_the_role_budget():
    fake = Recorder()
    client = LLMClient(model="claude-sonnet-5-5", create=fake, cache=None)
    client.complete(system="s", messages=USER, role="task", max_tokens=24)
    assert fake.calls[0]["max_tokens"] == 24 + config.THINKING_ALLOWANCE_TOKENS
    assert fake.calls[0]["output_config"] == {"effort": "low"}
    plain = Recorder()
    LLMClient(model="claude-haiku-4-5", create=plain, cache=None).complete(system="s", messages=USER, role="t",
                                                                              max_tokens=24)
    assert plain.calls[0]["max_tokens"] == 24 and "output_config" not in plain.calls[0]


def test_the_local_server_gets_temperature_and_seed_and_no_cache_breakpoints():
    fake = Recorder()
    client = LLMClient(model=config.LOCAL_MODEL_NAME, create=fake, cache=None, send_seed=True,
                       options=BackendOptions.for_model(config.LOCAL_MODEL_NAME, local=True))
    client.complete(system="s", messages=CONVERSATION, role="task", temperature=0.3)
    body = fake.calls[0]
    assert body["extra_body"]["temperature"] == 0.3 and "seed" in body["extra_body"]
    assert "cache_control" not in json.dumps(body)


def test_prompt_cache_breakpoints_mark_system_tools_and_the_conversation_but_not_the_key():
    tool = {"name": "lookup", "description": "d", "input_schema": {"type": "object"}}
    fake = Recorder()
    cache = LLMCache()
    client = LLMClient(model="claude-haiku-4-5", create=fake, cache=cache)
    client.complete(system="the wiki", messages=CONVERSATION, role="task", tools=[tool, dict(tool, name="b")])
    body = fake.calls[0]
    assert body["system"] == [{"type": "text", "text": "the wiki", "cache_control": {"type": "ephemeral"}}]
    assert "cache_control" not in body["tools"][0] and body["tools"][1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert json.dumps(body).count("cache_control") == 3  # the API allows 4
    stored = next(iter(cache._memory.values()))
    assert "cache_control" not in json.dumps(stored["request"])  # the caller's request, unmarked
    assert "cache_control" not in json.dumps(CONVERSATION)  # and the caller's messages are untouched
    single = Recorder()
    LLMClient(model="claude-haiku-4-5", create=single, cache=None).complete(system="s", messages=USER, role="p")
    assert "cache_control" not in json.dumps(single.calls[0]["messages"])  # a one-shot prompt is not a prefix


def test_cache_tokens_are_counted_and_priced_apart():
    fake = Recorder(message(cache_creation_input_tokens=1000, cache_read_input_tokens=4000))
    client = LLMClient(model="claude-sonnet-5-5", create=fake, cache=None)
    reply = client.complete(system="s", messages=USER, role="task")
    assert (reply.cache_write_tokens, reply.cache_read_tokens) == (1000, 4000)
    usage = client.ledger.usage("task")
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_read_tokens) == (10, 1000, 4000)
    assert usage.prompt_tokens == 5010
    price = config.CLAUDE_MODELS["claude-sonnet-5-5"].price
    assert usage.usd == pytest.approx((10 * 2.0 + 2 * 10.0 + 1000 * price.cache_write_per_mtok
                                       + 4000 * price.cache_read_per_mtok) / 1e6)


# -- the model table ----------------------------------------------------------------------------------
def test_prices_match_exact_model_ids_not_prefixes():
    assert config.price_for("claude-opus-4-6") == config.CLAUDE_MODELS["claude-opus-4-6"].price
    assert config.price_for("claude-opus-4-6").input_per_mtok == 5.0  # was billed as claude-opus-4 ($15)
    assert config.price_for("claude-haiku-4-5-20251001") == config.price_for("claude-haiku-4-5")
    for model in ("claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1", "claude-haiku-5-5"):
        assert config.price_for(model).output_per_mtok > 0
    with pytest.raises(ValueError, match="claude-opus-9"):
        config.price_for("claude-opus-9")
    assert config.model_spec(config.DEFAULT_CLAUDE_MODEL).status == "current"


def test_a_retired_model_is_refused_before_any_request():
    with pytest.raises(ValueError, match="claude-sonnet-4-5.*retired on 2026-11-30"):
        LLMClient(model="claude-sonnet-4-5", create=Recorder(), cache=None)
    with pytest.raises(ValueError, match="retired"):
        config.check_claude_model("claude-sonnet-4-5-20250929")


def test_the_documented_model_variable_is_read_and_the_old_one_must_agree(monkeypatch):
    monkeypatch.setenv(config.ENV_MODEL, "claude-haiku-5-5")
    monkeypatch.delenv(config.ENV_MODEL_OLD, raising=False)
    assert model_from_env() == "claude-haiku-5-5"
    monkeypatch.setenv(config.ENV_API_KEY, "sk-test")
    monkeypatch.delenv(config.ENV_BASE_URL, raising=False)
    assert default_client(cache=False).model == "claude-haiku-5-5"
    monkeypatch.setenv(config.ENV_MODEL_OLD, "claude-opus-5-5")
    with pytest.raises(ValueError, match="disagree"):
        model_from_env()


# -- faults and fatal errors --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [{"ok": True}, {"type": "error", "content": []}, {"content": None},
                                 json.JSONDecodeError("Expecting value", '{"type": "mess', 14)],
                         ids=["not-a-message", "other-type", "null-content", "truncated"])
def test_a_malformed_200_is_retried_and_never_cached(bad):
    fake = Recorder(bad, message("Green."))
    cache = LLMCache()
    client = LLMClient(model="claude-haiku-4-5", create=fake, cache=cache, retry=fast_retry(), sleep=lambda s: None)
    reply = client.complete(system="s", messages=USER, role="task")
    assert reply.text == "Green." and len(fake.calls) == 2
    assert [entry["reply"]["text"] for entry in cache._memory.values()] == ["Green."]
    assert client.ledger.faults() == {"malformed": 1} and client.ledger.usage("task").retries == 1


def test_a_malformed_200_on_every_attempt_is_an_error_and_nothing_is_cached():
    cache = LLMCache()
    client = LLMClient(model="claude-haiku-4-5", create=Recorder({"ok": True}), cache=cache, retry=fast_retry(2),
                       sleep=lambda s: None)
    with pytest.raises(LLMError, match="MalformedReply") as info:
        client.complete(system="s", messages=USER, role="task")
    assert not isinstance(info.value, FatalError) and len(cache) == 0
    assert isinstance(info.value.cause, MalformedReply)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_closed_port_is_fatal_and_named_through_the_real_sdk():
    url = f"http://127.0.0.1:{_closed_port()}"
    client = LLMClient(model="claude-haiku-4-5", base_url=url, api_key="k", cache=None, retry=fast_retry(2),
                       timeout_s=5)
    started = time.perf_counter()
    with pytest.raises(LLMFatalError, match=f"cannot reach {url}"):
        client.complete(system="s", messages=USER, role="task")
    assert time.perf_counter() - started < 30
    assert client.ledger.faults() == {"refused": 2}


def test_a_key_inside_the_base_url_reaches_no_cache_entry_repr_or_message(tmp_path):
    secret = "sk-ant-SECRET-123"
    url = f"http://user:{secret}@127.0.0.1:{_closed_port()}"
    assert redact_url(url).startswith("http://127.0.0.1:") and secret not in redact_url(url)
    cache = LLMCache(tmp_path)
    good = LLMClient(model="claude-haiku-4-5", base_url=url, cache=cache, cache_namespace=url, create=Recorder())
    good.complete(system="s", messages=USER, role="task")
    assert secret not in repr(good)
    assert all(secret not in p.read_text() for p in tmp_path.rglob("*.json"))
    bad = LLMClient(model="claude-haiku-4-5", base_url=url, api_key="k", cache=None, retry=fast_retry(1))
    with pytest.raises(LLMFatalError) as info:
        bad.complete(system="s", messages=USER, role="task")
    assert secret not in str(info.value)


# -- USD limits ---------------------------------------------------------------------------------------
def test_a_usd_limit_stops_before_the_call_that_could_exceed_it_and_cache_hits_are_free():
    ledger = Ledger()
    fake = Recorder(message(output_tokens=100))
    cache = LLMCache()
    client = LLMClient(model="claude-haiku-4-5", create=fake, cache=cache, ledger=ledger)
    # Each call costs ~$0.00051; its worst case (prompt at 3 chars/token, all 100 tokens) ~$0.00052.
    ledger.install_limit(SpendLimit(max_usd=0.0012))
    for i in range(2):
        client.complete(system="s", messages=USER, role="task", max_tokens=100, sample_id=i)
    with pytest.raises(BudgetExhausted, match="max_usd") as info:
        client.complete(system="s", messages=USER, role="task", max_tokens=100, sample_id=2)
    assert info.value.limit == "max_usd" and len(fake.calls) == 2
    client.complete(system="s", messages=USER, role="task", max_tokens=100, sample_id=0)  # a hit costs nothing
    assert len(fake.calls) == 2


def test_a_per_role_limit_names_the_role_and_carried_spend_counts():
    ledger = Ledger()
    client = LLMClient(model="claude-haiku-4-5", create=Recorder(), cache=None, ledger=ledger)
    ledger.install_limit(SpendLimit(max_usd_by_role={"proposer": 0.01}, carried={"proposer": 0.0099}))
    client.complete(system="s", messages=USER, role="task", max_tokens=10)  # other roles are not limited
    with pytest.raises(BudgetExhausted, match=r"max_usd\[proposer\]"):
        client.complete(system="s", messages=USER, role="proposer", max_tokens=100)
    with pytest.raises(ValueError, match="max_usd"):
        SpendLimit(max_usd=float("nan"))


# -- the reply cache under concurrent writers and killed writers --------------------------------------
def test_cache_writes_are_create_if_absent_and_hand_back_the_stored_value(tmp_path):
    first, second = LLMCache(tmp_path), LLMCache(tmp_path)
    assert first.put("ab" * 32, {"reply": "one"}) == {"reply": "one"}
    assert second.put("ab" * 32, {"reply": "two"}) == {"reply": "one"}
    assert LLMCache(tmp_path).get("ab" * 32) == {"reply": "one"}
    assert not list(tmp_path.rglob("*.tmp"))


def test_stale_temp_files_of_killed_writers_are_cleaned_on_the_first_write(tmp_path):
    (tmp_path / "cd").mkdir()
    stale = tmp_path / "cd" / ".cdcdcdcdcdcdcdcd.x1.tmp"
    fresh = tmp_path / "cd" / ".cdcdcdcdcdcdcdcd.x2.tmp"
    stale.write_text('{"torn')
    fresh.write_text('{"in progress')
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    LLMCache(tmp_path).put("ef" * 32, {"reply": "x"})
    assert not stale.exists() and fresh.exists()


def test_a_repeated_one_shot_prompt_gets_a_breakpoint_from_its_second_send_on():
    fake = Recorder()
    client = LLMClient(model="claude-haiku-4-5", create=fake, cache=None)
    for sample_id in range(3):  # e.g. a test set evaluated 3 times: same prompt, new samples
        client.complete(system="s", messages=USER, role="task", sample_id=sample_id)
    client.complete(system="s", messages=[{"role": "user", "content": "Another question."}], role="task")
    marked = ["cache_control" in json.dumps(call["messages"]) for call in fake.calls]
    assert marked == [False, True, True, False]


def test_the_attempt_timeout_grows_with_max_tokens():
    client = LLMClient(model="claude-haiku-4-5", create=Recorder(), cache=None)
    # The SDK's own estimate for an 8,192-token reply is ~230 s; a flat 120 s timed such replies out.
    assert client.timeout_for(8192) > 3600 * 8192 / 128_000
    assert client.timeout_for(24) == pytest.approx(config.CALL_TIMEOUT_S, abs=1)


def test_the_installed_sdk_sends_the_api_version_the_request_rules_are_written_for():
    import anthropic
    from anthropic._constants import ANTHROPIC_API_VERSION

    assert ANTHROPIC_API_VERSION == config.ANTHROPIC_API_VERSION, (
        f"anthropic {anthropic.__version__} sends API version {ANTHROPIC_API_VERSION}: re-check BackendOptions "
        "and tests/messages_api_server.py against that version's documented rules, then update the pin")


def test_calls_in_flight_count_against_a_usd_limit():
    ledger = Ledger()
    ledger.install_limit(SpendLimit(max_usd=0.001))
    ledger.check_spend("task", 0.0006)          # in flight on one thread
    with pytest.raises(BudgetExhausted):
        ledger.check_spend("task", 0.0006)      # a second one could pass the limit together with it
    ledger.release_spend("task", 0.0006)
    ledger.check_spend("task", 0.0006)
