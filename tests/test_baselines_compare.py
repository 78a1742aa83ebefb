"""The comparison harness (bench/compare.py, notebook 20): curves on a grid, the summary table, the
ablation reference data and the eps sweep, all offline with ScriptedLLM."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from polca_nb.baselines import MethodResult, ProgramPoint
from polca_nb.baselines.ablation import (
    ABLATION_METHODS,
    EpsSweep,
    load_reference,
    run_eps_sweep,
)
from polca_nb.baselines.compare import compare_methods, default_grid, program_at
from polca_nb.baselines.estimates import BudgetWarning
from polca_nb.llm.base import ScriptedLLM
from polca_nb.curves import Comparison, CurvePoint, calls_to_reach, mean_best_so_far, running_best
from polca_nb.methods import METHODS
from polca_nb.runner import Problem
from polca_nb.tables import format_table, summary_rows
from polca_nb.types import Evaluation, Example

KEY = "ONE-WORD"


def keyword_evaluator(params, example, seed):
    ok = KEY in params["instructions"]
    return Evaluation(float(ok), "Correct." if ok else f"Say only '{example.data}'.", example.data)


def problem() -> Problem:
    return Problem("keyword", {"instructions": "Answer."}, [Example(f"t{i}", f"a{i}") for i in range(6)],
                   keyword_evaluator, testset=[Example(f"x{i}", f"a{i}") for i in range(3)])


def curve(scores, grid):
    return [CurvePoint(i, c, s) for i, (c, s) in enumerate(zip(grid, scores))]


def comparison(per_method: dict[str, list[list[float]]], grid=(10, 20, 30, 40), initial=0.1) -> Comparison:
    """A hand-made Comparison: per method, per seed, the test score at each grid point (final = last)."""
    return Comparison(
        budget=grid[-1], seeds=(0, 1), grid=tuple(grid), initial=initial,
        results={m: [] for m in per_method},
        curves={m: [curve(s, grid) for s in seeds] for m, seeds in per_method.items()},
        finals={m: [s[-1] for s in seeds] for m, seeds in per_method.items()},
        seconds={m: [1.0] * len(seeds) for m, seeds in per_method.items()},
    )


def test_program_at_returns_the_last_program_within_the_calls():
    a, b, seed = {"p": "a"}, {"p": "b"}, {"p": "seed"}
    result = MethodResult("m", 0, b, (ProgramPoint(0, 5, a), ProgramPoint(1, 12, b)), 12, 20, "x")
    assert [program_at(result, c, seed) for c in (0, 4, 5, 11, 12, 20)] == [seed, seed, a, a, b, b]


def test_default_grid_is_even_and_ends_at_the_budget():
    assert default_grid(40, 4) == (10, 20, 30, 40)
    assert default_grid(5, 10) == (0, 1, 2, 3, 4, 5)  # rounding merges duplicates
    with pytest.raises(ValueError, match="grid points"):
        default_grid(40, 0)


def test_summary_rows_target_the_best_baseline_and_read_calls_off_the_mean_best_so_far_curve():
    c = comparison({
        "polca": [[0.2, 0.6, 0.6, 0.8], [0.4, 0.4, 0.8, 0.6]],   # best-so-far mean: .3 .5 .7 .8
        "gepa": [[0.1, 0.3, 0.5, 0.5], [0.1, 0.1, 0.3, 0.5]],    # finals .5 .5 -> mean .5
        "sequential": [[0.3, 0.2, 0.2, 0.2], [0.1, 0.1, 0.1, 0.2]],  # finals mean .2
    })
    rows = {r["method"]: r for r in summary_rows(c, best_so_far=True)}
    assert rows["polca"]["target"] == pytest.approx(0.5) and rows["polca"]["best_baseline"] == "gepa"
    assert rows["polca"]["calls_to_target"] == 20
    assert rows["gepa"]["calls_to_target"] == 40        # gepa best-so-far mean: .1 .2 .4 .5
    assert rows["sequential"]["calls_to_target"] is None  # best-so-far mean never above .25
    assert rows["gepa"]["final_ratio"] == pytest.approx(0.7 / 0.5)
    assert rows["gepa"]["calls_ratio"] == pytest.approx(20 / 40)
    assert rows["polca"]["final_ratio"] is None
    assert rows["polca"]["se"] == pytest.approx(np.std([0.8, 0.6]) / np.sqrt(2))
    text = format_table(list(rows.values()))
    assert "never" in text and "gepa" in text and "0.700 +- 0.071" in text


def method_result(method: str, calls: int, **details) -> MethodResult:
    return MethodResult(method, 0, {"p": "x"}, (ProgramPoint(0, calls, {"p": "x"}),), calls, 40, "x", details)


def test_the_table_shows_mean_proposals_and_unused_calls_and_a_dash_where_a_run_lacks_them():
    c = comparison({"polca": [[0.2, 0.4, 0.6, 0.8]] * 2, "gepa": [[0.1, 0.2, 0.3, 0.5]] * 2,
                    "old": [[0.1, 0.1, 0.1, 0.1]] * 2})
    c.results["polca"].extend([method_result("polca", 38, proposals=12, unused_calls=2),
                               method_result("polca", 40, proposals=15, unused_calls=0)])
    c.results["gepa"].extend([method_result("gepa", 30, proposals=3, unused_calls=10, llm_calls={"proposer": 3}),
                              method_result("gepa", 34, proposals=4, unused_calls=6, llm_calls={"proposer": 4})])
    c.results["old"].extend([method_result("old", 40, proposals=7), method_result("old", 40)])  # older results
    rows = {r["method"]: r for r in summary_rows(c)}
    assert rows["polca"]["mean_proposals"] == pytest.approx(13.5) and rows["polca"]["mean_unused_calls"] == 1.0
    assert rows["gepa"]["mean_proposals"] == 3.5 and rows["gepa"]["mean_unused_calls"] == 8.0
    assert rows["gepa"]["mean_llm_calls"] == 3.5 and rows["polca"]["mean_llm_calls"] is None
    assert rows["old"]["mean_proposals"] is None and rows["old"]["mean_unused_calls"] is None  # not a partial mean
    lines = {line.split()[0]: line for line in format_table(list(rows.values())).splitlines()[4:]}
    header = format_table(list(rows.values())).splitlines()[1]
    assert "unused calls" in header and "proposals" in header
    # columns: ... calls used, unused calls, proposals, LLM calls, s/run
    assert lines["polca"].split()[-5:] == ["39.0", "1.0", "13.5", "-", "1.00"]
    assert lines["gepa"].split()[-5:] == ["32.0", "8.0", "3.5", "3.5", "1.00"]
    assert lines["old"].split()[-5:] == ["40.0", "-", "-", "-", "1.00"]


def test_run_details_read_a_method_result_and_a_loop_run_result():
    from polca_nb.budget import Budget
    from polca_nb.curves import compare
    from polca_nb.runner import PolcaConfig

    class Proposer:
        def propose(self, candidate, batch, context, seed):
            return [{"instructions": f"Answer. {KEY} {seed % 7}"}]

    config = PolcaConfig(Budget(max_metric_calls=20), num_candidates=1, eps=0.0, use_summarizer=False)
    c = compare(["sequential"], problem(), Proposer(), config, seeds=[0], score=lambda params: 0.5)
    (details,) = c.run_details("sequential")
    (run,) = c.results["sequential"]
    assert details == {"proposals": run.spent.proposals, "iterations": run.spent.iterations,
                       "unused_calls": 20 - run.spent.metric_calls}
    assert details["proposals"] > 0
    (row,) = [r for r in summary_rows(replace(c, grid=(20,)), polca="none", baselines=["sequential"])]
    assert row["mean_calls"] == run.spent.metric_calls and row["mean_proposals"] == details["proposals"]
    assert c.run_details("absent") == []


def test_calls_to_reach_reads_the_returned_program_curve_by_default():
    c = comparison({"polca": [[0.6, 0.2, 0.2, 0.5], [0.6, 0.2, 0.4, 0.5]],  # returned mean: .6 .2 .3 .5
                    "gepa": [[0.1, 0.1, 0.1, 0.1]] * 2})
    assert calls_to_reach(c, "polca", 0.55) == 10
    assert calls_to_reach(c, "polca", 0.45) == 10
    c = comparison({"polca": [[0.1, 0.9, 0.1, 0.5], [0.1, 0.1, 0.5, 0.5]],  # returned mean: .1 .5 .3 .5
                    "gepa": [[0.1, 0.1, 0.1, 0.1]] * 2})
    assert calls_to_reach(c, "polca", 0.6) is None
    assert calls_to_reach(c, "polca", 0.6, best_so_far=True) == 30  # running maxima' mean: .1 .5 .7 .7


def test_best_so_far_starts_from_the_seed_program_and_never_drops():
    grid = (10, 20, 30)
    assert [p.score for p in running_best(curve([0.2, 0.5, 0.3], grid), initial=0.4)] == [0.4, 0.5, 0.5]
    c = comparison({"polca": [[0.2, 0.2, 0.3, 0.3], [0.6, 0.1, 0.1, 0.1]]}, initial=0.4)
    assert mean_best_so_far(c.curves["polca"], c.initial) == pytest.approx([0.5, 0.5, 0.5, 0.5])
    means, _ = EpsSweep((0.1,), (c,)).final_best_so_far()
    assert means == pytest.approx([0.5])  # seed 0 never beat the seed program: 0.4 counts, not 0.3


def test_calls_to_reach_is_zero_when_the_seed_already_scores_the_target():
    c = comparison({"polca": [[0.5] * 4, [0.5] * 4], "gepa": [[0.1] * 4] * 2}, initial=0.6)
    assert calls_to_reach(c, "gepa", 0.55) == 0


def test_compare_methods_runs_every_method_and_scores_each_distinct_program_once():
    pytest.importorskip("gepa")
    calls = itertools.count()
    llm = ScriptedLLM(lambda req: f'<param name="instructions">\nAnswer. {KEY}\n</param>' if next(calls) % 2
                      else "```\nAnswer please.\n```")
    p = problem()
    evaluated = []

    def counting(params, example, seed):
        evaluated.append(params["instructions"])
        return keyword_evaluator(params, example, seed)

    p = Problem(p.name, p.seed_params, p.trainset, counting, testset=p.testset)
    runs = []
    # GEPA at 20 calls: the seed's validation (6) and one worst-case iteration (2 x 3 + 6) leave it one step.
    with pytest.warns(BudgetWarning, match="gepa: at 20 metric calls"):
        c = compare_methods(["sequential", "best-of-n", "gepa"], p, llm, budget=20, seeds=[0, 1], grid_points=4,
                            on_run=lambda m, s, r, f, t: runs.append((m, s, r.metric_calls, f)))
    assert [(m, s) for m, s, _, _ in runs] == [(m, s) for m in ("sequential", "best-of-n", "gepa") for s in (0, 1)]
    assert all(calls <= 20 for _, _, calls, _ in runs)
    assert c.grid == (5, 10, 15, 20) and c.initial == 0.0
    for method in c.curves:
        for curve_, final in zip(c.curves[method], c.finals[method]):
            assert [p.metric_calls for p in curve_] == list(c.grid)
            assert curve_[-1].score == final  # the program at the budget is the final program
    rows = {r["method"]: r for r in summary_rows(c, polca="sequential")}
    for method in ("sequential", "best-of-n", "gepa"):  # the table shows what each run really spent
        spent = [calls for m, _, calls, _ in runs if m == method]
        assert rows[method]["mean_calls"] == pytest.approx(np.mean(spent))
        assert rows[method]["mean_llm_calls"] == pytest.approx(
            np.mean([sum(r.details["llm_calls"].values()) for r in c.results[method]]))
    assert rows["gepa"]["mean_llm_calls"] > 0
    for method in ("sequential", "best-of-n", "gepa"):  # every MethodResult reports proposals and unused calls
        details = [r.details for r in c.results[method]]
        assert [d["unused_calls"] for d in details] == [20 - calls for m, _, calls, _ in runs if m == method]
        assert rows[method]["mean_unused_calls"] == pytest.approx(np.mean([d["unused_calls"] for d in details]))
        assert rows[method]["mean_proposals"] == pytest.approx(np.mean([d["proposals"] for d in details]))
        assert all(d["proposals"] >= 1 for d in details)
    text = format_table(list(rows.values()))
    assert "calls used" in text and "unused calls" in text and "proposals" in text
    metric_calls = sum(calls for _, _, calls, _ in runs)
    test_calls = len(evaluated) - metric_calls
    distinct = {p for p in evaluated}  # every program text that was evaluated at all
    assert test_calls % len(p.testset) == 0 and test_calls // len(p.testset) <= len(distinct)


def test_compare_methods_rejects_bad_input():
    with pytest.raises(ValueError, match="methods must be among"):
        compare_methods(["dspy"], problem(), ScriptedLLM([]), budget=10, seeds=[0])
    with pytest.raises(ValueError, match="seeds is empty"):
        compare_methods(["sequential"], problem(), ScriptedLLM([]), budget=10, seeds=[])


def test_reference_file_cites_a_source_for_every_figure_and_names_our_methods():
    ref = load_reference()
    assert "polca-method.md" in ref["source"]
    figures = [k for k in ref if k.startswith("fig")]
    assert figures and all("approx" in ref[k]["source"] for k in figures)
    fig9 = ref["fig9_tau_bench"]
    assert set(fig9["curves"]) == set(ABLATION_METHODS) and set(ABLATION_METHODS) <= set(METHODS)
    for name, points in fig9["curves"].items():
        xs = [x for x, _ in points]
        assert xs == sorted(xs) and points[-1][1] == fig9["finals"][name]
    with pytest.raises(ValueError, match="plain file stem"):
        load_reference("../secrets")


def test_eps_sweep_summarises_the_best_so_far_at_the_budget():
    low = comparison({"polca": [[0.1, 0.4, 0.2, 0.3], [0.2, 0.2, 0.2, 0.2]]})
    high = comparison({"polca": [[0.5, 0.5, 0.6, 0.6], [0.7, 0.7, 0.7, 0.7]]})
    means, ses = EpsSweep((0.0, 0.1), (low, high)).final_best_so_far()
    assert means == pytest.approx([0.3, 0.65])
    assert ses == pytest.approx([np.std([0.4, 0.2]) / np.sqrt(2), np.std([0.6, 0.7]) / np.sqrt(2)])


@pytest.mark.parametrize("bad", [[], [-0.1], [float("nan")]])
def test_eps_sweep_rejects_bad_eps_values(bad):
    with pytest.raises(ValueError, match="eps_values"):
        run_eps_sweep(problem(), ScriptedLLM([]), eps_values=bad, budget=10, seeds=[0])


def test_bench_compare_script_runs_every_method_and_prints_the_table(monkeypatch, capsys, tmp_path):
    """bench/compare.py end to end on a scripted LLM: every method runs, the budget holds, the table prints."""
    import logging

    roles = logging.getLogger("polca_nb.roles")
    # The script quiets the roles process-wide (for its own process); in this one it must not outlive the test.
    monkeypatch.setattr(roles, "setLevel", lambda level: None)
    pytest.importorskip("gepa")
    pytest.importorskip("openevolve")
    import importlib.util
    import json
    from pathlib import Path

    from polca_nb.baselines.registry import ALL_METHODS
    from polca_nb.llm.ledger import Ledger

    path = Path(__file__).resolve().parents[1] / "bench" / "compare.py"
    spec = importlib.util.spec_from_file_location("bench_compare", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    count = itertools.count()

    def reply(request):
        if request["role"] == "task":
            return "Paris" if "one word" in request["system"] else "It is Paris."
        k = next(count)  # optimizer roles: alternate good and junk proposals in every accepted format
        text = "Reply with one word only." if k % 2 else f"Answer the question, take {k}."
        return (f'<summary>Use one word.</summary>\n<param name="instructions">\n{text}\n</param>\n'
                f"```text\n{text}\n```")

    llm = ScriptedLLM(reply)
    llm.model, llm.ledger = "scripted", Ledger()
    monkeypatch.setattr(bench, "default_client", lambda: llm)
    out = tmp_path / "compare.json"
    bench.main(["--seeds", "2", "--n-train", "4", "--n-test", "4", "--grid", "2", "--minibatch", "4",
                "--json", str(out)])  # the default budget: 20 x the 4 validation questions
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert data["args"]["budget"] == "80" and "budget 80 metric calls" in printed
    assert "test protocol: every returned program scored on the same 4 test examples x 1 repeat(s)" in printed
    assert [r["method"] for r in rows] == list(ALL_METHODS)
    assert all(r["seeds"] == 2 and 0 < r["mean_calls"] <= 80 for r in rows)
    for r in rows:  # unused calls, where a method reports them, are what the budget left
        if r["mean_unused_calls"] is not None:
            assert r["mean_unused_calls"] == pytest.approx(80 - r["mean_calls"])
    # Every method, the peers included, reports its unused calls and the proposals its optimizer wrote.
    assert all(r["mean_unused_calls"] is not None and r["mean_proposals"] is not None for r in rows)
    loop_and_gepa = [r for r in rows if r["method"] in METHODS or r["method"] == "gepa"]
    assert all(r["mean_proposals"] > 0 for r in loop_and_gepa)
    assert {"dspy-mipro", "dspy-gepa"} <= {r["method"] for r in rows}
    assert rows[0]["best_baseline"] in ("sequential", "best-of-n", "gepa", "openevolve", "dspy-mipro", "dspy-gepa")
    for method in ALL_METHODS:
        assert method in printed
    assert "calls used" in printed and "final test score" in printed and "unused calls" in printed
    assert "warning:" not in printed  # 20 x the valset leaves every method with an estimator room to search


class LengthEmbedder:
    """Embeds a text as its length/10: proposals differ by a known distance."""

    name = "length"

    def embed(self, texts):
        return np.array([[len(t) / 10.0] for t in texts])


@pytest.mark.filterwarnings("ignore::polca_nb.baselines.estimates.BudgetWarning")
def test_epsnet_rows_report_rejections_and_distances_for_every_arm():
    from polca_nb.baselines.ablation import epsnet_rows, pooled_distances
    from polca_nb.epsnet import suggest_eps

    texts = itertools.cycle(["Answer.", "Answer now.", f"Answer. {KEY}", "Answer the question."])
    llm = ScriptedLLM(lambda req: f'<param name="instructions">\n{next(texts)}\n</param>')
    c = compare_methods(["polca-vanilla", "polca+epsnet"], problem(), llm, budget=24, seeds=[0], grid_points=2,
                        embedder=LengthEmbedder(), base_config=None)
    rows = {r["method"]: r for r in epsnet_rows(c)}
    assert rows["polca-vanilla"]["rejected"] == 0 and rows["polca-vanilla"]["embedder"] == "length"
    assert rows["polca-vanilla"]["proposals"] > 0 and np.isfinite(rows["polca-vanilla"]["distance median"])
    assert rows["polca+epsnet"]["eps"] > 0 and rows["polca+epsnet"]["rejected"] >= 1
    assert 0 < suggest_eps(pooled_distances(c), 0.5) < 10
