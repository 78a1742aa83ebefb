"""Figures and tables shared by the notebooks: best-so-far curves with standard-error bands, memory views.

Curves follow the paper's protocol (polca-method.md §2.5): per seed, a step function of metric calls;
across seeds, the mean with a band of std/sqrt(n_seeds) (numpy std, ddof=0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .data import PROJECT_ROOT
from .memory import Memory, best_by_mean
from .curves import CurvePoint, curve_at
from .types import render_params

FIGURES = PROJECT_ROOT / "figures"


def mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and the paper's band: std (ddof=0) / sqrt(n)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    return values.mean(axis=0), values.std(axis=0) / np.sqrt(n)


def curves_on_grid(curves: Sequence[Sequence[CurvePoint]], grid: Sequence[int], initial: float) -> np.ndarray:
    """(n_seeds, len(grid)) array of step-function values."""
    return np.array([curve_at(c, grid, initial) for c in curves])


def plot_score_curves(
    ax,
    method_curves: Mapping[str, Sequence[Sequence[CurvePoint]]],
    *,
    grid: Sequence[int],
    initial: float,
    reference: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    ylabel: str = "score",
    xlabel: str = "metric calls",
) -> None:
    """Mean +- s.e. best-so-far curves per method; optional reference curves (e.g. the paper's) dashed."""
    import seaborn as sns

    palette = sns.color_palette("tab10", n_colors=max(3, len(method_curves)))
    for color, (name, curves) in zip(palette, method_curves.items()):
        values = curves_on_grid(curves, grid, initial)
        mean, se = mean_se(values)
        ax.step(grid, mean, where="post", color=color, label=f"{name} (n={len(curves)})")
        ax.fill_between(grid, mean - se, mean + se, step="post", color=color, alpha=0.2, linewidth=0)
    for name, points in (reference or {}).items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, linestyle="--", marker=".", color="0.35", label=f"{name} (paper)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def save_figure(fig, name: str, directory: Path | None = None) -> Path:
    """Write `fig` as figures/<name>.png (creating the folder) and return the path."""
    directory = directory or FIGURES
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def memory_table(memory: Memory, *, top: int = 10, true_score: Callable[[dict], float] | None = None,
                 width: int = 70):
    """The top candidates by mean as a DataFrame (id, parent, step, n, mean, optional true score, text)."""
    import pandas as pd

    rows = []
    for c in sorted(memory, key=lambda c: (c.mean if c.mean is not None else -1, c.n), reverse=True)[:top]:
        text = render_params(c.params).replace("\n", " ")
        row = {"id": c.id, "parent": c.parent_id, "step": c.step_created, "n": c.n,
               "mean": None if c.mean is None else round(c.mean, 3)}
        if true_score is not None:
            row["true"] = round(true_score(c.params), 3)
        row["params"] = text if len(text) <= width else text[: width - 1] + "…"
        rows.append(row)
    return pd.DataFrame(rows).set_index("id")


def event_counts(events: Sequence[dict]) -> dict[str, int]:
    """How many events of each type a run logged."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    return dict(sorted(counts.items()))


def best_text(memory: Memory) -> str:
    best = best_by_mean(memory)
    return "" if best is None else render_params(best.params)
