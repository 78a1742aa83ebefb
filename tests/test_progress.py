"""How a run shows itself: the per-iteration view, the bar and dashboard ends, warnings tallied by reason."""

import logging

import pytest

from polca_nb.budget import Budget
from polca_nb.progress import (BarProgress, DashboardProgress, ProgressView, dashboard_html, progress_view,
                               start_progress, tallied_warnings)
from polca_nb.runner import PolcaConfig, polca
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem


class Recorder:
    """A RunProgress that keeps what it was shown."""

    def __init__(self):
        self.updates, self.closed = [], []

    def update(self, view):
        self.updates.append(view)

    def close(self, view):
        self.closed.append(view)


def run(progress, budget=60, proposer=None, **kw):
    config = PolcaConfig(Budget(max_metric_calls=budget), eps=0.5, num_candidates=3, batch_size=2)
    return polca(skills_problem(), proposer or ScriptedProposer(), config, embedder=SkillsEmbedder(),
                 summarizer=SkillsSummarizer(), seed=0, progress=progress, **kw)


def test_a_custom_display_sees_every_iteration_and_the_end():
    shown = Recorder()
    result = run(shown)
    assert len(shown.updates) == len(result.history)
    assert [v.metric_calls for v in shown.updates] == [h.metric_calls for h in result.history]
    last = shown.updates[-1]
    assert last.admitted == sum(1 for e in result.events if e["type"] == "admission")
    assert last.rejected == sum(1 for e in result.events if e["type"] == "rejection")
    assert last.best_id == result.history[-1].best_id and last.memory_size == len(result.memory)
    assert len(shown.closed) == 1 and shown.closed[0].stop_reason == result.stop_reason == "max_metric_calls"


def view(done, total=300, reason=None, usd=None, warnings=None):
    return ProgressView(iteration=7, metric_calls=done, max_metric_calls=total, max_iterations=None, best_id=4,
                        best_mean=0.8125, best_n=6, memory_size=9, admitted=8, rejected=3, usd=usd,
                        warnings=warnings or {}, stop_reason=reason)


def test_a_bar_closed_short_of_its_total_reads_as_finished():
    bar = BarProgress(view(0))
    bar.update(view(150))
    assert bar.bar.n == 150 and bar.bar.total == 300
    bar.close(view(296, reason="max_metric_calls"))
    assert bar.bar.n == bar.bar.total == 296  # tqdm's notebook bar turns red only when n < total


def test_an_interrupted_bar_keeps_its_total():
    bar = BarProgress(view(0))
    bar.close(view(120, reason=None))
    assert bar.bar.total == 300


def test_the_dashboard_ends_full_and_green_with_its_stop_reason():
    pytest.importorskip("ipywidgets")
    board = DashboardProgress(view(0))
    board.update(view(100))
    assert (board.bar.value, board.bar.max) == (100, 300)
    assert "metric calls 100/300" in board.label.value and "best mean 0.812 (id 4, n=6)" in board.label.value
    board.close(view(296, reason="max_metric_calls"))
    assert board.bar.value == board.bar.max == 296 and board.bar.bar_style == "success"
    assert "stopped by max_metric_calls" in board.label.value
    failed = DashboardProgress(view(0))
    failed.close(view(10, reason="fatal_error"))
    assert failed.bar.bar_style == "danger"


def test_the_view_line_and_html_name_spend_and_warnings():
    shown = view(10, usd=0.0123, warnings={"proposer: no usable proposal": 5, "a <b> reason": 1})
    assert "$0.0123" in shown.line() and "warnings 6" in shown.line()
    page = dashboard_html(shown)
    assert "5× proposer: no usable proposal" in page and "a &lt;b&gt; reason" in page


def test_progress_view_of_a_fresh_state_has_no_best():
    from polca_nb.state import initial_state

    fresh = progress_view(initial_state(skills_problem(), 0), Budget(max_iterations=5), usd=None, warnings={})
    assert fresh.best_mean is None and fresh.total == 5 and fresh.done == 0 and "best mean -" in fresh.line()


def test_bad_progress_values_are_named():
    with pytest.raises(ValueError, match="progress='fancy'"):
        start_progress("fancy", view(0))
    with pytest.raises(ValueError, match="progress=3"):
        start_progress(3, view(0))  # type: ignore[arg-type]
    assert start_progress(False, view(0)) is None
    assert isinstance(start_progress(True, view(0)), BarProgress)  # not in a Jupyter kernel here


class GrumblingProposer(ScriptedProposer):
    """Logs one warning per proposal call, as LLMProposer does for an unusable reply."""

    def propose(self, candidate, batch, context, *args, **kwargs):
        logging.getLogger("polca_nb.roles.proposer").warning(
            "proposer: no usable proposal for candidate %s (seed %s): %s", candidate.id, 1, "junk")
        return super().propose(candidate, batch, context, *args, **kwargs)


def test_warnings_are_tallied_by_reason_and_logged_once(caplog):
    caplog.set_level(logging.INFO)
    result = run(False, proposer=GrumblingProposer())
    proposals = sum(1 for e in result.events if e["type"] in ("proposal", "proposal_error"))
    assert result.warnings == {"proposer: no usable proposal": proposals} and proposals > 3
    package = [r for r in caplog.records if r.name.startswith("polca_nb")]
    assert len(package) == 1, [r.getMessage()[:80] for r in package]
    report = package[0].getMessage()
    assert f"{proposals} warnings" in report and "no usable proposal" in report and "e.g. proposer" in report
    assert f"{proposals}× proposer: no usable proposal" in result.summary()


def test_other_levels_pass_through_and_the_logger_is_restored(caplog):
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("polca_nb.something")
    with tallied_warnings("block") as tally:
        logger.error("an error stays visible")
        logger.info("so does info")
        logger.warning("counted %s", 1)
        logger.warning("counted %s", 2)
    assert tally.counts == {"counted": 2}
    messages = [r.getMessage() for r in caplog.records]
    assert "an error stays visible" in messages and "so does info" in messages
    assert not any(m.startswith("counted") for m in messages)
    assert logging.getLogger("polca_nb").propagate is True
    assert not any(type(h).__name__ == "WarningTally" for h in logging.getLogger("polca_nb").handlers)


def test_overlapping_blocks_closing_out_of_order_restore_propagation():
    logger = logging.getLogger("polca_nb")
    first = tallied_warnings("a")
    second = tallied_warnings("b")
    first.__enter__()
    second.__enter__()
    logging.getLogger("polca_nb.x").warning("seen by both")
    first.__exit__(None, None, None)
    assert logger.propagate is False  # b is still open
    second.__exit__(None, None, None)
    assert logger.propagate is True


def test_a_comparison_reports_once_for_all_its_runs(caplog):
    caplog.set_level(logging.INFO)
    with tallied_warnings("comparison") as outer:
        first = run(False, proposer=GrumblingProposer())
        second = run(False, proposer=GrumblingProposer(), budget=40)
    assert outer.counts["proposer: no usable proposal"] == sum(
        sum(r.warnings.values()) for r in (first, second))
    package = [r for r in caplog.records if r.name.startswith("polca_nb")]
    assert len(package) == 1 and package[0].getMessage().startswith("comparison: ")


def test_nested_tallies_pass_an_error_on_once(caplog):
    caplog.set_level(logging.INFO)
    with tallied_warnings("outer"), tallied_warnings("inner"):
        logging.getLogger("polca_nb.x").error("shown once")
    assert [r.getMessage() for r in caplog.records].count("shown once") == 1
