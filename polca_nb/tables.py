"""Tables shared by the notebooks and bench/compare.py: memory views, event counts, comparison summaries.

Scores are summarised as in the paper: mean over seeds and a standard error of std (ddof=0) / sqrt(n).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .curves import Comparison, calls_to_reach
from .memory import Memory, best_by_mean
from .types import render_params


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


def summary_rows(comparison: Comparison, *, polca: str = "polca", baselines: Sequence[str] | None = None,
                 best_so_far: bool = False) -> list[dict[str, Any]]:
    """One row per method: final test score mean and s.e. (std ddof=0 / sqrt n), metric calls to reach the
    best baseline's final mean (see `calls_to_reach`), POLCA / method ratios of final score and of
    calls to reach, the metric and optimizer-LLM calls each run actually spent, the proposals its optimizer
    wrote and the metric calls it left unused (means over seeds; None where a run does not report them).

    Baselines are every method except `polca` unless given. Without `polca` in the comparison, the ratio
    columns are None.
    """
    names = list(comparison.finals)
    baselines = [m for m in (baselines or names) if m != polca and m in comparison.finals]
    if not baselines:
        raise ValueError(f"no baseline among {names} besides {polca!r}")
    means = {m: float(np.mean(v)) for m, v in comparison.finals.items()}
    best_baseline = max(baselines, key=lambda m: means[m])
    target = means[best_baseline]
    reach = {m: calls_to_reach(comparison, m, target, best_so_far=best_so_far) for m in names}
    details = {m: comparison.run_details(m) for m in names}
    rows = []
    for m in names:
        v = np.asarray(comparison.finals[m], dtype=float)
        row = {"method": m, "final": means[m], "se": float(v.std() / np.sqrt(len(v))), "seeds": len(v),
               "calls_to_target": reach[m], "target": target, "best_baseline": best_baseline,
               "curve": "best-so-far" if best_so_far else "returned program",
               "final_ratio": None, "calls_ratio": None,
               "mean_seconds": float(np.mean(comparison.seconds[m])),
               "mean_calls": _mean_or_none([_metric_calls(r) for r in comparison.results.get(m, [])]),
               "mean_llm_calls": _mean_or_none([sum(d["llm_calls"].values()) if "llm_calls" in d else None
                                                for d in details[m]]),
               "mean_proposals": _mean_or_none([d.get("proposals") for d in details[m]]),
               "mean_unused_calls": _mean_or_none([d.get("unused_calls") for d in details[m]])}
        if polca in comparison.finals and m != polca:
            row["final_ratio"] = means[polca] / means[m] if means[m] > 0 else None
            ours, theirs = reach[polca], reach[m]
            if ours is not None and theirs:
                row["calls_ratio"] = ours / theirs
        rows.append(row)
    return rows


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    """The mean, or None when there are no values or a run lacks one (a mean of some runs would mislead)."""
    if not len(values) or any(v is None for v in values):
        return None
    return float(np.mean([float(v) for v in values if v is not None]))


def _metric_calls(result: Any) -> float | None:
    # MethodResult (compare_methods, the testbed) or RunResult (curves.compare).
    if hasattr(result, "metric_calls"):
        return float(result.metric_calls)
    spent = getattr(result, "spent", None)
    return None if spent is None else float(spent.metric_calls)


def format_table(rows: Sequence[Mapping[str, Any]], *, polca: str = "polca") -> str:
    """The rows as a fixed-width text table (what bench/compare.py prints)."""
    target = rows[0]["target"]
    best = rows[0]["best_baseline"]
    header = (f"{'method':<16}{'final test score':>20}{'seeds':>7}{'calls to reach':>16}"
              f"{polca + '/method':>14}{polca + '/method':>14}{'calls used':>12}{'unused calls':>14}"
              f"{'proposals':>11}{'LLM calls':>11}{'s/run':>8}")
    sub = (f"{'':<16}{'mean +- s.e.':>20}{'':>7}{f'{target:.3f}':>16}{'final':>14}{'calls':>14}"
           f"{'mean/run':>12}{'mean/run':>14}{'mean/run':>11}{'mean/run':>11}{'':>8}")
    curve = rows[0]["curve"]
    lines = [f"target = final mean of the best baseline ({best}) = {target:.3f}; calls to reach: first grid point "
             f"where the mean test score of the {curve} reaches it", header, sub, "-" * len(header)]

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for r in rows:
        reach = "never" if r["calls_to_target"] is None else str(r["calls_to_target"])
        lines.append(f"{r['method']:<16}{r['final']:>12.3f} +- {r['se']:.3f}{r['seeds']:>7}{reach:>16}"
                     f"{fmt(r['final_ratio'], '.2f'):>14}{fmt(r['calls_ratio'], '.2f'):>14}"
                     f"{fmt(r.get('mean_calls'), '.1f'):>12}{fmt(r.get('mean_unused_calls'), '.1f'):>14}"
                     f"{fmt(r.get('mean_proposals'), '.1f'):>11}{fmt(r.get('mean_llm_calls'), '.1f'):>11}"
                     f"{r['mean_seconds']:>8.2f}")
    return "\n".join(lines)


__all__ = ["best_text", "event_counts", "format_table", "memory_table", "summary_rows"]
