"""Search strategies under noise: every method on the testbed, a grid of noise levels x proposer qualities.

The optimizer is SIMULATED (polca_nb.testbed.SimulatedOptimizerLLM, a stated stochastic model, not an
LLM); every method runs through its own code (POLCA's loop, the real `gepa`, `openevolve` and `dspy`
packages; DSPy's MIPROv2 and dspy.GEPA only when named in --methods) at the same metric-call budget,
and is scored by the exact true reward of the program it returns.

Prints per cell the final true score (mean +- s.e.), metric calls to reach the best baseline's final
mean and the POLCA / method ratios; then the regime map (POLCA wins / ties within 1 s.e. / loses
against the best baseline), the paper's tau-bench-like cell, and each method's own overhead per
metric call (roles' time taken out), all measured in this one run.

    .venv/bin/python bench/strategies.py [--seeds 20] [--budget 400] [--json PATH]
        [--noise deterministic binary binary+judge] [--quality weak medium strong] [--methods ...]
    .venv/bin/python bench/strategies.py --methods polca gepa dspy-mipro dspy-gepa --noise binary
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

try:
    from polca_nb.tables import format_table, summary_rows
    from polca_nb.testbed import (BASELINES, DSPY_BASELINES, LABEL, NOISE_LEVELS, PAPER_TAU_CELL, POLCA_METHODS,
                                  QUALITIES, TESTBED_METHODS, cell_optimum, grid_cells, run_cell, summarize_cell)
    from polca_nb.testbed.overhead import measure_overhead
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from polca_nb.tables import format_table, summary_rows
    from polca_nb.testbed import (BASELINES, DSPY_BASELINES, LABEL, NOISE_LEVELS, PAPER_TAU_CELL, POLCA_METHODS,
                                  QUALITIES, TESTBED_METHODS, cell_optimum, grid_cells, run_cell, summarize_cell)
    from polca_nb.testbed.overhead import measure_overhead


def regime_map(summaries, noise_levels, qualities) -> str:
    """Noise rows x quality columns: regime and POLCA/best-baseline metric-call ratio."""
    by = {(s.label.split(" x ")[0], s.label.split(" x ")[1]): s for s in summaries}
    width = 30
    corner = "noise \\ proposer"
    lines = [f"{corner:<16}" + "".join(f"{q + ' (d0=' + format(QUALITIES[q].delta0, 'g') + ')':>{width}}"
                                                    for q in qualities)]
    for n in noise_levels:
        cells = []
        for q in qualities:
            s = by[(n, q)]
            ratio = "n/a" if s.calls_ratio is None else f"{s.calls_ratio:.2f}"
            cells.append(f"{s.regime.upper()} vs {s.best_baseline}, calls {ratio}")
        lines.append(f"{n:<16}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


ALL_BASELINES = BASELINES + DSPY_BASELINES


def main(argv=None) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # OpenEvolve's parent sampling follows set order (str hashing): fix it so reruns print the same table.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per cell (default 20)")
    parser.add_argument("--budget", type=int, default=400, help="metric calls per run (default 400)")
    parser.add_argument("--noise", nargs="+", default=list(NOISE_LEVELS), choices=list(NOISE_LEVELS))
    parser.add_argument("--quality", nargs="+", default=list(QUALITIES), choices=list(QUALITIES))
    parser.add_argument("--methods", nargs="+", default=list(TESTBED_METHODS),
                        choices=list(TESTBED_METHODS + DSPY_BASELINES))
    parser.add_argument("--overhead-seeds", type=int, default=3, help="seeds for the overhead table (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if "polca" not in args.methods or not set(args.methods) & set(ALL_BASELINES):
        parser.error("--methods needs 'polca' and at least one baseline " + str(list(ALL_BASELINES)))
    baselines = [b for b in ALL_BASELINES if b in args.methods]

    print(f"Optimizer: {LABEL}. Budget {args.budget} metric calls per run, {args.seeds} seeds per cell; "
          f"score = exact true reward of the returned program.")
    started = time.perf_counter()
    summaries, comparisons, out = [], [], {"budget": args.budget, "seeds": args.seeds, "label": LABEL, "cells": []}
    for cell in grid_cells(args.noise, args.quality):
        t0 = time.perf_counter()
        comparison = run_cell(cell, seeds=range(args.seeds), budget=args.budget, methods=args.methods)
        optimum = cell_optimum(cell)
        summary = summarize_cell(comparison, cell.label, baselines=baselines, optimum=optimum)
        summaries.append(summary)
        comparisons.append(comparison)
        rows = summary_rows(comparison, baselines=baselines)
        print(f"\n== {cell.label}: noise {cell.noise.label}; optimizer {cell.model.label}; optimum {optimum:.3f}, "
              f"seed program {comparison.initial:.3f} ({time.perf_counter() - t0:.0f} s)")
        print(format_table(rows))
        memory = ", ".join(f"{m} {v:.0f}" for m, v in (summary.memory_sizes or {}).items())
        print(f"memory size (mean candidates kept): {memory}")
        out["cells"].append({"cell": cell.label, "noise": cell.noise_name, "quality": cell.quality_name,
                             "optimum": optimum, "initial": comparison.initial, "regime": summary.regime,
                             "best_baseline": summary.best_baseline, "calls_ratio": summary.calls_ratio,
                             "calls_polca": summary.calls_polca, "calls_baseline": summary.calls_baseline,
                             "means": summary.means, "errors": summary.errors, "memory_sizes": summary.memory_sizes,
                             "finals": comparison.finals, "grid": list(comparison.grid),
                             "seconds": {m: sum(v) for m, v in comparison.seconds.items()}})

    print("\n== Regime map: POLCA against the best baseline (by final mean true score); WIN / LOSE: the "
          "difference exceeds 1 s.e.; calls: POLCA's metric calls / the baseline's to reach that baseline's "
          "final mean (< 1: POLCA gets there sooner; n/a: POLCA never does)")
    print(regime_map(summaries, args.noise, args.quality))
    variants = [m for m in POLCA_METHODS if m in args.methods]
    print("\n== Each POLCA configuration against the same best baseline: regime (WIN / TIE / LOSE beyond 1 s.e.)")
    print(f"{'cell':<26}" + "".join(f"{m:>18}" for m in variants))
    for s, comparison in zip(summaries, comparisons):
        verdicts = [summarize_cell(comparison, s.label, method=m, baselines=[s.best_baseline]).regime.upper()
                    for m in variants]
        print(f"{s.label:<26}" + "".join(f"{v:>18}" for v in verdicts))
        out["cells"][summaries.index(s)]["variant_regimes"] = dict(zip(variants, verdicts))
    tau = next((s for s in summaries if s.label == " x ".join(PAPER_TAU_CELL)), None)
    if tau is not None:
        ratio = "n/a (POLCA never reaches it)" if tau.calls_ratio is None else f"{tau.calls_ratio:.2f}"
        print(f"\nCell closest to the paper's tau-bench setting (K=5, b=2, binary noisy rewards, weak proposer): "
              f"{tau.label}: POLCA {tau.means['polca']:.3f} +- {tau.errors['polca']:.3f} vs {tau.best_baseline} "
              f"{tau.means[tau.best_baseline]:.3f} +- {tau.errors[tau.best_baseline]:.3f} -> {tau.regime.upper()}; "
              f"metric calls POLCA / {tau.best_baseline} = {ratio}")
        out["tau_cell"] = tau.label

    if args.overhead_seeds > 0:
        cell = grid_cells([PAPER_TAU_CELL[0]] if PAPER_TAU_CELL[0] in args.noise else args.noise[:1],
                          [PAPER_TAU_CELL[1]] if PAPER_TAU_CELL[1] in args.quality else args.quality[:1])[0]
        overhead = measure_overhead(cell, args.methods, seeds=range(args.overhead_seeds), budget=args.budget)
        fastest = min(r.machinery_s_per_call for r in overhead)
        print(f"\n== Overhead per metric call on {cell.label} ({args.overhead_seeds} seeds, measured side by side): "
              "the method's own machinery, with the time inside the roles (evaluator, simulated optimizer, "
              "embedder) taken out")
        print(f"{'method':<18}{'machinery us/call':>19}{'x fastest':>11}{'roles us/call':>15}{'calls/run':>11}")
        for r in overhead:
            print(f"{r.method:<18}{r.machinery_s_per_call * 1e6:>19.0f}{r.machinery_s_per_call / fastest:>11.1f}"
                  f"{r.roles_s_per_call * 1e6:>15.0f}{r.metric_calls:>11.0f}")
        out["overhead"] = [vars(r) for r in overhead]
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
