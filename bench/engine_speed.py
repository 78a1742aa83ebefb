"""Time the search engine's hot paths at a 10,000-candidate memory with 384-d embeddings, old vs new.

Operations (the target is < 5 ms each): the eps-Net decision (5 proposals vs the 10k reference),
`filter_proposals` (5 proposals, the 10k reference already embedded, a table-lookup embedder) and
`pop_top_k` (K=5, mean and UCB priority). Each is timed next to a copy of the old straightforward
algorithm kept in this script, on the same inputs, and both must give identical results (the script
exits 1 otherwise); best_by_mean, which the loop calls every iteration too, is timed alongside.
Timings are medians of single calls measured in this run; on a shared machine they vary, the ratios
less so. The old pop_top_k is timed with every candidate's mean already cached, as in a running loop.

    .venv/bin/python bench/engine_speed.py [--candidates 10000] [--dim 384] [--repeats 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

try:
    import polca_nb  # noqa: F401
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from polca_nb.epsnet import Admission, ReferenceEmbeddings, epsnet_filter
from polca_nb.memory import MeanPriority, Memory, PriorityRule, UCBPriority, best_by_mean, pop_top_k, push
from polca_nb.runlog import RunLog
from polca_nb.search import FilterDecision, Proposal, ensure_embeddings, filter_proposals
from polca_nb.types import Candidate, Rollout

TARGET_MS = 5.0
NUM_PROPOSALS = 5
K = 5
EPS = 0.5


# ---- the old algorithms, as they were before the fast paths (the reference for time and results) ----

def naive_min_distances(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if reference is None or len(reference) == 0:
        return np.full(len(points), np.inf)
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    sq = (points**2).sum(1)[:, None] + (reference**2).sum(1)[None, :] - 2.0 * points @ reference.T
    return np.sqrt(np.maximum(sq, 0.0)).min(axis=1)


def naive_epsnet_filter(proposals: np.ndarray, reference: np.ndarray, eps: float) -> list[Admission]:
    proposals = np.atleast_2d(np.asarray(proposals, dtype=np.float64))
    n = len(proposals)
    dist = naive_min_distances(proposals, reference)
    if eps == 0:
        return [Admission(i, float(dist[i]), True) for i in range(n)]
    pending = list(range(n))
    decided: list[Admission] = []
    while pending:
        alive = [i for i in pending if dist[i] > eps]
        if not alive:
            break
        pick = max(alive, key=lambda i: (dist[i], -i))
        decided.append(Admission(pick, float(dist[pick]), True))
        pending.remove(pick)
        if pending:
            d_new = naive_min_distances(proposals[pending], proposals[pick][None, :])
            for j, i in enumerate(pending):
                dist[i] = min(dist[i], d_new[j])
    decided.extend(Admission(i, float(dist[i]), False) for i in pending)
    return decided


def naive_filter_proposals(proposals: Sequence[Proposal], reference: Sequence[Candidate], *, eps: float,
                           embedder: Any, first_id: int, step: int,
                           log_: RunLog) -> tuple[list[FilterDecision], list[Candidate]]:
    news = [Candidate(first_id + i, dict(p.params), p.parent_id, step) for i, p in enumerate(proposals)]
    reference_out = ensure_embeddings(reference, embedder)
    news = ensure_embeddings(news, embedder)
    ref = np.stack([c.embedding for c in reference_out])  # type: ignore[misc]
    admissions = naive_epsnet_filter(np.stack([c.embedding for c in news]), ref, eps)  # type: ignore[misc]
    decisions = [FilterDecision(news[a.index], a.distance, a.admitted) for a in admissions]
    for d in decisions:
        log_.emit({"type": "admission" if d.admitted else "rejection", "step": step,
                   "proposal_index": d.candidate.id - first_id, "candidate_id": d.candidate.id,
                   "parent_id": d.candidate.parent_id, "distance": round(d.distance, 6), "eps": eps,
                   "params": d.candidate.params})
    return decisions, reference_out


def naive_pop_top_k(memory: Memory, k: int, priority: PriorityRule, t: int) -> tuple[list[Candidate], Memory]:
    top = sorted(memory, key=lambda c: (priority(c, t), c.step_created, c.id), reverse=True)[:k]
    rest = {cid: c for cid, c in memory.candidates.items() if cid not in {c.id for c in top}}
    return top, Memory(rest)


def naive_best_by_mean(candidates: Memory) -> Candidate | None:
    return max(candidates, key=lambda c: (c.mean if c.mean is not None else -math.inf, c.step_created, c.id))


# ---- inputs ----------------------------------------------------------------------------------------

class TableEmbedder:
    """Returns precomputed vectors: the bench times the engine, not an embedding model."""

    name = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts])


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build_memory(rng: np.random.Generator, n: int, dim: int) -> Memory:
    """n embedded candidates with 0-4 rollouts of a few score levels (equal means), some duplicated embeddings."""
    vectors = unit_rows(rng, n, dim)
    dup = rng.choice(n, size=n // 50, replace=False)
    vectors[dup] = vectors[rng.choice(n, size=len(dup))]
    levels = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    out = {}
    for cid in rng.permutation(n).tolist():  # memory order is not id order in a real run either
        scores = rng.choice(levels, size=int(rng.integers(0, 5)))
        step = cid // 5
        rollouts = tuple(Rollout(f"e{j}", float(s), "", step, "explore") for j, s in enumerate(scores))
        out[cid] = Candidate(cid, {"p": f"program {cid}"}, None, step, rollouts, embedding=vectors[cid].copy())
    return Memory(out)


def next_memory(rng: np.random.Generator, rest: Memory, popped: list[Candidate], next_id: int, t: int,
                dim: int) -> Memory:
    """What an iteration pushes: the popped with two new rollouts each, and two new validated candidates."""
    back = [c.with_rollouts([Rollout("x", float(s), "", t, "explore") for s in rng.choice([0.0, 0.5, 1.0], 2)])
            for c in popped]
    new = [Candidate(next_id + i, {"p": f"new {next_id + i}"}, 0, t, (Rollout("v", 0.5, "", t, "validate"),),
                     embedding=v) for i, v in enumerate(unit_rows(rng, 2, dim))]
    return push(rest, back + new)


# ---- timing ----------------------------------------------------------------------------------------

def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds of one call (garbage collection off during it) and its result."""
    gc.disable()
    try:
        start = time.perf_counter()
        out = fn()
        return (time.perf_counter() - start) * 1e3, out
    finally:
        gc.enable()


def decisions_key(decisions: list[FilterDecision]) -> list[tuple[int, float, bool]]:
    return [(d.candidate.id, d.distance, d.admitted) for d in decisions]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per operation and implementation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; memory of {args.candidates:,} "
          f"candidates, {args.dim}-d embeddings; medians of {args.repeats} calls")

    memory = build_memory(rng, args.candidates, args.dim)
    gc.collect()
    gc.freeze()  # the memory's objects are long-lived: keep collections from rescanning them mid-timing
    times: dict[str, tuple[list[float], list[float]]] = {}
    mismatches: list[str] = []

    def record(name: str, old: float, new: float) -> None:
        times.setdefault(name, ([], []))
        times[name][0].append(old)
        times[name][1].append(new)

    # eps-Net decision and filter_proposals against the whole memory, as the loop calls them.
    reference = list(memory)
    store = ReferenceEmbeddings()
    store.stacked_for(reference, store.probe(reference))  # the loop carries its store warm
    stacked_ref = np.stack([c.embedding for c in reference])
    for r in range(args.repeats):
        points = unit_rows(rng, NUM_PROPOSALS, args.dim)
        points[1] = stacked_ref[int(rng.integers(len(stacked_ref)))] + 1e-3  # one near-duplicate of memory
        points[3] = points[2]                                                # two proposals alike
        old_ms, want = timed(lambda: naive_epsnet_filter(points, stacked_ref, EPS))
        new_ms, got = timed(lambda: epsnet_filter(points, store.matrix, EPS, reference_sq_norms=store.sq_norms))
        record("eps-Net decision (5 vs 10k)", old_ms, new_ms)
        if got != want:
            mismatches.append(f"eps-Net repeat {r}: {got} != {want}")

        texts = [f"proposal {r}-{i}" for i in range(NUM_PROPOSALS)]
        embedder = TableEmbedder(dict(zip(texts, points)))
        proposals = [Proposal({"p": text}, 0, i, 1) for i, text in enumerate(texts)]
        kw: dict[str, Any] = dict(eps=EPS, embedder=embedder, first_id=args.candidates, step=1)
        old_log, new_log = RunLog(None), RunLog(None)
        old_ms, (want_d, want_ref) = timed(lambda: naive_filter_proposals(proposals, reference, log_=old_log, **kw))
        new_ms, (got_d, got_ref) = timed(lambda: filter_proposals(proposals, reference, log_=new_log, store=store,
                                                                  **kw))
        record("filter_proposals (5 vs 10k)", old_ms, new_ms)
        if decisions_key(got_d) != decisions_key(want_d) or old_log.events != new_log.events or got_ref != want_ref:
            mismatches.append(f"filter_proposals repeat {r} differs")

    # pop_top_k (and best_by_mean) over a memory carried from iteration to iteration, as in the loop.
    for label, rule in (("mean", MeanPriority((0.0, 1.0))), ("ucb", UCBPriority((0.0, 1.0)))):
        current, next_id = memory, args.candidates
        pop_top_k(current, K, rule, 0)  # a memory made from scratch builds its columns once (timed below)
        for t in range(1, args.repeats + 1):
            old_ms, (want_top, want_rest) = timed(lambda: naive_pop_top_k(current, K, rule, t))
            new_ms, (top, rest) = timed(lambda: pop_top_k(current, K, rule, t))
            record(f"pop_top_k (K=5 of 10k, {label})", old_ms, new_ms)
            if [c.id for c in top] != [c.id for c in want_top] or list(rest.candidates) != list(want_rest.candidates):
                mismatches.append(f"pop_top_k {label} t={t}: {[c.id for c in top]} != {[c.id for c in want_top]}")
            current = next_memory(rng, rest, top, next_id, t, args.dim)
            next_id += 2
            if label == "mean":
                old_ms, want_best = timed(lambda: naive_best_by_mean(current))
                new_ms, best = timed(lambda: best_by_mean(current))
                record("best_by_mean (10k)", old_ms, new_ms)
                if best is not want_best:
                    mismatches.append(f"best_by_mean t={t}: {best and best.id} != {want_best and want_best.id}")

    rows = []
    width = max(len(name) for name in times)
    print(f"{'operation':<{width}}  {'old ms':>8}  {'new ms':>8}  {'speed-up':>8}")
    for name, (old, new) in sorted(times.items(), key=lambda item: item[0].startswith("best_by_mean")):
        old_med, new_med = statistics.median(old), statistics.median(new)
        met = new_med < TARGET_MS
        rows.append({"operation": name, "old_ms": round(old_med, 3), "new_ms": round(new_med, 3),
                     "speedup": round(old_med / new_med, 1), "target_ms": TARGET_MS, "target_met": met})
        print(f"{name:<{width}}  {old_med:8.2f}  {new_med:8.2f}  {old_med / new_med:7.1f}x   "
              f"target < {TARGET_MS:g} ms: {'met' if met else 'NOT met'}")
    # Once per memory made from scratch (a resumed run, a hand-built Memory): not a per-iteration cost.
    cold_ms, _ = timed(lambda: pop_top_k(Memory(dict(memory.candidates)), K, MeanPriority((0.0, 1.0)), 1))
    print(f"(once per memory made from scratch: the first pop_top_k builds its columns, {cold_ms:.1f} ms)")
    print("results identical to the old algorithms:", "yes" if not mismatches else "NO")
    for line in mismatches[:10]:
        print("  ", line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "cold_first_pop_ms": round(cold_ms, 3), "identical": not mismatches},
                                        indent=1) + "\n")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
