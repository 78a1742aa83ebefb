"""Cost preview: one dry iteration measures the real prompts; nothing is sent, cached or billed; the
projection scales with the budget; confirm= refuses to start above a threshold."""

from __future__ import annotations

import pytest

from polca_nb.budget import Budget
from polca_nb.embedders import CharNgramEmbedder
from polca_nb.llm import LLMCache, LLMClient
from polca_nb.preview import RunRefused, confirm_below, preview_run
from polca_nb.roles import LLMProposer, LLMSummarizer
from polca_nb.runner import PolcaConfig, polca

from test_usd_budget import MODEL, Transport, make_problem


def setup(tmp_path, calls=60):
    transport = Transport()
    cache = LLMCache(tmp_path / "cache")
    llm = LLMClient(model=MODEL, create=transport, cache=cache)
    config = PolcaConfig(Budget(max_metric_calls=calls), num_candidates=2, batch_size=2)
    roles = dict(embedder=CharNgramEmbedder(), summarizer=LLMSummarizer(llm))
    return llm, transport, cache, config, make_problem(llm), LLMProposer(llm, max_tokens=300, temperature=0.7), roles


def test_the_preview_sends_nothing_and_scales_with_the_budget(tmp_path):
    llm, transport, cache, config, problem, proposer, roles = setup(tmp_path)
    small = preview_run(problem, proposer, config, llm=llm, **roles)
    assert transport.calls == 0 and len(cache) == 0 and llm.ledger.total().requests == 0
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))
    # K=2, b=2, m=1, P=1: 4 exploration + 2 proposals x 2 validation calls per iteration -> 60 // 8 = 7.
    assert small.iterations == 7 and small.metric_calls == 56
    assert small.roles["proposer"].requests == 7 * 2 and small.roles["summarizer"].requests == 7
    assert small.roles["task"].requests == 56  # one task call per metric call, measured in the dry iteration
    assert small.roles["task"].max_output_tokens == 56 * 16
    big = preview_run(problem, proposer, PolcaConfig(Budget(max_metric_calls=600), num_candidates=2, batch_size=2),
                      llm=llm, **roles)
    assert big.iterations == 75 and big.usd() == pytest.approx(small.usd() * 75 / 7, rel=1e-6)
    assert "with prompt caching" in str(big) and big.usd(caching=True) <= big.usd(caching=False)


def test_confirm_refuses_to_start_above_the_threshold_and_starts_below(tmp_path):
    llm, transport, _, config, problem, proposer, roles = setup(tmp_path)
    shown = []
    with pytest.raises(RunRefused, match="projected \\$") as info:
        polca(problem, proposer, config, llm=llm, confirm=confirm_below(0.0001, show=shown.append),
              run_dir=tmp_path / "run", progress=False, **roles)
    assert transport.calls == 0 and not (tmp_path / "run").exists() and "projected run" in shown[0]
    assert info.value.preview.usd() > 0.0001
    result = polca(problem, proposer, config, llm=llm, confirm=confirm_below(10.0, show=shown.append),
                   run_dir=tmp_path / "run", progress=False, **roles)
    assert transport.calls > 0 and result.stop_reason == "max_metric_calls"
    # The projection is an upper bound of what the run spent.
    assert sum(result.usd.values()) <= info.value.preview.usd()
