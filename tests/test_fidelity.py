"""The loop as the paper's experiment code ran it (issue: fidelity). One test (or more) per point;
each failed on the loop before the fix."""

from dataclasses import replace

import numpy as np
import pytest

from polca_nb.budget import Budget
from polca_nb.epsnet import epsnet_report, suggest_eps
from polca_nb.memory import Memory
from polca_nb.methods import run_method
from polca_nb.runlog import RunLog
from polca_nb.runner import PolcaConfig, SearchState, iterate, polca
from polca_nb.sampling import EpochSampler, next_batch, sample_summary_candidates
from polca_nb.synthetic import ScriptedProposer, SkillsEmbedder, SkillsSummarizer, skills_problem
from polca_nb.types import Candidate, Example, Rollout
from polca_nb.protocols import SerialExecutor


def config(**kw):
    return PolcaConfig(**{"budget": Budget(max_iterations=4), "eps": 0.0, "use_summarizer": False, **kw})


def evaluations(events, source=None, step=None):
    return [e for e in events if e["type"] == "evaluation" and (source is None or e["source"] == source)
            and (step is None or e["step"] == step)]


# 1. one shared exploration minibatch ----------------------------------------------------------------

def test_every_explored_candidate_sees_the_same_minibatch():
    res = polca(skills_problem(), ScriptedProposer(), config(budget=Budget(max_iterations=6)), progress=False)
    checked = 0
    for step in range(1, 6):
        by_candidate: dict[int, list[str]] = {}
        for e in evaluations(res.events, "explore", step):
            by_candidate.setdefault(e["candidate_id"], []).append(e["example_id"])
        if len(by_candidate) < 2:
            continue
        batches = list(by_candidate.values())
        assert all(b == batches[0] for b in batches), by_candidate   # common inputs, same order
        m = 5 // len(by_candidate)                                      # num_batches scaling, m=1
        assert len(set(batches[0])) == 2 * max(1, m)                     # b*m examples, not K*b*m
        checked += 1
    assert checked >= 3
    explored_k = [h for h in res.history if h.iteration > 0]
    assert all(h.explore_examples <= 10 for h in explored_k)


# 2. epoch-wise sampling -----------------------------------------------------------------------------

def test_epoch_sampler_uses_every_example_before_repeating_and_crosses_epochs():
    data = [Example(str(i), i) for i in range(7)]
    rng, sampler, drawn = np.random.default_rng(0), EpochSampler(), []
    for _ in range(6):
        batch, sampler = next_batch(sampler, data, 3, rng)
        drawn += [ex.id for ex in batch]
    for start in range(0, 14, 7):                       # epochs 1 and 2 are permutations of the set
        assert sorted(drawn[start:start + 7]) == sorted(ex.id for ex in data)
    assert drawn[:7] != drawn[7:14]                      # reshuffled each epoch
    assert sampler.epoch == 3 and sampler.position == 4  # 18 draws = 2 epochs + 4
    again, _ = next_batch(EpochSampler(), data, 3, np.random.default_rng(0))
    assert [ex.id for ex in again] == drawn[:3]
    assert EpochSampler.from_dict(sampler.to_dict()) == sampler


def test_tiny_training_and_validation_sets_do_not_crash():
    problem = skills_problem()
    tiny = replace(problem, trainset=problem.trainset[:3], valset=problem.valset[:2])
    res = polca(tiny, ScriptedProposer(), config(num_candidates=5, batch_size=1), progress=False)
    assert len(res.history) == 4
    first = evaluations(res.events, "explore", 0)
    assert len(first) == 5 and {e["example_id"] for e in first} == {ex.id for ex in tiny.trainset}
    # The validation batch of 5 (b*m after scaling) walks the 2 examples epoch by epoch.
    val0 = [e["example_id"] for e in evaluations(res.events, "validate", 0)][:5]
    assert len(val0) == 5 and sorted(set(val0)) == sorted(ex.id for ex in tiny.valset)


# 3. duplicates are the eps-Net's job ------------------------------------------------------------------

class CopyProposer:
    """Proposes the parent unchanged every other call, else a real change."""

    def __init__(self):
        self.calls = 0

    def propose(self, candidate, batch, context, seed):
        self.calls += 1
        if self.calls % 2:
            return [dict(candidate.params)]
        return [{"instructions": candidate.params["instructions"] + f" Always cite. v{self.calls}"}]


def test_identical_proposals_are_evaluated_without_the_epsnet_and_counted():
    res = polca(skills_problem(), CopyProposer(), config(), progress=False)
    identical = sum(h.identical_evaluated for h in res.history)
    assert identical >= 3
    params = [c.params for c in res.memory]
    assert len(params) > len({p["instructions"] for p in params})   # copies live in memory
    assert sum(e["identical_to_parent"] for e in res.events if e["type"] == "proposal") >= identical
    assert f"evaluated: {identical}" in res.summary()


def test_exact_deduplication_is_an_explicit_option():
    res = polca(skills_problem(), CopyProposer(), config(drop_identical_proposals=True), progress=False)
    assert sum(h.identical_evaluated for h in res.history) == 0
    assert sum(e["dropped_identical"] for e in res.events if e["type"] == "proposal") >= 3


def test_with_eps_the_epsnet_rejects_exact_copies():
    res = polca(skills_problem(), CopyProposer(), config(eps=0.5), embedder=SkillsEmbedder(), progress=False)
    assert sum(h.identical_evaluated for h in res.history) == 0
    assert any(e["type"] == "rejection" and e["distance"] == 0.0 for e in res.events)


def test_empty_updates_are_dropped():
    class Empty:
        def propose(self, candidate, batch, context, seed):
            return [{}]

    res = polca(skills_problem(), Empty(), config(budget=Budget(max_iterations=2)), progress=False)
    assert len(res.memory) == 1 and all(e["proposals"] == [] for e in res.events if e["type"] == "proposal")


# 4. summarizer sampling as published -------------------------------------------------------------------

def summary_ids(res):
    return [e["candidate_ids"] for e in res.events if e["type"] == "summary"]


def test_incremental_sampler_never_shows_a_candidate_twice():
    res = polca(skills_problem(), ScriptedProposer(), config(use_summarizer=True, budget=Budget(max_iterations=6)),
                summarizer=SkillsSummarizer(), progress=False)
    shown = summary_ids(res)
    flat = [i for ids in shown for i in ids]
    assert len(shown) == 6 and len(flat) == len(set(flat)) and all(len(ids) <= 5 for ids in shown)
    # Round 0 shows the seed program; round 1 shows only candidates never shown before.
    assert shown[0] == [0] and 0 not in shown[1] and shown[1]


def test_experiment_sampler_draws_up_to_20_seen_or_not_and_summarizes_afresh():
    seen_previous = []

    class Spy(SkillsSummarizer):
        def summarize(self, candidates, previous, examples, seed):
            seen_previous.append(previous)
            return super().summarize(candidates, previous, examples, seed)

    cfg = config(use_summarizer=True, summary_sampler="experiment", budget=Budget(max_iterations=6))
    res = polca(skills_problem(), ScriptedProposer(), cfg, summarizer=Spy(), progress=False)
    shown = summary_ids(res)
    assert len(shown) == 6 and any(set(a) & set(b) for a, b in zip(shown, shown[1:]))  # repeats allowed
    assert all(len(ids) <= 20 for ids in shown) and max(len(ids) for ids in shown) > 5
    assert all(p.startswith("Concrete recommendations") for p in seen_previous)     # never the old summary


def test_summary_samplers_are_seeded_by_the_run_generator():
    cands = [Candidate(i, {"p": str(i)}, rollouts=(Rollout("e", 1.0, "", 0, "explore"),)) for i in range(30)]
    cands.append(Candidate(99, {"p": "x"}))  # unevaluated: never shown
    pick = lambda s, sampler: [c.id for c in sample_summary_candidates(cands, frozenset(range(10)),  # noqa: E731
                                                                        np.random.default_rng(s), sampler=sampler)]
    assert pick(1, "incremental") == pick(1, "incremental") != pick(2, "incremental")
    assert len(pick(1, "incremental")) == 5 and min(pick(1, "incremental")) >= 10
    assert len(pick(1, "experiment")) == 20 and 99 not in pick(1, "experiment")
    with pytest.raises(ValueError, match="sampler"):
        sample_summary_candidates(cands, frozenset(), np.random.default_rng(0), sampler="latest")


# 5. validation batch scales with the exploration sub-batches -------------------------------------------

def test_validation_batch_is_b_times_scaled_m():
    res = polca(skills_problem(), ScriptedProposer(), config(budget=Budget(max_iterations=5)), progress=False)
    for h in res.history:
        explored = {e["candidate_id"] for e in evaluations(res.events, "explore", h.iteration)}
        m = max(1, 5 // len(explored))
        per_candidate: dict[int, int] = {}
        for e in evaluations(res.events, "validate", h.iteration):
            per_candidate[e["candidate_id"]] = per_candidate.get(e["candidate_id"], 0) + 1
        assert set(per_candidate.values()) <= {2 * m}
    fixed = polca(skills_problem(), ScriptedProposer(), config(validation_batch_size=3), progress=False)
    assert len(evaluations(fixed.events, "validate", 0)) == 3 * fixed.history[0].admitted


# 7. test evaluation does not change the search -------------------------------------------------------

def test_testing_on_or_off_gives_the_same_search():
    problem = skills_problem()
    off = polca(problem, ScriptedProposer(), config(budget=Budget(max_metric_calls=120)), seed=4, progress=False)
    on = polca(problem, ScriptedProposer(), config(budget=Budget(max_metric_calls=120), test_every=1, test_repeats=2),
               seed=4, progress=False)
    strip = lambda res: [{k: v for k, v in e.items() if k != "test_score"} for e in res.events  # noqa: E731
                         if e["type"] != "start" and not (e["type"] == "evaluation" and e["source"] == "test")]
    assert strip(off) == strip(on)
    assert on.spent.test_calls == len(on.history) * len(problem.testset) * 2


# 8. final top-k re-evaluation ------------------------------------------------------------------------

def test_final_reevaluation_scores_the_top_k_on_the_full_set_and_has_its_own_budget_line():
    problem = skills_problem()
    base = config(budget=Budget(max_metric_calls=150))
    plain = polca(problem, ScriptedProposer(), base, seed=2, progress=False)
    res = polca(problem, ScriptedProposer(), replace(base, final_reevaluation=4, final_reevaluation_repeats=2),
                seed=2, progress=False)
    assert res.best == plain.best and res.spent.metric_calls == plain.spent.metric_calls  # the search is the same
    assert len(res.reevaluated) == 4 and res.best_reevaluated is res.reevaluated[0][0]
    assert [s for _, s in res.reevaluated] == sorted((s for _, s in res.reevaluated), reverse=True)
    top4 = sorted(res.memory, key=lambda c: (c.mean, c.step_created, c.id), reverse=True)[:4]
    assert {c.id for c, _ in res.reevaluated} == {c.id for c in top4}
    assert res.spent.reevaluation_calls == 4 * len(problem.valset) * 2
    fresh = evaluations(res.events, "reevaluate")
    assert len(fresh) == res.spent.reevaluation_calls and {e["example_id"] for e in fresh} == {ex.id for ex in problem.valset}
    assert "re-evaluating the top 4" in res.summary() and plain.reevaluated == ()


def test_final_reevaluation_resumes_without_new_evaluations(tmp_path):
    problem = skills_problem()
    cfg = config(budget=Budget(max_metric_calls=80), final_reevaluation=2, final_reevaluation_set="test")
    first = polca(problem, ScriptedProposer(), cfg, seed=1, run_dir=tmp_path, progress=False)
    calls = []

    def counting(params, example, seed):
        calls.append(example.id)
        return problem.evaluator(params, example, seed)

    again = polca(replace(problem, evaluator=counting), ScriptedProposer(), cfg, seed=1, run_dir=tmp_path,
                  progress=False)
    assert calls == [] and [(c.id, s) for c, s in again.reevaluated] == [(c.id, s) for c, s in first.reevaluated]


# 9. eps means something only per embedder ----------------------------------------------------------------

def test_epsnet_report_and_eps_suggestion():
    problem = skills_problem()
    res = run_method("polca-vanilla", problem, ScriptedProposer(), config(budget=Budget(max_iterations=6)),
                     embedder=SkillsEmbedder())
    report = res.epsnet
    assert report.embedder == "skills-indicator" and report.eps == 0.0 and report.rejected == 0
    assert report.proposals == len(report.distances) > 0          # measured even without the filter
    eps = suggest_eps(report.distances, target_rejection=0.5)
    assert eps == pytest.approx(float(np.quantile(report.distances, 0.5)))
    assert "proposal distances" in str(report) and "embedder=skills-indicator" in res.summary()
    full = polca(problem, ScriptedProposer(), config(eps=0.5, budget=Budget(max_iterations=6)),
                 embedder=SkillsEmbedder(), progress=False).epsnet
    assert full.rejected > 0 and 0 < full.rejection_rate < 1
    assert epsnet_report([], 0.1, None).proposals == 0
    with pytest.raises(ValueError, match="no finite"):
        suggest_eps([])
    with pytest.raises(ValueError, match="target_rejection"):
        suggest_eps([0.1], target_rejection=1.0)


def test_checkpoint_restores_samplers_and_summarized_ids(tmp_path):
    problem = skills_problem()
    cfg = config(use_summarizer=True, budget=Budget(max_iterations=3))
    polca(problem, ScriptedProposer(), cfg, summarizer=SkillsSummarizer(), seed=3, run_dir=tmp_path, progress=False)
    import json
    state = SearchState.from_checkpoint(json.loads((tmp_path / "checkpoint.json").read_text())["state"])
    assert state.train_sampler.order and state.summarized_ids and state.val_sampler.epoch >= 1
    nxt = iterate(state, problem, replace(cfg, budget=Budget(max_iterations=4)), proposer=ScriptedProposer(),
                  embedder=None, summarizer=SkillsSummarizer(), log_=RunLog(), executor=SerialExecutor())
    assert nxt is not None and nxt.summarized_ids >= state.summarized_ids and isinstance(nxt.memory, Memory)
