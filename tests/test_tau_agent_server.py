"""One short real τ-bench episode on the embedded local model (marked `server` and `slow`)."""

from __future__ import annotations

import pytest

from polca_nb.benchmarks.tau_retail import PARAM, TauAgent, TauEvaluator, load_retail
from polca_nb.benchmarks.tau_retail.evaluator import task_example
from polca_nb.llm import LLMClient, LocalServer, ServerSettings, config


@pytest.mark.server
@pytest.mark.slow
def test_one_short_episode_on_the_local_model_finishes_and_cleans_up(tmp_path):
    data = load_retail()
    server = LocalServer(ServerSettings(log_dir=tmp_path))
    try:
        llm = LLMClient(model=config.LOCAL_MODEL_NAME, server=server, api_key=config.LOCAL_API_KEY, cache=None,
                        timeout_s=300)
        agent = TauAgent(llm, data.wiki, max_tokens=48, observation_chars=300, catalog_detail=False)
        assert agent.mode == "text"   # chosen automatically for the embedded server
        evaluator = TauEvaluator(data, agent, user_llm=llm, user_max_tokens=32, max_steps=2)
        evaluation = evaluator({PARAM: "Authenticate the customer first."}, task_example(data.task("test", 0)),
                               seed=0)
        episode = evaluator.episodes[-1]
        assert episode.error is None, episode.error
        assert episode.ended in ("truncated", "stop", "transfer") and 1 <= len(episode.turns) <= 2
        assert evaluation.score in (0.0, 1.0) and evaluation.feedback.startswith("Reward:")
        usage = llm.ledger.snapshot()["usage"]
        assert usage["task"]["calls"] >= 1 and usage["user_sim"]["calls"] >= 1
    finally:
        server.stop()
    assert not server.is_running()
