"""Benchmark the KernelBench evaluator's per-evaluation overhead, phase by phase.

For one task (default: problem 1, square matmul; CPU shape N=512) it evaluates
  1. the reference submitted as ModelNew (pure torch: no build),
  2. a hand-written C++/OpenMP load_inline kernel with a cold build cache (a real compile),
  3. the same C++ kernel again (build cache hit: the .so is only loaded),
and prints, per case, the median over --repeats of: process start (spawn to first line of the
worker), torch import, build (executing the candidate module, i.e. load_inline), correctness,
timing, and the total wall time as the caller sees it, plus the speedup. The load average is
printed too: on a shared 2-core machine it explains most of the spread.

    .venv/bin/python bench/kernel_eval.py [--problem 1] [--repeats 3] [--cold-builds 1] [--skip-cpp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from polca_nb.benchmarks.kernelbench import (  # noqa: E402
    backend_status,
    evaluate_kernel,
    load_tasks,
    reference_as_candidate,
    sample_source,
)

PHASES = ("process_start", "import_torch", "reference", "build", "correctness", "timing", "total")


def run_case(label: str, task, source: str, cache_dirs: list[Path], **kwargs) -> None:
    """One evaluation per cache dir (a fresh dir means a cold build)."""
    rows = []
    for directory in cache_dirs:
        start = time.perf_counter()
        result = evaluate_kernel(task, source, "cpu", cache_dir=directory, timeout_s=900.0, **kwargs)
        caller_s = time.perf_counter() - start
        if result.status != "success":
            print(f"{label}: evaluation failed:\n{result.feedback}")
            return
        rows.append((result, caller_s))
    median = {p: statistics.median(r.phase_seconds.get(p, 0.0) for r, _ in rows) for p in PHASES}
    caller = statistics.median(c for _, c in rows)
    speedups = [round(r.speedup, 3) for r, _ in rows]
    hits = sum(r.build_cache_hit for r, _ in rows)
    print(f"{label:<28}" + "".join(f"{median[p]:>13.3f}" for p in PHASES) + f"{caller:>10.2f}"
          f"   speedups {speedups}, cache hits {hits}/{len(rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", type=int, default=1, help="KernelBench problem id (1 = square matmul)")
    parser.add_argument("--repeats", type=int, default=3, help="evaluations per case (medians are printed)")
    parser.add_argument("--cold-builds", type=int, default=1, help="cold C++ builds to time (about a minute each)")
    parser.add_argument("--skip-cpp", action="store_true", help="only the pure-torch reference case")
    args = parser.parse_args()

    available, reason = backend_status("cpu")
    if not available:
        sys.exit(f"CPU backend unavailable: {reason}")
    print(f"backend: {reason}; cuda: {backend_status('cuda')[1]}")
    task = next(t for t in load_tasks() if t.problem_id == args.problem)
    print(f"task {task.idx} ({task.name}), CPU sizes {dict(task.scaling.cpu)}, os.cpu_count()={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'case (median s)':<28}" + "".join(f"{p:>13}" for p in PHASES) + f"{'caller':>10}")
    trials = dict(num_correct_trials=3, num_warmup=3, num_perf_trials=10)
    with tempfile.TemporaryDirectory(prefix="kernel_eval_bench_") as tmp:
        root = Path(tmp)
        run_case("reference as ModelNew", task, reference_as_candidate(task), [root / "ref"] * args.repeats, **trials)
        if not args.skip_cpp:
            if args.problem != 1:
                sys.exit("the bundled C++ kernel is for --problem 1 (square matmul)")
            source = sample_source("cpp_square_matmul")
            cold = [root / f"cold-{i}" for i in range(max(1, args.cold_builds))]
            run_case("C++ cold build", task, source, cold, **trials)
            run_case("C++ cached build", task, source, [cold[0]] * args.repeats, **trials)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
