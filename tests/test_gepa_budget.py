"""GEPA under the hard metric-call cap: it stops before an iteration it cannot finish, so no child that
passed GEPA's minibatch gate is refused its validation pass and lost.

Offline: scripted reflection replies on deterministic tasks, so the cost of every iteration is known.
With 8 validation examples and minibatch 3, a reflective iteration costs at most 3 + 3 + 8 = 14 calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from test_baselines import KEY, KeywordEvaluator, fenced, keyword_problem, replies

from polca_nb.baselines import run_baseline
from polca_nb.baselines.gepa_adapter import BudgetAwareStopper, GepaSettings, gepa_iteration_cost, run_gepa
from polca_nb.types import Evaluation

pytest.importorskip("gepa")

BETTER = f"Answer the question. {KEY}."
WORDS = ("ALPHA", "BETA", "GAMMA")
STOPPER = "budget: next iteration could cost"


# -- gepa_iteration_cost and the stopper ------------------------------------------------------------

def test_iteration_cost_is_both_minibatches_plus_a_validation_pass():
    assert gepa_iteration_cost(8, 3, 8, False) == 3 + 3 + 8
    assert gepa_iteration_cost(8, 3, 2, False) == 14  # GEPA pads a short trainset: still 3 per minibatch
    assert gepa_iteration_cost(8, 3, 8, True) == 14  # merge (5 + 8) costs less than the reflective step here
    assert gepa_iteration_cost(8, 1, 8, True) == 5 + 8  # ... and more here: the worst case is the max
    assert gepa_iteration_cost(8, 1, 8, True, merge_subsample_size=7) == 15
    assert gepa_iteration_cost(8, 1, 8, False, merge_subsample_size=7) == 10  # no merge: subsample irrelevant
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ValueError, match="positive int"):
            gepa_iteration_cost(bad, 3, 8, False)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="positive int"):
            gepa_iteration_cost(8, 3, bad, False)  # type: ignore[arg-type]


@dataclass
class Remaining:
    remaining: int


def test_stopper_fires_only_when_the_next_iteration_might_not_be_paid():
    meter = Remaining(14)
    stopper = BudgetAwareStopper(meter, 14)
    assert stopper(None) is False and not stopper.stopped and stopper.reason == ""
    meter.remaining = 13
    assert stopper(None) is True and stopper.stopped
    assert stopper.reason == "budget: next iteration could cost 14 calls, 13 left"
    with pytest.raises(ValueError, match="iteration_cost"):
        BudgetAwareStopper(meter, 0)


def test_a_short_trainset_is_padded_so_an_iteration_costs_what_the_cost_function_says():
    evaluator = KeywordEvaluator()
    problem = keyword_problem(evaluator, n_train=2, n_val=2)
    budget = 2 + gepa_iteration_cost(2, 3, 2, False)  # 10, where min(minibatch, trainset) would say 8
    result = run_baseline("gepa", problem, replies(fenced, [BETTER]), budget=budget, seed=0)
    assert (evaluator.calls, result.details["unused_calls"]) == (budget, 0)
    assert result.final_params == {"instructions": BETTER} and result.stop_reason.startswith(STOPPER)


# -- the lost candidate -----------------------------------------------------------------------------

def test_a_child_that_passed_the_gate_is_not_lost_for_want_of_its_validation_pass():
    # First iteration: 8 (seed on valset) + 3 + 3 + 8 (the accepted child's validation) = 22. At 21 GEPA used
    # to spend 14 and a reflection call, have the child's validation refused and return the seed.
    evaluator, llm = KeywordEvaluator(), replies(fenced, [BETTER])
    with pytest.raises(ValueError, match="too small for GEPA.*one iteration up to 14 more"):
        run_baseline("gepa", keyword_problem(evaluator, n_val=8), llm, budget=21, seed=0)
    assert evaluator.calls == 0 and llm.calls == []
    result = run_baseline("gepa", keyword_problem(evaluator, n_val=8), llm, budget=22, seed=0)
    assert result.final_params == {"instructions": BETTER} and result.metric_calls == 22

    # The same at the second iteration: the first proposal is rejected (8 + 6 = 14 spent), the second
    # would be accepted and needs 14 more. At 27 GEPA used to spend 20, be refused and return the seed.
    evaluator, llm = KeywordEvaluator(), replies(fenced, ["Answer the question, please.", BETTER])
    result = run_baseline("gepa", keyword_problem(evaluator, n_val=8), llm, budget=27, seed=0)
    assert result.stop_reason == "budget: next iteration could cost 14 calls, 13 left"  # not the meter's refusal
    assert (result.metric_calls, evaluator.calls, result.details["unused_calls"]) == (14, 14, 13)
    assert result.details["proposals"] == len(llm.calls) == 1  # no reflection call spent on a lost iteration
    assert result.final_params == {"instructions": "Answer the question."}
    evaluator, llm = KeywordEvaluator(), replies(fenced, ["Answer the question, please.", BETTER])
    result = run_baseline("gepa", keyword_problem(evaluator, n_val=8), llm, budget=28, seed=0)
    assert result.final_params == {"instructions": BETTER}
    assert (result.metric_calls, result.details["unused_calls"], result.details["proposals"]) == (28, 0, 2)


@dataclass
class WordsEvaluator:
    """Score = fraction of WORDS in the instructions (the same on every example); logs (text, example id)."""

    log: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, params, example, seed):
        self.log.append((params["instructions"], example.id))
        return Evaluation(score(params["instructions"]), "Use the words.", example.data)


def score(text: str) -> float:
    return sum(w in text for w in WORDS) / len(WORDS)


@pytest.mark.parametrize("budget", range(22, 66, 3))
def test_every_candidate_gepa_accepts_is_validated_and_can_be_returned(budget, monkeypatch):
    # Rejected, accepted, accepted, rejected, accepted: iterations of 6 or 14 calls, so the budgets cut
    # the run at every phase of an iteration.
    from gepa.strategies.acceptance import StrictImprovementAcceptance

    judged: list[tuple[str, bool]] = []
    gate = StrictImprovementAcceptance.should_accept

    def recording_gate(self, proposal, state):
        verdict = gate(self, proposal, state)
        judged.append((proposal.candidate["instructions"], verdict))
        return verdict

    monkeypatch.setattr(StrictImprovementAcceptance, "should_accept", recording_gate)
    evaluator = WordsEvaluator()
    problem = keyword_problem(evaluator, n_train=8, n_val=8)
    llm = replies(fenced, ["Answer, please.", "ALPHA", "ALPHA BETA", "BETA", "ALPHA BETA GAMMA"])
    result = run_baseline("gepa", problem, llm, budget=budget, seed=0)

    val_ids = {ex.id for ex in problem.validation_examples}
    validated = {text for text, _ in evaluator.log
                 if val_ids <= {i for t, i in evaluator.log if t == text}}
    accepted = [text for text, ok in judged if ok]
    assert set(accepted) <= validated  # the bug: an accepted child whose validation the meter refused
    assert result.details["accepted"] == len(accepted) and result.details["candidates"] == 1 + len(accepted)
    assert score(result.final_params["instructions"]) == max(score(t) for t in validated)
    assert result.details["proposals"] == len(llm.calls) == len(judged)  # every written text reached the gate
    assert result.stop_reason.startswith(STOPPER)
    assert result.metric_calls == len(evaluator.log) == budget - result.details["unused_calls"]
    assert 0 <= result.details["unused_calls"] < gepa_iteration_cost(8, 3, 8, False)


def test_the_budget_check_counts_a_merge_iteration_when_merging():
    # Minibatch 1, 2 validation examples: a reflective iteration costs 1 + 1 + 2, a merge one 5 + 2.
    settings = GepaSettings(reflection_minibatch_size=1, use_merge=True)
    problem = keyword_problem(KeywordEvaluator(), n_val=2)
    with pytest.raises(ValueError, match="one iteration up to 7 more"):
        run_gepa(problem, replies(fenced, [BETTER]), budget=8, seed=0, settings=settings)
    result = run_gepa(problem, replies(fenced, [BETTER]), budget=9, seed=0, settings=settings)
    assert result.final_params == {"instructions": BETTER} and result.stop_reason.startswith(STOPPER)
