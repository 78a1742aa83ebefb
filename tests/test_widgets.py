"""The shared knob panel: one widget per knob, the config it builds, its run button."""

from __future__ import annotations

import pytest

from polca_nb.budget import Budget
from polca_nb.problem import PolcaConfig
from polca_nb.widgets import KNOBS, KnobPanel

pytest.importorskip("ipywidgets")


def test_the_panel_builds_the_config_from_its_widgets():
    base = PolcaConfig(Budget(max_metric_calls=40), eps=0.1, num_candidates=5)
    panel = KnobPanel.for_config(base, knobs=[k for k in KNOBS if k != "iterations"], budget=60)
    assert panel.config() == PolcaConfig(Budget(max_metric_calls=60), eps=0.1, num_candidates=5)
    panel.controls["eps"].value = 0.3
    panel.controls["num_candidates"].value = 2
    panel.controls["use_summarizer"].value = False
    panel.controls["priority"].value = "ucb"
    cfg = panel.config()
    assert (cfg.eps, cfg.num_candidates, cfg.use_summarizer, cfg.priority) == (0.3, 2, False, "ucb")
    assert cfg.budget == Budget(max_metric_calls=60)
    with pytest.raises(ValueError, match="unknown knobs"):
        KnobPanel.for_config(base, knobs=("temperature",))


def test_show_runs_the_callback_with_the_current_config(monkeypatch):
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)
    seen = []
    panel = KnobPanel.for_config(PolcaConfig(Budget(max_metric_calls=40)), knobs=("eps",))
    box = panel.show(seen.append)
    assert seen == [panel.config()]
    panel.controls["eps"].value = 0.2
    box.children[-2].click()  # the run button
    assert seen[-1].eps == 0.2 and len(seen) == 2 and panel.output is not None


def test_an_iterations_knob_sets_an_iteration_budget():
    panel = KnobPanel.for_config(PolcaConfig(Budget(max_iterations=4)), knobs=("iterations",))
    panel.controls["iterations"].value = 7
    assert panel.config().budget == Budget(max_iterations=7)
