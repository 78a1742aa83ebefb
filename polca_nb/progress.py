"""How a run shows itself while it runs: a live dashboard in notebooks, a tqdm bar elsewhere, and the
run's warnings tallied by reason instead of one log line per event.

`polca(progress=...)` takes True (the dashboard inside a Jupyter kernel, the bar elsewhere), "dashboard",
"bar", False, or any object with `update(view)` and `close(view)` (a `RunProgress`). A run that ends
before its budget (the next iteration would not fit) ends its display as finished, with its stop reason,
not as a failed 94% bar.
"""

from __future__ import annotations

import html
import logging
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Literal, Protocol, Union

from .budget import Budget
from .state import SearchState

PACKAGE_LOGGER = "polca_nb"


@dataclass(frozen=True)
class ProgressView:
    """What a display shows after an iteration (or at the end, with `stop_reason` set)."""

    iteration: int
    metric_calls: int
    max_metric_calls: int | None
    max_iterations: int | None
    best_id: int | None
    best_mean: float | None
    best_n: int
    memory_size: int
    admitted: int          # whole run so far
    rejected: int
    usd: float | None      # live LLM spend of the whole run; None without polca(llm=...)
    warnings: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None

    @property
    def done(self) -> int:
        """Progress in the budget's unit (metric calls, else iterations)."""
        return self.metric_calls if self.max_metric_calls is not None else self.iteration

    @property
    def total(self) -> int | None:
        return self.max_metric_calls if self.max_metric_calls is not None else self.max_iterations

    def line(self) -> str:
        """One line for people: iteration, calls, best mean, memory, eps-Net decisions, spend, warnings."""
        calls = f"{self.metric_calls}" + (f"/{self.max_metric_calls}" if self.max_metric_calls is not None else "")
        best = "-" if self.best_mean is None else f"{self.best_mean:.3f} (id {self.best_id}, n={self.best_n})"
        parts = [f"iteration {self.iteration}", f"metric calls {calls}", f"best mean {best}",
                 f"memory {self.memory_size}", f"admitted {self.admitted} / rejected {self.rejected}"]
        if self.usd is not None:
            parts.append(f"${self.usd:.4f}")
        if self.warnings:
            parts.append(f"warnings {sum(self.warnings.values())}")
        if self.stop_reason is not None:
            parts.append(f"stopped by {self.stop_reason}")
        return " · ".join(parts)


def progress_view(state: SearchState, budget: Budget, *, usd: float | None, warnings: dict[str, int],
                  stop_reason: str | None = None) -> ProgressView:
    """The display's data for `state` (admissions and rejections summed over its whole history)."""
    last = state.history[-1] if state.history else None
    return ProgressView(
        iteration=state.iteration, metric_calls=state.spent.metric_calls,
        max_metric_calls=budget.max_metric_calls, max_iterations=budget.max_iterations,
        best_id=None if last is None else last.best_id, best_mean=None if last is None else last.best_mean,
        best_n=0 if last is None else last.best_n, memory_size=len(state.memory),
        admitted=sum(h.admitted for h in state.history), rejected=sum(h.rejected for h in state.history),
        usd=usd, warnings=dict(warnings), stop_reason=stop_reason)


class RunProgress(Protocol):
    """A live display of a run: `update` after each iteration, `close` once at the end."""

    def update(self, view: ProgressView) -> None: ...

    def close(self, view: ProgressView) -> None: ...


ProgressMode = Union[bool, Literal["dashboard", "bar"], RunProgress]


class BarProgress:
    """tqdm in the budget's unit; a run that stops short of its total ends as a complete bar."""

    def __init__(self, view: ProgressView) -> None:
        from tqdm.auto import tqdm  # noqa: PLC0415 - only when a bar is wanted

        unit = "call" if view.max_metric_calls is not None else "it"
        self.bar = tqdm(total=view.total, initial=view.done, unit=unit, desc="POLCA")

    def update(self, view: ProgressView) -> None:
        self.bar.update(view.done - self.bar.n)
        best = "-" if view.best_mean is None else f"{view.best_mean:.3f}"
        self.bar.set_postfix(best=best, mem=view.memory_size, refresh=False)

    def close(self, view: ProgressView) -> None:
        self.update(view)
        if view.stop_reason is not None and self.bar.total is not None and self.bar.n < self.bar.total:
            # The run is finished, not failed: tqdm's notebook bar turns red when closed short of its total.
            self.bar.total = self.bar.n
            self.bar.set_postfix_str(f"stopped by {view.stop_reason}", refresh=False)
        self.bar.close()


class DashboardProgress:
    """An ipywidgets panel that redraws after every iteration: a progress bar and the run's numbers."""

    def __init__(self, view: ProgressView) -> None:
        import ipywidgets as w  # noqa: PLC0415 - notebooks-only dependency
        from IPython.display import display  # noqa: PLC0415

        self.bar = w.IntProgress(value=view.done, min=0, max=max(1, view.total or 1), bar_style="info",
                                 description="POLCA", layout=w.Layout(width="260px"))
        self.label = w.HTML()
        self.box = w.HBox([self.bar, self.label])
        self.update(view)
        display(self.box)

    def update(self, view: ProgressView) -> None:
        if view.total is None:  # no count limit: the bar follows the iterations so far
            self.bar.max = max(1, view.done)
        self.bar.value = min(view.done, self.bar.max)
        self.label.value = dashboard_html(view)

    def close(self, view: ProgressView) -> None:
        if view.stop_reason is not None:
            self.bar.max = max(1, view.done)  # finished short of the total is still finished
        self.update(view)
        styles = {"fatal_error": "danger", "interrupted": "warning"}
        self.bar.bar_style = styles.get(view.stop_reason or "", "success")


def dashboard_html(view: ProgressView) -> str:
    """The dashboard's text as small HTML; the warnings' reasons are listed with their counts."""
    text = html.escape(view.line())
    if view.warnings:
        reasons = "; ".join(f"{count}× {html.escape(reason)}" for reason, count in
                            sorted(view.warnings.items(), key=lambda kv: -kv[1])[:3])
        text += f"<br><span style='color:#8a6d3b'>{reasons}</span>"
    return f"<span style='font-family:monospace;font-size:12px'>{text}</span>"


def in_notebook() -> bool:
    """True inside a Jupyter kernel with ipywidgets importable (where a widget can be shown)."""
    try:
        from IPython import get_ipython  # noqa: PLC0415
        import ipywidgets  # noqa: F401, PLC0415
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def start_progress(mode: ProgressMode, view: ProgressView) -> RunProgress | None:
    """The display `mode` asks for, started at `view` (None for False)."""
    if mode is False:
        return None
    if mode is True:
        mode = "dashboard" if in_notebook() else "bar"
    if mode == "dashboard":
        return DashboardProgress(view)
    if mode == "bar":
        return BarProgress(view)
    if isinstance(mode, str) or not (hasattr(mode, "update") and hasattr(mode, "close")):
        raise ValueError(f"progress={mode!r}: use True, False, 'dashboard', 'bar' or an object with "
                         "update(view) and close(view)")
    return mode


class WarningTally(logging.Handler):
    """Counts the package's WARNING records by reason (the message template) and keeps one example of each;
    records of other levels pass on to the root logger's handlers unchanged."""

    def __init__(self, logger_name: str = PACKAGE_LOGGER) -> None:
        super().__init__(level=logging.DEBUG)
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.logger_name = logger_name

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno != logging.WARNING:
            # Every open tally sees the record; only the first one passes it on, so it is shown once.
            if next(t for t in _ACTIVE_TALLIES if t.logger_name == self.logger_name) is self:
                logging.getLogger().handle(record)
            return
        reason = reason_of(record)
        self.counts[reason] += 1
        self.examples.setdefault(reason, record.getMessage()[:300])

    def report(self, what: str) -> str:
        """One paragraph: the total, then each reason with its count and first example."""
        lines = [f"{what}: {sum(self.counts.values())} warnings by reason, with the first of each:"]
        for reason, count in self.counts.most_common():
            lines.append(f"  {count:>4}× {reason}   e.g. {self.examples[reason]}")
        return "\n".join(lines)


def reason_of(record: logging.LogRecord) -> str:
    """A warning's reason: its message template up to the first placeholder detail (ids and replies vary)."""
    # "proposer: no usable proposal for candidate %s (seed %s): %s; ..." -> "proposer: no usable proposal"
    template = str(record.msg)
    cut = min((i for i in (template.find(" for "), template.find(" %"), template.find("("), template.find(";"))
               if i > 0), default=len(template))
    return template[:cut].rstrip(" :,")


_TALLY_LOCK = threading.Lock()
_ACTIVE_TALLIES: list[WarningTally] = []
_SAVED_PROPAGATE: dict[str, bool] = {}


@contextmanager
def tallied_warnings(what: str = "POLCA run", logger_name: str = PACKAGE_LOGGER) -> Iterator[WarningTally]:
    """Within the block the package's warnings are counted instead of printed; at the end one summary
    warning (counts by reason, an example of each) is logged, if there was any. Blocks may nest or
    overlap (a comparison's runs, runs in threads): each counts every package warning logged while it is
    open, and only the last one to close logs its summary, so a comparison reports once."""
    logger = logging.getLogger(logger_name)
    tally = WarningTally(logger_name)
    with _TALLY_LOCK:
        if not any(t.logger_name == logger_name for t in _ACTIVE_TALLIES):
            _SAVED_PROPAGATE[logger_name] = logger.propagate
        _ACTIVE_TALLIES.append(tally)
        logger.addHandler(tally)
        logger.propagate = False
    try:
        yield tally
    finally:
        with _TALLY_LOCK:
            logger.removeHandler(tally)
            _ACTIVE_TALLIES.remove(tally)
            outermost = not any(t.logger_name == logger_name for t in _ACTIVE_TALLIES)
            if outermost:
                # The last open block restores what the first one found (blocks may close out of order).
                logger.propagate = _SAVED_PROPAGATE.pop(logger_name)
        if tally.counts and outermost:  # an enclosing block counted the same records and reports them
            logger.warning("%s", tally.report(what))
