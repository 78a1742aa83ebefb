"""Compiling a candidate and running the reference's unit tests on it: structured results and feedback.

    compiled = compile_candidate(checker, source)            # LeanRun
    tests = run_unit_tests(checker, source, task)            # UnitTestResult (passed, outcomes, feedback())

A unit test passes when Lean reports no error inside it and, for an `#eval` whose expected value the
task states, the printed value equals one of the expected ones (whitespace-insensitive). That value
check is stricter than the paper's harness, which only compiled the combined file
(`check_evals=False` gives that reading).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from .data import VeriTask
from .lean import LeanChecker, LeanRun, strip_misplaced_imports
from .messages import LeanMessage, compile_feedback, describe
from .unit_tests import CombinedFile, TestItem, TestsBlock, combined_file, extract_tests

UnitStatus = Literal["passed", "failed", "timeout", "crashed", "no_tests"]
MAX_LISTED = 6


@dataclass(frozen=True)
class TestOutcome:
    """One unit test's verdict: `got` is the `#eval` output Lean printed (None if none)."""

    item: TestItem
    passed: bool
    reason: str = ""
    got: str | None = None


@dataclass(frozen=True)
class UnitTestResult:
    """The reference's unit tests on a candidate: per-test outcomes plus errors outside any test
    (e.g. in the namespace/alias lines), and the Lean run they came from."""

    status: UnitStatus
    outcomes: tuple[TestOutcome, ...]
    stray_errors: tuple[LeanMessage, ...]
    combined: CombinedFile | None
    run: LeanRun | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def checked(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.item.checked]

    @property
    def failed(self) -> list[TestOutcome]:
        return [o for o in self.checked if not o.passed]

    def feedback(self, tested_names: Sequence[str] = ()) -> str:
        """What the proposer reads about the unit tests."""
        if self.status == "no_tests":
            return "The task's reference has no unit tests; only compilation counts."
        if self.status in ("timeout", "crashed"):
            detail = self.run.stderr.strip()[-400:] if self.run is not None else ""
            return (f"The file compiled, but running the reference's unit tests ended in a {self.status} "
                    f"(make the definitions terminate quickly on small inputs). {detail}").strip()
        names = ", ".join(f"`{n}`" for n in tested_names) or "(none found)"
        if self.passed:
            return f"The file compiled and passed all {len(self.checked)} unit tests of the reference."
        lines = [f"The file compiled, but it FAILED the reference's unit tests: {len(self.failed)} of "
                 f"{len(self.checked)} checks failed. The tests call {names}."]
        if self.combined is not None and self.combined.missing:
            lines.append("Your file defines none of: " + ", ".join(f"`{n}`" for n in self.combined.missing)
                         + " (define them with these names and the Python program's meaning).")
        if self.combined is not None and self.combined.aliases:
            lines.append("Aliased for the tests: " + ", ".join(f"{g} := {c}" for g, c in self.combined.aliases))
        for outcome in self.failed[:MAX_LISTED]:
            lines.append(f"- `{outcome.item.text.splitlines()[0].strip()}`: {outcome.reason}")
        if len(self.failed) > MAX_LISTED:
            lines.append(f"- ... and {len(self.failed) - MAX_LISTED} more")
        source = self.combined.source if self.combined is not None else ""
        for message in self.stray_errors[:2]:
            lines.append(f"- outside the tests, {describe(message, source, max_chars=300)}")
        return "\n".join(lines)


def normalize_value(text: str) -> str:
    """A printed or expected value with whitespace collapsed (Lean's `Repr` output is otherwise literal)."""
    return " ".join(text.split())


def _outcome(item: TestItem, messages: list[LeanMessage], check_evals: bool) -> TestOutcome:
    errs = [m for m in messages if m.severity == "error"]
    infos = [m for m in messages if m.severity == "info"]
    got = infos[0].text.strip() if infos and item.kind == "eval" else None
    if errs:
        return TestOutcome(item, False, "error: " + " ".join(errs[0].text.split())[:300], got)
    if item.kind == "eval" and item.expected and check_evals:
        wanted = {normalize_value(v) for v in item.expected}
        if got is None:
            return TestOutcome(item, False, f"expected {' or '.join(item.expected)}, Lean printed nothing", got)
        if normalize_value(got) not in wanted:
            return TestOutcome(item, False, f"expected {' or '.join(item.expected)}, got {got[:200]}", got)
    return TestOutcome(item, True, "", got)


def assess_unit_tests(run: LeanRun, combined: CombinedFile, tests: TestsBlock, *,
                      check_evals: bool = True) -> UnitTestResult:
    """Attribute the run's messages in the tests part to the test whose lines hold them."""
    if run.status in ("timeout", "out_of_memory", "crashed"):
        status: UnitStatus = "timeout" if run.status == "timeout" else "crashed"
        return UnitTestResult(status, (), (), combined, run)
    per_item: dict[int, list[LeanMessage]] = {k: [] for k in range(len(tests.items))}
    stray: list[LeanMessage] = []
    for message in run.messages:
        if message.line is None or message.line < combined.tests_start:
            continue
        block_line = message.line - combined.block_offset
        owner = next((k for k, item in enumerate(tests.items) if item.line <= block_line <= item.end_line), None)
        if owner is not None:
            per_item[owner].append(message)
        elif message.severity == "error":
            stray.append(message)
    outcomes = tuple(_outcome(item, per_item[k], check_evals) for k, item in enumerate(tests.items))
    ok = not stray and all(o.passed for o in outcomes if o.item.checked)
    return UnitTestResult("passed" if ok else "failed", outcomes, tuple(stray), combined, run)


def compile_candidate(checker: LeanChecker, source: str) -> LeanRun:
    """Step 1: the candidate alone (misplaced imports dropped first)."""
    return checker.run(strip_misplaced_imports(source), name="Candidate")


def run_unit_tests(checker: LeanChecker, source: str, task: VeriTask, *, check_evals: bool = True) -> UnitTestResult:
    """Step 2: the candidate followed by the reference's tests, compiled and assessed test by test."""
    tests = extract_tests(task)
    if tests is None:
        return UnitTestResult("no_tests", (), (), None, None)
    combined = combined_file(strip_misplaced_imports(source), task, tests)
    run = checker.run(combined.source, name="CandidateTests")
    return assess_unit_tests(run, combined, tests, check_evals=check_evals)


def compile_feedback_for(run: LeanRun, timeout_s: float) -> str:
    """Feedback on a failed compile: the errors in context, or what stopped Lean."""
    if run.status == "timeout":
        return (f"TIMEOUT: Lean did not finish within {timeout_s:g} s. Make the Lean code correct and as simple "
                "as possible (structural recursion, no heavy `decide` on large values).")
    if run.status == "out_of_memory":
        return "Lean ran OUT OF MEMORY on this file. Simplify the definitions and the tests."
    if run.status == "crashed":
        tail = (run.stderr.strip() or run.stdout.strip())[-400:]
        return f"Lean CRASHED (exit code {run.returncode}) without reporting an error. Output tail: {tail}"
    return compile_feedback(run.messages, run.source)
