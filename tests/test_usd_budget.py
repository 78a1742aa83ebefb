"""Budget(max_usd=...) through a real POLCA loop: a clean stop before the call that could pass the
limit, the reason and spend in the result and the log, a resumed run continuing the same spend; and
a fatal request rejection stopping the run at its first call."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from polca_nb.budget import Budget
from polca_nb.embedders import CharNgramEmbedder
from polca_nb.errors import FatalError
from polca_nb.llm import LLMCache, LLMClient, LLMFatalError
from polca_nb.roles import LLMProposer, LLMSummarizer
from polca_nb.runner import PolcaConfig, Problem, polca
from polca_nb.types import Evaluation, Example

MODEL = "claude-haiku-4-5"  # $1 / $5 per MTok, no thinking


def reply_for(body):
    """A Messages-API reply per role: the proposer writes a variant, the task model answers."""
    prompt = json.dumps(body["messages"])
    if "<summary>" in prompt or "summar" in json.dumps(body.get("system", "")).lower():
        text = "<summary>Be brief.</summary>"
    elif json.dumps(body["messages"][0]["content"]).lstrip('["{').startswith("Q:") or "Q: " in json.dumps(
            body["messages"][0]["content"])[:40]:
        text = "Paris"
    else:
        text = f'<param name="prompt">Answer in one word (variant {len(prompt) % 97}).</param>'
    # Usage as a real endpoint reports it: ~4 characters per token, never more than max_tokens out.
    prompt_tokens = len(json.dumps([body.get("system"), body["messages"]])) // 4
    return {"type": "message", "role": "assistant", "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "usage": {"input_tokens": prompt_tokens,
                                                  "output_tokens": min(150, body["max_tokens"])}}


class Transport:
    def __init__(self):
        self.calls = 0

    def __call__(self, **body):
        self.calls += 1
        return reply_for(body)


def make_problem(llm):
    def evaluate(params, example, seed):
        answer = llm.complete(system=params["prompt"], messages=[{"role": "user", "content": "Q: " + example.id}],
                              role="task", max_tokens=16, sample_id=seed).text
        return Evaluation(float("Paris" in answer and "one word" in params["prompt"]), "ok")

    trainset = [Example(f"q{i}", None) for i in range(6)]
    return Problem("usd", {"prompt": "Answer."}, trainset=trainset, evaluator=evaluate)


def run(tmp_path, max_usd, transport, cache, **kw):
    llm = LLMClient(model=MODEL, create=transport, cache=cache)
    config = PolcaConfig(Budget(max_metric_calls=60, max_usd=max_usd, **kw), num_candidates=2, batch_size=2)
    result = polca(make_problem(llm), LLMProposer(llm, max_tokens=300, temperature=0.7), config,
                   embedder=CharNgramEmbedder(), summarizer=LLMSummarizer(llm), seed=0,
                   run_dir=tmp_path / "run", progress=False, llm=llm)
    return result, llm


def test_a_usd_budget_stops_cleanly_and_a_resumed_run_continues_the_same_spend(tmp_path):
    cache = LLMCache(tmp_path / "cache")
    first, llm = run(tmp_path, 0.02, Transport(), cache)
    assert first.stop_reason == "max_usd"
    assert 0 < sum(first.usd.values()) <= 0.02
    stop = [e for e in first.events if e.get("type") == "stopped"][-1]
    assert stop["reason"] == "max_usd" and stop["usd"] == first.usd
    assert "stopped by max_usd" in first.summary() and "LLM spend $" in first.summary()
    assert json.loads((tmp_path / "run" / "usd.json").read_text())["usd_by_role"] == first.usd
    usage = json.loads((tmp_path / "run" / "llm_usage.json").read_text())
    assert usage["usage"]["total"]["calls"] == llm.ledger.total().calls and usage["faults"] == {}

    # Same limit again: the run has already spent it, so it stops at once without a paid call.
    again_transport = Transport()
    again, _ = run(tmp_path, 0.02, again_transport, LLMCache(tmp_path / "cache"))
    assert again.stop_reason == "max_usd" and sum(again.usd.values()) == pytest.approx(sum(first.usd.values()))

    # A larger limit continues: the replayed calls are cache hits, the total keeps growing from there.
    more, _ = run(tmp_path, 0.06, Transport(), LLMCache(tmp_path / "cache"))
    assert sum(more.usd.values()) > sum(first.usd.values()) and sum(more.usd.values()) <= 0.06
    assert more.spent.metric_calls >= first.spent.metric_calls


def test_a_per_role_usd_limit_names_the_role(tmp_path):
    result, _ = run(tmp_path, None, Transport(), LLMCache(), max_usd_by_role={"proposer": 0.004})
    assert result.stop_reason == "max_usd[proposer]"
    assert result.usd["proposer"] <= 0.004 and result.usd.get("task", 0) > 0


def test_max_usd_without_the_llm_is_refused(tmp_path):
    llm = LLMClient(model=MODEL, create=Transport(), cache=None)
    config = PolcaConfig(Budget(max_usd=1.0), num_candidates=2, batch_size=2, eps=0, use_summarizer=False)
    with pytest.raises(ValueError, match="llm="):
        polca(make_problem(llm), LLMProposer(llm, max_tokens=300, temperature=0.7), config, progress=False,
              run_dir=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before anything was written


def test_a_rejected_request_stops_the_run_at_the_first_call_with_the_api_message(tmp_path):
    calls = []

    def reject(**body):
        calls.append(body)
        request = httpx.Request("POST", "https://api.anthropic.com/v1/messages")
        error = {"type": "error", "error": {"type": "invalid_request_error",
                                            "message": "temperature: Extra inputs are not permitted"}}
        raise anthropic.BadRequestError("400", response=httpx.Response(400, request=request, json=error), body=error)

    llm = LLMClient(model=MODEL, create=reject, cache=None)
    config = PolcaConfig(Budget(max_metric_calls=40), num_candidates=2, batch_size=2)
    with pytest.raises(LLMFatalError, match="Extra inputs are not permitted") as info:
        polca(make_problem(llm), LLMProposer(llm, max_tokens=300, temperature=0.7), config,
              embedder=CharNgramEmbedder(), summarizer=LLMSummarizer(llm), run_dir=tmp_path / "r", progress=False,
              llm=llm)
    assert isinstance(info.value, FatalError) and len(calls) == 1
    result = info.value.result
    assert result.stop_reason == "fatal_error" and "invalid_request_error" in result.summary()
    assert not any(e.get("type") == "evaluation" for e in result.events)


def test_a_missing_model_binary_stops_the_run_at_the_first_call(tmp_path, monkeypatch):
    from polca_nb.llm import LocalServer, LocalServerError
    from polca_nb.llm import config as llm_config

    monkeypatch.setenv(llm_config.ENV_LLAMA_SERVER, str(tmp_path / "no-such-llama-server"))
    llm = LLMClient(model=llm_config.LOCAL_MODEL_NAME, server=LocalServer(), cache=None)
    config = PolcaConfig(Budget(max_metric_calls=40), num_candidates=2, batch_size=2)
    with pytest.raises(LocalServerError, match="no-such-llama-server") as info:
        polca(make_problem(llm), LLMProposer(llm, max_tokens=300, temperature=0.7), config,
              embedder=CharNgramEmbedder(), summarizer=LLMSummarizer(llm), progress=False)
    assert isinstance(info.value, FatalError)
    assert info.value.result.stop_reason == "fatal_error" and not info.value.result.history
