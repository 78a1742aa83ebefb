"""VeriBench presets (`smoke`, `paper`, `paper_compile`) and the one function that turns a preset into
a run's parts (one task: the Lean source as parameter, the Python program in the objective).

    parts = setup("smoke", llm)      # BenchmarkSetup for the preset's first task
    result = polca(parts.problem, parts.proposer, parts.config, summarizer=parts.summarizer, ...)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from string import Template
from typing import Any, Sequence

from ...budget import Budget
from ...llm.base import LLM
from ...problem import PolcaConfig, Problem
from ...protocols import Evaluator
from ...roles import LLMProposer, LLMSummarizer
from ...types import Example
from ..common import BenchmarkSetup, lookup_preset
from .data import ALL_TASKS, NUM_TASKS, PAPER_TASKS, VeriTask, load_task
from .evaluator import INITIAL_LEAN, MODES, PARAM, VeriBenchEvaluator, resolve_mode
from .judge import UPSTREAM_JUDGE_MAX_TOKENS, LeanJudge
from .lean import LeanChecker

OBJECTIVE = Template(
    "Translate the Python program below into one self-contained Lean 4 file (core Lean only: no Mathlib, no "
    "imports). Give the implementation, unit tests as `example`s and `#eval`s with the Python tests' expected "
    "values, a precondition, property theorems, a post-condition and a correctness theorem (proofs may be "
    "`sorry`). The file is compiled, then the reference's unit tests are run against your definitions, then a "
    "judge compares it with an expert's reference translation. The parameter $param is the whole Lean file.\n\n"
    "Python program (VeriBench task $idx):\n```python\n$python\n```")


@dataclass(frozen=True)
class VeriBenchPreset:
    """Everything that defines a VeriBench run except the LLM, the embedder and the seed.

    `iterations` counts proposal rounds; the paper's `--num_steps 20` is read as KernelBench's
    preset reads `--num-steps 11`: step 0 evaluates the seed, then 19 rounds propose (inferred).
    `mode` is the evaluator's ("auto": full score with Lean, judge-only without); `max_metric_calls`
    replaces the iteration budget (the compile-only table's 50 calls per task).
    """

    name: str
    task_indices: tuple[int, ...]
    num_candidates: int = 5
    iterations: int = 19
    eps: float = 0.02
    use_summarizer: bool = True
    mode: str = "auto"
    seeds: tuple[int, ...] = (0,)
    max_metric_calls: int | None = None
    proposer_max_tokens: int = 8192
    proposer_temperature: float = 0.7
    summarizer_max_tokens: int = 4096
    judge_max_tokens: int = UPSTREAM_JUDGE_MAX_TOKENS
    judge_temperature: float = 0.1
    judge_gold_chars: int | None = None
    feedback_chars: int = 10000
    output_chars: int = 2000
    param_chars: int = 10000
    lean_timeout_s: float = 60.0
    lean_memory_mb: int | None = 4096

    def __post_init__(self) -> None:
        indices = tuple(self.task_indices)
        if not indices or len(set(indices)) != len(indices) or \
                any(not isinstance(i, int) or not 0 <= i < NUM_TASKS for i in indices):
            raise ValueError(f"VeriBenchPreset.task_indices must be distinct ints in 0..{NUM_TASKS - 1}, "
                             f"got {self.task_indices!r}")
        object.__setattr__(self, "task_indices", indices)
        for name in ("num_candidates", "iterations", "proposer_max_tokens", "summarizer_max_tokens",
                     "judge_max_tokens", "feedback_chars", "output_chars", "param_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VeriBenchPreset.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"VeriBenchPreset.eps must be a finite number >= 0, got {self.eps!r}")
        if self.mode not in MODES:
            raise ValueError(f"VeriBenchPreset.mode must be one of {MODES}, got {self.mode!r}")
        if not self.seeds:
            raise ValueError("VeriBenchPreset.seeds must name at least one seed")
        if self.max_metric_calls is not None and self.max_metric_calls < 1:
            raise ValueError(f"VeriBenchPreset.max_metric_calls must be None or >= 1, got {self.max_metric_calls!r}")

    def polca_config(self) -> PolcaConfig:
        """K candidates, one task per sub-batch (b = m = 1), one proposal each, mean priority."""
        budget = Budget(max_metric_calls=self.max_metric_calls) if self.max_metric_calls else \
            Budget(max_iterations=self.iterations)
        return PolcaConfig(budget, num_candidates=self.num_candidates, batch_size=1, num_batches=1, num_proposals=1,
                           eps=float(self.eps), priority="mean", use_summarizer=self.use_summarizer)

    def label(self) -> str:
        """A short name that differs whenever the run's settings differ (run directories)."""
        calls = f"-calls{self.max_metric_calls}" if self.max_metric_calls else ""
        return (f"{self.name}-{self.mode}-K{self.num_candidates}-T{self.iterations}{calls}-eps{self.eps:g}"
                f"-sum{int(self.use_summarizer)}-tok{self.proposer_max_tokens}")


PRESETS: dict[str, VeriBenchPreset] = {
    # The paper's run (polca-method.md §3): 41 easy tasks, one run each, K = 5, b = m = 1, 20 steps, eps 0.02,
    # summarizer; OptoPrimeV2 max_tokens 8192 and variables up to 10000 characters; the judge as the harness
    # calls it (max 4000 tokens, temperature 0.1); Lean timeout 60 s as PyPantograph's.
    "paper": VeriBenchPreset("paper", PAPER_TASKS, num_candidates=5, iterations=19, eps=0.02, use_summarizer=True,
                             mode="auto", seeds=(0, 1, 2)),
    # The compile-only pass-rate table (polca-method.md §5.3): all 140 tasks, 50 metric calls each, 1/0 score.
    "paper_compile": VeriBenchPreset("paper_compile", ALL_TASKS, num_candidates=5, iterations=19, eps=0.02,
                                     use_summarizer=True, mode="compile", max_metric_calls=50),
    # Offline on 2 CPU cores with the 135M local model: one task, K = 2, two proposal rounds; judge prompts cut
    # the gold file to 2500 characters (the 8k-token context, prefill time). At most 14 LLM calls (8 judge,
    # 4 proposer, 2 summarizer), each 1-4 minutes on a loaded 2-core machine.
    "smoke": VeriBenchPreset("smoke", (10,), num_candidates=2, iterations=2, eps=0.02, use_summarizer=True,
                             mode="auto", proposer_max_tokens=384, summarizer_max_tokens=192, judge_max_tokens=160,
                             judge_gold_chars=2500, feedback_chars=1200, output_chars=300, param_chars=1500),
}


def get_preset(preset: str | VeriBenchPreset) -> VeriBenchPreset:
    """A preset by name, or the given VeriBenchPreset itself."""
    return lookup_preset(PRESETS, preset, "VeriBench")


def with_overrides(preset: VeriBenchPreset, **changes: Any) -> VeriBenchPreset:
    """A copy of `preset` with some fields changed (validated like a new one)."""
    unknown = sorted(set(changes) - set(asdict(preset)))
    if unknown:
        raise ValueError(f"unknown VeriBenchPreset fields {unknown}")
    return replace(preset, **changes)


def task_input_text(example: Example) -> str:
    """A task as the 'Input' of proposer and summarizer prompts: a pointer (the program is in the goal)."""
    task = example.data
    if not isinstance(task, VeriTask):
        raise ValueError(f"example.data must be a VeriTask, got {type(task).__name__} (example {example.id!r})")
    return f"VeriBench task {task.idx}: translate the Python program in the goal above into Lean 4."


def make_judge(preset: VeriBenchPreset, llm: LLM) -> LeanJudge:
    return LeanJudge(llm, max_tokens=preset.judge_max_tokens, temperature=float(preset.judge_temperature),
                     gold_chars=preset.judge_gold_chars)


def make_evaluator(preset: VeriBenchPreset, llm: LLM, checker: LeanChecker | None = None) -> VeriBenchEvaluator:
    """The preset's evaluator with its judge on `llm`. Mode "auto" is "full" when `checker` is given or
    Lean is found, else "judge"; a mode that needs Lean builds a checker (LeanUnavailable without one)."""
    mode = resolve_mode(preset.mode) if checker is None else ("full" if preset.mode == "auto" else preset.mode)
    if mode in ("full", "compile") and checker is None:
        checker = LeanChecker(timeout_s=preset.lean_timeout_s, memory_mb=preset.lean_memory_mb)
    judge = make_judge(preset, llm) if mode in ("full", "judge") else None
    return VeriBenchEvaluator(judge=judge, mode=mode, checker=checker)


def make_problem(task: VeriTask, evaluator: Evaluator, *, replicas: int = 1) -> Problem:
    """One task as a POLCA problem: params {"lean_code": ...}, seed = the paper's comment, objective = the
    translation request with the Python program; `replicas` copies of the task form the training set (so
    K sub-batches of one task can be drawn), the task itself is the validation and test set."""
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be an int >= 1, got {replicas!r}")
    example = task.to_example()
    trainset = [Example(f"{example.id}#{r}", task) for r in range(replicas)]
    objective = OBJECTIVE.substitute(param=PARAM, idx=task.idx, python=task.python_code.strip())
    return Problem(name=f"veribench-{task.idx}", seed_params={PARAM: INITIAL_LEAN}, trainset=trainset,
                   evaluator=evaluator, valset=[example], testset=[example], score_range=(0.0, 1.0),
                   objective=objective)


def make_roles(preset: VeriBenchPreset, llm: LLM, problem: Problem) -> tuple[LLMProposer, LLMSummarizer | None]:
    """The proposer (objective = the translation request) and, when the preset uses one, the summarizer."""
    proposer = LLMProposer(llm, max_tokens=preset.proposer_max_tokens, temperature=float(preset.proposer_temperature),
                           objective=problem.objective, render_input=task_input_text,
                           feedback_chars=preset.feedback_chars, output_chars=preset.output_chars, input_chars=500)
    summarizer = LLMSummarizer(llm, max_tokens=preset.summarizer_max_tokens, render_input=task_input_text,
                               param_chars=preset.param_chars, feedback_chars=preset.feedback_chars,
                               output_chars=preset.output_chars) if preset.use_summarizer else None
    return proposer, summarizer


def setup(preset: str | VeriBenchPreset, llm: LLM, *, task: VeriTask | int | None = None,
          evaluator: Evaluator | None = None, tasks: Sequence[VeriTask] | None = None,
          **overrides: Any) -> BenchmarkSetup:
    """Problem, config, proposer and summarizer of one task's POLCA run. `task` is a VeriTask or an idx
    (default: the preset's first), looked up in `tasks` or loaded; `evaluator` defaults to
    `make_evaluator(preset, llm)`; `overrides` replace PolcaConfig fields. Makes no LLM call."""
    settings = get_preset(preset)
    if not isinstance(task, VeriTask):
        idx = settings.task_indices[0] if task is None else task
        by_idx = {t.idx: t for t in tasks} if tasks is not None else {}
        task = by_idx[idx] if idx in by_idx else load_task(idx)
    evaluator = evaluator if evaluator is not None else make_evaluator(settings, llm)
    problem = make_problem(task, evaluator, replicas=settings.num_candidates)
    proposer, summarizer = make_roles(settings, llm, problem)
    config = replace(settings.polca_config(), **overrides)
    return BenchmarkSetup(problem, config, proposer, summarizer if config.use_summarizer else None)
