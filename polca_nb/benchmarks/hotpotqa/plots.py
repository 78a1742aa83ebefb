"""HotpotQA figures: best-so-far test accuracy over seeds against the paper's curves."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .experiment import HotpotRun


def plot_runs(ax, runs: Sequence[HotpotRun], *, x: str = "eval_step", label: str = "POLCA (this run)",
              reference: Mapping[str, Sequence[Sequence[float]]] | None = None) -> None:
    """Best-so-far test accuracy, mean over `runs` with a std/sqrt(n) band, plus dashed reference curves."""
    from ...plots import curves_on_grid, plot_score_curves

    if not runs:
        raise ValueError("runs must hold at least one HotpotRun")
    curves = [run.best_so_far(x) for run in runs]
    end = max(p.metric_calls for c in curves for p in c)
    ref_end = max((pt[0] for pts in (reference or {}).values() for pt in pts), default=0)
    # the grid stops at our last test: a step curve drawn further would claim results we do not have
    grid = sorted({0, *range(0, int(end) + 1, max(1, int(end) // 200)), *(p.metric_calls for c in curves for p in c)})
    initial = float(np.mean([run.initial_test for run in runs]))
    plot_score_curves(ax, {label: curves}, grid=grid, initial=initial,
                      xlabel="evaluation step" if x == "eval_step" else "metric calls",
                      ylabel="best test accuracy so far")
    for (name, points), style, shade in zip((reference or {}).items(), ("--", ":", "-.", (0, (1, 3))),
                                            ("0.2", "0.45", "0.6", "0.7")):
        xs, ys = zip(*points)
        ax.plot(xs, ys, linestyle=style, marker=".", color=shade, label=f"{name} (paper, approx)")
    # our points can be few and early: mark them so they stay visible on the paper's x range
    marks = sorted({p.metric_calls for c in curves for p in c})
    ax.plot(marks, curves_on_grid(curves, marks, initial).mean(axis=0), "o", ms=4, color=ax.lines[0].get_color())
    ax.set_xlim(-0.02 * max(end, ref_end, 1), 1.02 * max(end, ref_end, 1))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="lower right")
