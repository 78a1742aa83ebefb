"""Figures for the VeriBench notebook: the mean best-so-far score against steps, and compile pass rates."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def plot_score_curve(ax: Any, curves: Sequence[np.ndarray], reference: Mapping[str, Any], *, label: str,
                     score_label: str) -> None:
    """Our mean-over-tasks best-so-far score per step (one line per seed, mean bold) beside the paper's
    Fig. 8 curves (approx). `score_label` says which score ours is (e.g. judge-only)."""
    for curve in curves:
        ax.plot(np.arange(len(curve)), curve, color="tab:blue", alpha=0.35, linewidth=1)
    if curves:
        width = min(len(c) for c in curves)
        mean = np.mean([c[:width] for c in curves], axis=0)
        ax.plot(np.arange(width), mean, "o-", color="tab:blue", linewidth=2, label=f"{label} ({score_label})")
    styles = {"POLCA": ("--", "0.2"), "DSPy": (":", "0.45"), "OpenEvolve": ("-.", "0.6"), "GEPA": ((0, (1, 3)), "0.7")}
    for name, points in reference["score_curves"]["curves"].items():
        xs, ys = zip(*points)
        style, shade = styles.get(name, ("-", "0.5"))
        ax.plot(xs, ys, linestyle=style, color=shade, label=f"paper {name} (3-step score, approx)")
    ax.set_xlabel("step (ours: POLCA iteration, 0 = seed; paper: evaluation step)")
    ax.set_ylabel("mean over tasks of best score so far")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def plot_pass_rates(ax: Any, reference: Mapping[str, Any], ours: float | None, *, label: str) -> None:
    """The paper's compile pass rates (mean ± s.e.) with ours beside them, or a note that ours was not
    measured (no Lean toolchain)."""
    values = reference["compile_pass_rate"]["values"]
    names = list(values)
    means = [values[n][0] for n in names]
    errs = [values[n][1] for n in names]
    x = np.arange(len(names) + 1)
    ax.bar(x[:-1], means, yerr=errs, color="0.7", capsize=3, label="paper (140 tasks, 50 calls each)")
    for xi, m in zip(x[:-1], means):
        ax.text(xi, m + 0.02, f"{m:.3f}", ha="center", fontsize=8)
    if ours is None:
        ax.text(x[-1], 0.05, "not measured:\nno Lean\ntoolchain", ha="center", fontsize=8, color="tab:red")
    else:
        ax.bar([x[-1]], [ours], color="tab:blue", label=label)
        ax.text(x[-1], ours + 0.02, f"{ours:.3f}", ha="center", fontsize=8)
    ax.set_xticks(x, names + ["ours"])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("compile pass rate")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper right")
