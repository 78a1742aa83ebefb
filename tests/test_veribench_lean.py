"""The Lean checker's subprocess handling with a stand-in `lean` this test writes (a Python script that
prints Lean-format JSON messages, sleeps, crashes or runs out of memory on request), toolchain discovery,
the full three-step evaluator on the stand-in, and, where a real Lean 4 toolchain is installed, every gold
reference that does not import Mathlib compiled for real (skipped with its reason elsewhere)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from polca_nb.benchmarks import veribench as vb
from polca_nb.llm.base import ScriptedLLM

try:
    TASK10 = vb.load_task(10)
except FileNotFoundError as exc:  # pragma: no cover - depends on the data folder
    pytest.skip(str(exc), allow_module_level=True)

STAND_IN = r'''#!{python}
"""A stand-in for `lean --json FILE`: reads FILE and answers by markers in it."""
import json, os, re, signal, subprocess, sys, time
path = sys.argv[-1]
if sys.argv[1:] == ["--version"]:
    print("Lean (version 4.18.0, stand-in)"); sys.exit(0)
text = open(path, encoding="utf-8").read()
if "STANDIN_SLEEP" in text:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a child that must die too
    time.sleep(60)
if "STANDIN_CRASH" in text:
    os.kill(os.getpid(), signal.SIGSEGV)
if "STANDIN_OOM" in text:
    try:
        block = bytearray(1 << 30)
    except MemoryError:
        print("INTERNAL PANIC: out of memory", file=sys.stderr); sys.exit(1)
    print("allocated 1 GiB: no memory limit was applied", file=sys.stderr); sys.exit(3)
overrides = json.loads(os.environ.get("STANDIN_EVALS", "{{}}"))
defined = set(re.findall(r"^\s*(?:def|abbrev)\s+([^\s(:]+)", text, re.M))
errors = 0
def say(severity, line, data):
    print(json.dumps({{"fileName": path, "pos": {{"line": line, "column": 0}}, "severity": severity, "data": data}}))
for number, line in enumerate(text.splitlines(), start=1):
    if "ERROR_HERE" in line:
        errors += 1; say("error", number, "unexpected token 'ERROR_HERE'; expected term")
    if re.search(r":=\s*(by\s+)?sorry", line):
        say("warning", number, "declaration uses 'sorry'")
    command = re.match(r"\s*(example|#eval!?)\s+(.*)", line)
    if not command:
        continue
    called = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", command.group(2)) if n.startswith("my")]
    unknown = [n for n in called if n not in defined]
    if unknown:
        errors += 1; say("error", number, f"unknown identifier '{{unknown[0]}}'"); continue
    if command.group(1).startswith("#eval"):
        expr = command.group(2).split("--")[0].strip()
        expected = re.search(r"--\s*expected:\s*(.*)$", line)
        say("information", number, overrides.get(expr, expected.group(1) if expected else "()"))
sys.exit(1 if errors else 0)
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A stand-in `lean` executable, found through $POLCA_LEAN."""
    path = tmp_path / "toolchain" / "bin" / "lean"
    path.parent.mkdir(parents=True)
    path.write_text(STAND_IN.format(python=sys.executable), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("POLCA_LEAN", str(path))
    monkeypatch.delenv("STANDIN_EVALS", raising=False)
    return path


def checker(**kw) -> vb.LeanChecker:
    return vb.LeanChecker(**{"timeout_s": 20.0, "memory_mb": 512, **kw})


# --- discovery --------------------------------------------------------------------------------------
def test_polca_lean_may_name_the_binary_its_bin_folder_or_the_toolchain_root(stand_in):
    for value in (stand_in, stand_in.parent, stand_in.parent.parent):
        found = vb.find_lean({"POLCA_LEAN": str(value), "PATH": ""})
        assert found == vb.LeanToolchain((str(stand_in),), "POLCA_LEAN")
    assert found.version() == "Lean (version 4.18.0, stand-in)"


def test_polca_lean_pointing_nowhere_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(vb.LeanUnavailable, match="POLCA_LEAN"):
        vb.find_lean({"POLCA_LEAN": str(tmp_path / "missing"), "PATH": ""})


def test_path_lake_and_elan_are_found_in_order(stand_in, tmp_path):
    lake = tmp_path / "lakebin" / "lake"
    lake.parent.mkdir()
    lake.write_text("#!/bin/sh\n", encoding="utf-8")
    lake.chmod(0o755)
    assert vb.find_lean({"PATH": f"{lake.parent}:{stand_in.parent}"}).origin == "PATH (lean)"
    via_lake = vb.find_lean({"PATH": str(lake.parent)})
    assert via_lake.command == (str(lake), "env", "lean") and via_lake.origin == "PATH (lake)"
    elan = vb.find_lean({"PATH": "", "ELAN_HOME": str(stand_in.parent.parent)})
    assert elan.command == (str(stand_in),) and elan.origin.startswith("elan")
    home = tmp_path / "home"
    (home / ".elan").mkdir(parents=True)
    (home / ".elan" / "bin").symlink_to(stand_in.parent)
    assert vb.find_lean({"PATH": ""}, home=home).origin.startswith("elan")
    assert vb.find_lean({"PATH": ""}, home=tmp_path / "nobody") is None


def test_no_toolchain_means_the_checker_says_how_to_install_one(monkeypatch, tmp_path):
    monkeypatch.delenv("POLCA_LEAN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "no-elan"))
    with pytest.raises(vb.LeanUnavailable) as info:
        vb.LeanChecker()
    assert "elan-init.sh" in str(info.value) and vb.PAPER_TOOLCHAIN in str(info.value)
    assert vb.lean_status().startswith("no Lean 4 toolchain found")


# --- subprocess handling ----------------------------------------------------------------------------
def test_a_clean_file_compiles_with_sorry_warnings_counted(stand_in):
    run = checker().run("def myF (n : Nat) : Nat := n\ntheorem t : myF 1 = 1 := by sorry\n#eval myF 1 -- expected: 1\n")
    assert run.status == "ok" and run.compiled and run.returncode == 0
    assert run.sorry_count == 1 and [m.text for m in run.infos] == ["1"]


def test_errors_are_parsed_with_their_lines(stand_in):
    run = checker().run("def myF := 1\ndef g := ERROR_HERE\n")
    assert run.status == "errors" and not run.compiled and [(e.line, e.text[:16]) for e in run.errors] == \
        [(2, "unexpected token")]
    feedback = vb.compile_feedback_for(run, 20.0)
    assert "line 2, column 0" in feedback and ">> 2 | def g := ERROR_HERE" in feedback


def test_timeout_kills_the_whole_process_group(stand_in):
    started = time.perf_counter()
    run = checker(timeout_s=1.5).run("-- STANDIN_SLEEP\n")
    assert run.status == "timeout" and time.perf_counter() - started < 20
    assert "TIMEOUT" in vb.compile_feedback_for(run, 1.5)


def test_a_crash_is_reported_not_raised(stand_in):
    run = checker().run("-- STANDIN_CRASH\n")
    assert run.status == "crashed" and run.returncode is not None and run.returncode < 0
    assert "CRASHED" in vb.compile_feedback_for(run, 20.0)


def test_the_memory_limit_applies_to_lean(stand_in):
    run = checker(memory_mb=256).run("-- STANDIN_OOM\n")
    assert run.status == "out_of_memory", run.stderr
    assert "OUT OF MEMORY" in vb.compile_feedback_for(run, 20.0)


def test_a_missing_binary_raises_lean_unavailable(stand_in):
    lean = checker()
    stand_in.unlink()
    with pytest.raises(vb.LeanUnavailable, match="missing or not executable"):
        lean.run("def x := 1\n")


def test_a_binary_that_cannot_be_executed_raises_lean_unavailable(tmp_path):
    broken = tmp_path / "lean"
    broken.write_text("#!/nonexistent/interpreter\n", encoding="utf-8")
    broken.chmod(0o755)
    lean = vb.LeanChecker(vb.LeanToolchain((str(broken),), "test"))
    with pytest.raises(vb.LeanUnavailable, match="cannot execute"):
        lean.run("def x := 1\n")


def test_each_run_gets_its_own_temporary_directory(stand_in):
    lean = checker()
    first, second = lean.run("#eval myA -- expected: 1\n"), lean.run("def myA := 1\n#eval myA -- expected: 1\n")
    assert first.status == "errors" and second.status == "ok" and lean.runs == 2
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("polca-lean-*") if p.is_dir()
                and (p / "Candidate.lean").exists() and "myA" in (p / "Candidate.lean").read_text()]


# --- the three-step evaluator on the stand-in ---------------------------------------------------------
CORRECT = "namespace MyEvenSumParity\ndef myEvenSumParity (xs : List Nat) : Nat := xs.foldl (· + ·) 0 % 2\n" \
          "end MyEvenSumParity\n"


def full_evaluator(reply="<RATIONALE>fine</RATIONALE><SCORE>15</SCORE>"):
    llm = ScriptedLLM(lambda request: reply)
    return vb.VeriBenchEvaluator(judge=vb.LeanJudge(llm), mode="full", checker=checker()), llm


def test_full_score_passing_everything_asks_the_judge(stand_in):
    evaluator, llm = full_evaluator()
    evaluation = evaluator({"lean_code": CORRECT}, TASK10.to_example(), seed=1)
    assert evaluation.score == pytest.approx(0.3 + 0.3 + 0.4 * 0.5) and len(llm.calls) == 1
    summary = json.loads(evaluation.output)
    assert summary["compiled"] and summary["unit_tests"] == "passed" and summary["tests"] == 14
    assert "passed all 14 unit tests" in evaluation.feedback and "LLM judge: 15/30" in evaluation.feedback


def test_full_score_wrong_eval_value_is_0_3_without_a_judge_call(stand_in, monkeypatch):
    monkeypatch.setenv("STANDIN_EVALS", json.dumps({"myEvenSumParity [2, 4, 6]": "1"}))
    evaluator, llm = full_evaluator()
    evaluation = evaluator({"lean_code": CORRECT}, TASK10.to_example(), seed=1)
    assert evaluation.score == pytest.approx(0.3) and llm.calls == []
    assert "expected 0, got 1" in evaluation.feedback


def test_full_score_renamed_function_is_aliased_and_missing_one_fails(stand_in):
    evaluator, _ = full_evaluator()
    renamed = CORRECT.replace("def myEvenSumParity", "def my_even_sum_parity")
    assert evaluator({"lean_code": renamed}, TASK10.to_example(), seed=1).score == pytest.approx(0.8)
    other = "def myOther (xs : List Nat) : Nat := 0\n"
    evaluation = evaluator({"lean_code": other}, TASK10.to_example(), seed=1)
    assert evaluation.score == pytest.approx(0.3) and "defines none of: `myEvenSumParity`" in evaluation.feedback


def test_full_score_compile_failure_is_zero_and_compile_only_mode(stand_in):
    evaluator, llm = full_evaluator()
    broken = evaluator({"lean_code": CORRECT + "def bad := ERROR_HERE\n"}, TASK10.to_example(), seed=1)
    assert broken.score == 0.0 and broken.feedback.startswith("Lean compilation FAILED") and llm.calls == []
    compile_only = vb.VeriBenchEvaluator(mode="compile", checker=checker())
    assert compile_only({"lean_code": CORRECT}, TASK10.to_example(), seed=1).score == 1.0
    assert compile_only({"lean_code": "ERROR_HERE"}, TASK10.to_example(), seed=1).score == 0.0


# --- a real Lean 4 toolchain --------------------------------------------------------------------------
def _real_lean() -> vb.LeanToolchain | None:
    try:
        return vb.find_lean()
    except vb.LeanUnavailable:
        return None


REAL = _real_lean()
needs_lean = pytest.mark.skipif(REAL is None, reason="no Lean 4 toolchain here ($POLCA_LEAN, PATH, ~/.elan/bin): "
                                                     "no registry ships one; install it with elan to run this")
CORE_TASKS = [t.idx for t in vb.load_tasks(vb.ALL_TASKS) if not t.needs_mathlib]


@pytest.mark.slow
@needs_lean
def test_every_gold_reference_without_mathlib_compiles_with_real_lean():
    lean = vb.LeanChecker(REAL, timeout_s=300.0)
    failed = {}
    for idx in CORE_TASKS:
        run = vb.compile_candidate(lean, vb.load_task(idx).gold_lean)
        if not run.compiled:
            failed[idx] = run.status + ": " + (run.errors[0].text[:200] if run.errors else run.stderr[-200:])
    assert failed == {}


@pytest.mark.slow
@needs_lean
def test_gold_references_pass_their_own_unit_tests_with_real_lean():
    lean = vb.LeanChecker(REAL, timeout_s=300.0)
    failed = {}
    for idx in vb.PAPER_TASKS:
        task = vb.load_task(idx)
        result = vb.run_unit_tests(lean, task.gold_lean, task, check_evals=False)
        if not result.passed:
            failed[idx] = result.feedback()[:300]
    assert failed == {}
