"""The knob panel the notebooks share: sliders for the loop's knobs, a run button and an output area.

    panel = KnobPanel.for_config(config, budget=200, knobs=("eps", "num_candidates", "use_summarizer"))
    panel.show(lambda cfg: print(polca(problem, proposer, cfg, ...).summary()))

`panel.config()` is `config` with the widgets' values; the callback runs on each click (and once
when `run_now`), printing into the panel's output area.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from .budget import Budget
from .problem import PolcaConfig

KNOBS = ("eps", "num_candidates", "batch_size", "use_summarizer", "priority", "budget", "iterations")


def _widget(name: str, config: PolcaConfig, budget: int | None) -> Any:
    import ipywidgets as w  # noqa: PLC0415 - notebooks-only dependency

    if name == "eps":
        return w.FloatSlider(value=config.eps, min=0.0, max=max(0.5, config.eps), step=0.01, description="ε",
                             continuous_update=False)
    if name == "num_candidates":
        return w.IntSlider(value=config.num_candidates, min=1, max=max(10, config.num_candidates), description="K")
    if name == "batch_size":
        return w.IntSlider(value=config.batch_size, min=1, max=max(8, config.batch_size), description="batch")
    if name == "use_summarizer":
        return w.Checkbox(value=config.use_summarizer, description="summarizer")
    if name == "priority":
        value = config.priority if isinstance(config.priority, str) else "mean"
        return w.ToggleButtons(options=["mean", "ucb", "newest", "oldest"], value=value, description="priority")
    if name == "budget":
        start = budget or config.budget.max_metric_calls or 100
        return w.IntSlider(value=start, min=4, max=max(200, 4 * start), step=4, description="metric calls",
                           continuous_update=False)
    if name == "iterations":
        start = config.budget.max_iterations or 1
        return w.IntSlider(value=start, min=1, max=max(10, 2 * start), description="iterations",
                           continuous_update=False)
    raise ValueError(f"unknown knob {name!r}; knobs are {KNOBS}")


@dataclass
class KnobPanel:
    """Widgets for some of PolcaConfig's knobs over a base config."""

    base: PolcaConfig
    controls: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    output: Any = None  # the output area, once shown (draw into it with `with panel.output:`)

    @classmethod
    def for_config(cls, base: PolcaConfig, *, knobs: Sequence[str] = ("eps", "use_summarizer", "budget"),
                   budget: int | None = None, extra: dict[str, Any] | None = None) -> "KnobPanel":
        """A panel with one widget per name in `knobs` (see KNOBS); `extra` adds the notebook's own widgets
        (read them from `panel.value(name)`)."""
        unknown = [k for k in knobs if k not in KNOBS]
        if unknown:
            raise ValueError(f"unknown knobs {unknown}; knobs are {KNOBS}")
        return cls(base, {name: _widget(name, base, budget) for name in knobs}, dict(extra or {}))

    def value(self, name: str) -> Any:
        """The current value of a knob or an extra widget."""
        widget = self.controls.get(name, self.extra.get(name))
        if widget is None:
            raise KeyError(f"no widget {name!r}; have {sorted(self.controls) + sorted(self.extra)}")
        return widget.value

    def config(self) -> PolcaConfig:
        """The base config with the panel's values."""
        changes = {name: widget.value for name, widget in self.controls.items() if name not in ("budget", "iterations")}
        if "budget" in self.controls or "iterations" in self.controls:
            calls = self.controls.get("budget")
            iterations = self.controls.get("iterations")
            changes["budget"] = Budget(max_metric_calls=None if calls is None else int(calls.value),
                                       max_iterations=None if iterations is None else int(iterations.value))
        return replace(self.base, **changes)

    def show(self, callback: Callable[[PolcaConfig], Any], *, run_now: bool = True, label: str = "run") -> Any:
        """Display the panel with a run button; `callback(config)` runs on each click, its prints and
        figures go to the panel's output area. Returns the VBox shown."""
        import ipywidgets as w  # noqa: PLC0415
        from IPython.display import display  # noqa: PLC0415

        output = self.output = w.Output()
        button = w.Button(description=label, button_style="primary")

        def run(_: Any = None) -> None:
            with output:
                output.clear_output(wait=True)
                callback(self.config())

        button.on_click(run)
        widgets = list(self.controls.values()) + list(self.extra.values())
        rows = [w.HBox(widgets[i:i + 3]) for i in range(0, len(widgets), 3)]
        box = w.VBox(rows + [button, output])
        display(box)
        if run_now:
            run()
        return box
