"""Speedup of the Dask executor over a serial loop, and its overhead per evaluation.

For W = 1, 2, 4, 8 process workers on a LocalCluster (one thread each), one iteration's worth of
evaluations (K x b = --evaluations calls, through `evaluation.evaluate_examples`, as the loop runs
them) is timed for

- an I/O-bound evaluator (`SleepEvaluator`, --sleep s per call: an LLM call or a subprocess),
- a CPU-bound one (`SpinEvaluator`, pure Python, --spin iterations: ~--sleep s here),
- a no-op one, --overhead-evaluations calls: wall time per call is the executor's own cost
  (submit, schedule, ship evaluator + params, run, gather, log), the target being < 5 ms.

Speedup = serial wall time / executor wall time, each measured in this run (median of --repeats).
The I/O-bound target is >= 0.8 x W while W <= K x b. The CPU-bound case cannot pass the number of
cores (2 on the project's machine). A local-thread row (ThreadExecutor) is printed for comparison.
Ratios on a shared machine vary; nothing here is asserted.

    .venv/bin/python bench/executors.py [--workers 1 2 4 8] [--evaluations 32] [--sleep 0.1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

try:
    import polca_nb  # noqa: F401
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distributed import Client, LocalCluster

from polca_nb.evaluation import evaluate_examples
from polca_nb.executors import DaskExecutor
from polca_nb.executors.loads import SleepEvaluator, SpinEvaluator
from polca_nb.protocols import Executor, SerialExecutor, ThreadExecutor
from polca_nb.runlog import RunLog
from polca_nb.types import Candidate, Example

IO_TARGET = 0.8
OVERHEAD_TARGET_MS = 5.0


def one_iteration(evaluator: Any, n: int, executor: Executor) -> float:
    """Wall seconds of n evaluations of one candidate through the loop's evaluation path."""
    candidate = Candidate(0, {"instructions": "be brief"})
    examples = [Example(f"ex{i}", {"i": i}) for i in range(n)]
    started = time.perf_counter()
    evaluate_examples(candidate, examples, list(range(n)), evaluator=evaluator, step=0, source="explore",
                      log_=RunLog(), executor=executor)
    return time.perf_counter() - started


def median_wall(run: Callable[[], float], repeats: int) -> float:
    return statistics.median(run() for _ in range(repeats))


def calibrate_spin(seconds: float) -> int:
    """Spin iterations that take about `seconds` in this process."""
    probe = 200_000
    took = one_iteration(SpinEvaluator(probe), 1, SerialExecutor())
    return max(1000, int(probe * seconds / max(took, 1e-6)))


def measure_workers(w: int, loads: dict[str, tuple[Any, int]], serial: dict[str, float], repeats: int) -> dict:
    """Speedups and per-call overhead on a fresh cluster of w process workers."""
    with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        executor = DaskExecutor(client)
        one_iteration(SleepEvaluator(0.0), 4 * w, executor)  # warm-up: workers import polca_nb
        walls = {name: median_wall(lambda: one_iteration(ev, n, executor), repeats) for name, (ev, n) in loads.items()}
    row: dict[str, Any] = {"workers": w}
    for name, wall in walls.items():
        row[f"{name}_s"] = wall
        if name != "noop":
            row[f"{name}_speedup"] = serial[name] / wall
    row["overhead_ms"] = 1000 * walls["noop"] / loads["noop"][1]
    return row


def print_table(rows: list[dict], threads: list[dict], n: int, sleep: float) -> None:
    print(f"\none iteration = {n} evaluations; I/O-bound: sleep {sleep:g} s per call; CPU-bound: ~{sleep:g} s of "
          "pure-Python work per call")
    print(f"{'executor':<22}{'W':>3}  {'I/O speedup':>11} {'(target)':>9}  {'CPU speedup':>11}  {'overhead/eval':>13}")
    for r in rows:
        target = IO_TARGET * min(r["workers"], n)
        ok = "ok" if r["io_speedup"] >= target else "MISSED"
        print(f"{'Dask, process workers':<22}{r['workers']:>3}  {r['io_speedup']:>10.2f}x {f'>={target:.1f}':>9}"
              f" {ok:<6} {r['cpu_speedup']:>6.2f}x  {r['overhead_ms']:>10.2f} ms")
    for r in threads:
        print(f"{'ThreadExecutor':<22}{r['workers']:>3}  {r['io_speedup']:>10.2f}x")
    worst = max(r["overhead_ms"] for r in rows)
    print(f"executor overhead: at most {worst:.2f} ms per evaluation (target < {OVERHEAD_TARGET_MS:g} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--evaluations", type=int, default=32, help="K x b: one iteration's evaluations")
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--overhead-evaluations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    n = args.evaluations
    spin = SpinEvaluator(calibrate_spin(args.sleep))
    loads = {"io": (SleepEvaluator(args.sleep), n), "cpu": (spin, n),
             "noop": (SleepEvaluator(0.0), args.overhead_evaluations)}
    serial = {name: one_iteration(ev, k, SerialExecutor()) for name, (ev, k) in loads.items() if name != "noop"}
    print(f"serial: I/O-bound {serial['io']:.2f} s, CPU-bound {serial['cpu']:.2f} s for {n} evaluations")
    rows = []
    for w in args.workers:
        rows.append(measure_workers(w, loads, serial, args.repeats))
        print(f"  W={w}: {json.dumps({k: round(v, 4) for k, v in rows[-1].items()})}", flush=True)
    threads = [{"workers": w, "io_speedup": serial["io"] / median_wall(
        lambda: one_iteration(loads["io"][0], n, ThreadExecutor(w)), args.repeats)} for w in args.workers]
    print_table(rows, threads, n, args.sleep)
    if args.json is not None:
        args.json.write_text(json.dumps({"serial": serial, "dask": rows, "threads": threads}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
