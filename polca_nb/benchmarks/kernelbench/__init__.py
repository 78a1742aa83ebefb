"""KernelBench level-1 matmul: tasks, prompts, a process-isolated kernel evaluator, fast_p.

Two backends: "cuda" (the paper's; load_inline CUDA, CUDA-event timing; needs a GPU) and "cpu"
(C++/OpenMP load_inline on shape-scaled tasks, see `CPU_SHAPES` / `shape_table()`).
"""

from .evaluate import (
    BackendUnavailable,
    KernelBenchEvaluator,
    KernelEvalError,
    KernelResult,
    backend_status,
    default_cache_dir,
    evaluate_kernel,
    require_backend,
)
from .feedback import status_of
from .metrics import best_so_far, fast_p, fast_p_curves
from .prompts import INITIAL_KERNEL, build_prompt, reference_as_candidate, sample_source
from .tasks import (
    BACKENDS,
    CPU_SHAPES,
    Backend,
    KernelTask,
    ShapeRow,
    ShapeScaling,
    load_prompt_examples,
    load_tasks,
    shape_table,
    substitute_constants,
    task_examples,
)

__all__ = [
    "BACKENDS", "Backend", "BackendUnavailable", "CPU_SHAPES", "INITIAL_KERNEL", "KernelBenchEvaluator",
    "KernelEvalError", "KernelResult", "KernelTask", "ShapeRow", "ShapeScaling", "backend_status", "best_so_far",
    "build_prompt", "default_cache_dir", "evaluate_kernel", "fast_p", "fast_p_curves", "load_prompt_examples",
    "load_tasks", "reference_as_candidate", "require_backend", "sample_source", "shape_table", "status_of",
    "substitute_constants", "task_examples",
]
