"""Benchmark the theory simulation: seed-iterations per second for seeds x iterations POLCA runs.

The target is 100 seeds x 10,000 iterations in under 10 s on 2 cores. Prints wall and CPU time per
configuration (CPU time is the steadier number on a shared machine) and the load average, e.g.

    default (UCB c=sqrt(2)sigma/B, eps=0.1): 100x10000 in 3.2 s = 312k seed-it/s; 3.1x faster than the 10 s target

    .venv/bin/python bench/theory_sim.py [--seeds 100] [--iterations 10000] [--which default|all]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

try:
    from polca_nb.theory import Oracle, SimConfig, simulate_polca
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from polca_nb.theory import Oracle, SimConfig, simulate_polca

TARGET_SECONDS = 10.0

CONFIGS: dict[str, dict] = {
    "default (UCB c=sqrt(2)sigma/B, sigma=0.1, eps=0.1)": {},
    "paper-code UCB c=1, eps=0.05 (large memory)": {"ucb_c": 1.0, "eps": 0.05},
    "mean priority, eps=0.1": {"priority": "mean"},
    "no eps-Net (eps=0, memory grows to n+1)": {"eps": 0.0},
}


def run_one(label: str, overrides: dict, seeds: int, iterations: int) -> None:
    config = SimConfig(seeds=seeds, iterations=iterations, **overrides)
    wall, cpu = time.perf_counter(), time.process_time()
    run = simulate_polca(Oracle(), config, rng=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = seeds * iterations / wall
    ratio = TARGET_SECONDS / wall * (100 * 10_000) / (seeds * iterations)
    verdict = f"{ratio:.1f}x faster than" if ratio >= 1 else f"{1 / ratio:.1f}x slower than"
    print(f"{label}: {seeds}x{iterations} in {wall:.2f} s (cpu {cpu:.2f} s) = {rate / 1e3:.0f}k seed-it/s; "
          f"{verdict} the {TARGET_SECONDS:.0f} s target for 100x10000; "
          f"final memory {run.memory_size[:, -1].mean():.0f} programs/seed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--which", choices=("default", "all"), default="all")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    items = list(CONFIGS.items())
    for label, overrides in items[:1] if args.which == "default" else items:
        run_one(label, overrides, args.seeds, args.iterations)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
