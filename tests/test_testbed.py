"""The strategy testbed: exact true scores, the simulated optimizer on every method's real prompt, the bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polca_nb.roles import LLMProposer, LLMSummarizer
from polca_nb.roles.summarizer import SummaryEvidence
from polca_nb.testbed import (
    NOISE_LEVELS,
    OptimizerModel,
    SimulatedOptimizerLLM,
    TestbedEmbedder,
    grid_cells,
    prompt_kind,
    read_proposal_request,
    read_summary_request,
    run_cell,
    run_testbed,
    skills_in,
    summarize_cell,
    testbed_problem,
)
from polca_nb.testbed.problem import NoiseSpec, TestbedEvaluator, add_skill
from polca_nb.types import Candidate, Example, Rollout

ROOT = Path(__file__).resolve().parent.parent
PERFECT = OptimizerModel(delta0=1.0, regression_rate=0.0, duplicate_rate=0.0, summary_use=0.0, overfit=0.0)


def _needs(*skills: str) -> Example:
    return Example("x", {"task": "Task x", "needs": list(skills)})


def _batch() -> list[tuple[Example, Rollout]]:
    return [(Example("train1", {"task": "Task train1", "needs": ["cite", "units"]}),
             Rollout("train1", 0.0, "Incorrect. The answer needed the skill 'units'.", 1, "explore", "Answered.")),
            (Example("train2", {"task": "Task train2", "needs": ["cite"]}),
             Rollout("train2", 1.0, "Correct.", 1, "explore", "Answered."))]


# -- the problem: exact true reward ---------------------------------------------------------------------

def test_true_reward_is_the_stated_formula():
    ev = TestbedEvaluator()
    r = ev.reward
    assert ev.probability(frozenset(), ["cite"]) == pytest.approx(r.floor)
    half = r.floor + (r.top - r.floor) * 0.5 ** r.credit_exponent
    assert ev.probability(frozenset({"cite"}), ["cite", "units"]) == pytest.approx(half)
    assert half > (r.floor + r.top) / 2  # diminishing returns: the first covered skill helps most
    # a conflicting pair costs every example, even one needing both
    both = ev.probability(frozenset({"concise", "steps"}), ["concise", "steps"])
    assert both == pytest.approx(r.top - r.conflict_penalty)
    # beyond free_skills, each extra skill costs length_penalty
    many = frozenset({"cite", "verify", "units", "define", "check", "examples"})
    assert ev.probability(many, ["cite"]) == pytest.approx(r.top - 2 * r.length_penalty)


def test_true_score_is_exact_and_ignores_wording():
    tb = testbed_problem()
    params = {"instructions": "Answer the question. Always cite. Always units."}
    expected = np.mean([tb.evaluator.probability(frozenset({"cite", "units"}), ex.data["needs"])
                        for ex in tb.problem.testset])
    assert tb.true_score(params) == pytest.approx(expected)
    assert tb.true_score({"instructions": params["instructions"] + " Please. Thanks."}) == tb.true_score(params)


def test_optimum_beats_every_single_skill_program_and_is_reached_by_its_set():
    tb = testbed_problem()
    best, skills = tb.optimum
    text = "Answer the question."
    for s in sorted(skills):
        text = add_skill(text, s)
    assert tb.true_score({"instructions": text}) == pytest.approx(best)
    for s in tb.evaluator.skills:
        assert tb.true_score({"instructions": add_skill("Answer.", s)}) < best


def test_binary_scores_average_to_the_true_probability_and_the_judge_flips():
    ex = _needs("cite", "units")
    params = {"instructions": "Always cite."}
    p = TestbedEvaluator().probability(frozenset({"cite"}), ["cite", "units"])
    scores = [TestbedEvaluator()(params, ex, seed).score for seed in range(4000)]
    assert set(scores) == {0.0, 1.0}
    assert np.mean(scores) == pytest.approx(p, abs=0.03)
    flipped = TestbedEvaluator(noise=NoiseSpec("binary", judge_flip=1.0))
    assert [flipped(params, ex, s).score for s in range(50)] == [1.0 - x for x in scores[:50]]


def test_continuous_noise_and_misleading_feedback():
    ex = _needs("cite")
    params = {"instructions": "Answer."}
    exact = TestbedEvaluator(noise=NoiseSpec("continuous", sigma=0.0))
    assert [exact(params, ex, s).score for s in range(20)] == [pytest.approx(0.1)] * 20
    assert exact(params, ex, 0).feedback == "Incorrect. The answer needed the skill 'cite'."
    noisy = TestbedEvaluator(noise=NoiseSpec("continuous", sigma=0.2))
    assert np.std([noisy(params, ex, s).score for s in range(500)]) > 0.1
    liar = TestbedEvaluator(noise=NoiseSpec("binary", misleading_rate=1.0))
    named = {liar(params, ex, s).feedback for s in range(200) if liar(params, ex, s).score == 0.0}
    assert named and all("skill '" in f and "'cite'" not in f for f in named)


def test_bad_knobs_are_refused_by_name():
    with pytest.raises(ValueError, match="judge_flip"):
        NoiseSpec(judge_flip=1.5)
    with pytest.raises(ValueError, match="delta0"):
        OptimizerModel(delta0=-0.1)
    with pytest.raises(ValueError, match="unknown noise level"):
        grid_cells(["loud"])


# -- the simulated optimizer on each method's real prompt -----------------------------------------------

def test_simulator_is_deterministic_per_sample_id():
    llm = SimulatedOptimizerLLM(OptimizerModel(delta0=0.5, duplicate_rate=0.3))
    proposer = LLMProposer(llm, max_tokens=256, temperature=1.0)
    candidate = Candidate(0, {"instructions": "Answer the question."})
    replies = [proposer.propose(candidate, _batch(), "", seed) for seed in range(12)]
    assert replies == [proposer.propose(candidate, _batch(), "", seed) for seed in range(12)]
    assert len({r[0]["instructions"] for r in replies}) > 1  # different sample_ids, different draws


def test_polca_proposer_prompt_is_read_and_answered_in_its_format():
    llm = SimulatedOptimizerLLM(PERFECT)
    proposer = LLMProposer(llm, max_tokens=256, temperature=1.0)
    candidate = Candidate(0, {"instructions": "Answer the question. Always cite."})
    context = "Recommendations: - Always include 'verify'."
    request = read_proposal_request(proposer.system_prompt + "\n" + proposer.build_prompt(candidate, _batch(), context))
    assert request.kind == "polca_proposer"
    assert request.program == "Answer the question. Always cite."
    assert request.feedback == ("Incorrect. The answer needed the skill 'units'.",)
    assert request.shown_needs == (frozenset({"cite", "units"}), frozenset({"cite"}))
    assert "Always include 'verify'" in request.context
    (params,) = proposer.propose(candidate, _batch(), "", seed=3)
    assert skills_in(params["instructions"]) == {"cite", "units"}  # acted on the one failure's feedback


def test_summary_recommendations_are_used_with_summary_use():
    follower = SimulatedOptimizerLLM(OptimizerModel(delta0=0.0, regression_rate=0.0, duplicate_rate=0.0,
                                                    summary_use=1.0))
    proposer = LLMProposer(follower, max_tokens=256, temperature=1.0)
    candidate = Candidate(0, {"instructions": "Answer the question."})
    (params,) = proposer.propose(candidate, _batch(), "- Always include 'verify'.", seed=0)
    assert skills_in(params["instructions"]) == {"verify"}


def test_polca_summarizer_prompt_is_read_and_its_summary_parsed_by_the_summarizer():
    llm = SimulatedOptimizerLLM(PERFECT)
    summarizer = LLMSummarizer(llm)
    rollouts = tuple(Rollout(f"e{i}", 0.0, f"Incorrect. The answer needed the skill '{s}'.", 1, "explore")
                     for i, s in enumerate(["units", "units", "cite"])) + (Rollout("e9", 1.0, "Correct.", 1, "explore"),)
    candidate = Candidate(1, {"instructions": "Answer the question. Always verify."}, rollouts=rollouts)
    prompt = summarizer.build_prompt([SummaryEvidence(candidate, rollouts[3], rollouts[0])], "", {})
    assert prompt_kind(prompt) == "polca_summarizer"
    request = read_summary_request(prompt)
    assert request.feedback == ("Incorrect. The answer needed the skill 'units'.",)
    assert request.programs == ("Answer the question. Always verify.",)
    context = summarizer.summarize([candidate], "", {}, seed=0)
    assert context.startswith(summarizer.prefix) and "Always include '" in context
    follower = LLMProposer(SimulatedOptimizerLLM(OptimizerModel(delta0=0.0, regression_rate=0.0, duplicate_rate=0.0,
                                                                summary_use=1.0)), max_tokens=256, temperature=1.0)
    (params,) = follower.propose(Candidate(0, {"instructions": "Answer."}), _batch(), context, seed=0)
    assert len(skills_in(params["instructions"])) == 1


def test_gepa_reflection_prompt_is_read_and_its_reply_extracted_by_gepa():
    from gepa.strategies.instruction_proposal import InstructionProposalSignature

    from polca_nb.baselines.accounting import MeteredEvaluator
    from polca_nb.baselines.gepa_adapter import ProblemAdapter

    tb = testbed_problem()
    adapter = ProblemAdapter(MeteredEvaluator(tb.evaluator, 100))
    seed_params = {"instructions": "Answer the question."}
    batch = [ex for ex in tb.problem.trainset if len(ex.data["needs"]) == 1][:3]
    evaluation = adapter.evaluate(batch, seed_params, capture_traces=True)
    records = adapter.make_reflective_dataset(seed_params, evaluation, ["instructions"])["instructions"]
    prompt = InstructionProposalSignature.prompt_renderer(
        {"current_instruction_doc": seed_params["instructions"], "dataset_with_feedback": records})
    assert isinstance(prompt, str)
    request = read_proposal_request(prompt)
    assert request.kind == "gepa_reflection" and request.program == "Answer the question."
    assert request.shown_needs == tuple(frozenset(ex.data["needs"]) for ex in batch)
    assert len(request.feedback) == sum(1 for s in evaluation.scores if s < 1.0)
    reply = SimulatedOptimizerLLM(PERFECT).complete(system="", messages=[{"role": "user", "content": prompt}],
                                                     role="proposer")
    new = InstructionProposalSignature.output_extractor(reply.text)["new_instruction"]
    needed = {s for ex in batch for s in ex.data["needs"]}
    assert new.startswith("Answer the question.") and len(skills_in(new) & needed) == 1


def test_openevolve_prompt_is_read_and_its_reply_parsed_by_openevolve():
    from openevolve.config import PromptConfig
    from openevolve.prompt.sampler import PromptSampler
    from openevolve.utils.code_utils import parse_full_rewrite

    feedback = ("2 of 10 examples below the top score.\nInput: {\"task\": \"Task val1\", \"needs\": [\"define\"]}\n"
                "Output: Answered.\nScore: 0\nFeedback: Incorrect. The answer needed the skill 'define'.")
    sampler = PromptSampler(PromptConfig())
    prompt = sampler.build_prompt(current_program="Answer the question. Always cite.", program_metrics={"combined_score": 0.4},
                                  language="text", diff_based_evolution=False, program_artifacts={"feedback": feedback},
                                  top_programs=[{"id": "a", "code": "Answer. Always tone.", "metrics": {"combined_score": 0.3}}])
    request = read_proposal_request(prompt["system"] + "\n" + prompt["user"])
    assert request.kind == "openevolve"
    assert request.program == "Answer the question. Always cite."
    assert request.feedback == ("Incorrect. The answer needed the skill 'define'.",)
    assert request.shown_needs == (frozenset({"define"}),)
    reply = SimulatedOptimizerLLM(PERFECT).complete(system=prompt["system"],
                                                     messages=[{"role": "user", "content": prompt["user"]}], role="proposer")
    assert skills_in(parse_full_rewrite(reply.text, "text") or "") == {"cite", "define"}


def test_unknown_prompts_are_refused():
    with pytest.raises(ValueError, match="not a prompt the simulated optimizer knows"):
        SimulatedOptimizerLLM().complete(system="", messages=[{"role": "user", "content": "Hello"}], role="proposer")


def test_embedder_separates_cosmetic_rewrites_from_skill_edits():
    e = TestbedEmbedder()
    v = e.embed(["Answer. Always cite.", "Answer. Always cite. Please. Thanks.", "Answer. Always cite. Always units."])
    assert np.linalg.norm(v[0] - v[1]) <= 2 * e.wording_scale < 0.5 < 1.0 <= np.linalg.norm(v[0] - v[2])


# -- every method through its own code, scored by the true reward ---------------------------------------

@pytest.mark.parametrize("method", ["polca", "sequential", "gepa", "openevolve"])
def test_every_method_runs_within_budget_on_the_simulator(method):
    tb = testbed_problem(NOISE_LEVELS["binary"])
    llm = SimulatedOptimizerLLM(OptimizerModel(delta0=0.7))
    result = run_testbed(method, tb, llm.model, budget=120, seed=0, llm=llm)
    assert result.metric_calls <= 120
    assert sum(llm.calls.values()) > 0
    assert tb.true_score(result.final_params) >= 0.0


def test_cell_reads_true_scores_and_classifies_the_regime():
    (cell,) = grid_cells(["deterministic"], ["strong"])
    comparison = run_cell(cell, seeds=[0, 1], budget=160, methods=["polca", "best-of-n"], grid_points=4)
    tb = testbed_problem(cell.noise)
    for method, results in comparison.results.items():
        assert comparison.finals[method] == [tb.true_score(r.final_params) for r in results]
        assert all(curve[-1].metric_calls == 160 for curve in comparison.curves[method])
    assert comparison.initial == tb.true_score(tb.problem.seed_params)
    summary = summarize_cell(comparison, cell.label, baselines=["best-of-n"])
    # a strong proposer that keeps building on the best beats resampling from the seed
    assert summary.means["polca"] > summary.means["best-of-n"]
    assert summary.regime == "win"
    assert summary.memory_sizes is not None and summary.memory_sizes["polca"] > 1


def test_bench_end_to_end_at_tiny_scale(tmp_path):
    out = tmp_path / "strategies.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}  # the bench fixes it itself
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "strategies.py"), "--seeds", "2", "--budget", "80",
                           "--noise", "binary", "--quality", "weak", "strong", "--methods", "polca", "sequential",
                           "gepa", "openevolve", "--overhead-seeds", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "simulated optimizer, not an LLM" in printed
    assert "Regime map" in printed and "Cell closest to the paper's tau-bench setting" in printed
    assert "Overhead per metric call" in printed and "openevolve" in printed
    data = json.loads(out.read_text())
    assert [c["cell"] for c in data["cells"]] == ["binary x weak", "binary x strong"]
    for cell in data["cells"]:
        assert cell["regime"] in ("win", "tie", "lose")
        assert set(cell["means"]) == {"polca", "sequential", "gepa", "openevolve"}
        assert all(len(v) == 2 for v in cell["finals"].values())
    assert data["tau_cell"] == "binary x weak"
    assert {r["method"] for r in data["overhead"]} == {"polca", "sequential", "gepa", "openevolve"}


def test_openevolve_repeats_exactly_with_the_same_seed():
    tb = testbed_problem(NOISE_LEVELS["binary"])
    runs = [run_testbed("openevolve", tb, OptimizerModel(delta0=0.5), budget=100, seed=3) for _ in range(2)]
    assert runs[0].trajectory == runs[1].trajectory and runs[0].final_params == runs[1].final_params


def test_seeded_uuids_only_for_openevolve_threads():
    import threading
    import uuid

    from polca_nb.baselines.openevolve_runtime import _SeededUUIDs

    def draws(seed: int) -> list[uuid.UUID]:
        out: list[uuid.UUID] = []
        with _SeededUUIDs(seed):
            worker = threading.Thread(target=lambda: out.extend(uuid.uuid4() for _ in range(3)),
                                      name="openevolve-worker_0")
            worker.start()
            worker.join()
            mine = uuid.uuid4()
        assert mine not in out and uuid.uuid4 is not None
        return out

    assert draws(1) == draws(1) != draws(2)
    assert all(u.version == 4 for u in draws(1))
    assert uuid.uuid4() != uuid.uuid4()  # restored: real random ids again
