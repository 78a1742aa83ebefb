"""Priority arithmetic, queue order and tie rule, and eps-Net admission."""

import math

import numpy as np
import pytest

from polca_nb.epsnet import epsnet_filter, min_distances
from polca_nb.memory import (
    MeanPriority,
    Memory,
    UCBPriority,
    best_by_mean,
    make_priority,
    pop_top_k,
    push,
    ranked,
)
from polca_nb.types import Candidate, Rollout


def cand(cid, scores, step=0):
    return Candidate(cid, {"p": str(cid)}, None, step,
                     tuple(Rollout(f"e{i}", s, "", step, "explore") for i, s in enumerate(scores)))


def test_candidate_statistics():
    c = cand(1, [1.0, 0.0, 1.0, 1.0])
    assert c.n == 4 and c.mean == 0.75 and math.isclose(c.variance, 0.1875)
    assert cand(2, []).mean is None and cand(2, []).variance is None


def test_mean_priority_unevaluated_gets_top_of_range_or_inf():
    assert MeanPriority((0, 1))(cand(1, []), 3) == 1.0
    assert MeanPriority()(cand(1, []), 3) == math.inf
    assert MeanPriority((0, 1))(cand(1, [0.2, 0.4]), 3) == pytest.approx(0.3)


def test_ucb_arithmetic():
    c = cand(1, [0.2, 0.4, 0.0, 0.2])  # mean 0.2, n 4
    t = 9
    expected = 0.2 + 0.5 * math.sqrt(math.log(10) / 4) * (10 - 0)
    assert UCBPriority((0, 10), c=0.5)(c, t) == pytest.approx(expected)


def test_ucb_clips_to_range_and_is_mean_at_t0():
    c = cand(1, [0.9])
    assert UCBPriority((0, 1))(c, 1000) == 1.0  # bonus would exceed the range
    assert UCBPriority((0, 1))(c, 0) == pytest.approx(0.9)  # ln(1) = 0: no bonus yet
    low = cand(2, [-5.0])
    assert UCBPriority((0, 1), c=0.0)(low, 5) == 0.0  # clipped from below


@pytest.mark.parametrize("bad", [None, (0, math.inf), (-math.inf, 1)])
def test_ucb_without_finite_range_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="score_range"):
        UCBPriority(bad)


def test_bad_range_and_rule_names():
    with pytest.raises(ValueError, match="min < max"):
        MeanPriority((1, 1))
    with pytest.raises(ValueError, match="priority"):
        make_priority("median")
    with pytest.raises(ValueError, match="exploration constant"):
        UCBPriority((0, 1), c=-1)


def test_pop_top_k_order_and_rest():
    mem = Memory({c.id: c for c in [cand(1, [0.1]), cand(2, [0.9]), cand(3, [0.5]), cand(4, [])]})
    top, rest = pop_top_k(mem, 2, MeanPriority((0, 1)), 0)
    assert [c.id for c in top] == [4, 2]  # unevaluated first (priority = max), then highest mean
    assert sorted(rest.candidates) == [1, 3]
    top, rest = pop_top_k(mem, 10, MeanPriority((0, 1)), 0)
    assert len(top) == 4 and len(rest) == 0


def test_tie_rule_newer_first():
    a, b, c = cand(1, [0.5], step=0), cand(2, [0.5], step=3), cand(3, [0.5], step=3)
    assert [x.id for x in ranked([a, b, c], MeanPriority((0, 1)), 0)] == [3, 2, 1]
    assert best_by_mean([a, b, c]).id == 3


def test_pop_rejects_k_below_one():
    with pytest.raises(ValueError, match="num_candidates"):
        pop_top_k(Memory({}), 0, MeanPriority(), 0)


def test_push_replaces_by_id_and_best_by_mean():
    mem = push(Memory({}), [cand(1, [0.2]), cand(2, [0.4])])
    mem = push(mem, [cand(1, [0.2, 1.0, 1.0])])
    assert len(mem) == 2 and mem.candidates[1].n == 3
    assert best_by_mean(mem).id == 1
    assert best_by_mean([]) is None


def test_min_distances():
    d = min_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [3.0, 0.0]]))
    assert d == pytest.approx([1.0, 4.0])
    assert np.isinf(min_distances(np.array([[1.0, 1.0]]), np.zeros((0, 2)))).all()


def test_epsnet_admits_farthest_first_and_deduplicates():
    reference = np.array([[0.0, 0.0]])
    proposals = np.array([[1.0, 0.0], [5.0, 0.0], [5.05, 0.0], [0.05, 0.0]])
    out = epsnet_filter(proposals, reference, eps=0.5)
    admitted = [a.index for a in out if a.admitted]
    rejected = {a.index: a.distance for a in out if not a.admitted}
    assert admitted == [2, 0]  # farthest (5.05) first; 5.0 is then a near-duplicate of it
    assert set(rejected) == {1, 3}
    assert rejected[1] == pytest.approx(0.05) and rejected[3] == pytest.approx(0.05)
    assert out[0].distance == pytest.approx(5.05) and out[1].distance == pytest.approx(1.0)


def test_epsnet_threshold_is_strict():
    out = epsnet_filter(np.array([[1.0]]), np.array([[0.0]]), eps=1.0)
    assert not out[0].admitted  # distance == eps is rejected (admit only if > eps)
    out = epsnet_filter(np.array([[1.0 + 1e-9]]), np.array([[0.0]]), eps=1.0)
    assert out[0].admitted


def test_epsnet_zero_disables_and_empty_reference():
    props = np.array([[0.0], [0.0], [0.0]])
    assert all(a.admitted for a in epsnet_filter(props, np.array([[0.0]]), eps=0))
    out = epsnet_filter(props, np.zeros((0, 1)), eps=0.1)
    assert [a.admitted for a in out] == [True, False, False]


def test_epsnet_negative_eps():
    with pytest.raises(ValueError, match="eps"):
        epsnet_filter(np.array([[0.0]]), np.array([[0.0]]), eps=-0.1)
