"""With ANTHROPIC_API_KEY set, no file the package writes holds the key: run dirs, events, checkpoints,
usd.json, the reply cache, and an executed notebook's outputs (requests go to the local stand-in API)."""

from __future__ import annotations

import json

import nbformat
import pytest

from messages_api_server import MessagesAPIServer
from polca_nb.budget import Budget
from polca_nb.embedders import CharNgramEmbedder
from polca_nb.errors import FatalError
from polca_nb.llm import Price, config, default_client
from polca_nb.reproduce import execute_notebook
from polca_nb.roles import LLMProposer, LLMSummarizer
from polca_nb.runner import PolcaConfig, Problem, polca
from polca_nb.types import Evaluation, Example

SECRET = "sk-ant-api03-SECRET-never-written-0123456789"


def script(request):
    if request.body["messages"][0]["content"][0]["text"].startswith("Q:") if isinstance(
            request.body["messages"][0]["content"], list) else request.body["messages"][0]["content"].startswith("Q:"):
        return "Paris"
    if "summar" in request.system_text.lower():
        return "<summary>Answer briefly.</summary>"
    return f'<param name="prompt">Answer in one word, variant {request.index}.</param>'


@pytest.mark.slow
def test_no_written_file_holds_the_api_key(tmp_path, monkeypatch):
    with MessagesAPIServer(script, api_key=SECRET) as api:
        monkeypatch.setenv(config.ENV_API_KEY, SECRET)
        monkeypatch.setenv(config.ENV_BASE_URL, api.url)  # (a key inside the URL: test_llm_paid_path)
        monkeypatch.setenv(config.ENV_CACHE_DIR, str(tmp_path / "cache"))
        monkeypatch.delenv(config.ENV_MODEL, raising=False)
        monkeypatch.delenv(config.ENV_MODEL_OLD, raising=False)

        llm = default_client()
        assert SECRET not in repr(llm)

        def evaluate(params, example, seed):
            answer = llm.complete(system=params["prompt"], messages=[{"role": "user", "content": "Q: " + example.id}],
                                  role="task", max_tokens=16, sample_id=seed).text
            return Evaluation(float("Paris" in answer), "ok", output=answer)

        problem = Problem("secret", {"prompt": "Answer."}, [Example(f"q{i}", None) for i in range(4)], evaluate)
        config_ = PolcaConfig(Budget(max_metric_calls=24, max_usd=5.0), num_candidates=2, batch_size=2)
        result = polca(problem, LLMProposer(llm, max_tokens=200, temperature=0.7), config_,
                       embedder=CharNgramEmbedder(), summarizer=LLMSummarizer(llm), run_dir=tmp_path / "run",
                       progress=False, llm=llm, extra_log=lambda: llm.ledger.snapshot())
        assert result.spent.metric_calls > 0 and not api.rejected()

        # A fatal error's message goes into the event log too (the stand-in answers 404 for an unknown model).
        bad = default_client(model="claude-unknown-9", price=Price(1.0, 1.0), cache=False)
        bad_problem = Problem("secret-bad", {"prompt": "Answer."}, problem.trainset,
                              lambda p, e, s: Evaluation(float(bool(bad.complete(
                                  system="s", messages=[{"role": "user", "content": "Q"}], role="task",
                                  max_tokens=8, sample_id=s).text)), "ok"))
        with pytest.raises(FatalError, match="not_found_error"):
            polca(bad_problem, LLMProposer(bad, max_tokens=10, temperature=0.0),
                  PolcaConfig(Budget(max_metric_calls=8), num_candidates=1, batch_size=2, eps=0,
                              use_summarizer=False), run_dir=tmp_path / "bad", progress=False)
        assert "not_found_error" in (tmp_path / "bad" / "events.jsonl").read_text()

        api.script = script
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "from polca_nb.llm import default_client\n"
            "llm = default_client()\n"
            "print(repr(llm))\n"
            "reply = llm.complete(system='s', messages=[{'role': 'user', 'content': 'Q: notebook'}], role='task',"
            " max_tokens=8)\n"
            "print(reply)\nprint(llm.ledger)\nllm")])
        source = tmp_path / "nb" / "secret.ipynb"
        source.parent.mkdir()
        nbformat.write(notebook, source)
        execute_notebook(source, tmp_path / "nb" / "secret.out.ipynb", 300)

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".json", ".jsonl", ".ipynb"} <= kinds
    assert any("cache" in p.parts for p in written) and (tmp_path / "run" / "usd.json").exists()
    leaks = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert leaks == []
    executed = json.loads((tmp_path / "nb" / "secret.out.ipynb").read_text())
    assert "LLMClient(" in json.dumps(executed["cells"][0]["outputs"])
