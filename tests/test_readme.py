"""The README's own-problem example runs as written (with a scripted LLM in place of the real client)."""

from __future__ import annotations

import re
from pathlib import Path

import polca_nb
import polca_nb.embedders
import polca_nb.llm
from polca_nb.embedders import CharNgramEmbedder
from polca_nb.llm import Ledger, ScriptedLLM

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Using POLCA on your own problem"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its section {SECTION!r}"
    match = re.search(r"```python\n(.*?)```", text[text.index(SECTION):], re.S)
    assert match, f"no python code block under {SECTION!r}"
    return match.group(1)


def scripted_reply(request: dict) -> str:
    role = request["role"]
    if role == "proposer":
        return (f'<param name="prompt">Answer the question with one word. Variant {request["sample_id"] % 11}.'
                "</param>")
    if role == "summarizer":
        return "<summary>Answer with the single word asked for.</summary>"
    return "Paris" if "one word" in request["system"] else "I am not sure."


def test_the_readme_own_problem_example_runs(tmp_path, monkeypatch, capsys):
    llm = ScriptedLLM(scripted_reply)
    llm.ledger = Ledger()  # what the example prints; the real client has one
    monkeypatch.setattr(polca_nb.llm, "default_client", lambda **kw: llm)
    monkeypatch.setattr(polca_nb, "default_client", lambda **kw: llm)
    monkeypatch.setattr(polca_nb.embedders, "default_embedder", CharNgramEmbedder)
    monkeypatch.chdir(tmp_path)

    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)  # noqa: S102 - our own README

    result = namespace["result"]
    assert result.stop_reason == "max_metric_calls" and result.spent.metric_calls <= 100
    roles = {call["role"] for call in llm.calls}
    assert {"task", "proposer", "summarizer"} <= roles
    assert result.best.mean is not None and result.best.mean > 0  # a proposal fixed the answers to Paris
    assert (tmp_path / "runs" / "mine" / "checkpoint.json").exists()
    out = capsys.readouterr().out
    assert "stopped by max_metric_calls" in out and str(result.best.params) in out


def test_the_readme_example_imports_from_the_package_only():
    imports = [line for line in readme_example().splitlines() if line.startswith(("import ", "from "))]
    assert imports and all(line.startswith("from polca_nb import ") for line in imports), imports


def test_optimize_needs_exactly_one_of_budget_and_config():
    import pytest

    from polca_nb import Budget, PolcaConfig, Problem, optimize

    problem = Problem("p", {"prompt": "x"}, [polca_nb.Example("0", None)], lambda p, e, s: polca_nb.Evaluation(1, ""))
    with pytest.raises(ValueError, match="budget= .* or config="):
        optimize(problem)
    with pytest.raises(ValueError, match="not both"):
        optimize(problem, budget=Budget(max_iterations=1), config=PolcaConfig(Budget(max_iterations=1)))
