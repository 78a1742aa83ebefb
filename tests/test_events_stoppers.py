"""Typed events (every logged event matches its TypedDict), live listeners, composable stoppers."""

from __future__ import annotations

import pytest

from polca_nb.budget import Budget
from polca_nb.events import EVENT_TYPES, schema_problems
from polca_nb.runlog import read_events
from polca_nb.runner import PolcaConfig, polca
from polca_nb.stoppers import NoImprovement, ScoreThreshold, StopFile, first_stop
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem


def run(run_dir=None, **kw):
    problem = skills_problem()
    config = PolcaConfig(Budget(max_metric_calls=kw.pop("calls", 120)), test_every=2, final_reevaluation=2)
    return polca(problem, ScriptedProposer(), config, embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(),
                 seed=0, run_dir=run_dir, progress=False, **kw)


def test_every_event_of_a_run_matches_its_typed_schema(tmp_path):
    result = run(tmp_path / "r")
    events = read_events(tmp_path / "r" / "events.jsonl")
    assert events == result.events
    seen = {e["type"] for e in events}
    assert {"start", "evaluation", "summary", "proposal", "admission", "iteration", "reevaluation"} <= seen
    assert [p for e in events for p in schema_problems(e)] == []
    assert set(EVENT_TYPES) >= seen
    assert schema_problems({"type": "evaluation", "step": 0}) and schema_problems({"type": "nope"})


def test_listeners_hear_every_event_live_and_do_not_change_the_log(tmp_path):
    heard = []
    result = run(tmp_path / "a", listeners=[heard.append])
    plain = run(tmp_path / "b")
    assert heard == result.events and result.events == plain.events
    with pytest.raises(ZeroDivisionError):  # a listener's bug stops the run like any other
        run(listeners=[lambda e: 1 / 0])


def test_stoppers_end_the_run_with_their_reason_and_a_stopped_event(tmp_path):
    full = run()
    threshold = max(h.best_mean for h in full.history if h.best_mean is not None)
    stopped = run(stoppers=[ScoreThreshold(threshold)])
    assert stopped.stop_reason == "score_threshold" and len(stopped.history) <= len(full.history)
    assert stopped.history[-1].best_mean >= threshold
    assert any(e["type"] == "stopped" and e["reason"] == "score_threshold" for e in stopped.events)
    # The uninterrupted run's prefix: stopping early changes nothing before the stop.
    n = len(stopped.history)
    assert [h.best_mean for h in stopped.history] == [h.best_mean for h in full.history[:n]]

    stop_file = tmp_path / "STOP"
    stop_file.touch()
    assert run(stoppers=[StopFile(stop_file)]).stop_reason == "stop_file"
    assert len(run(stoppers=[StopFile(stop_file)]).history) == 1


def test_no_improvement_and_bad_stoppers():
    result = run(calls=400)
    state = type("S", (), {"history": result.history})()
    flat = NoImprovement(iterations=1, min_delta=10.0)  # nothing ever rises by 10
    assert first_stop([flat], state) == "no_improvement"
    assert first_stop([NoImprovement(iterations=len(result.history))], state) is None
    with pytest.raises(ValueError, match="iterations"):
        NoImprovement(iterations=0)
    with pytest.raises(TypeError, match="stop reason"):
        first_stop([lambda s: 3], state)
