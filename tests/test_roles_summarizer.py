"""LLMSummarizer: evidence selection, prompt, and keeping the previous context on bad replies."""

import logging

import numpy as np
import pytest

from polca_nb.llm.base import ScriptedLLM
from polca_nb.protocols import Summarizer
from polca_nb.roles import CONTEXT_PREFIX, LLMSummarizer
from polca_nb.types import Candidate, Example, Rollout

EXAMPLES = {f"e{i}": Example(f"e{i}", f"question number {i}") for i in range(10)}


def rollout(example, score, step=0, output="out"):
    return Rollout(f"e{example}", score, f"feedback {example} {score}", step=step, source="explore", output=output)


def candidate(cid, scores, step=0):
    rollouts = tuple(rollout(i % 10, s, step=step, output=f"output {cid}-{i}") for i, s in enumerate(scores))
    return Candidate(cid, {"prompt": f"prompt of candidate {cid}"}, rollouts=rollouts)


def good_reply(text="Name the entity exactly."):
    return f"<reasoning>because</reasoning>\n<summary>\n{text}\n</summary>"


def test_is_a_summarizer():
    assert isinstance(LLMSummarizer(ScriptedLLM([])), Summarizer)


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_success_and_failure_respect_threshold(threshold):
    cands = [candidate(i, [0.0, 0.3, 0.5, 0.7, 1.0, 0.2]) for i in range(4)]
    summarizer = LLMSummarizer(ScriptedLLM([]), success_threshold=threshold)
    seen_success, seen_failure = set(), set()
    for seed in range(30):
        for item in summarizer.select(cands, seed):
            assert item.success.score > threshold and item.failure.score <= threshold
            seen_success.add(item.success.score)
            seen_failure.add(item.failure.score)
    # Random picks: every eligible score shows up over the seeds, none of the others.
    scores = {0.0, 0.3, 0.5, 0.7, 1.0, 0.2}
    assert seen_success == {s for s in scores if s > threshold}
    assert seen_failure == {s for s in scores if s <= threshold}


def test_missing_success_or_failure_is_said_in_the_prompt():
    summarizer = LLMSummarizer(ScriptedLLM([]))
    evidence = summarizer.select([candidate(1, [1.0, 1.0])], seed=0)
    assert evidence[0].failure is None and evidence[0].success is not None
    prompt = summarizer.build_prompt(evidence, "", EXAMPLES)
    assert "none of its runs scored 0 or below" in prompt
    success = evidence[0].success
    assert EXAMPLES[success.example_id].data in prompt and success.output in prompt


def test_respects_max_candidates_and_skips_unevaluated():
    cands = [candidate(i, [0.0, 1.0]) for i in range(8)] + [Candidate(99, {"prompt": "new"})]
    summarizer = LLMSummarizer(ScriptedLLM([]), max_candidates=3)
    for seed in range(10):
        evidence = summarizer.select(cands, seed)
        assert len(evidence) == 3 and 99 not in {e.candidate.id for e in evidence}
        assert summarizer.build_prompt(evidence, "", EXAMPLES).count("## Candidate ") == 3
    assert len(LLMSummarizer(ScriptedLLM([]), max_candidates=20).select(cands, 0)) == 8


def test_duplicates_by_id_count_once_and_keep_most_rollouts():
    short, full = candidate(5, [0.0]), candidate(5, [0.0, 1.0, 1.0])
    evidence = LLMSummarizer(ScriptedLLM([])).select([short, full, short], seed=0)
    assert len(evidence) == 1 and evidence[0].candidate.n == 3


def test_shows_every_given_candidate_by_default_and_samples_uniformly_above_a_cap():
    # Which candidates a summary sees is the loop's sampler's choice (sampling.py); the role used to
    # prefer the latest step's candidates, which re-showed the just-explored top-K every round.
    old = [candidate(i, [0.0, 1.0], step=3) for i in range(6)]
    fresh = [candidate(10 + i, [0.0, 1.0], step=4) for i in range(2)]
    assert [e.candidate.id for e in LLMSummarizer(ScriptedLLM([])).select(old + fresh, 0)] == [0, 1, 2, 3, 4, 5, 10, 11]
    capped = LLMSummarizer(ScriptedLLM([]), max_candidates=3)
    seen = set()
    for seed in range(20):
        ids = {e.candidate.id for e in capped.select(old + fresh, seed)}
        assert len(ids) == 3
        seen |= ids
    assert seen & set(range(6)) and not {10, 11} <= set.intersection(
        *({e.candidate.id for e in capped.select(old + fresh, s)} for s in range(20)))


def test_selection_deterministic_per_seed_order_free_and_seed_dependent():
    cands = [candidate(i, [0.0, 0.5, 1.0, 0.0]) for i in range(9)]
    summarizer = LLMSummarizer(ScriptedLLM([]), max_candidates=4)
    shuffled = [cands[i] for i in np.random.default_rng(1).permutation(len(cands))]
    prompts = {}
    for seed in range(8):
        first = summarizer.build_prompt(summarizer.select(cands, seed), "", EXAMPLES)
        assert first == summarizer.build_prompt(summarizer.select(shuffled, seed), "", EXAMPLES)
        prompts[seed] = first
    assert len(set(prompts.values())) > 1


def test_summarize_returns_prefix_plus_summary_and_shows_previous():
    llm = ScriptedLLM([good_reply("Always name the entity."), good_reply("Name the entity; cite the passage.")])
    summarizer = LLMSummarizer(llm)
    cands = [candidate(1, [0.0, 1.0])]
    first = summarizer.summarize(cands, "", EXAMPLES, seed=3)
    assert first == CONTEXT_PREFIX + "Always name the entity."
    assert "nothing yet" in llm.calls[0]["messages"][0]["content"]
    second = summarizer.summarize(cands, first, EXAMPLES, seed=4)
    assert second == CONTEXT_PREFIX + "Name the entity; cite the passage."
    shown = llm.calls[1]["messages"][0]["content"]
    assert "# Summary written so far\nAlways name the entity." in shown and CONTEXT_PREFIX.strip() not in shown
    assert [c["sample_id"] for c in llm.calls] == [3, 4] and {c["role"] for c in llm.calls} == {"summarizer"}


@pytest.mark.parametrize("reply", [
    "no tags at all", "<summary></summary>", "<summary>...</summary>", "<summary>unclosed",
    "<reasoning>only reasoning</reasoning>",
])
def test_bad_reply_keeps_previous(reply, caplog):
    summarizer = LLMSummarizer(ScriptedLLM([reply]))
    with caplog.at_level(logging.WARNING, logger="polca_nb.roles.summarizer"):
        assert summarizer.summarize([candidate(1, [0.0, 1.0])], "OLD CONTEXT", EXAMPLES, seed=0) == "OLD CONTEXT"
    assert "keeping the previous context" in caplog.text


def test_echo_and_llm_errors_keep_previous():
    echo = LLMSummarizer(ScriptedLLM(lambda req: "<summary>" + req["messages"][0]["content"] + "</summary>"))
    assert echo.summarize([candidate(1, [0.0, 1.0])], "OLD", EXAMPLES, seed=0) == "OLD"

    def broken(request):
        raise TimeoutError("slow server")

    assert LLMSummarizer(ScriptedLLM(broken)).summarize([candidate(1, [1.0])], "OLD", EXAMPLES, 0) == "OLD"


def test_nothing_evaluated_keeps_previous_without_calling():
    llm = ScriptedLLM([good_reply()])
    assert LLMSummarizer(llm).summarize([Candidate(1, {"p": "x"})], "prev", EXAMPLES, seed=0) == "prev"
    assert llm.calls == []


def test_missing_example_and_truncation():
    long_examples = {"e0": Example("e0", "A" * 3000)}
    summarizer = LLMSummarizer(ScriptedLLM([]), input_chars=100)
    cand = Candidate(1, {"p": "x"}, rollouts=(rollout(0, 1.0), rollout(1, 0.0)))
    prompt = summarizer.build_prompt(summarizer.select([cand], 0), "", long_examples)
    assert "A" * 3000 not in prompt and "A" * 50 in prompt
    assert "input of example 'e1' not available" in prompt


def test_bad_settings_raise_value_error_naming_the_field():
    with pytest.raises(ValueError, match="max_candidates"):
        LLMSummarizer(ScriptedLLM([]), max_candidates=0)
    with pytest.raises(ValueError, match="success_threshold"):
        LLMSummarizer(ScriptedLLM([]), success_threshold=float("nan"))
