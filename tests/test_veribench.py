"""VeriBench without Lean: task loading, test extraction and the combined file, Lean's message format
parsed from recorded outputs (written from Lean 4's documented forms: `lean --json` objects and
`FILE:LINE:COL: error: TEXT` lines), unit-test attribution, feedback, the score formula, the judge with a
scripted LLM, and a scripted judge-only POLCA run."""

from __future__ import annotations

import json

import pytest

from polca_nb.benchmarks import veribench as vb
from polca_nb.embedders import CharNgramEmbedder
from polca_nb.llm.base import ScriptedLLM
from polca_nb.types import Example

try:
    TASKS = vb.load_tasks()
except FileNotFoundError as exc:  # pragma: no cover - depends on the data folder
    pytest.skip(str(exc), allow_module_level=True)

TASK10 = TASKS[0]

# --- recorded compiler outputs ---------------------------------------------------------------------
JSON_OUTPUT = "\n".join(json.dumps(m) for m in [
    {"fileName": "/tmp/polca-lean-x/Candidate.lean", "pos": {"line": 4, "column": 8},
     "endPos": {"line": 4, "column": 20}, "keepFullRange": False, "severity": "warning", "isSilent": False,
     "caption": "", "data": "declaration uses 'sorry'", "kind": "hasSorry"},
    {"fileName": "/tmp/polca-lean-x/Candidate.lean", "pos": {"line": 7, "column": 2}, "endPos": None,
     "keepFullRange": False, "severity": "error", "caption": "",
     "data": "type mismatch\n  xs\nhas type\n  List Nat : Type\nbut is expected to have type\n  Nat : Type"},
    {"fileName": "/tmp/polca-lean-x/Candidate.lean", "pos": {"line": 9, "column": 0}, "severity": "information",
     "caption": "", "data": "[3, 2, 1]\n"},
]) + "\nsome stray line\n"

TEXT_OUTPUT = """Candidate.lean:4:8: warning: declaration uses 'sorry'
Candidate.lean:7:2: error: type mismatch
  xs
has type
  List Nat : Type
but is expected to have type
  Nat : Type
Candidate.lean:9:0-9:5: error(lean.unknownIdentifier): unknown identifier 'foo'
"""

SOURCE = "\n".join(f"line {k}" for k in range(1, 11)) + "\n"


def test_json_output_is_parsed_into_messages_and_stray_lines():
    messages, other = vb.parse_json_output(JSON_OUTPUT)
    assert [m.severity for m in messages] == ["warning", "error", "info"]
    sorry, err, info = messages
    assert sorry.is_sorry and (sorry.line, sorry.column, sorry.end_line, sorry.end_column) == (4, 8, 4, 20)
    assert err.line == 7 and err.column == 2 and err.text.startswith("type mismatch") and "Nat : Type" in err.text
    assert info.text == "[3, 2, 1]" and info.line == 9
    assert other == ["some stray line"]
    assert vb.parse_output(JSON_OUTPUT) == messages


def test_text_output_continuation_lines_and_end_positions_and_error_names():
    messages = vb.parse_text_output(TEXT_OUTPUT)
    assert [(m.severity, m.line, m.column) for m in messages] == [("warning", 4, 8), ("error", 7, 2), ("error", 9, 0)]
    assert messages[1].text.count("\n") == 5 and messages[1].text.endswith("Nat : Type")
    assert messages[2].end_line == 9 and messages[2].end_column == 5 and messages[2].text == "unknown identifier 'foo'"
    assert vb.parse_output(TEXT_OUTPUT) == messages  # no JSON in it: the text form


def test_text_output_bare_lines_before_any_message_are_information():
    assert vb.parse_text_output("0\n") == [vb.LeanMessage("info", "0")]
    assert vb.parse_text_output("") == []


def test_compile_feedback_shows_errors_in_context_with_the_line_marked():
    feedback = vb.compile_feedback(vb.parse_output(JSON_OUTPUT), SOURCE)
    assert feedback.startswith("Lean compilation FAILED with 1 error(s) and 1 warning(s).")
    assert "Error 1 of 1, line 7, column 2: error: type mismatch" in feedback
    assert "\n>> 7 | line 7\n" in feedback and "\n   6 | line 6\n" in feedback and feedback.endswith("   8 | line 8")


def test_compile_feedback_caps_the_number_of_errors():
    many = [vb.LeanMessage("error", f"bad {k}", k, 0) for k in range(1, 9)]
    feedback = vb.compile_feedback(many, SOURCE, max_errors=3)
    assert "Error 3 of 8" in feedback and "Error 4 of 8" not in feedback and "5 more errors not shown" in feedback


def test_classify_run_endings():
    err = (vb.LeanMessage("error", "x", 1, 0),)
    assert vb.classify(0, (), "", False) == "ok"
    assert vb.classify(1, err, "", False) == "errors"
    assert vb.classify(None, (), "", True) == "timeout"
    assert vb.classify(-11, (), "", False) == "crashed"
    assert vb.classify(1, (), "", False) == "crashed"
    assert vb.classify(1, (), "INTERNAL PANIC: out of memory", False) == "out_of_memory"


# --- tasks and unit tests ---------------------------------------------------------------------------
def test_paper_tasks_load_with_tests_and_no_mathlib():
    assert [t.idx for t in TASKS] == list(range(10, 51))
    assert all(not t.needs_mathlib and t.namespace for t in TASKS)
    for task in TASKS:
        tests = vb.extract_tests(task)
        assert tests is not None and tests.tested_names and tests.num_checked >= 12, task.idx
    assert TASK10.namespace == "MyEvenSumParity" and TASK10.title == "Even Sum Parity"


def test_tests_block_items_and_expected_values():
    tests = vb.extract_tests(TASK10)
    assert tests.tested_names == ("myEvenSumParity",)  # "parity" appears only in comments there
    assert tests.text.startswith("/-!\n# Tests") and "Pre" not in tests.text.splitlines()[-2]
    evals = [i for i in tests.items if i.kind == "eval"]
    assert evals[0].expression == "myEvenSumParity [2, 4, 6]" and evals[0].expected == ("0",)
    assert any(i.expected == ("false",) for i in evals)
    task24 = vb.load_task(24)
    alternatives = [i for i in vb.extract_tests(task24).items if i.kind == "eval"][0]
    assert alternatives.expected == ('"bab"', '"aba"')
    assert vb.extract_tests(vb.load_task(78)) is None  # no tests section


def test_combined_file_opens_candidate_namespaces_and_aliases_renamed_functions():
    candidate = "namespace Foo\ndef my_even_sum_parity (xs : List Nat) : Nat := 0\nend Foo\n"
    combined = vb.combined_file(candidate, TASK10)
    lines = combined.source.splitlines()
    assert lines[combined.tests_start - 1].startswith("-- ===== VeriBench unit tests")
    assert "namespace MyEvenSumParity" in lines and "open Foo" in lines
    assert "abbrev myEvenSumParity := @my_even_sum_parity" in lines
    assert combined.aliases == (("myEvenSumParity", "my_even_sum_parity"),) and combined.missing == ()
    first = vb.extract_tests(TASK10).items[0]
    assert lines[first.line + combined.block_offset - 1] == first.text
    assert lines[-1] == "end MyEvenSumParity"


def test_combined_file_reports_names_it_cannot_match():
    combined = vb.combined_file("def something (n : Nat) : Nat := n\n", TASK10)
    assert combined.missing == ("myEvenSumParity",) and combined.aliases == ()
    same = vb.combined_file(TASK10.gold_lean, TASK10)
    assert same.missing == () and same.aliases == () and "open " not in same.source.split("VeriBench unit tests")[1]


def _run_on(combined, messages):
    return vb.LeanRun("errors" if any(m.severity == "error" for m in messages) else "ok", tuple(messages),
                      0, "", "", 0.1, combined.source)


def test_unit_test_outcomes_are_attributed_by_line():
    tests = vb.extract_tests(TASK10)
    combined = vb.combined_file(TASK10.gold_lean, TASK10, tests)
    example, evaluation = tests.items[0], tests.items[1]
    at = combined.block_offset
    messages = [vb.LeanMessage("error", "native_decide evaluated that the proposition\n  ...\nis false",
                               example.line + at, 42),
                vb.LeanMessage("info", "1", evaluation.line + at, 0),
                vb.LeanMessage("warning", "declaration uses 'sorry'", 3, 0)]  # candidate part: ignored
    for item in tests.items[2:]:
        if item.kind == "eval":
            messages.append(vb.LeanMessage("info", item.expected[0], item.line + at, 0))
    result = vb.assess_unit_tests(_run_on(combined, messages), combined, tests)
    assert result.status == "failed" and len(result.failed) == 2 and len(result.checked) == tests.num_checked
    reasons = [o.reason for o in result.failed]
    assert reasons[0].startswith("error: native_decide evaluated that the proposition ... is false") and reasons[1] == "expected 0, got 1"
    feedback = result.feedback(tests.tested_names)
    assert "FAILED the reference's unit tests: 2 of 14 checks failed" in feedback and "`myEvenSumParity`" in feedback
    lax = vb.assess_unit_tests(_run_on(combined, messages[1:]), combined, tests, check_evals=False)
    assert lax.passed  # the harness's reading: only errors count


def test_unit_tests_pass_and_stray_errors_fail():
    tests = vb.extract_tests(TASK10)
    combined = vb.combined_file(TASK10.gold_lean, TASK10, tests)
    evals = [vb.LeanMessage("info", f"  {i.expected[0]} ", i.line + combined.block_offset, 0)
             for i in tests.items if i.kind == "eval"]
    assert vb.assess_unit_tests(_run_on(combined, evals), combined, tests).passed
    stray = vb.LeanMessage("error", "unknown namespace 'Foo'", combined.tests_start + 2, 5)
    failed = vb.assess_unit_tests(_run_on(combined, [*evals, stray]), combined, tests)
    assert failed.status == "failed" and failed.stray_errors == (stray,)
    assert "outside the tests" in failed.feedback(tests.tested_names)


def test_misplaced_imports_are_dropped_but_header_imports_kept():
    source = "import Std\n-- a comment\n/- block\nimport Inside -/\ndef f := 1\nimport Mathlib\n"
    assert vb.strip_misplaced_imports(source) == "import Std\n-- a comment\n/- block\nimport Inside -/\ndef f := 1\n"


# --- scores ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compiles, unit, judge, expected", [
    (False, False, None, 0.0), (False, True, 1.0, 0.0), (True, False, 1.0, 0.3), (True, True, None, 0.6),
    (True, True, 0.0, 0.6), (True, True, 0.5, 0.8), (True, True, 1.0, 1.0)])
def test_score_formula(compiles, unit, judge, expected):
    assert vb.veribench_score(compiles, unit, judge) == pytest.approx(expected)


def test_score_formula_rejects_judge_outside_unit_interval_and_compile_only():
    with pytest.raises(ValueError, match="judge must be in"):
        vb.veribench_score(True, True, 1.5)
    assert (vb.compile_only_score(True), vb.compile_only_score(False)) == (1.0, 0.0)
    assert vb.WEIGHTS == {"compile": 0.3, "unit": 0.3, "judge": 0.4}


# --- judge ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reply, points", [
    ("<RATIONALE>ok</RATIONALE><SCORE>24</SCORE>", 24.0), ("<SCORE> 12 / 30 </SCORE>", 12.0),
    ("<SCORE>3</SCORE> then <SCORE>27</SCORE>", 27.0), ("<SCORE>45</SCORE>", 30.0), ("<score>-2</score>", 0.0),
    ("Overall score: 8/10", 24.0)])
def test_judge_reply_parsing(reply, points):
    verdict = vb.parse_verdict(reply)
    assert verdict.parsed and verdict.points == pytest.approx(points) and verdict.score == pytest.approx(points / 30)


def test_unparseable_judge_reply_scores_zero_and_says_so():
    verdict = vb.parse_verdict("I think it is quite good.")
    assert not verdict.parsed and verdict.score == 0.0 and "no <SCORE>" in verdict.feedback()


def test_judge_asks_the_llm_with_the_rubric_and_all_three_files():
    llm = ScriptedLLM(["<RATIONALE>A: 10. B: 5. C: 6.</RATIONALE>\n<SCORE>21</SCORE>"])
    judge = vb.LeanJudge(llm, max_tokens=200, gold_chars=400)
    verdict = judge.judge(TASK10, "def f : Nat := 1", seed=7)
    assert verdict.score == pytest.approx(0.7) and verdict.rationale == "A: 10. B: 5. C: 6."
    (call,) = llm.calls
    assert call["role"] == "judge" and call["sample_id"] == 7 and call["temperature"] == pytest.approx(0.1)
    prompt = call["messages"][0]["content"]
    assert "def prog(xs: List[int])" in prompt and "def f : Nat := 1" in prompt and "characters omitted" in prompt
    assert prompt.index("# Gold reference") < prompt.index("# Rubric") < prompt.index("# Candidate")
    assert "<SCORE>" in call["system"] and "30" in call["system"]


def test_judge_skips_files_that_declare_nothing():
    llm = ScriptedLLM([])
    verdict = vb.LeanJudge(llm).judge(TASK10, vb.INITIAL_LEAN + "\n/- def hidden := 1 -/\n", seed=0)
    assert verdict.score == 0.0 and not verdict.asked and llm.calls == []
    assert vb.has_declarations("theorem t : True := trivial") and not vb.has_declarations("-- def x := 1")


# --- evaluator (judge-only) and a scripted POLCA run --------------------------------------------------
LEAN_REPLY = "Here is the file.\n```lean\nnamespace MyEvenSumParity\ndef myEvenSumParity (xs : List Nat) : Nat :=\n" \
             "  xs.foldl (· + ·) 0 % 2\nend MyEvenSumParity\n```"


def scripted(request):
    if request["role"] == "judge":
        return "<RATIONALE>close</RATIONALE><SCORE>18</SCORE>"
    if request["role"] == "proposer":
        return LEAN_REPLY
    return "<summary>Use structural recursion.</summary>"


def test_judge_only_evaluator_labels_its_score():
    evaluator = vb.VeriBenchEvaluator(judge=vb.LeanJudge(ScriptedLLM(scripted)), mode="judge")
    evaluation = evaluator({"lean_code": "def x : Nat := 1"}, TASK10.to_example(), seed=3)
    assert evaluation.score == pytest.approx(0.6) and evaluation.feedback.startswith(vb.JUDGE_ONLY_NOTE)
    summary = json.loads(evaluation.output)
    assert summary["mode"] == "judge" and summary["compiled"] is None and summary["judge"] == pytest.approx(0.6)
    assert "judge-only" in evaluator.label
    with pytest.raises(ValueError, match="needs a judge"):
        vb.VeriBenchEvaluator(mode="judge")
    with pytest.raises(ValueError, match="VeriTask"):
        evaluator({"lean_code": "x"}, Example("e", "not a task"), 0)


def test_full_mode_without_lean_raises_with_install_steps(monkeypatch, tmp_path):
    monkeypatch.delenv("POLCA_LEAN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "no-elan"))
    with pytest.raises(vb.LeanUnavailable, match="elan"):
        vb.VeriBenchEvaluator(judge=vb.LeanJudge(ScriptedLLM([])), mode="full")
    assert vb.resolve_mode("auto") == "judge"


def test_presets_follow_the_paper():
    paper = vb.PRESETS["paper"]
    assert paper.task_indices == tuple(range(10, 51)) and paper.num_candidates == 5 and paper.eps == 0.02
    config = paper.polca_config()
    assert (config.batch_size, config.num_batches, config.num_candidates, config.eps) == (1, 1, 5, 0.02)
    assert config.budget.max_iterations == 19 and config.use_summarizer
    assert vb.PRESETS["paper_compile"].mode == "compile" and len(vb.PRESETS["paper_compile"].task_indices) == 140
    with pytest.raises(ValueError, match="task_indices"):
        vb.with_overrides(paper, task_indices=(200,))


def test_setup_builds_the_problem_around_the_python_program():
    llm = ScriptedLLM(scripted)
    evaluator = vb.VeriBenchEvaluator(judge=vb.LeanJudge(llm), mode="judge")
    parts = vb.setup("smoke", llm, task=TASK10, evaluator=evaluator)
    problem = parts.problem
    assert problem.seed_params == {"lean_code": "-- Lean 4 translation of the Python program"}
    assert "def prog(xs: List[int]) -> int:" in problem.objective and len(problem.trainset) == 2
    assert problem.valset[0].id == "veribench/10" and parts.summarizer is not None


def test_scripted_judge_only_run_end_to_end():
    llm = ScriptedLLM(scripted)
    preset = vb.with_overrides(vb.PRESETS["smoke"], task_indices=(10,), mode="judge", iterations=2)
    done = vb.run_veribench(preset, llm, embedder=CharNgramEmbedder(), tasks=[TASK10])
    (task_run,) = done.tasks
    assert task_run.mode == "judge" and task_run.step_scores[0] == 0.0  # the seed comment: no judge call
    assert task_run.best_score == pytest.approx(0.6)  # 18/30 for the proposed file
    assert done.compile_pass_rate() is None and done.mean_curve()[-1] == pytest.approx(0.6)
    assert {c["role"] for c in llm.calls} == {"proposer", "judge", "summarizer"}
    assert "myEvenSumParity" in task_run.result.best.params["lean_code"]
    assert task_run.summary()["compiled any"] is None


def test_paper_reference_numbers():
    reference = vb.paper_reference()
    values = reference["compile_pass_rate"]["values"]
    assert values["POLCA"] == [0.952, 0.005] and values["DSPy"] == [0.888, 0.023]
    assert reference["score_curves"]["curves"]["POLCA"][-1] == [24, 0.925]
