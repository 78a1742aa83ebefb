"""LLMProposer: prompt contents, LLM call arguments, and reply handling (ScriptedLLM, no server)."""

import logging

import pytest

from polca_nb.llm.base import ScriptedLLM
from polca_nb.protocols import Proposer
from polca_nb.roles import LLMProposer
from polca_nb.types import Candidate, Example, Rollout

PARAMS = {"instructions": "Answer the question.", "style": "Be concise."}


def make_batch():
    return [
        (Example("q1", {"question": "Capital of France?"}),
         Rollout("q1", 1.0, "correct", step=2, source="explore", output="Paris")),
        (Example("q2", "Who wrote Hamlet?"),
         Rollout("q2", 0.0, "expected 'Shakespeare', got a refusal", step=2, source="explore", output="I can't say")),
    ]


def make_proposer(replies, **kwargs):
    llm = ScriptedLLM(replies)
    return LLMProposer(llm, max_tokens=300, temperature=0.8, **kwargs), llm


def test_is_a_proposer():
    proposer, _ = make_proposer([])
    assert isinstance(proposer, Proposer)


def test_prompt_shows_objective_params_and_minibatch():
    proposer, _ = make_proposer([], objective="Answer trivia questions exactly.")
    prompt = proposer.build_prompt(Candidate(1, PARAMS), make_batch(), context="")
    assert "Answer trivia questions exactly." in prompt
    for name, value in PARAMS.items():
        assert f'<param name="{name}">\n{value}\n</param>' in prompt
    for text in ("Capital of France?", "Paris", "correct", "Who wrote Hamlet?", "I can't say",
                 "expected 'Shakespeare', got a refusal", "score 1", "score 0"):
        assert text in prompt
    assert "# Context" not in prompt


def test_context_section_only_when_non_empty():
    proposer, _ = make_proposer([])
    candidate = Candidate(1, PARAMS)
    assert "# Context" not in proposer.build_prompt(candidate, make_batch(), context="  \n")
    with_context = proposer.build_prompt(candidate, make_batch(), context="Recommendations: name the author.")
    assert "# Context\nRecommendations: name the author." in with_context


def test_inputs_and_outputs_truncated_to_limits():
    long_input = "H" * 50 + "x" * 5000 + "T" * 50
    long_output = "o" * 5000
    batch = [(Example("e", long_input), Rollout("e", 0.0, "f", step=0, source="explore", output=long_output))]
    proposer, _ = make_proposer([], input_chars=200, output_chars=300)
    prompt = proposer.build_prompt(Candidate(1, PARAMS), batch, context="")
    assert long_input not in prompt and "H" * 50 in prompt and "T" * 50 in prompt
    assert "o" * 301 not in prompt and "o" * 150 in prompt
    assert "characters omitted" in prompt


def test_propose_merges_changes_and_passes_call_arguments():
    reply = 'The refusal is the problem.\n<param name="instructions">Always answer; never refuse.</param>'
    proposer, llm = make_proposer([reply])
    proposals = proposer.propose(Candidate(7, PARAMS), make_batch(), context="c", seed=41)
    assert proposals == [{"instructions": "Always answer; never refuse.", "style": "Be concise."}]
    (call,) = llm.calls
    assert call["role"] == "proposer" and call["sample_id"] == 41
    assert call["max_tokens"] == 300 and call["temperature"] == 0.8
    assert call["system"] == proposer.system_prompt and call["system"].strip()
    assert call["messages"][0]["content"] == proposer.build_prompt(Candidate(7, PARAMS), make_batch(), "c")


def test_junk_reply_returns_empty_and_logs(caplog):
    proposer, _ = make_proposer(["lorem ipsum <<<< {{ ``` "])
    with caplog.at_level(logging.WARNING, logger="polca_nb.roles.proposer"):
        assert proposer.propose(Candidate(1, PARAMS), make_batch(), "", seed=0) == []
    assert "no usable proposal" in caplog.text


def test_echo_of_the_prompt_is_not_a_proposal():
    def echo(request):
        return request["messages"][0]["content"]

    proposer, _ = make_proposer(echo)
    assert proposer.propose(Candidate(1, PARAMS), make_batch(), "some context", seed=0) == []

    # A tiny model continuing the prompt inside a tag: the value carries our headings.
    def echo_in_tag(request):
        return '<param name="style">' + request["messages"][0]["content"][:400] + "</param>"

    proposer, _ = make_proposer(echo_in_tag)
    assert proposer.propose(Candidate(1, PARAMS), make_batch(), "", seed=0) == []

    # Copying the format instruction literally is no proposal either.
    proposer, _ = make_proposer(['<param name="style">\nCOMPLETE NEW VALUE OF THE PARAMETER\n</param>'])
    assert proposer.propose(Candidate(1, PARAMS), make_batch(), "", seed=0) == []


def test_single_parameter_fenced_reply():
    proposer, _ = make_proposer(["Here you go:\n```\nAnswer with the exact entity name.\n```"])
    candidate = Candidate(1, {"prompt": "Answer."})
    assert proposer.propose(candidate, make_batch(), "", seed=0) == [{"prompt": "Answer with the exact entity name."}]


@pytest.mark.parametrize("kwargs, field", [
    ({"max_tokens": 0, "temperature": 0.0}, "max_tokens"),
    ({"max_tokens": 10, "temperature": -1.0}, "temperature"),
    ({"max_tokens": 10, "temperature": 0.0, "input_chars": 0}, "input_chars"),
])
def test_bad_settings_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LLMProposer(ScriptedLLM([]), **kwargs)


def test_llm_errors_propagate_to_the_loop():
    def broken(request):
        raise ConnectionError("server down")

    proposer, _ = make_proposer(broken)
    with pytest.raises(ConnectionError):
        proposer.propose(Candidate(1, PARAMS), make_batch(), "", seed=0)


def test_a_reply_restating_the_parameter_is_an_identical_proposal_unless_asked_otherwise():
    from polca_nb.llm.base import ScriptedLLM as _Scripted
    from polca_nb.roles import LLMProposer as _Proposer
    from polca_nb.types import Candidate as _Candidate

    parent = _Candidate(0, {"instructions": "Answer the question."})
    reply = '<param name="instructions">\nAnswer the question.\n</param>'
    paper = _Proposer(_Scripted([reply]), max_tokens=64, temperature=0.0)
    assert paper.propose(parent, [], "", 0) == [{"instructions": "Answer the question."}]
    dedup = _Proposer(_Scripted([reply]), max_tokens=64, temperature=0.0, keep_unchanged=False)
    assert dedup.propose(parent, [], "", 0) == []
