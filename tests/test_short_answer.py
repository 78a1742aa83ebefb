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


# --- the benchmark shape: presets.setup, experiment.run, the data command (issue 13) ---------------
@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_setup_builds_each_preset_without_calling_the_model(name):
    from polca_nb.benchmarks.common import BenchmarkSetup
    from polca_nb.benchmarks.short_answer import PRESETS, SEED_PARAMS, make_config
    from polca_nb.benchmarks.short_answer.presets import setup

    preset = PRESETS[name]
    llm = ScriptedLLM(replies=[])  # any call would raise
    built = setup(name, llm)
    assert isinstance(built, BenchmarkSetup) and llm.calls == []
    assert built.config == make_config(preset) and built.config.budget.max_metric_calls == preset.max_metric_calls
    assert built.problem == short_answer_problem(llm, n_train=preset.n_train, n_test=preset.n_test,
                                                 seed=preset.data_seed)
    assert built.problem.seed_params == SEED_PARAMS
    assert built.proposer.max_tokens == preset.proposer_max_tokens and built.proposer.objective == built.problem.objective
    assert built.summarizer is not None and built.summarizer.max_tokens == 2 * preset.proposer_max_tokens
    assert setup(preset, llm, use_summarizer=False).summarizer is None and llm.calls == []
    with pytest.raises(ValueError, match="unknown short-answer preset"):
        setup("big", llm)


def test_experiment_run_runs_every_seed(tmp_path):
    from polca_nb.benchmarks.short_answer import ShortAnswerPreset, run

    answers = dict(QUESTIONS)

    def reply(request):
        if request["role"] == "task":
            question = request["messages"][0]["content"]
            return answers[question] if "only" in request["system"] else f"I think it is {answers[question]}."
        if request["role"] == "proposer":
            return '<param name="instructions">Reply with only the answer.</param>'
        return "<summary>Answer with the bare word.</summary>"

    preset = ShortAnswerPreset("tiny", n_train=4, n_test=2, max_metric_calls=12, seeds=(0, 1), num_candidates=2,
                               batch_size=1, eps=0.0)
    result = run(preset, ScriptedLLM(replies=reply), run_root=tmp_path, embedder=None)
    assert tuple(result.seeds) == (0, 1) and len(result.runs) == 2 and len(list(tmp_path.iterdir())) == 2
    assert all(s["best_instructions"] == "Reply with only the answer." and s["test_score"] == 1.0
               for s in result.per_seed)


def test_data_command_writes_the_built_in_questions(tmp_path, capsys):
    import numpy as np

    from polca_nb.benchmarks.short_answer import DATA_FILE, load_examples, main

    assert main(["download", "--dest", str(tmp_path)]) == 0
    assert "nothing to download" in capsys.readouterr().out
    written = tmp_path / DATA_FILE
    assert load_examples(written) == load_examples()
    shuffled = [e.id for e in load_examples(written, np.random.default_rng(3))]
    assert shuffled == [e.id for e in load_examples(rng=np.random.default_rng(3))] != sorted(shuffled)
