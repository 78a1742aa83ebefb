"""Candidate lineage: the tree built from a run's events, its standalone HTML page and notebook view."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from polca_nb import lineage as lineage_module
from polca_nb.budget import Budget
from polca_nb.lineage import (
    LINEAGE_HTML,
    Lineage,
    lineage,
    lineage_html,
    save_lineage,
    show_lineage,
    write_lineage,
)
from polca_nb.runner import PolcaConfig, polca
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem
from polca_nb.types import Evaluation

BUDGET = 108  # with these settings the last iteration's admissions cannot all be validated: one budget_drop


class RecordingProposer:
    """ScriptedProposer that records, call by call, the context it was given."""

    def __init__(self):
        self.inner, self.calls = ScriptedProposer(), []

    def propose(self, candidate, batch, context, seed):
        self.calls.append((candidate.id, context))
        return self.inner.propose(candidate, batch, context, seed)


def _run(run_dir=None, *, proposer=None, problem=None, **cfg):
    config = PolcaConfig(Budget(max_metric_calls=cfg.pop("budget", BUDGET)),
                         **{"num_candidates": 5, "batch_size": 2, "eps": 0.5, **cfg})
    return polca(problem or skills_problem(), proposer or ScriptedProposer(), config, embedder=SkillsEmbedder(),
                 summarizer=SkillsSummarizer() if config.use_summarizer else None, progress=False, run_dir=run_dir)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    proposer = RecordingProposer()
    result = _run(tmp_path_factory.mktemp("run"), proposer=proposer)
    return result, proposer


def _filter_events(result):
    return [e for e in result.events if e["type"] in ("admission", "rejection")]


def test_parent_links_form_one_tree_rooted_at_the_seed(recorded):
    result, _ = recorded
    tree = lineage(result.events, result.memory)
    assert tree.roots == (0,)
    seed = tree.nodes[0]
    assert seed.status == "seed" and seed.parent_id is None and seed.params == dict(skills_problem().seed_params)
    for cid, node in tree.nodes.items():
        assert node.candidate_id == cid
        if cid:
            assert node.parent_id in tree.nodes and cid in tree.nodes[node.parent_id].children
            assert tree.path_to(cid)[0] == 0 and tree.path_to(cid)[-1] == cid
        assert all(tree.nodes[c].parent_id == cid for c in node.children)
    walked = [node.candidate_id for _, node in tree.walk()]
    assert sorted(walked) == sorted(tree.nodes) and len(walked) == len(set(walked))
    assert {c.id for c in result.memory} <= set(tree.nodes)


def test_every_eps_net_decision_is_a_node_with_its_distance(recorded):
    result, _ = recorded
    tree = lineage(result.events, result.memory)
    decisions = _filter_events(result)
    assert decisions and any(e["type"] == "rejection" for e in decisions)
    assert len(tree) == 1 + len(decisions)
    dropped = {e["candidate_id"] for e in result.events if e["type"] == "budget_drop"}
    assert dropped, "the settings must produce a budget_drop"
    for e in decisions:
        node = tree.nodes[e["candidate_id"]]
        expected = "budget_drop" if e["candidate_id"] in dropped else \
            {"admission": "admitted", "rejection": "rejected"}[e["type"]]
        assert node.status == expected
        assert (node.distance, node.eps, node.parent_id, node.step, node.params) == \
            (e["distance"], e["eps"], e["parent_id"], e["step"], e["params"])
        if node.status != "admitted":
            assert (node.n, node.mean) == (0, None)
        assert node.in_memory == (node.status == "admitted")
    assert tree.counts()["rejected"] == sum(e["type"] == "rejection" for e in decisions)
    assert {cid for cid, node in tree.nodes.items() if node.in_memory} == {c.id for c in result.memory}


def test_n_and_mean_derived_from_events_equal_the_memory(recorded):
    result, _ = recorded
    derived = lineage(result.events)  # no memory: explore/validate evaluation events only
    for c in result.memory:
        assert (derived.nodes[c.id].n, derived.nodes[c.id].mean) == (c.n, c.mean)
    assert derived.best_id == lineage(result.events, result.memory).best_id == result.best.id


def test_test_and_reevaluation_scores_do_not_count():
    result = _run(final_reevaluation=3, test_every=2)
    sources = {e["source"] for e in result.events if e["type"] == "evaluation"}
    assert {"test", "reevaluate"} <= sources
    derived = lineage(result.events)
    for c in result.memory:
        assert (derived.nodes[c.id].n, derived.nodes[c.id].mean) == (c.n, c.mean)


def test_excluded_evaluation_errors_follow_the_runs_policy():
    problem = skills_problem()
    inner = problem.evaluator

    def flaky(params, example, seed):
        if seed % 4 == 0:
            return Evaluation(0.0, "evaluation error", error="LLMError: flaky")
        return inner(params, example, seed)

    result = _run(problem=replace(problem, evaluator=flaky), evaluation_errors="exclude")
    assert result.evaluation_errors > 0
    excluded = lineage(result.events, evaluation_errors="exclude")
    for c in result.memory:
        assert (excluded.nodes[c.id].n, excluded.nodes[c.id].mean) == (c.n, c.mean)
    zero = lineage(result.events)
    assert any(zero.nodes[c.id].n != c.n for c in result.memory)


def test_summary_is_the_context_the_proposer_saw(recorded):
    result, proposer = recorded
    tree = lineage(result.events, result.memory)
    proposals = [e for e in result.events if e["type"] in ("proposal", "proposal_error")]
    assert len(proposals) == len(proposer.calls)  # serial executor: calls and events in the same order
    seen: dict[int, list[str]] = {}  # step -> the context of each proposal, in proposal_index order
    for event, (parent, context) in zip(proposals, proposer.calls):
        assert event["parent_id"] == parent
        seen.setdefault(event["step"], []).extend([context] * len(event.get("proposals", ())))
    texts = {e["text"] for e in result.events if e["type"] == "summary"}
    assert len(texts) > 1  # the summary changes over the run, so a wrong step would show
    for e in _filter_events(result):
        node = tree.nodes[e["candidate_id"]]
        assert node.summary == seen[e["step"]][e["proposal_index"]]
    assert tree.nodes[0].summary is None


def test_no_summarizer_means_no_summary():
    result = _run(use_summarizer=False)
    tree = lineage(result.events, result.memory)
    assert len(tree) > 1 and all(node.summary is None for node in tree.nodes.values())


def _hostile_events():
    evil = "<script>alert('x')</script></pre></details>"
    return [
        {"type": "start", "problem": "<b>p</b>", "config": "c", "seed": 0, "embedder": None, "problem_data": {},
         "seed_params": {"instructions": evil}},
        {"type": "summary", "step": 0, "seed": 1, "sampler": "incremental", "candidate_ids": [0],
         "text": "<img src=x onerror=alert(1)>"},
        {"type": "rejection", "step": 0, "proposal_index": 0, "candidate_id": 1, "parent_id": 0, "distance": 0.0,
         "eps": 0.5, "params": {"instructions": evil, "<other>": "&amp;"}},
        {"type": "admission", "step": 0, "proposal_index": 1, "candidate_id": 2, "parent_id": 0, "distance": 0.9,
         "eps": 0.5, "params": {"instructions": evil + " v2"}},
    ]


def test_html_escapes_every_text_and_is_standalone():
    page = lineage_html(lineage(_hostile_events()), title="<script>t</script>")
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&amp;amp;" in page
    assert page.count("<details") == page.count("</details>") and page.count("<pre>") == page.count("</pre>")
    assert not re.search(r"(src|href)\s*=", page.replace("&lt;img src=x", ""))  # nothing is fetched
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def test_html_shows_each_candidate_and_marks_the_best(recorded):
    result, _ = recorded
    tree = lineage(result.events, result.memory)
    page = lineage_html(tree)
    for cid in tree.nodes:
        assert f'<span class="id">#{cid}</span>' in page
    assert page.count("★ best") == 1
    best_lines = [line for line in re.findall(r"<summary>(.*?)</summary>", page) if "★ best" in line]
    assert len(best_lines) == 1 and best_lines[0].startswith(f'<span class="id">#{result.best.id}</span>')
    assert page.count("<details") == page.count("</details>")
    # rejected leaves fold into one line per parent
    parents = {e["parent_id"] for e in _filter_events(result) if e["type"] == "rejection"}
    assert page.count('class="rgroup"') == len(parents)


def test_a_deep_chain_renders_without_recursion():
    events = [{"type": "start", "problem": "p", "seed": 0, "seed_params": {"x": "0"}}]
    events += [{"type": "admission", "step": i, "proposal_index": 0, "candidate_id": i, "parent_id": i - 1,
                "distance": 1.0, "eps": 0.5, "params": {"x": str(i)}} for i in range(1, 3000)]
    tree = lineage(events)
    assert tree.path_to(2999) == list(range(3000))
    page = lineage_html(tree)
    assert page.count("<details") == page.count("</details>") and '<span class="id">#2999</span>' in page
    assert len(show_lineage(tree).rows) == 41


def test_polca_writes_lineage_html_in_the_run_dir(recorded):
    result, _ = recorded
    path = result.run_dir / LINEAGE_HTML
    assert path.exists()
    page = path.read_text(encoding="utf-8")
    assert page == lineage_html(lineage(result.events, result.memory))
    # from the run dir alone (events.jsonl and checkpoint.json) the same page
    assert write_lineage(result.run_dir) == path and path.read_text(encoding="utf-8") == page
    assert write_lineage(result) == path


def test_write_lineage_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match="no run directory"):
        write_lineage(_run())
    with pytest.raises(ValueError, match="no events"):
        write_lineage(tmp_path)
    with pytest.raises(ValueError, match="not a run directory"):
        write_lineage(tmp_path / "missing")
    assert not (tmp_path / LINEAGE_HTML).exists()


def test_a_failing_lineage_never_costs_the_run_its_result(tmp_path, monkeypatch, caplog):
    def broken(result, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(lineage_module, "write_lineage", broken)
    result = _run(tmp_path, budget=40)
    assert result.best is not None and not (tmp_path / LINEAGE_HTML).exists()
    assert "could not write lineage.html" in caplog.text
    assert save_lineage(_run(budget=40)).run_dir is None  # no run dir: nothing written, nothing raised


def test_show_lineage_is_a_small_notebook_output(recorded):
    result, _ = recorded
    full = show_lineage(result, max_rows=10_000)
    text = str(full)
    assert text.splitlines()[0].startswith(f"{len(lineage(result.events))} candidates")
    for c in result.memory:
        assert re.search(rf"^\s*#{c.id} ", text, re.M)
    assert sum(line.strip().startswith("#") for line in text.splitlines()[1:]) == len(result.memory) + \
        sum(e["type"] == "budget_drop" for e in result.events)
    assert "★ best" in text and f"#{result.best.id} " in text
    small = show_lineage(result, max_rows=5)
    assert len(small.rows) == 6 and small.rows[-1][2] == "more"
    assert f"… {len(full.rows) - 5} more lines" in small.rows[-1][1]
    hostile = show_lineage(lineage(_hostile_events()))._repr_html_()
    assert "<script" not in hostile and "&lt;script&gt;" in hostile
    assert isinstance(lineage(_hostile_events()), Lineage)
