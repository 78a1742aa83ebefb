"""The offline reference task: scoring rule, evaluator wiring, splits."""

import pytest

from polca_nb.benchmarks.short_answer import (
    QUESTIONS,
    ShortAnswerEvaluator,
    normalise,
    score_reply,
    short_answer_problem,
)
from polca_nb.llm.base import ScriptedLLM
from polca_nb.types import Example


@pytest.mark.parametrize("reply,expected", [
    ("Paris", 1.0), (" paris. ", 1.0), ('"Paris!"', 1.0), ("**Paris**", 1.0),
    ("The capital of France is Paris.", 0.5), ("PARIS is the capital", 0.5),
    ("Parisian food", 0.0), ("Lyon", 0.0), ("", 0.0),
])
def test_score_rule(reply, expected):
    assert score_reply(reply, "Paris")[0] == expected


def test_feedback_names_the_answer_and_the_reply():
    score, feedback = score_reply("The capital is Rome.", "Rome")
    assert score == 0.5 and "'Rome'" in feedback and "exactly the answer" in feedback
    score, feedback = score_reply("Milan", "Rome")
    assert score == 0.0 and "Expected: 'Rome'" in feedback and "Got: 'Milan'" in feedback
    assert normalise("  Four.  ") == "four"


def test_evaluator_uses_instructions_as_system_and_seed_as_sample_id():
    llm = ScriptedLLM(lambda req: "4" if "only the answer" in req["system"] else "The answer is 4.")
    ev = ShortAnswerEvaluator(llm)
    ex = Example("q", {"question": "What is 2 + 2?", "answer": "4"})
    assert ev({"instructions": "Reply with only the answer."}, ex, 11).score == 1.0
    assert ev({"instructions": "Answer."}, ex, 12).score == 0.5
    assert [c["sample_id"] for c in llm.calls] == [11, 12] and llm.calls[0]["role"] == "task"


def test_splits_are_disjoint_and_seeded():
    llm = ScriptedLLM(["x"])
    a, b = short_answer_problem(llm, seed=1), short_answer_problem(llm, seed=1)
    assert [e.id for e in a.trainset] == [e.id for e in b.trainset]
    assert not {e.id for e in a.trainset} & {e.id for e in a.testset}
    assert len(a.trainset) + len(a.testset) <= len(QUESTIONS)
    with pytest.raises(ValueError, match="n_train"):
        short_answer_problem(llm, n_train=30, n_test=30)
