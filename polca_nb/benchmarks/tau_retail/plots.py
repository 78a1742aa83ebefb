"""τ-bench figures: the Pass@1 comparison bars (ours vs the paper's rows)."""

from __future__ import annotations

import math

import numpy as np


def plot_comparison(ax, table, title: str = "") -> None:
    """Grouped bars of a `comparison_table`: one group per column, ours solid, the paper's hatched."""
    columns = list(table.columns)
    names = list(table.index)
    width = 0.8 / max(1, len(names))
    x = np.arange(len(columns))
    colors = {"base": "#8c8c8c", "other": "#1f77b4"}
    for i, name in enumerate(names):
        is_base = "base" in name.lower()
        paper = name.startswith("paper")
        values = table.loc[name].astype(float).to_numpy()
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, np.nan_to_num(values), width,
                      color=colors["base" if is_base else "other"], alpha=0.45 if paper else 0.95,
                      hatch="//" if paper else None, edgecolor="black", linewidth=0.5, label=name)
        for bar, value in zip(bars, values):
            label = "n/a" if math.isnan(value) else f"{value:.2f}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, columns)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("Pass@1")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", ncols=2)
    if title:
        ax.set_title(title, fontsize=10)
