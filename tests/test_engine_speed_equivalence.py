"""The engine's fast paths (vectorized priorities, carried reference embeddings) change no result.

Each fast path is checked against the straightforward algorithm it replaced, on random inputs with
ties (equal means, duplicated embeddings, unevaluated candidates); whole runs: test_engine_digests.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from polca_nb.epsnet import ReferenceEmbeddings, epsnet_filter, min_distances
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
from polca_nb.runlog import RunLog
from polca_nb.search import Proposal, filter_proposals
from polca_nb.types import Candidate, Rollout


# ---- straightforward reference algorithms (the code before the fast paths) -------------------------

def naive_pop_top_k(memory, k, priority, t):
    top = sorted(memory, key=lambda c: (priority(c, t), c.step_created, c.id), reverse=True)[:k]
    ids = {c.id for c in top}
    return top, {cid: c for cid, c in memory.candidates.items() if cid not in ids}


def naive_best_by_mean(memory):
    pool = list(memory)
    return max(pool, key=lambda c: (c.mean if c.mean is not None else -math.inf, c.step_created, c.id)) if pool else None


def naive_min_distances(points, reference):
    points, reference = np.atleast_2d(points), np.atleast_2d(reference)
    sq = (points**2).sum(1)[:, None] + (reference**2).sum(1)[None, :] - 2.0 * points @ reference.T
    return np.sqrt(np.maximum(sq, 0.0)).min(axis=1)


def naive_epsnet(proposals, reference, eps):
    dist = naive_min_distances(proposals, reference) if len(reference) else np.full(len(proposals), np.inf)
    if eps == 0:
        return [(i, float(dist[i]), True) for i in range(len(proposals))]
    pending, out = list(range(len(proposals))), []
    while pending:
        alive = [i for i in pending if dist[i] > eps]
        if not alive:
            break
        pick = max(alive, key=lambda i: (dist[i], -i))
        out.append((pick, float(dist[pick]), True))
        pending.remove(pick)
        if pending:
            d_new = naive_min_distances(proposals[pending], proposals[pick][None, :])
            for j, i in enumerate(pending):
                dist[i] = min(dist[i], d_new[j])
    return out + [(i, float(dist[i]), False) for i in pending]


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


def test_min_distances_and_epsnet_match_the_plain_algorithm_with_duplicates():
    rng = np.random.default_rng(3)
    for trial in range(40):
        d = int(rng.integers(1, 12))
        ref = rng.normal(size=(int(rng.integers(0, 60)), d))
        props = rng.normal(size=(int(rng.integers(1, 9)), d))
        if trial % 2 and len(ref):  # duplicated embeddings: proposals equal to a reference row and to each other
            props[0] = ref[int(rng.integers(len(ref)))]
            props[-1] = props[0]
        if trial % 3 == 0:  # a coarse grid: many exactly equal distances (farthest-first ties)
            ref, props = np.round(ref), np.round(props)
        store = ReferenceEmbeddings.of(list(ref))
        if len(ref):
            np.testing.assert_array_equal(min_distances(props, ref), naive_min_distances(props, ref))
            np.testing.assert_array_equal(min_distances(props, ref, reference_sq_norms=store.sq_norms),
                                          naive_min_distances(props, ref))
        for eps in (0.0, 0.5, 1.0, 2.5):
            want = naive_epsnet(props, ref, eps)
            got = [(a.index, a.distance, a.admitted) for a in epsnet_filter(props, ref, eps)]
            fast = [(a.index, a.distance, a.admitted)
                    for a in epsnet_filter(props, store.matrix, eps, reference_sq_norms=store.sq_norms)]
            assert got == want and fast == want


class VectorEmbedder:
    """Looks texts up in a table (so a test controls every embedding)."""

    name = "table"

    def __init__(self, table):
        self.table, self.calls = table, 0

    def embed(self, texts):
        self.calls += 1
        return np.array([self.table[t] for t in texts])


def test_filter_proposals_with_a_carried_store_matches_restacking():
    rng = np.random.default_rng(4)
    texts = [f"t{i}" for i in range(80)]
    table = {t: rng.normal(size=6) for t in texts}
    table["t79"] = table["t3"]  # a duplicated embedding
    embedder = VectorEmbedder(table)
    store = ReferenceEmbeddings()
    reference = [Candidate(i, {"p": texts[i]}, None, 0) for i in range(40)]
    reference[7] = reference[7].with_embedding(table[texts[7]])  # one embedded before the store saw it
    next_id = 40
    for step in range(6):
        picks = rng.choice(len(texts), size=6)
        proposals = [Proposal({"p": texts[i]}, 0, 0, step) for i in picks]
        plain_log, fast_log = RunLog(None), RunLog(None)
        plain, plain_ref = filter_proposals(proposals, reference, eps=1.0, embedder=embedder, first_id=next_id,
                                            step=step, log_=plain_log)
        fast, fast_ref = filter_proposals(proposals, reference, eps=1.0, embedder=embedder, first_id=next_id,
                                          step=step, log_=fast_log, store=store)
        assert plain_log.events == fast_log.events
        assert [(d.candidate.id, d.distance, d.admitted) for d in plain] == \
            [(d.candidate.id, d.distance, d.admitted) for d in fast]
        assert [c.id for c in fast_ref] == [c.id for c in plain_ref]
        for a, b in zip(fast_ref, plain_ref):
            np.testing.assert_array_equal(a.embedding, b.embedding)
        reference = fast_ref + [d.candidate for d in fast if d.admitted][:2]
        next_id += len(proposals)
    # As in the loop: the explored come back as new objects with the same embedding arrays (no new rows;
    # the store lets go of the replaced objects).
    filter_proposals(proposals, reference, eps=1.0, embedder=embedder, first_id=0, step=6, log_=RunLog(None),
                     store=store)  # the last admitted join the store
    rows = len(store)
    for step in range(40):
        picked = rng.choice(len(reference), size=10, replace=False)
        reference = [c.with_rollouts([Rollout("x", 1.0, "", step, "explore")]) if i in picked else c
                     for i, c in enumerate(reference)]
        plain, _ = filter_proposals(proposals, reference, eps=1.0, embedder=embedder, first_id=0, step=step,
                                    log_=RunLog(None))
        fast, _ = filter_proposals(proposals, reference, eps=1.0, embedder=embedder, first_id=0, step=step,
                                   log_=RunLog(None), store=store)
        assert [(d.candidate.id, d.distance, d.admitted) for d in plain] == \
            [(d.candidate.id, d.distance, d.admitted) for d in fast]
    assert len(store) == rows and len(store._holders) <= 2 * len(reference) + 64 + 10  # noqa: SLF001
    # One store shared by diverging references (a subset, a duplicate, a branch with other candidates)
    # still measures each against exactly its own candidates.
    branch = reference[:20] + [Candidate(500 + i, {"p": texts[60 + i]}, None, 9) for i in range(10)]
    for other in (reference[::3], reference + reference[:2], branch, reference, branch):
        plain, _ = filter_proposals(proposals, other, eps=0.5, embedder=embedder, first_id=0, step=9,
                                    log_=RunLog(None))
        fast, _ = filter_proposals(proposals, other, eps=0.5, embedder=embedder, first_id=0, step=9,
                                   log_=RunLog(None), store=store)
        assert [(d.candidate.id, d.distance, d.admitted) for d in plain] == \
            [(d.candidate.id, d.distance, d.admitted) for d in fast]


def test_reference_embeddings_rows_dtypes_and_shapes():
    store = ReferenceEmbeddings()
    a, b = np.array([1.0, 2.0]), np.array([3, 4], dtype=np.float32)
    assert store.add([a, b, a]).tolist() == [0, 1, 0] and len(store) == 2
    np.testing.assert_array_equal(store.matrix, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(store.sq_norms, (store.matrix**2).sum(1))
    with pytest.raises(ValueError):  # a vector of another length
        store.add([np.zeros(3)])
    with pytest.raises(ValueError, match="1-d"):
        ReferenceEmbeddings().add([np.zeros((2, 2))])
    with pytest.raises(ValueError, match="needs an embedding"):
        holders = [Candidate(0, {"p": ""})]
        store.stacked_for(holders, store.probe(holders))
    grown = ReferenceEmbeddings.of([np.full(4, float(i)) for i in range(300)])  # past the first capacity
    assert len(grown) == 300 and grown.matrix[299, 0] == 299.0
