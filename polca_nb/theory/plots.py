"""Figures and summary tables for the simulated theory runs and sweeps (`polca_nb.theory`).

Every plot function takes simulation results and returns a `matplotlib.figure.Figure` built without
pyplot, so nothing leaks into global figure state; a notebook shows it by making it the cell's value.
Bands are +-1 standard error of the mean over seeds.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..plots import save_figure  # noqa: F401 - the package's one save_figure, used by name from here
from .bounds import packing_bound, theorem1_slope
from .simulator import SimulatedPolcaRun
from .stats import mean_and_sem
from .sweeps import PriorityNoiseSweep, Theorem1Sweep, Theorem2Sweep

__all__ = [
    "plot_theorem1",
    "plot_theorem2",
    "plot_priority_noise",
    "plot_run_summary",
    "save_figure",
    "theorem1_table",
    "theorem2_table",
    "priority_noise_table",
]

_LINESTYLE_BY_EPS_ON: dict[bool, Literal["-", ":"]] = {True: "-", False: ":"}
_SCREEN_DPI = 72  # inline display (keeps the notebook small); save_figure writes at its own dpi


def _log_grid(length: int, points: int = 100) -> np.ndarray:
    """0-based indices of about `points` log-spaced iterations in 1..length (keeps figures light)."""
    return np.unique(np.geomspace(1, length, points).astype(int)) - 1


def _band(ax: Axes, x: np.ndarray, samples: np.ndarray, **line_kw) -> None:
    """Mean over seeds (axis 0) with a +-SEM band."""
    mean, sem = mean_and_sem(samples, axis=0)
    (line,) = ax.plot(x, mean, **line_kw)
    ax.fill_between(x, mean - sem, mean + sem, color=line.get_color(), alpha=0.2, linewidth=0)


def _eps_label(eps: float) -> str:
    return f"ε={eps:g}" if eps > 0 else "no ε-Net"


def plot_theorem1(sweep: Theorem1Sweep) -> Figure:
    """Three panels over iterations n (log x) in a 2x2 grid whose fourth cell holds the shared legend:
    sub-optimal selections with the eps-Net and their a*ln n + b fits; the same with vs without the
    eps-Net; memory size N_eps(n). Sized to display unshrunk in a notebook (about 800 px wide)."""
    from matplotlib.lines import Line2D  # noqa: PLC0415

    sigmas = sorted({sigma for sigma, _ in sweep.runs})
    colors = dict(zip(sigmas, sns.color_palette("viridis", len(sigmas))))
    fig = Figure(figsize=(11, 8.5), dpi=_SCREEN_DPI, layout="constrained")
    (fitted_ax, compare_ax), (memory_ax, legend_ax) = fig.subplots(2, 2)
    first = next(iter(sweep.runs.values()))
    oracle = first.oracle
    for (sigma, eps), run in sweep.runs.items():
        idx = _log_grid(run.iterations_run)
        n = run.n[idx]
        style = dict(color=colors[sigma], linestyle=_LINESTYLE_BY_EPS_ON[eps > 0], linewidth=2)
        subopt = run.suboptimal_selections[:, idx]
        if eps > 0:
            fit = sweep.fits[(sigma, eps)]
            label = f"σ={sigma:g}: {round(fit.slope, 1) + 0.0:.1f}·ln n {fit.intercept:+.0f}"
            _band(fitted_ax, n, subopt, label=label, **style)
            fitted = n[n >= sweep.fit_from]
            fitted_ax.plot(fitted, fit(fitted), color="black", linestyle="--", linewidth=1)
        _band(compare_ax, n, subopt, **style)
        _band(memory_ax, n, run.memory_size[:, idx], **style)
    fitted_ax.set(xscale="log", xlabel="iteration n", ylabel="E[# selections of μ ≤ B − γ]",
                  title="With the ε-Net: sub-optimal selections ~ a·log n")
    fitted_ax.legend(fontsize=9, loc="upper left", title="fit a·ln n + b", title_fontsize=9)
    compare_ax.set(xscale="log", xlabel="iteration n", ylabel="E[# selections of μ ≤ B − γ]",
                   title="Without the ε-Net (dotted) the count keeps growing")
    bounds = []
    for eps in sorted({eps for _, eps in sweep.runs if eps > 0}):
        bound = packing_bound(eps, oracle.latent_radius, oracle.latent_dim)
        memory_ax.axhline(bound, color="gray", linestyle="-.", linewidth=1)
        bounds.append(Line2D([], [], color="gray", linestyle="-.", label=f"packing bound, ε={eps:g} ({bound})"))
    memory_ax.set(xscale="log", yscale="log", xlabel="iteration n", ylabel="programs in memory  N_ε(n)",
                  title="Memory saturates with the ε-Net, grows linearly without")
    for ax in (fitted_ax, compare_ax, memory_ax):
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=colors[s], linewidth=3, label=f"σ = {s:g}") for s in sigmas]
    handles += [Line2D([], [], color="black", linestyle=_LINESTYLE_BY_EPS_ON[on], linewidth=2, label=label)
                for on, label in ((True, _eps_label(max(e for _, e in sweep.runs))), (False, _eps_label(0.0)))]
    handles += [Line2D([], [], color="black", linestyle="--", linewidth=1,
                       label=f"a·ln n + b, fitted on n ≥ {sweep.fit_from}"), *bounds]
    legend_ax.axis("off")
    legend_ax.legend(handles=handles, loc="center", fontsize=11, frameon=False, title="all panels: bands ±1 SEM",
                     title_fontsize=11)
    fig.suptitle(f"Theorem 1, POLCA with UCB priority: B={oracle.B:g}, γ={oracle.gamma:g}, δ₀={oracle.delta_0:g}, "
                 f"{first.config.seeds} seeds")
    return fig


def _censored_mean(steps: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and SEM per row with censored (-1) entries counted as `cap` (a lower bound); also a censored flag."""
    filled = np.where(steps < 0, cap, steps).astype(np.float64)
    mean, sem = mean_and_sem(filled, axis=1)
    return mean, sem, np.asarray((steps < 0).any(axis=1))


def plot_theorem2(sweep: Theorem2Sweep) -> Figure:
    """Steps to first reach (B - gamma, B] vs B/gamma (log y): sequential updating vs POLCA, with rates."""
    fig = Figure(figsize=(8, 5.5), dpi=_SCREEN_DPI, layout="constrained")
    ax = fig.subplots()
    palette = sns.color_palette("deep")
    x = sweep.ratios
    for steps, color, name in ((sweep.sequential_steps, palette[3], "sequential updating"),
                               (sweep.polca_steps, palette[0], "POLCA (re-propose from the best)")):
        mean, sem, censored = _censored_mean(steps, sweep.max_steps)
        ax.errorbar(x, mean, yerr=sem, color=color, marker="o", linewidth=2, capsize=3, label=f"{name}: simulated")
        if censored.any():
            ax.scatter(x[censored], mean[censored], s=120, facecolors="none", edgecolors=color,
                       label=f"{name}: some runs censored at {sweep.max_steps} (lower bound)")
    ax.plot(x, sweep.sequential_rate, color=palette[3], linestyle="--", label="δ₀^(−B/γ)  (Theorem 2, sequential)")
    ax.plot(x, sweep.polca_rate, color=palette[0], linestyle="--", label="B/(γ δ₀)  (Theorem 2, POLCA)")
    ax.plot(x, sweep.sequential_exact, color=palette[3], linestyle=":", label="exact mean for this oracle, sequential")
    ax.plot(x, sweep.polca_exact, color=palette[0], linestyle=":", label="exact mean for this oracle, POLCA")
    ax.set(yscale="log", xlabel="B / γ", ylabel="proposals until first μ > B − γ",
           title=f"Theorem 2 (σ = 0, δ₀ = {sweep.delta_0:g}): exponential vs linear",)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_priority_noise(sweep: PriorityNoiseSweep) -> Figure:
    """Mean vs UCB priority as sigma grows: true reward of the returned program; sub-optimal selection rate."""
    fig = Figure(figsize=(13, 5), dpi=_SCREEN_DPI, layout="constrained")
    left, right = fig.subplots(1, 2)
    palette = dict(zip(sweep.variants, sns.color_palette("deep", len(sweep.variants))))
    oracle = next(iter(sweep.runs.values())).oracle
    for label in sweep.variants:
        runs = [sweep.runs[(label, float(sigma))] for sigma in sweep.sigmas]
        returned = np.stack([r.returned_mu for r in runs])
        rate = np.stack([r.suboptimal_selections[:, -1] / r.iterations_run for r in runs])
        for ax, values in ((left, returned), (right, rate)):
            mean, sem = mean_and_sem(values, axis=1)
            ax.errorbar(sweep.sigmas, mean, yerr=sem, marker="o", capsize=3, linewidth=2,
                        color=palette[label], label=label)
    left.axhline(oracle.B - oracle.gamma, color="gray", linestyle="--", linewidth=1, label="B − γ")
    run = next(iter(sweep.runs.values()))
    left.set(xlabel="observation noise σ", ylabel="true μ of the returned program (argmax empirical mean)",
             title=f"Returned program after {run.iterations_run} iterations")
    right.set(xlabel="observation noise σ", ylabel="fraction of selections with μ ≤ B − γ",
              title="Evaluation budget spent on sub-optimal programs")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Priority rule under increasing noise; ε={run.config.eps:g}, {run.config.seeds} seeds (±1 SEM)")
    return fig


def plot_run_summary(run: SimulatedPolcaRun, title: str = "") -> Figure:
    """Three panels for one simulated batch: sub-optimal selections, memory size, best / returned reward."""
    fig = Figure(figsize=(13, 3.8), dpi=_SCREEN_DPI, layout="constrained")
    axes = fig.subplots(1, 3)
    idx = _log_grid(run.iterations_run)
    n = run.n[idx]
    color = sns.color_palette("deep")[0]
    _band(axes[0], n, run.suboptimal_selections[:, idx], color=color, linewidth=2)
    axes[0].set(xscale="log", xlabel="iteration n", ylabel="# sub-optimal selections", title="Sub-optimal selections")
    _band(axes[1], n, run.memory_size[:, idx], color=color, linewidth=2)
    axes[1].set(xscale="log", xlabel="iteration n", ylabel="N_ε(n)", title="Programs in memory")
    _band(axes[2], n, run.best_mu[:, idx], color=color, linewidth=2, label="best μ in memory")
    axes[2].axhline(run.oracle.B - run.oracle.gamma, color="gray", linestyle="--", label="B − γ")
    returned, sem = mean_and_sem(run.returned_mu)
    axes[2].errorbar([n[-1]], [returned], yerr=[sem], color="black", marker="s", capsize=3, label="returned μ (final)")
    axes[2].set(xscale="log", xlabel="iteration n", ylabel="true reward μ", title="Best and returned program")
    axes[2].legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def theorem1_table(sweep: Theorem1Sweep) -> pd.DataFrame:
    """One row per (sigma, eps): fitted slope/intercept, Theorem 1's slope (no hidden constant, N_eps = final
    mean memory size), final mean sub-optimal count and memory size, true reward of the returned program."""
    rows = []
    for (sigma, eps), run in sweep.runs.items():
        fit = sweep.fits[(sigma, eps)]
        rows.append({
            "sigma": sigma,
            "eps": eps,
            "slope a": round(fit.slope, 2) + 0.0,  # + 0.0 turns a rounded -0.0 into 0.0
            "intercept b": round(fit.intercept, 1) + 0.0,
            "bound slope": round(theorem1_slope(run.oracle.B, run.oracle.gamma, run.oracle.delta_0, sigma,
                                                float(run.memory_size[:, -1].mean())), 1),
            "subopt @ n": float(run.suboptimal_selections[:, -1].mean()),
            "N_eps @ n": float(run.memory_size[:, -1].mean()),
            "returned mu": round(float(run.returned_mu.mean()), 3),
        })
    return pd.DataFrame(rows)


def theorem2_table(sweep: Theorem2Sweep) -> pd.DataFrame:
    """One row per B/gamma: simulated mean steps (censored counted at max_steps) vs the theory curves."""
    seq_mean, _, seq_cens = _censored_mean(sweep.sequential_steps, sweep.max_steps)
    pol_mean, _, pol_cens = _censored_mean(sweep.polca_steps, sweep.max_steps)
    return pd.DataFrame({
        "B/gamma": sweep.ratios,
        "sequential": seq_mean.round(1),
        "exact seq": sweep.sequential_exact.round(1),
        "delta0^-(B/gamma)": sweep.sequential_rate.round(1),
        "POLCA": pol_mean.round(2),
        "exact POLCA": sweep.polca_exact.round(2),
        "B/(gamma delta0)": sweep.polca_rate.round(2),
        "censored": seq_cens | pol_cens,
    })


def priority_noise_table(sweep: PriorityNoiseSweep, sigmas: Sequence[float] | None = None) -> pd.DataFrame:
    """Mean returned true reward per (variant, sigma), variants as columns."""
    chosen = sweep.sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    data = {label: [round(float(sweep.runs[(label, float(s))].returned_mu.mean()), 3) for s in chosen]
            for label in sweep.variants}
    return pd.DataFrame(data, index=pd.Index(chosen, name="sigma"))
