"""The engine's fast paths (vectorized priorities) change no result.

Each fast path is checked against the straightforward algorithm it replaced, on random inputs with
ties (equal means, duplicated embeddings, unevaluated candidates); whole runs: test_engine_digests.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from polca_nb.memory import (
    MeanPriority,
    Memory,
    NewestFirst,
    OldestFirst,
    UCBPriority,
    best_by_mean,
    pop_top_k,
    push,
)
from polca_nb.types import Candidate, Rollout


# ---- straightforward reference algorithms (the code before the fast paths) -------------------------

def naive_pop_top_k(memory, k, priority, t):
    top = sorted(memory, key=lambda c: (priority(c, t), c.step_created, c.id), reverse=True)[:k]
    ids = {c.id for c in top}
    return top, {cid: c for cid, c in memory.candidates.items() if cid not in ids}


def naive_best_by_mean(memory):
    pool = list(memory)
    return max(pool, key=lambda c: (c.mean if c.mean is not None else -math.inf, c.step_created, c.id)) if pool else None


# ---- random inputs with ties ---------------------------------------------------------------------

def random_memory(rng, n, *, ties=True):
    """Candidates with few distinct scores (equal means), repeated steps, some unevaluated."""
    levels = np.array([0.0, 0.25, 0.5, 1.0]) if ties else None
    out = {}
    for cid in rng.permutation(n):
        cid = int(cid)
        k = int(rng.integers(0, 4))
        scores = rng.choice(levels, size=k) if ties else rng.random(k)
        out[cid] = Candidate(cid, {"p": str(cid)}, None, int(rng.integers(0, 4)),
                             tuple(Rollout(f"e{i}", float(s), "", 0, "explore") for i, s in enumerate(scores)))
    return Memory(out)


@dataclass(frozen=True)
class FewestRolloutsFirst:
    """A user-defined rule: not built in, so pop_top_k must call it per candidate."""

    name: str = field(default="fewest", init=False)

    def __call__(self, candidate: Candidate, t: int) -> float:
        return -float(candidate.n) + (0.0 if candidate.mean is None else candidate.mean)


class MeanSubclass(MeanPriority):
    """A subclass of a built-in rule with its own arithmetic: its own __call__ must be used."""

    def __call__(self, candidate: Candidate, t: int) -> float:
        return -super().__call__(candidate, t)


RULES = [MeanPriority((0.0, 1.0)), MeanPriority(), UCBPriority((0.0, 1.0)), UCBPriority((-1.0, 2.0), c=0.3),
         NewestFirst(), OldestFirst(), FewestRolloutsFirst(), MeanSubclass((0.0, 1.0))]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: type(r).__name__ + ":" + r.name)
@pytest.mark.parametrize("ties", [True, False])
def test_pop_top_k_matches_the_sort_over_a_carried_memory(rule, ties):
    rng = np.random.default_rng(7)
    memory = random_memory(rng, 300, ties=ties)
    next_id = 300
    for t in range(25):
        k = int(rng.integers(1, 9))
        want_top, want_rest = naive_pop_top_k(memory, k, rule, t)
        top, rest = pop_top_k(memory, k, rule, t)
        assert [c.id for c in top] == [c.id for c in want_top] and all(a is b for a, b in zip(top, want_top))
        assert list(rest.candidates.items()) == list(want_rest.items())
        # Like the loop: the popped come back with new rollouts, new candidates are appended.
        back = [c.with_rollouts([Rollout("x", float(rng.choice([0.0, 0.5, 1.0])), "", t, "explore")]) for c in top]
        new = [Candidate(next_id + i, {"p": "n"}, None, t) for i in range(int(rng.integers(0, 4)))]
        next_id += len(new)
        memory = push(rest, back + new)
        assert best_by_mean(memory) is naive_best_by_mean(memory)


def test_pop_top_k_edge_cases():
    rule = MeanPriority((0.0, 1.0))
    memory = random_memory(np.random.default_rng(1), 6)
    top, rest = pop_top_k(memory, 50, rule, 3)
    assert len(rest) == 0 and [c.id for c in top] == [c.id for c in naive_pop_top_k(memory, 50, rule, 3)[0]]
    empty_top, empty_rest = pop_top_k(Memory(), 3, rule, 0)
    assert empty_top == [] and len(empty_rest) == 0
    # NaN scores: the Python sort decides (its order with NaN keys depends on the input order).
    nan = Memory({i: Candidate(i, {"p": ""}, None, 0, (Rollout("e", s, "", 0, "explore"),))
                  for i, s in enumerate([0.5, math.nan, 0.9, math.nan, 0.1])})
    for k in (1, 2, 4):
        assert [c.id for c in pop_top_k(nan, k, rule, 1)[0]] == [c.id for c in naive_pop_top_k(nan, k, rule, 1)[0]]


def test_best_by_mean_ties_and_unevaluated():
    c = [Candidate(i, {"p": ""}, None, step, tuple(Rollout("e", s, "", 0, "explore") for s in scores))
         for i, (step, scores) in enumerate([(0, []), (2, [0.5]), (1, [0.5]), (2, [0.5, 0.5]), (0, [])])]
    memory = Memory({x.id: x for x in c})
    assert best_by_mean(memory) is c[3] is naive_best_by_mean(memory)  # equal means: newest (step, id)
    unevaluated = Memory({x.id: x for x in (c[0], c[4])})
    assert best_by_mean(unevaluated) is c[4] is naive_best_by_mean(unevaluated)
    assert best_by_mean(Memory()) is None and best_by_mean([]) is None


def test_push_keeps_order_and_replaces_in_place():
    memory = random_memory(np.random.default_rng(2), 20)
    ids = list(memory.candidates)
    replaced = memory.candidates[ids[5]].with_rollouts([Rollout("z", 1.0, "", 9, "validate")])
    new = Candidate(99, {"p": "new"}, None, 9)
    merged = push(memory, [new, replaced, new])
    assert list(merged.candidates) == ids + [99] and merged.candidates[ids[5]] is replaced
    rule = UCBPriority((0.0, 1.0))
    assert [c.id for c in pop_top_k(merged, 4, rule, 5)[0]] == [c.id for c in naive_pop_top_k(merged, 4, rule, 5)[0]]
