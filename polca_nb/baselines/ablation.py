"""The paper's ablation (Fig. 9: vanilla / +eps-Net / +summarizer / full) and eps sensitivity (Fig. 10)
on our task, plus the paper's own numbers from `polca_nb/reference/ablations.json` to draw beside them.

The paper's numbers are tau-bench / VeriBench runs with frontier LLMs: they are drawn on their own axes
and labelled as such, never mixed into our curves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np

from ..budget import Budget
from ..curves import Comparison, mean_best_so_far, running_best
from ..llm.base import LLM
from ..plots import plot_score_curves
from ..protocols import Embedder
from ..problem import PolcaConfig, Problem
from ..progress import tallied_warnings
from .compare import compare_methods

ABLATION_METHODS = ("polca-vanilla", "polca+epsnet", "polca+summarizer", "polca")
"""Fig. 9's four variants, as names of `methods.METHODS`."""


def load_reference(name: str = "ablations") -> dict[str, Any]:
    """A reference JSON shipped in `polca_nb/reference/` (package data), e.g. the paper's Fig. 9/10 numbers."""
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    path = resources.files("polca_nb").joinpath("reference").joinpath(f"{name}.json")
    if not path.is_file():
        raise ValueError(f"no reference file polca_nb/reference/{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def run_ablation(problem: Problem, llm: LLM, *, budget: int, seeds: Sequence[int],
                 methods: Sequence[str] = ABLATION_METHODS, base_config: PolcaConfig | None = None,
                 embedder: Embedder | None = None, **options: Any) -> Comparison:
    """Fig. 9 on `problem`: every variant x seed at `budget`, test-score curves (see `compare_methods`)."""
    return compare_methods(methods, problem, llm, budget=budget, seeds=seeds, base_config=base_config,
                           embedder=embedder, **options)


@dataclass(frozen=True)
class EpsSweep:
    """Fig. 10 on our task: one Comparison (method "polca") per eps value."""

    eps_values: tuple[float, ...]
    comparisons: tuple[Comparison, ...]

    def final_best_so_far(self) -> tuple[np.ndarray, np.ndarray]:
        """Per eps: mean and s.e. over seeds of the best-so-far test score at the budget (seed program included)."""
        means, ses = [], []
        for comparison in self.comparisons:
            (curves,) = comparison.curves.values()
            finals = np.array([max(comparison.initial, *(p.score for p in curve)) for curve in curves])
            means.append(finals.mean())
            ses.append(finals.std() / np.sqrt(len(finals)))
        return np.array(means), np.array(ses)


def run_eps_sweep(problem: Problem, llm: LLM, *, eps_values: Sequence[float], budget: int, seeds: Sequence[int],
                  method: str = "polca", base_config: PolcaConfig | None = None, embedder: Embedder | None = None,
                  **options: Any) -> EpsSweep:
    """Fig. 10 on `problem`: `method` (default full POLCA) at each eps; eps = 0 turns the eps-Net off."""
    if not eps_values:
        raise ValueError("eps_values is empty")
    for eps in eps_values:
        if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps_values must be finite numbers >= 0, got {eps!r}")
    config = base_config or PolcaConfig(Budget(max_metric_calls=budget))
    with tallied_warnings(f"eps sweep of {method}"):  # one warnings summary for the whole sweep
        comparisons = tuple(
            compare_methods([method], problem, llm, budget=budget, seeds=seeds,
                            base_config=replace(config, eps=float(eps)), embedder=embedder, **options)
            for eps in eps_values)
    return EpsSweep(tuple(float(e) for e in eps_values), comparisons)


def plot_ablation(ax, comparison: Comparison, *, title: str = "", labels: Mapping[str, str] | None = None) -> None:
    """Our variants: mean +- s.e. best-so-far test score vs metric calls (the paper's protocol).

    `labels` renames methods in the legend (e.g. the paper's "Vanilla", "+ eps-Net", ...)."""
    curves = {(labels or {}).get(name, name): [running_best(curve, comparison.initial) for curve in per_seed]
              for name, per_seed in comparison.curves.items()}
    plot_score_curves(ax, curves, grid=[0, *comparison.grid], initial=comparison.initial,
                      ylabel="best-so-far test score")
    if title:
        ax.set_title(title, fontsize=10)


def plot_reference_curves(ax, reference: Mapping[str, Any], *, figure: str = "fig9_tau_bench") -> None:
    """The paper's Fig. 9 curves (approx, read off the plot) on their own axes, clearly labelled."""
    fig = reference[figure]
    for name, points in fig["curves"].items():
        xs, ys = zip(*points)
        ax.step(xs, ys, where="post", label=f"{fig['labels'].get(name, name)}")
    ax.set_xlabel("metric calls")
    ax.set_ylabel("best-so-far test score")
    ax.set_title(f"Paper, {fig['benchmark']} (Fig. 9, approx.)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_eps_sensitivity(ax, sweep: EpsSweep, reference: Mapping[str, Any] | None = None) -> None:
    """Our best-so-far test score at the budget vs eps (mean +- s.e.); the paper's tau-bench values at
    500 calls on a twin axis, dashed and labelled (different task, model and scale)."""
    means, ses = sweep.final_best_so_far()
    eps = np.array(sweep.eps_values)
    budget = sweep.comparisons[0].budget
    ax.errorbar(eps, means, yerr=ses, marker="o", capsize=3, label=f"ours: short-answer, {budget} calls")
    ax.set_xlabel("eps")
    ax.set_ylabel("best-so-far test score (ours)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if reference is not None:
        fig = reference["fig10_eps_tau_bench"]
        xs = [float(k) for k in fig["values"]]
        twin = ax.twinx()
        twin.plot(xs, list(fig["values"].values()), linestyle="--", marker=".", color="0.4",
                  label=f"paper: {fig['benchmark']} at {fig['at_calls']} calls (approx.)")
        twin.set_ylabel("paper's score (tau-bench)", color="0.4")
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="lower center")


__all__ = ["ABLATION_METHODS", "EpsSweep", "load_reference", "mean_best_so_far", "plot_ablation",
           "plot_eps_sensitivity", "plot_reference_curves", "run_ablation", "run_eps_sweep"]


def epsnet_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Per method: proposals decided, rejections, rejection rate and proposal-distance quantiles, pooled
    over seeds (eps means something only per embedder: these are the distances to set it from)."""
    rows = []
    for method, results in comparison.results.items():
        reports = [r.details["epsnet"] for r in results if "epsnet" in r.details]
        if not reports:
            continue
        distances = [d for rep in reports for d in rep.distances]
        proposals = sum(rep.proposals for rep in reports)
        rejected = sum(rep.rejected for rep in reports)
        q = np.quantile(distances, (0.1, 0.5, 0.9)) if distances else (np.nan,) * 3
        rows.append({"method": method, "eps": reports[0].eps, "embedder": reports[0].embedder,
                     "proposals": proposals, "rejected": rejected,
                     "rejection rate": rejected / proposals if proposals else np.nan,
                     "identical evaluated": sum(int(r.details.get("identical_evaluated", 0)) for r in results),
                     "distance p10": float(q[0]), "distance median": float(q[1]), "distance p90": float(q[2])})
    return rows


def pooled_distances(comparison: Comparison) -> list[float]:
    """Every measured proposal distance of a comparison (all methods, all seeds)."""
    return [d for results in comparison.results.values() for r in results
            if "epsnet" in r.details for d in r.details["epsnet"].distances]
