"""Ledger arithmetic, pricing, thread safety and the snapshot's deterministic/latency split."""

from __future__ import annotations

import json
import threading

import pytest

from polca_nb.llm import LLMCache, LLMClient, Ledger, Price, price_for
from polca_nb.llm import config


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
