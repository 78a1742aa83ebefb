"""VeriBench scoring: the paper's three-step score, its compile-only variant and the offline judge-only score.

    score = 0.3 x compiles + 0.3 x unit tests pass + 0.4 x judge           (mode "full", the paper's)
    score = 1 if the file compiles else 0                                  (mode "compile")
    score = judge                                                          (mode "judge": no Lean here)

As in the paper's harness the steps are gated: a file that does not compile scores 0 and a file that
fails the unit tests 0.3, neither asks the judge, so full scores are 0, 0.3 or 0.6-1.0. Feedback is
the compiler's errors in context, the failed tests, or the judge's rationale. Mode "auto" is "full"
where a Lean toolchain is found and "judge" elsewhere, and says so in every feedback and output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ...types import Evaluation, Example, Params
from .checks import UnitTestResult, compile_candidate, compile_feedback_for, run_unit_tests
from .data import VeriTask
from .judge import JudgeVerdict, LeanJudge
from .lean import LeanChecker, LeanRun, find_lean
from .unit_tests import extract_tests

Mode = Literal["full", "compile", "judge"]
MODES: tuple[str, ...] = ("full", "compile", "judge", "auto")
PARAM = "lean_code"
INITIAL_LEAN = "-- Lean 4 translation of the Python program"
"""The paper's initial value of the trained node (polca-method.md §3)."""
SEED_PARAMS: dict[str, str] = {PARAM: INITIAL_LEAN}
WEIGHTS = {"compile": 0.3, "unit": 0.3, "judge": 0.4}
JUDGE_ONLY_NOTE = ("Compile and unit-test steps were NOT run (no Lean toolchain here); this score is the LLM "
                   "judge's alone.")


def veribench_score(compiles: bool, unit_tests_pass: bool, judge: float | None) -> float:
    """0.3 x compiles + 0.3 x unit tests pass + 0.4 x judge, each later term counting only when the
    earlier steps passed (the harness's gating); `judge` in [0, 1] or None (not asked)."""
    if judge is not None and not 0.0 <= judge <= 1.0:
        raise ValueError(f"judge must be in [0, 1] or None, got {judge!r}")
    if not compiles:
        return 0.0
    if not unit_tests_pass:
        return WEIGHTS["compile"]
    return WEIGHTS["compile"] + WEIGHTS["unit"] + WEIGHTS["judge"] * (judge or 0.0)


def compile_only_score(compiles: bool) -> float:
    """The compile-only variant: 1 if the file compiles, else 0."""
    return 1.0 if compiles else 0.0


def resolve_mode(mode: str) -> Mode:
    """`mode` itself, or for "auto" "full" where Lean is found and "judge" elsewhere."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        return "full" if find_lean() is not None else "judge"
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Verdict:
    """Everything one evaluation found (what `output` holds as JSON, less the raw runs)."""

    mode: Mode
    score: float
    compile_run: LeanRun | None = None
    unit: UnitTestResult | None = None
    judge: JudgeVerdict | None = None

    def summary(self) -> dict[str, Any]:
        run, unit, judge = self.compile_run, self.unit, self.judge
        return {"mode": self.mode, "score": round(self.score, 4),
                "compiled": None if run is None else run.compiled,
                "compile_status": None if run is None else run.status,
                "errors": None if run is None else len(run.errors),
                "sorry": None if run is None else run.sorry_count,
                "unit_tests": None if unit is None else unit.status,
                "tests_failed": None if unit is None else len(unit.failed),
                "tests": None if unit is None else len(unit.checked),
                "judge": None if judge is None else round(judge.score, 4),
                "judge_parsed": None if judge is None else judge.parsed}


@dataclass
class VeriBenchEvaluator:
    """`Evaluator`: params {"lean_code": source}, example.data a VeriTask.

    `mode` "full" / "compile" need Lean: a `checker` is built if none is given (LeanUnavailable, with
    install steps, where there is no toolchain). "judge" and "full" need `judge`. "auto" picks "full"
    or "judge" at construction (see module docstring). `check_evals=False` checks the unit tests as
    the harness did (the combined file compiles), without comparing `#eval` values.
    """

    judge: LeanJudge | None = None
    mode: str = "auto"
    checker: LeanChecker | None = None
    check_evals: bool = True
    verdicts: list[Verdict] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.mode = resolve_mode(self.mode)
        if self.mode in ("full", "compile") and self.checker is None:
            self.checker = LeanChecker()
        if self.mode in ("full", "judge") and self.judge is None:
            raise ValueError(f"mode {self.mode!r} needs a judge (LeanJudge)")

    @property
    def label(self) -> str:
        return {"full": "0.3 compile + 0.3 unit tests + 0.4 judge", "compile": "compile-only (1/0)",
                "judge": "judge-only (no Lean: compile and unit tests skipped)"}[self.mode]

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        if PARAM not in params:
            raise ValueError(f"params must contain {PARAM!r} (the Lean source), got keys {sorted(params)}")
        task = example.data
        if not isinstance(task, VeriTask):
            raise ValueError(f"example.data must be a VeriTask, got {type(task).__name__} (example {example.id!r})")
        verdict, feedback = self.assess(params[PARAM], task, seed)
        self.verdicts.append(verdict)
        return Evaluation(verdict.score, feedback, json.dumps(verdict.summary()))

    def assess(self, source: str, task: VeriTask, seed: int) -> tuple[Verdict, str]:
        """The verdict and feedback text for one candidate on one task."""
        if self.mode == "judge":
            assert self.judge is not None
            judged = self.judge.judge(task, source, seed)
            return Verdict("judge", judged.score, judge=judged), f"{JUDGE_ONLY_NOTE}\n{judged.feedback()}"
        assert self.checker is not None
        run = compile_candidate(self.checker, source)
        if not run.compiled:
            score = 0.0
            return Verdict(self.mode, score, run), compile_feedback_for(run, self.checker.timeout_s)  # type: ignore[arg-type]
        sorry = f" ({run.sorry_count} declaration(s) use `sorry`, which is allowed)" if run.sorry_count else ""
        if self.mode == "compile":
            return Verdict("compile", compile_only_score(True), run), f"The Lean file compiled successfully{sorry}."
        unit = run_unit_tests(self.checker, source, task, check_evals=self.check_evals)
        tests = extract_tests(task)
        unit_feedback = unit.feedback(tests.tested_names if tests is not None else ())
        passed = unit.passed or unit.status == "no_tests"
        if not passed:
            return Verdict("full", veribench_score(True, False, None), run, unit), unit_feedback
        assert self.judge is not None
        judged = self.judge.judge(task, source, seed)
        score = veribench_score(True, True, judged.score)
        return Verdict("full", score, run, unit, judged), f"{unit_feedback}{sorry}\n{judged.feedback()}"
