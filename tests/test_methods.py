"""Methods as configurations of the one loop: baselines behave as their definitions say."""

import pytest

from polca_nb.budget import Budget
from polca_nb.curves import CurvePoint, curve_at, score_curve
from polca_nb.methods import METHODS, get_method, returned_program, run_method
from polca_nb.runner import PolcaConfig
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem


def run(name, budget=80, seed=0):
    problem = skills_problem()
    return problem, run_method(name, problem, ScriptedProposer(), PolcaConfig(Budget(max_metric_calls=budget), eps=0.5),
                               embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(), seed=seed, progress=False)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_respects_the_budget(name):
    _, res = run(name, budget=57)
    assert sum(1 for e in res.events if e["type"] == "evaluation") == res.spent.metric_calls <= 57


def test_sequential_always_explores_the_newest_candidate():
    _, res = run("sequential", budget=120)
    explored = [e["explored"] for e in res.events if e["type"] == "iteration"]
    assert all(len(x) == 1 for x in explored)
    newest_before = [0] + [h.newest_id for h in res.history[:-1]]
    assert [x[0] for x in explored] == newest_before
    assert returned_program("sequential", res).id == max(res.memory.candidates)


def test_best_of_n_only_explores_the_seed():
    _, res = run("best-of-n", budget=120)
    explored = {x for e in res.events if e["type"] == "iteration" for x in e["explored"]}
    parents = {e["parent_id"] for e in res.events if e["type"] == "proposal"}
    assert explored == {0} and parents == {0}


def test_ablations_switch_components_off():
    _, vanilla = run("polca-vanilla", budget=120)
    kinds = {e["type"] for e in vanilla.events}
    assert "summary" not in kinds and "rejection" not in kinds
    _, full = run("polca", budget=120)
    kinds = {e["type"] for e in full.events}
    assert "summary" in kinds and "rejection" in kinds
    assert get_method("polca").uses_epsnet and not get_method("polca+summarizer").uses_epsnet
    with pytest.raises(ValueError, match="method must be one of"):
        get_method("annealing")


def test_score_curve_running_max_and_curve_at():
    problem, res = run("polca", budget=120)
    scores = iter([0.2, 0.5, 0.3, 0.9, 0.1] * 100)
    memo_calls = []

    def score(params):
        memo_calls.append(params)
        return next(scores)

    plain = score_curve("polca", res, score)
    distinct = {h.best_id for h in res.history}
    assert len(memo_calls) <= len(distinct)  # one score per distinct returned program
    best = score_curve("polca", res, lambda p: len(p["instructions"]), running_max=True)
    assert all(a.score <= b.score for a, b in zip(best, best[1:]))
    pts = [CurvePoint(0, 10, 0.5), CurvePoint(1, 20, 0.7)]
    assert curve_at(pts, [0, 10, 15, 20, 99], initial=0.1) == [0.1, 0.5, 0.5, 0.7, 0.7]
    assert len(plain) == len(res.history)


def test_compare_returns_the_one_comparison_type_scored_once_per_program():
    from polca_nb.curves import Comparison, compare
    from polca_nb.synthetic import true_score

    problem = skills_problem()
    calls = []

    def score(params):
        calls.append(params["instructions"])
        return true_score(problem.evaluator, params, problem)

    c = compare(["polca", "sequential"], problem, ScriptedProposer(), PolcaConfig(Budget(max_metric_calls=60), eps=0.5),
                seeds=[0, 1], score=score, embedder=SkillsEmbedder(), summarizer=SkillsSummarizer())
    assert isinstance(c, Comparison) and c.seeds == (0, 1) and c.budget == 60 and c.grid == ()
    assert c.initial == score(problem.seed_params)
    assert len(calls) - 1 == len(set(calls[:-1]))  # each distinct program scored once (+ the check above)
    assert {m: len(v) for m, v in c.seconds.items()} == {"polca": 2, "sequential": 2}
    assert list(c.table().index) == ["polca", "sequential"]
    with pytest.raises(ValueError, match="seeds is empty"):
        compare(["polca"], problem, ScriptedProposer(), PolcaConfig(Budget(max_metric_calls=10)), seeds=[], score=score)
