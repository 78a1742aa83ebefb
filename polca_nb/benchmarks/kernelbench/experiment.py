"""POLCA over KernelBench tasks: presets, one run per task, per-step best speedups and fast_p curves.

    setup = PRESETS["smoke"]
    run = run_kernelbench(setup, llm, embedder=default_embedder(), runs_dir="build/runs")
    run.fast_p_curves()        # {0.5: array over proposal steps, 1.0: ...}

A "proposal step" is one POLCA iteration (explore, propose, validate). Step 0 is the seed program,
the paper's dummy comment, which scores 0; step s >= 1 is the state after s iterations. The score of
a task at step s is the empirical mean of the best-by-mean candidate then (what POLCA returns), and
curves take its running maximum, as the paper's "highest score so far" plots do (polca-method.md §2.5).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...budget import Budget
from ...llm.base import LLM
from ...protocols import Embedder, Evaluator
from ...roles.summarizer import LLMSummarizer
from ...runner import PolcaConfig, RunResult, polca
from ...types import Candidate
from .evaluate import AllcloseOrder, KernelBenchEvaluator, check_allclose_order
from .feedback import RuntimeStatistic, check_runtime_statistic
from .metrics import best_so_far, fast_p_curves
from .problem import KernelProposer, ScreenedKernelEvaluator, kernel_problem, task_input_text
from .tasks import BACKENDS, Backend, KernelTask, load_tasks

REFERENCE_FILE = Path(__file__).resolve().parents[2] / "reference" / "kernelbench.json"
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


@dataclass(frozen=True)
class TaskRun:
    """One task's POLCA run: the run result, its per-step scores and how the evaluations went."""

    task: KernelTask
    result: RunResult
    step_scores: tuple[float, ...]
    evaluation_counts: dict[str, int]
    seconds: float

    @property
    def best_speedup(self) -> float:
        """The running-max score at the last step (0 when nothing was ever correct)."""
        return float(best_so_far([self.step_scores])[0, -1])

    @property
    def best_candidate(self) -> Candidate:
        """The candidate POLCA returns: best empirical mean in memory."""
        return self.result.best

    def summary(self) -> dict[str, Any]:
        best = self.best_candidate
        return {"idx": self.task.idx, "problem_id": self.task.problem_id, "name": self.task.name,
                "best_speedup": round(self.best_speedup, 4), "best_id": best.id,
                "best_n": best.n, "memory": len(self.result.memory), "iterations": self.result.spent.iterations,
                "metric_calls": self.result.spent.metric_calls, **self.evaluation_counts,
                "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class KernelBenchRun:
    """POLCA over several tasks with one setup."""

    setup: KernelBenchSetup
    tasks: tuple[TaskRun, ...]

    def step_scores(self) -> list[list[float]]:
        """step_scores[task][step], in task order (the input of `fast_p_curves`)."""
        return [list(t.step_scores) for t in self.tasks]

    def fast_p_curves(self, ps: Sequence[float] = (0.5, 1.0)) -> dict[float, np.ndarray]:
        """fast_p at each proposal step (index = step) over the tasks of this run."""
        return fast_p_curves(self.step_scores(), ps)

    def best_speedups(self) -> dict[int, float]:
        return {t.task.idx: t.best_speedup for t in self.tasks}

    def rows(self) -> list[dict[str, Any]]:
        return [t.summary() for t in self.tasks]


def step_scores(result: RunResult) -> tuple[float, ...]:
    """Score per proposal step of a run: step 0 the seed's mean on its first exploration, step s the
    mean of the best-by-mean candidate after iteration s - 1 (0 where no mean exists yet)."""
    seed_candidate = result.memory.candidates.get(0)
    first = [r.score for r in seed_candidate.rollouts if r.step == 0] if seed_candidate is not None else []
    scores = [float(np.mean(first)) if first else 0.0]
    for stats in result.history:
        scores.append(float(stats.best_mean) if stats.best_mean is not None else 0.0)
    return tuple(scores)


def run_task(
    task: KernelTask,
    setup: KernelBenchSetup,
    llm: LLM,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = False,
) -> TaskRun:
    """Run POLCA on one task. `evaluator` defaults to `setup.evaluator()`; pass one to reuse its build-
    failure memo across tasks or to test with a stub. A finished `run_dir` is loaded, not recomputed."""
    evaluator = evaluator if evaluator is not None else setup.evaluator()
    problem = kernel_problem(task, evaluator, setup.backend, replicas=setup.num_candidates)
    proposer = KernelProposer(llm, max_tokens=setup.proposer_max_tokens,
                              temperature=float(setup.proposer_temperature), objective=problem.objective,
                              render_input=task_input_text, feedback_chars=setup.feedback_chars,
                              output_chars=setup.output_chars, input_chars=1000)
    summarizer = LLMSummarizer(llm, max_tokens=setup.summarizer_max_tokens, render_input=task_input_text,
                               param_chars=setup.param_chars, feedback_chars=setup.feedback_chars,
                               output_chars=setup.output_chars) if setup.use_summarizer else None
    before = evaluator.counts() if isinstance(evaluator, ScreenedKernelEvaluator) else {}
    started = time.perf_counter()
    result = polca(problem, proposer, setup.polca_config(), embedder=embedder if setup.eps > 0 else None,
                   summarizer=summarizer, seed=seed, run_dir=run_dir, progress=progress,
                   extra_log=_ledger_snapshot(llm), llm=llm)
    seconds = time.perf_counter() - started
    after = evaluator.counts() if isinstance(evaluator, ScreenedKernelEvaluator) else {}
    counts = {k: after[k] - before.get(k, 0) for k in after}
    return TaskRun(task, result, step_scores(result), counts, seconds)


def run_kernelbench(
    setup: KernelBenchSetup,
    llm: LLM,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    runs_dir: str | Path | None = None,
    tasks: Sequence[KernelTask] | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    on_task: Callable[[TaskRun], None] | None = None,
) -> KernelBenchRun:
    """POLCA on every task of `setup.task_indices`, one after another (the paper ran one thread).

    Task idx runs with seed `seed + idx`. Run directories are
    `<runs_dir>/kernelbench-<setup.label()>-seed<seed>/task<idx>`, so rerunning the same setup resumes
    or reloads; `tasks` defaults to `load_tasks()`. One evaluator serves all tasks (its memo is per task).
    """
    all_tasks = list(tasks) if tasks is not None else load_tasks()
    by_idx = {t.idx: t for t in all_tasks}
    missing = [i for i in setup.task_indices if i not in by_idx]
    if missing:
        raise ValueError(f"setup.task_indices {missing} are not among the given tasks {sorted(by_idx)}")
    evaluator = evaluator if evaluator is not None else setup.evaluator()
    base = Path(runs_dir) / f"kernelbench-{setup.label()}-seed{seed}" if runs_dir is not None else None
    done: list[TaskRun] = []
    for position, idx in enumerate(setup.task_indices):
        if progress:
            print(f"task {idx} ({position + 1}/{len(setup.task_indices)}): {by_idx[idx].name}", flush=True)
        task_run = run_task(by_idx[idx], setup, llm, embedder=embedder, seed=seed + idx,
                            run_dir=base / f"task{idx}" if base is not None else None, evaluator=evaluator,
                            progress=progress)
        done.append(task_run)
        if on_task is not None:
            on_task(task_run)
    return KernelBenchRun(setup, tuple(done))


def _ledger_snapshot(llm: LLM) -> Callable[[], dict[str, Any]] | None:
    ledger = getattr(llm, "ledger", None)
    if ledger is None or not hasattr(ledger, "snapshot"):
        return None
    return lambda: {"ledger": ledger.snapshot()}


def load_reference(path: str | Path | None = None) -> dict[str, Any]:
    """The paper's KernelBench numbers (`polca_nb/reference/kernelbench.json`, each with its source)."""
    return json.loads(Path(path or REFERENCE_FILE).read_text(encoding="utf-8"))


def with_overrides(setup: KernelBenchSetup, **changes: Any) -> KernelBenchSetup:
    """A copy of `setup` with some fields changed (validated like a new one)."""
    unknown = sorted(set(changes) - set(asdict(setup)))
    if unknown:
        raise ValueError(f"unknown KernelBenchSetup fields {unknown}")
    return replace(setup, **changes)
