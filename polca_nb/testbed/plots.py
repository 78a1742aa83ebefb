"""Figures of the testbed: true-score curves per method, the regime heatmap, memory sizes.

Every title names the optimizer as simulated (`optimizer.LABEL`): these are not LLM results.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..curves import Comparison, running_best
from ..plots import plot_score_curves
from .experiment import POLCA_METHODS, CellSummary
from .optimizer import LABEL

_REGIME_VALUE = {"lose": -1.0, "tie": 0.0, "win": 1.0}


def plot_true_curves(ax, comparison: Comparison, *, title: str = "", best_so_far: bool = True,
                     methods: Sequence[str] | None = None) -> None:
    """Mean +- s.e. true score of each method's program against metric calls (best so far by default,
    the paper's protocol; `best_so_far=False`: the program the method would return there)."""
    names = [m for m in (methods or comparison.curves) if m in comparison.curves]
    curves = {m: [running_best(c, comparison.initial) if best_so_far else c for c in comparison.curves[m]]
              for m in names}
    plot_score_curves(ax, curves, grid=[0, *comparison.grid], initial=comparison.initial,
                      ylabel=("best-so-far" if best_so_far else "returned program's") + " true score")
    ax.set_title(f"{title}\n({LABEL})" if title else f"({LABEL})", fontsize=9)


def regime_matrix(summaries: Sequence[CellSummary], noise_levels: Sequence[str],
                  qualities: Sequence[str]) -> tuple[np.ndarray, list[list[str]]]:
    """(noise x quality) matrix of POLCA's margin over the best baseline in s.e. units, and cell labels."""
    by = {tuple(s.label.split(" x ")): s for s in summaries}
    margin = np.full((len(noise_levels), len(qualities)), np.nan)
    labels = [["" for _ in qualities] for _ in noise_levels]
    for i, n in enumerate(noise_levels):
        for j, q in enumerate(qualities):
            s = by.get((n, q))
            if s is None:
                continue
            se = float(np.hypot(s.errors["polca"], s.errors[s.best_baseline])) or 1e-9
            margin[i, j] = (s.means["polca"] - s.means[s.best_baseline]) / se
            ratio = "never" if s.calls_ratio is None else f"{s.calls_ratio:.2f}"
            labels[i][j] = (f"{s.regime.upper()}\n{s.means['polca']:.2f} vs {s.means[s.best_baseline]:.2f}\n"
                            f"({s.best_baseline})\ncalls ratio {ratio}")
    return margin, labels


def plot_regime_heatmap(ax, summaries: Sequence[CellSummary], noise_levels: Sequence[str],
                        qualities: Sequence[str], *, quality_labels: Mapping[str, str] | None = None) -> None:
    """Heatmap of POLCA minus the best baseline (final mean true score) in s.e. units, clipped to +-5;
    each cell says WIN / TIE / LOSE, both means, which baseline, and the metric-call ratio."""
    margin, labels = regime_matrix(summaries, noise_levels, qualities)
    image = ax.imshow(np.clip(margin, -5, 5), cmap="RdBu", vmin=-5, vmax=5, aspect="auto")
    for i in range(len(noise_levels)):
        for j in range(len(qualities)):
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(qualities)), [(quality_labels or {}).get(q, q) for q in qualities], fontsize=8)
    ax.set_yticks(range(len(noise_levels)), list(noise_levels), fontsize=8)
    ax.set_xlabel("simulated optimizer quality")
    ax.set_ylabel("evaluation noise")
    ax.set_title(f"POLCA vs the best baseline: margin in s.e. (blue: POLCA ahead)\n({LABEL})", fontsize=9)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="(POLCA - best baseline) / s.e.")


def plot_memory_sizes(ax, comparison: Comparison, *, title: str = "") -> None:
    """Mean candidates kept in memory at the end, per POLCA configuration (with/without the eps-Net)."""
    names = [m for m in POLCA_METHODS if m in comparison.results]
    sizes = [[r.details["memory_size"] for r in comparison.results[m]] for m in names]
    means = [float(np.mean(s)) for s in sizes]
    errors = [float(np.std(s) / np.sqrt(len(s))) for s in sizes]
    colors = ["tab:blue" if comparison.results[m][0].details["epsnet"].eps > 0 else "tab:gray" for m in names]
    ax.bar(names, means, yerr=errors, color=colors)
    ax.set_ylabel("candidates in memory at the end")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_title((title + "\n" if title else "") + "blue: with the eps-Net, gray: without", fontsize=9)
