"""KernelBench presets (`smoke`, `paper`) and the one function that turns a preset into a run's parts.

    parts = setup("smoke", llm)     # BenchmarkSetup for the preset's first task
    result = polca(parts.problem, parts.proposer, parts.config, summarizer=parts.summarizer, ...)

`KernelBenchSetup` holds everything that defines a run except the LLM, the embedder and the seed;
`kernel_problem` is one task as a POLCA Problem (the paper's shape: one task, the kernel as parameter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from ...budget import Budget
from ...llm.base import LLM
from ...problem import PolcaConfig, Problem
from ...protocols import Evaluator
from ...roles.summarizer import LLMSummarizer
from ...types import Example
from ..common import BenchmarkSetup, lookup_preset
from .data import BACKENDS, Backend, KernelTask, check_backend, load_tasks
from .evaluate import AllcloseOrder, check_allclose_order
from .evaluator import PARAM, ScreenedKernelEvaluator, KernelBenchEvaluator
from .feedback import RuntimeStatistic, check_runtime_statistic
from .prompts import INITIAL_KERNEL, build_prompt
from .proposer import KernelProposer, task_input_text

NUM_TASKS = 16


@dataclass(frozen=True)
class KernelBenchSetup:
    """Everything that defines a KernelBench POLCA run except the LLM, the embedder and the seed.

    `iterations` counts proposal rounds: the paper's `--num-steps 11` is step 0 (the seed is
    evaluated) plus 10 rounds that propose. Evaluation settings go to `KernelBenchEvaluator`;
    `runtime_statistic` "mean" is upstream's (3-significant-figure mean of the timing trials),
    "median" the former choice; `allclose_order` "reference_first" is upstream's
    torch.allclose(reference, candidate), "candidate_first" the former order.
    """

    backend: Backend = "cpu"
    task_indices: tuple[int, ...] = (9,)
    num_candidates: int = 1
    iterations: int = 1
    eps: float = 0.02
    use_summarizer: bool = True
    proposer_max_tokens: int = 1024
    proposer_temperature: float = 0.7
    summarizer_max_tokens: int = 1024
    feedback_chars: int = 2000
    output_chars: int = 600
    param_chars: int = 4000
    timeout_s: float = 300.0
    num_correct_trials: int = 1
    num_warmup: int = 2
    num_perf_trials: int = 5
    runtime_statistic: RuntimeStatistic = "mean"
    allclose_order: AllcloseOrder = "reference_first"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"KernelBenchSetup.backend must be one of {BACKENDS}, got {self.backend!r}")
        indices = tuple(self.task_indices)
        if not indices or any(not isinstance(i, int) or not 0 <= i < NUM_TASKS for i in indices) \
                or len(set(indices)) != len(indices):
            raise ValueError(f"KernelBenchSetup.task_indices must be distinct ints in 0..{NUM_TASKS - 1}, "
                             f"got {self.task_indices!r}")
        object.__setattr__(self, "task_indices", indices)
        for name in ("num_candidates", "iterations", "proposer_max_tokens", "summarizer_max_tokens",
                     "feedback_chars", "output_chars", "param_chars", "num_correct_trials", "num_perf_trials"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"KernelBenchSetup.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.num_warmup, int) or self.num_warmup < 0:
            raise ValueError(f"KernelBenchSetup.num_warmup must be an int >= 0, got {self.num_warmup!r}")
        if not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"KernelBenchSetup.eps must be a finite number >= 0, got {self.eps!r}")
        if not isinstance(self.proposer_temperature, (int, float)) or not 0 <= self.proposer_temperature <= 2:
            raise ValueError(f"KernelBenchSetup.proposer_temperature must be in [0, 2], "
                             f"got {self.proposer_temperature!r}")
        if not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise ValueError(f"KernelBenchSetup.timeout_s must be > 0, got {self.timeout_s!r}")
        try:
            check_runtime_statistic(self.runtime_statistic)
            check_allclose_order(self.allclose_order)
        except ValueError as exc:
            raise ValueError(f"KernelBenchSetup.{exc}") from None

    def polca_config(self) -> PolcaConfig:
        """The loop's settings: K candidates, one task per sub-batch (b = m = 1), one proposal each."""
        return PolcaConfig(Budget(max_iterations=self.iterations), num_candidates=self.num_candidates,
                           batch_size=1, num_batches=1, num_proposals=1, eps=float(self.eps), priority="mean",
                           use_summarizer=self.use_summarizer)

    def evaluator(self) -> ScreenedKernelEvaluator:
        """The screened, process-isolated evaluator (raises BackendUnavailable if the backend cannot run)."""
        return ScreenedKernelEvaluator(KernelBenchEvaluator(
            backend=self.backend, timeout_s=float(self.timeout_s), num_correct_trials=self.num_correct_trials,
            num_warmup=self.num_warmup, num_perf_trials=self.num_perf_trials,
            runtime_statistic=self.runtime_statistic, allclose_order=self.allclose_order))

    def label(self) -> str:
        """A short name that differs whenever the run's settings differ (used for run directories);
        evaluation choices other than upstream's add a suffix (e.g. "-rtmedian")."""
        label = (f"{self.backend}-K{self.num_candidates}-T{self.iterations}-eps{self.eps:g}"
                 f"-sum{int(self.use_summarizer)}-tok{self.proposer_max_tokens}-temp{self.proposer_temperature:g}")
        if self.runtime_statistic != "mean":
            label += f"-rt{self.runtime_statistic}"
        if self.allclose_order != "reference_first":
            label += f"-ac{self.allclose_order}"
        return label


PRESETS: dict[str, KernelBenchSetup] = {
    # The paper's run (polca-method.md §3): 16 tasks, K = 5, b = m = 1, eps 0.02, summarizer on, CUDA,
    # OptoPrimeV2 with max_tokens 8192 and up to 10000 characters of a variable; the guide's
    # 1 correctness and 5 timing trials, speedup from the 3-significant-figure mean runtimes,
    # correctness by torch.allclose(reference, candidate, atol=rtol=1e-2).
    "paper": KernelBenchSetup(backend="cuda", task_indices=tuple(range(NUM_TASKS)), num_candidates=5,
                              iterations=10, eps=0.02, use_summarizer=True, proposer_max_tokens=8192,
                              summarizer_max_tokens=4096, feedback_chars=10000, output_chars=2000,
                              param_chars=10000, timeout_s=600.0, runtime_statistic="mean",
                              allclose_order="reference_first"),
    # Offline on 2 CPU cores: one task (square matmul, N = 512), K = 1, 2 rounds. A cold C++ build
    # costs about a minute, so the run is kept to at most two builds; everything else is cheap.
    "smoke": KernelBenchSetup(backend="cpu", task_indices=(9,), num_candidates=1, iterations=2, eps=0.02,
                              use_summarizer=True, proposer_max_tokens=768, summarizer_max_tokens=384,
                              feedback_chars=1200, output_chars=300, param_chars=2000, timeout_s=180.0),
}


def with_overrides(setup: KernelBenchSetup, **changes: Any) -> KernelBenchSetup:
    """A copy of `setup` with some fields changed (validated like a new one)."""
    unknown = sorted(set(changes) - set(asdict(setup)))
    if unknown:
        raise ValueError(f"unknown KernelBenchSetup fields {unknown}")
    return replace(setup, **changes)


def kernel_problem(task: KernelTask, evaluator: Evaluator, backend: Backend = "cpu", *,
                   replicas: int = 1) -> Problem:
    """The POLCA problem for one task: params {"kernel": source}, seed = a dummy comment, objective =
    the task prompt, the task as training and validation example.

    `replicas` copies of the task (ids `<task id>#r`) form the training set, so that exploring fewer
    than K candidates can still draw K sub-batches of one task, as the paper's sampler does.
    """
    check_backend(backend)
    if not isinstance(task, KernelTask):
        raise ValueError(f"task must be a KernelTask, got {type(task).__name__}")
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be an int >= 1, got {replicas!r}")
    example = task.to_example()
    trainset = [Example(f"{example.id}#{r}", task) for r in range(replicas)]
    return Problem(
        name=f"kernelbench-{task.idx}-{backend}",
        seed_params={PARAM: INITIAL_KERNEL},
        trainset=trainset,
        evaluator=evaluator,
        valset=[example],
        score_range=None,  # a speedup has no upper bound; the mean priority needs none
        objective=build_prompt(task, backend),
    )


def get_preset(preset: str | KernelBenchSetup) -> KernelBenchSetup:
    """A preset by name ("smoke", "paper"), or the given KernelBenchSetup itself."""
    return lookup_preset(PRESETS, preset, "KernelBench")


def make_roles(settings: KernelBenchSetup, llm: LLM, problem: Problem) -> tuple[KernelProposer, LLMSummarizer | None]:
    """The proposer (objective = the task prompt) and, when the preset uses one, the summarizer."""
    proposer = KernelProposer(llm, max_tokens=settings.proposer_max_tokens,
                              temperature=float(settings.proposer_temperature), objective=problem.objective,
                              render_input=task_input_text, feedback_chars=settings.feedback_chars,
                              output_chars=settings.output_chars, input_chars=1000)
    summarizer = LLMSummarizer(llm, max_tokens=settings.summarizer_max_tokens, render_input=task_input_text,
                               param_chars=settings.param_chars, feedback_chars=settings.feedback_chars,
                               output_chars=settings.output_chars) if settings.use_summarizer else None
    return proposer, summarizer


def setup(preset: str | KernelBenchSetup, llm: LLM, *, task: KernelTask | int | None = None,
          tasks: Sequence[KernelTask] | None = None, evaluator: Evaluator | None = None,
          **overrides: Any) -> BenchmarkSetup:
    """Problem, config, proposer and summarizer of one task's POLCA run (what `experiment.run_task` builds).

    `task` is a KernelTask or an idx (default: the preset's first task) looked up in `tasks` (default
    `load_tasks()`); `evaluator` defaults to `preset.evaluator()` (which raises BackendUnavailable when
    the backend cannot run here); `overrides` replace PolcaConfig fields. Makes no LLM call."""
    settings = get_preset(preset)
    if not isinstance(task, KernelTask):
        idx = settings.task_indices[0] if task is None else task
        by_idx = {t.idx: t for t in (tasks if tasks is not None else load_tasks())}
        if idx not in by_idx:
            raise ValueError(f"task {idx!r} is not among the given tasks {sorted(by_idx)}")
        task = by_idx[idx]
    evaluator = evaluator if evaluator is not None else settings.evaluator()
    problem = kernel_problem(task, evaluator, settings.backend, replicas=settings.num_candidates)
    proposer, summarizer = make_roles(settings, llm, problem)
    config = replace(settings.polca_config(), **overrides)
    return BenchmarkSetup(problem, config, proposer, summarizer if config.use_summarizer else None)
