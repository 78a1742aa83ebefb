"""KernelBench level-1 matmul: tasks, prompts, a process-isolated kernel evaluator, fast_p.

Two backends: "cuda" (the paper's; load_inline CUDA, CUDA-event timing; needs a GPU) and "cpu"
(C++/OpenMP load_inline on shape-scaled tasks, see `CPU_SHAPES` / `shape_table()`).

The benchmark shape (polca_nb/benchmarks/README.md): `data` (`load_tasks`, `download`), `evaluator`
(`KernelBenchEvaluator`, `ScreenedKernelEvaluator`), `presets` (`PRESETS`, `setup`), `experiment`
(`run`, `run_kernelbench`), `reference`, `plots`; beside them `evaluate` (the isolated build and run of
one kernel), `_worker`, `feedback`, `metrics` (fast_p), `prompts`, `proposer`, `sources`, `shapes`.
"""

from .data import (
    BACKENDS,
    Backend,
    KernelTask,
    ShapeRow,
    download,
    load_prompt_examples,
    load_tasks,
    shape_table,
    task_examples,
)
from .evaluate import (
    BackendUnavailable,
    KernelEvalError,
    KernelResult,
    backend_status,
    default_cache_dir,
    evaluate_kernel,
    require_backend,
)
from .evaluator import PARAM, SEED_PARAMS, KernelBenchEvaluator, ScreenedKernelEvaluator
from .experiment import KernelBenchRun, TaskRun, run, run_kernelbench, run_task
from .feedback import status_of
from .metrics import best_so_far, fast_p, fast_p_curves
from .presets import PRESETS, KernelBenchSetup, kernel_problem, setup
from .prompts import INITIAL_KERNEL, build_prompt, reference_as_candidate, sample_source
from .reference import load_reference, paper_reference
from .shapes import CPU_SHAPES, ShapeScaling, substitute_constants

__all__ = [
    "BACKENDS", "Backend", "BackendUnavailable", "CPU_SHAPES", "INITIAL_KERNEL", "KernelBenchEvaluator",
    "KernelEvalError", "KernelResult", "KernelTask", "ShapeRow", "ShapeScaling", "backend_status", "best_so_far",
    "build_prompt", "default_cache_dir", "evaluate_kernel", "fast_p", "fast_p_curves", "load_prompt_examples",
    "load_tasks", "reference_as_candidate", "require_backend", "sample_source", "shape_table", "status_of",
    "substitute_constants", "task_examples",
    "KernelBenchRun", "KernelBenchSetup", "PARAM", "PRESETS", "SEED_PARAMS", "ScreenedKernelEvaluator", "TaskRun",
    "download", "kernel_problem", "load_reference", "paper_reference", "run", "run_kernelbench", "run_task", "setup",
]
