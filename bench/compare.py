"""Every method at an equal metric-call budget on the short-answer task, several seeds, one table.

Methods (default: all): polca, polca-vanilla, polca+epsnet, polca+summarizer, polca-ucb, sequential,
best-of-n (our loop) and gepa, openevolve, dspy-mipro, dspy-gepa (the real packages through
polca_nb.baselines; DSPy's MIPROv2 and dspy.GEPA). Prints per
method the final test score (mean +- s.e. over seeds), the metric calls the mean test score of its
returned program needs to reach the best baseline's final mean, the POLCA / method ratios of final
score and of calls to reach, and the metric calls, unused calls, proposals and LLM calls of each run.

The budget defaults to 20 x the training (= validation) set, 200 calls for the default 10 questions: less
leaves GEPA a couple of accepted candidates and OpenEvolve's islands nothing but mutations of the seed.
Before the runs it prints the test protocol and a warning for each method estimated to make fewer than
`estimates.MIN_STEPS` search steps at the budget.

    .venv/bin/python bench/compare.py                       # defaults: 5 seeds, 200 calls, local model
    .venv/bin/python bench/compare.py --budget 200 --seeds 10 --methods polca gepa
    .venv/bin/python bench/compare.py --json build/bench/compare.json

Offline this uses the embedded SmolLM2-135M as optimizer and task model: the numbers exercise the
harness, they do not reproduce the paper. With ANTHROPIC_API_KEY set, the same command uses Claude.
On a machine shared with other jobs, POLCA_LLAMA_THREADS=1 keeps the local server fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

try:
    import polca_nb  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polca_nb.baselines.compare import compare_methods, describe_test_protocol
from polca_nb.baselines.estimates import BudgetWarning, budget_warnings
from polca_nb.baselines.registry import ALL_METHODS
from polca_nb.benchmarks.short_answer import short_answer_problem
from polca_nb.llm import default_client
from polca_nb.tables import format_table, summary_rows

METHODS = list(ALL_METHODS)
BUDGET_PER_VALIDATION_EXAMPLE = 20
"""Default budget = this x the validation set (the training questions): room for every method to search."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --budget defaults to BUDGET_PER_VALIDATION_EXAMPLE x --n-train."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=None,
                        help=f"metric calls per run (default {BUDGET_PER_VALIDATION_EXAMPLE} x --n-train)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method (default 5)")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--n-train", type=int, default=10, help="training (= validation) questions")
    parser.add_argument("--n-test", type=int, default=10, help="held-out questions scoring each program")
    parser.add_argument("--grid", type=int, default=4, help="curve points per run (each costs test calls)")
    parser.add_argument("--max-tokens", type=int, default=160, help="reply cap of every optimizer LLM call")
    parser.add_argument("--minibatch", type=int, default=5, help="OpenEvolve examples per evaluation")
    parser.add_argument("--data-seed", type=int, default=0, help="train/test split of the questions")
    parser.add_argument("--json", type=Path, help="also write rows, per-seed finals and timings here")
    parser.add_argument("--verbose", action="store_true", help="show the roles' warnings (unparsable replies)")
    parser.add_argument("--test-repeats", type=int, default=1, help="samples per test question and program")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = BUDGET_PER_VALIDATION_EXAMPLE * args.n_train
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.verbose:  # a weak local model makes many unparsable replies; the ledger still counts them
        logging.getLogger("polca_nb.roles").setLevel(logging.ERROR)

    from polca_nb.baselines.openevolve_adapter import OpenEvolveSettings

    llm = default_client()
    problem = short_answer_problem(llm, n_train=args.n_train, n_test=args.n_test, seed=args.data_seed)
    print(f"short-answer: {len(problem.trainset)} train / {len(problem.testset)} test, budget {args.budget} "
          f"metric calls, seeds 0..{args.seeds - 1}, model {llm.model}")
    print(describe_test_protocol(len(problem.testset), test_seed=0, test_repeats=args.test_repeats))
    peer_settings = {"openevolve": OpenEvolveSettings(minibatch_size=args.minibatch)}
    for message in budget_warnings(args.methods, problem, args.budget, peer_settings=peer_settings):
        print(f"warning: {message}")
    sys.stdout.flush()
    started = time.perf_counter()

    def on_run(method, seed, result, final, seconds):
        print(f"  {method:<14} seed {seed}: {result.metric_calls:>4} calls, final test {final:.3f}, "
              f"{seconds:6.1f} s, llm {dict(result.details.get('llm_calls', {}))}", flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)  # printed above, before the runs
        comparison = compare_methods(args.methods, problem, llm, budget=args.budget, seeds=range(args.seeds),
                                     grid_points=args.grid, max_tokens=args.max_tokens, test_seed=0,
                                     test_repeats=args.test_repeats, peer_settings=peer_settings, on_run=on_run)
    # The target is the best *baseline*; POLCA's own ablation variants are rows, not targets.
    baselines = [m for m in args.methods if not m.startswith("polca")] or None
    rows = summary_rows(comparison, baselines=baselines)
    total = time.perf_counter() - started
    print()
    print(format_table(rows))
    print(f"\nseed program test score {comparison.initial:.3f}; wall time {total / 60:.1f} min")
    print(llm.ledger)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "finals": comparison.finals, "seconds": comparison.seconds,
                                         "grid": comparison.grid, "wall_s": total}, indent=1))


if __name__ == "__main__":
    main()
