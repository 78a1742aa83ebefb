"""The KernelBench task prompt (problem statement, one-shot example, architecture, ModelNew
instruction), written in our own words; templates live in `prompts/*.txt` next to this file.

CUDA uses KernelBench's one-shot elementwise-add pair from the data folder; CPU uses our C++/OpenMP
version of the same example and the shape-scaled reference, so the model sees the sizes it is timed on.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from .data import Backend, KernelTask, check_backend, load_prompt_examples

PROMPTS_DIR = Path(__file__).with_name("prompts")
SAMPLE_NAMES = ("cpu_example_new_add", "cpp_square_matmul")


def template(backend: Backend) -> Template:
    check_backend(backend)
    return Template((PROMPTS_DIR / f"{backend}_prompt.txt").read_text(encoding="utf-8"))


def sample_source(name: str) -> str:
    """A bundled Python source from prompts/ (the CPU one-shot example, the sanity C++ matmul)."""
    if name not in SAMPLE_NAMES:
        raise ValueError(f"sample name must be one of {SAMPLE_NAMES}, got {name!r}")
    return (PROMPTS_DIR / f"{name}.py").read_text(encoding="utf-8")


def _strip_cuda_calls(source: str) -> str:
    return re.sub(r"\.cuda\(\)", "", source)


def build_prompt(task: KernelTask, backend: Backend = "cpu", data_dir: str | Path | None = None) -> str:
    """The full task prompt for one task; `data_dir` locates KernelBench's one-shot example."""
    check_backend(backend)
    example_arch, example_new_arch = load_prompt_examples(data_dir)
    if backend == "cpu":
        example_arch, example_new_arch = _strip_cuda_calls(example_arch), sample_source("cpu_example_new_add")
    return template(backend).substitute(
        example_arch=example_arch.strip(), example_new_arch=example_new_arch.strip(), arch=task.source(backend).strip())


def reference_as_candidate(task: KernelTask, backend: Backend = "cpu") -> str:
    """The reference itself submitted as ModelNew (pure torch): the 'speedup about 1' sanity candidate."""
    return task.source(backend).rstrip() + "\n\n\nclass ModelNew(Model):\n    pass\n"


INITIAL_KERNEL = "# ModelNew goes here: a complete Python module that defines class ModelNew.\n"
"""A placeholder starting parameter (like the paper's dummy comment); it scores 0 (no ModelNew)."""
