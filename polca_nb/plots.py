"""Figures shared by the notebooks: best-so-far curves with standard-error bands, and `save_figure`.

Tables (memory views, event counts, comparison summaries) are in `tables`; the names below re-export
them for the notebooks that import them from here.

Curves follow the paper's protocol (polca-method.md §2.5): per seed, a step function of metric calls;
across seeds, the mean with a band of std/sqrt(n_seeds) (numpy std, ddof=0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .data import PROJECT_ROOT
from .curves import CurvePoint, curve_at
from .tables import best_text, event_counts, memory_table  # noqa: F401  (old import path)

FIGURES = PROJECT_ROOT / "figures"
_IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))


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
    """Mean +- s.e. best-so-far curves per method; optional reference curves (e.g. the paper's) dashed.

    Each method has its own line style, and a curve equal to an earlier one says so in its label, so a
    method whose line lies exactly under another's is still seen."""
    import seaborn as sns

    palette = sns.color_palette("tab10", n_colors=max(3, len(method_curves)))
    drawn: dict[str, np.ndarray] = {}
    for i, (color, (name, curves)) in enumerate(zip(palette, method_curves.items())):
        values = curves_on_grid(curves, grid, initial)
        mean, se = mean_se(values)
        same = next((other for other, seen in drawn.items() if np.allclose(seen, mean)), None)
        label = f"{name} (n={len(curves)})" + (f", same curve as {same}" if same else "")
        ax.step(grid, mean, where="post", color=color, label=label, linestyle=_LINESTYLES[i % len(_LINESTYLES)],
                linewidth=2.2 if i == 0 else 1.6)
        ax.fill_between(grid, mean - se, mean + se, step="post", color=color, alpha=0.2, linewidth=0)
        drawn[name] = mean
    for name, points in (reference or {}).items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, linestyle="--", marker=".", color="0.35", label=f"{name} (paper)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def save_figure(fig, target: str | Path, directory: Path | None = None, *, dpi: int = 120) -> Path:
    """Write `fig` and return the path (folders created): a name such as "quickstart_methods" goes to
    `<directory>/<name>.png` (default: figures/); a `Path`, or a str ending in an image suffix, is
    written as given."""
    if isinstance(target, Path) or Path(target).suffix.lower() in _IMAGE_SUFFIXES:
        path = Path(target)
    else:
        path = (directory or FIGURES) / f"{target}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
