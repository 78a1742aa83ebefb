"""Figures and tables for the KernelBench notebook: fast_p against proposal steps, best speedups, shapes."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .data import ShapeRow


def _sizes(sizes: Mapping[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sizes.items())


def shape_rows(rows: Sequence[ShapeRow]) -> list[dict[str, Any]]:
    """Display rows of the paper-vs-CPU shape table (sizes, output shapes, input MB, FLOP ratio)."""
    out = []
    for r in rows:
        out.append({
            "idx": r.idx, "problem": r.problem_id, "name": r.name,
            "paper sizes": _sizes(r.paper_sizes), "cpu sizes": _sizes(r.cpu_sizes),
            "paper out": "x".join(map(str, r.paper_output_shape)), "cpu out": "x".join(map(str, r.cpu_output_shape)),
            "paper in MB": r.paper_input_mb, "cpu in MB": r.cpu_input_mb,
        })
    return out


def plot_fast_p(
    axes: Sequence[Any],
    curves: Mapping[float, np.ndarray],
    reference: Mapping[str, Any],
    *,
    ps: Sequence[float] = (0.5, 1.0),
    label: str = "this run",
    num_tasks: int | None = None,
) -> None:
    """One panel per p: fast_p of this run against proposal steps, with the paper's POLCA numbers.

    For p = 1.0 the paper gives every step (CSV, exact; the figure, read off, dotted); for other p
    only the final value, drawn as a marker at the paper's last step.
    """
    if len(axes) != len(ps):
        raise ValueError(f"axes must hold one panel per p ({len(ps)}), got {len(axes)}")
    per_step = reference["polca_fast_1.0_per_step"]
    steps = per_step["steps"]
    total = reference["num_tasks"]
    final = reference["final"]["POLCA"]
    for ax, p in zip(axes, ps):
        values = np.asarray(curves[float(p)], dtype=float)
        suffix = f", {num_tasks} task{'s' if num_tasks != 1 else ''}" if num_tasks is not None else ""
        ax.step(np.arange(len(values)), values, where="post", color="tab:blue", linewidth=2,
                label=f"{label}{suffix}")
        ax.plot(np.arange(len(values)), values, "o", color="tab:blue", markersize=4)
        if float(p) == 1.0:
            ax.plot(steps, np.asarray(per_step["csv_task_counts"]) / total, "--", marker=".", color="0.3",
                    label="paper POLCA (CSV, exact)")
            ax.plot(steps, per_step["figure_fraction_approx"], ":", color="0.55", label="paper POLCA (figure, approx)")
        key = f"fast_{float(p):.1f}"
        if key in final:
            ax.plot([steps[-1]], [final[key]], "*", markersize=12, color="tab:red",
                    label=f"paper POLCA final ({final[key]:.3g})")
        ax.set_title(f"fast_{float(p):.1f}: share of tasks with best speedup > {float(p):g}")
        ax.set_xlabel("proposal step (POLCA iteration; 0 = seed)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlim(-0.3, max(len(values) - 1, steps[-1]) + 0.3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("fast_p")


def plot_best_speedups(ax: Any, ours: Mapping[int, float], paper: Mapping[int, float], *,
                       label: str = "this run") -> None:
    """Best speedup per task (log scale), ours beside the paper's; a task where we found no correct kernel
    (speedup 0, not drawable on a log scale) is marked with a red x at the floor."""
    indices = sorted(set(ours) | set(paper))
    floor = 1e-2
    x = np.arange(len(indices))
    width = 0.4
    paper_values = [max(paper.get(i, np.nan), floor) for i in indices]
    our_values = [ours[i] if i in ours and ours[i] > 0 else np.nan for i in indices]
    failed = [k for k, i in enumerate(indices) if i in ours and not ours[i] > 0]
    ax.bar(x - width / 2, paper_values, width, color="0.7", label="paper POLCA (CUDA, L40S, paper shapes)")
    ax.bar(x + width / 2, our_values, width, color="tab:blue", label=label)
    if failed:
        ax.plot(x[failed] + width / 2, [floor * 1.3] * len(failed), "x", color="tab:red", markersize=9,
                markeredgewidth=2, label="this run: no correct kernel (speedup 0)")
    ax.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_ylim(floor * 0.8, max([v for v in paper_values + our_values if np.isfinite(v)] + [2.0]) * 1.6)
    ax.set_xticks(x, [str(i) for i in indices])
    ax.set_xlabel("task idx")
    ax.set_ylabel("best speedup")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
