"""VeriBench: POLCA translates a Python program into Lean 4 (benchmarks.md §3, polca-method.md §3, §5.3).

The program is one parameter, `lean_code` (seed: "-- Lean 4 translation of the Python program"); one
POLCA run per task. A candidate is compiled by Lean (`lean.py`: found via $POLCA_LEAN, PATH or elan,
run in a temp dir with a timeout and a memory limit), then the reference's unit tests run against it
(`unit_tests.py`, `checks.py`), then an LLM judge (role "judge", `judge.py`) grades it against the
Python source and the gold file. Score (`evaluator.py`): 0.3 x compiles + 0.3 x unit tests + 0.4 x
judge, a compile-only 1/0 variant, and judge-only where no Lean exists (labelled so).

    tasks = load_tasks()                                  # the paper's 41 tasks (idx 10..50)
    parts = setup("smoke", llm, task=tasks[0])            # BenchmarkSetup (judge-only without Lean)
    done = run_veribench(PRESETS["smoke"], llm, embedder=default_embedder())

The benchmark shape (polca_nb/benchmarks/README.md): `data`, `evaluator`, `presets`, `experiment`,
`reference`, `plots`; beside them `lean` (toolchain + subprocess), `messages` (Lean's output parsed),
`unit_tests` (the reference's tests and the combined file), `checks` (compile and test steps), `judge`.
"""

from .checks import (TestOutcome, UnitTestResult, assess_unit_tests, compile_candidate, compile_feedback_for,
                     normalize_value, run_unit_tests)
from .data import (ALL_TASKS, NUM_TASKS, PAPER_TASKS, UPSTREAM_COMMIT, VeriTask, download, load_task, load_tasks,
                   main, parse_task, task_examples)
from .evaluator import (INITIAL_LEAN, JUDGE_ONLY_NOTE, MODES, PARAM, SEED_PARAMS, WEIGHTS, Verdict,
                        VeriBenchEvaluator, compile_only_score, resolve_mode, veribench_score)
from .experiment import TaskRun, VeriBenchRun, run, run_task, run_veribench, step_scores
from .judge import JUDGE_ROLE, MAX_SCORE, JudgeVerdict, LeanJudge, has_declarations, parse_verdict
from .lean import (ENV_VAR, INSTALL_HELP, PAPER_TOOLCHAIN, LeanChecker, LeanRun, LeanToolchain, LeanUnavailable,
                   classify, find_lean, lean_status, require_lean, strip_misplaced_imports)
from .messages import (SORRY_WARNING, LeanMessage, compile_feedback, describe, parse_json_output, parse_output,
                       parse_text_output, source_context)
from .plots import plot_pass_rates, plot_score_curve
from .presets import (OBJECTIVE, PRESETS, VeriBenchPreset, get_preset, make_evaluator, make_judge, make_problem,
                      make_roles, setup, task_input_text, with_overrides)
from .reference import REFERENCE_FILE, paper_reference
from .unit_tests import CombinedFile, TestItem, TestsBlock, combined_file, declared_names, extract_tests

__all__ = [
    "TestOutcome", "UnitTestResult", "assess_unit_tests", "compile_candidate", "compile_feedback_for",
    "normalize_value", "run_unit_tests",
    "ALL_TASKS", "NUM_TASKS", "PAPER_TASKS", "UPSTREAM_COMMIT", "VeriTask", "download", "load_task", "load_tasks",
    "main", "parse_task", "task_examples",
    "INITIAL_LEAN", "JUDGE_ONLY_NOTE", "MODES", "PARAM", "SEED_PARAMS", "WEIGHTS", "Verdict", "VeriBenchEvaluator",
    "compile_only_score", "resolve_mode", "veribench_score",
    "TaskRun", "VeriBenchRun", "run", "run_task", "run_veribench", "step_scores",
    "JUDGE_ROLE", "MAX_SCORE", "JudgeVerdict", "LeanJudge", "has_declarations", "parse_verdict",
    "ENV_VAR", "INSTALL_HELP", "PAPER_TOOLCHAIN", "LeanChecker", "LeanRun", "LeanToolchain", "LeanUnavailable",
    "classify", "find_lean", "lean_status", "require_lean", "strip_misplaced_imports",
    "SORRY_WARNING", "LeanMessage", "compile_feedback", "describe", "parse_json_output", "parse_output",
    "parse_text_output", "source_context",
    "plot_pass_rates", "plot_score_curve",
    "OBJECTIVE", "PRESETS", "VeriBenchPreset", "get_preset", "make_evaluator", "make_judge", "make_problem",
    "make_roles", "setup", "task_input_text", "with_overrides",
    "REFERENCE_FILE", "paper_reference",
    "CombinedFile", "TestItem", "TestsBlock", "combined_file", "declared_names", "extract_tests",
]
