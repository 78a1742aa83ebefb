"""Ledger arithmetic, pricing, thread safety, the snapshot's deterministic/latency split, and scoped usage
tracking (Ledger.track) on clients, scripted and wrapped LLMs."""

from __future__ import annotations

import json
import threading

import pytest

from polca_nb.errors import BudgetExhausted
from polca_nb.llm import (
    Ledger,
    LedgeredLLM,
    LLMCache,
    LLMClient,
    LLMError,
    LLMReply,
    Price,
    RequestUsage,
    RetryPolicy,
    ScriptedLLM,
    SpendLimit,
    config,
    ledger_of,
    price_for,
    with_ledger,
)


def test_price_cost_is_per_million_tokens():
    price = Price(3.0, 15.0)
    assert price.cost(1_000_000, 0) == pytest.approx(3.0)
    assert price.cost(0, 1_000_000) == pytest.approx(15.0)
    assert price.cost(2_000, 500) == pytest.approx(2_000 * 3e-6 + 500 * 15e-6)


def test_price_lookup_resolves_dated_snapshots_and_refuses_unknown_claude_models():
    assert price_for("claude-haiku-4-5-20250929") == config.CLAUDE_PRICES["claude-haiku-4-5"]
    # longest alias wins: claude-opus-4-1-... must not fall back to claude-opus-4
    assert price_for("claude-opus-4-1-20250805") == config.CLAUDE_PRICES["claude-opus-4-1"]
    assert price_for(config.LOCAL_MODEL_NAME) == Price(0.0, 0.0)
    with pytest.raises(ValueError, match="claude-future-9"):
        price_for("claude-future-9")
    with pytest.raises(ValueError, match="input_per_mtok"):
        Price(-1.0, 0.0)


def test_totals_are_exact_under_concurrent_recording():
    ledger = Ledger()
    price = Price(3.0, 15.0)
    threads, per_thread = 8, 200

    def work(index):
        for i in range(per_thread):
            tokens_in, tokens_out = 100 + i, 10 + index
            ledger.record_call("proposer" if i % 2 else "task", input_tokens=tokens_in, output_tokens=tokens_out,
                               usd=price.cost(tokens_in, tokens_out), latency_s=0.01)
            ledger.record_cache_hit("task")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    expected_in = threads * sum(100 + i for i in range(per_thread))
    expected_out = sum(per_thread * (10 + t) for t in range(threads))
    total = ledger.total()
    assert total.calls == threads * per_thread
    assert total.cache_hits == threads * per_thread
    assert (total.input_tokens, total.output_tokens) == (expected_in, expected_out)
    assert total.usd == pytest.approx(expected_in * 3e-6 + expected_out * 15e-6)
    assert ledger.usage("task").calls == ledger.usage("proposer").calls == threads * per_thread // 2


def test_snapshot_is_json_and_keeps_latency_out_of_usage():
    def fill(latency):
        ledger = Ledger()
        ledger.record_call("summarizer", input_tokens=5, output_tokens=7, usd=0.25, latency_s=latency, retries=2)
        ledger.record_call("proposer", input_tokens=1, output_tokens=2, usd=0.5, latency_s=latency)
        ledger.record_error("proposer", latency_s=latency, retries=3)
        return ledger.snapshot()

    fast, slow = fill(0.1), fill(9.0)
    assert json.dumps(fast["usage"]) == json.dumps(slow["usage"])
    assert fast["latency_s"] != slow["latency_s"]
    usage = fast["usage"]
    assert list(usage) == ["proposer", "summarizer", "total"]
    assert usage["proposer"] == {"calls": 1, "cache_hits": 0, "errors": 1, "retries": 3, "input_tokens": 1,
                                 "output_tokens": 2, "usd": 0.5, "requests": 2, "cache_write_tokens": 0,
                                 "cache_read_tokens": 0}
    assert usage["total"]["retries"] == 5 and usage["total"]["usd"] == pytest.approx(0.75)
    assert fast["latency_s"]["total"] == pytest.approx(0.3)


def test_bad_records_raise_value_error_naming_the_field():
    ledger = Ledger()
    with pytest.raises(ValueError, match="input_tokens"):
        ledger.record_call("task", input_tokens=-1, output_tokens=0, usd=0.0, latency_s=0.0)
    with pytest.raises(ValueError, match="role"):
        ledger.record_cache_hit("")
    with pytest.raises(ValueError, match="role"):
        ledger.record_cache_hit("total")


def test_table_views_list_every_role():
    ledger = Ledger()
    ledger.record_call("judge", input_tokens=1234, output_tokens=5, usd=0.01, latency_s=1.0)
    text, page = str(ledger), ledger._repr_html_()
    assert "judge" in text and "1,234" in text and text.splitlines()[-1].startswith("total")
    assert "<table>" in page and "judge" in page


def test_client_charges_the_model_price_and_nothing_for_cache_hits():
    price = config.CLAUDE_PRICES["claude-haiku-4-5"]

    def create(**kwargs):
        return {"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 1200, "output_tokens": 300}}

    client = LLMClient(model="claude-haiku-4-5-20251001", create=create, cache=LLMCache())
    for _ in range(3):
        client.complete(system="", messages=[{"role": "user", "content": "hi"}], role="judge")
    usage = client.ledger.usage("judge")
    assert (usage.calls, usage.cache_hits, usage.input_tokens, usage.output_tokens) == (1, 2, 1200, 300)
    assert usage.usd == pytest.approx(1200 * price.input_per_mtok / 1e6 + 300 * price.output_per_mtok / 1e6)


# -- scoped usage tracking (Ledger.track) ------------------------------------------------------------
def _usage_client(**kw):
    def create(**body):
        if "fail" in body["messages"][0]["content"]:
            raise ValueError("no retry fixes this")
        return {"content": [{"type": "text", "text": "ok"}],
                "usage": {"input_tokens": 100, "output_tokens": 7, "cache_read_input_tokens": 40}}

    return LLMClient(model="claude-haiku-4-5-20251001", create=create, cache=LLMCache(),
                     retry=RetryPolicy(max_attempts=1), **kw)


def test_a_tracker_counts_every_request_cached_ones_with_their_stored_tokens():
    client = _usage_client()
    ask = lambda text, role="task": client.complete(system="sys", messages=[{"role": "user", "content": text}],
                                                    role=role)
    ask("before")  # not tracked
    with client.ledger.track() as usage:
        assert usage.active
        for _ in range(3):
            ask("hello")  # 1 live call, 2 cache hits
        ask("before")  # a cache hit of a call made before the block
        ask("x" * 10, role="proposer")
    ask("after")
    task = usage.usage("task")
    assert not usage.active and usage.requests() == {"task": 4, "proposer": 1}
    assert (task.requests, task.cache_hits, task.errors) == (4, 3, 0)
    assert (task.input_tokens, task.output_tokens, task.cache_read_tokens, task.prompt_tokens) == (400, 28, 160, 560)
    assert task.prompt_chars == 3 * len("syshello") + len("sysbefore") and task.per_request() == (100.0, 7.0)
    assert task.tokens_per_char() == 400 / task.prompt_chars
    assert usage.usage("summarizer") == RequestUsage() and usage.total().requests == 5
    assert usage.snapshot()["total"]["input_tokens"] == 500 and list(usage.snapshot()) == ["proposer", "task", "total"]
    # the ledger's own totals are unchanged by tracking: live spend only
    ledger = client.ledger.usage("task")
    assert (ledger.calls, ledger.cache_hits, ledger.input_tokens) == (3, 3, 300)


def test_trackers_nest_filter_roles_restart_and_count_failures():
    client = _usage_client()
    limited = _usage_client()
    limited.ledger.install_limit(SpendLimit(max_usd=1e-9))
    ask = lambda c, text, role="task": c.complete(system="", messages=[{"role": "user", "content": text}], role=role)
    outer = client.ledger.track()
    with client.ledger.track(roles=["proposer"]) as inner:
        ask(client, "a")
        ask(client, "b", role="proposer")
        with pytest.raises(LLMError):
            ask(client, "fail", role="proposer")
    outer.stop()
    ask(client, "c")
    outer.start()
    ask(client, "d")
    assert inner.requests() == {"proposer": 2} and inner.usage("proposer").errors == 1
    assert outer.requests() == {"task": 2, "proposer": 2} and outer.usage("task").prompt_chars == 2
    with limited.ledger.track() as refused, pytest.raises(BudgetExhausted):
        ask(limited, "e")
    assert refused.usage("task").errors == 1 and limited.ledger.usage("task").requests == 0
    with pytest.raises(TypeError, match="collection"):
        client.ledger.track(roles="task")


def test_dry_run_requests_are_not_tracked():
    client = _usage_client()
    with client.ledger.track() as usage, client.dry_run() as dry:
        client.complete(system="", messages=[{"role": "user", "content": "hi"}], role="task")
    assert len(dry) == 1 and usage.requests() == {}


def test_scripted_and_wrapped_llms_feed_their_ledger_and_trackers():
    scripted = ScriptedLLM(["a", "b"], ledger=Ledger())
    with scripted.ledger.track() as usage:
        scripted.complete(system="s", messages=[{"role": "user", "content": "hi"}], role="task")
        scripted.complete(system="", messages=[{"role": "user", "content": "hey"}], role="task")
        with pytest.raises(RuntimeError, match="ran out"):
            scripted.complete(system="", messages=[{"role": "user", "content": "more"}], role="task")
    assert usage.usage("task") == RequestUsage(requests=3, errors=1, prompt_chars=10)
    assert (scripted.ledger.usage("task").calls, scripted.ledger.usage("task").errors) == (2, 1)
    assert with_ledger(scripted) is scripted and ledger_of(ScriptedLLM()) is None

    class Counting:
        """An LLM of its own kind, without a ledger: tokens from the prompt, odd sample ids cached."""

        model = "counting"

        def complete(self, *, system, messages, role, max_tokens=1024, temperature=0.0, sample_id=0, tools=None,
                     stop=None):
            return LLMReply("ok", input_tokens=len(messages[0]["content"]) // 4, output_tokens=3,
                            cached=sample_id % 2 == 1)

    wrapped = with_ledger(Counting())
    assert isinstance(wrapped, LedgeredLLM) and wrapped.model == "counting"
    with wrapped.ledger.track() as usage:
        for i in range(3):
            wrapped.complete(system="", messages=[{"role": "user", "content": "x" * 40}], role="task", sample_id=i)
    assert usage.usage("task") == RequestUsage(requests=3, cache_hits=1, prompt_chars=120, input_tokens=30,
                                               output_tokens=9)
    live = wrapped.ledger.usage("task")
    assert (live.calls, live.cache_hits, live.input_tokens, live.usd) == (2, 1, 20, 0.0)
