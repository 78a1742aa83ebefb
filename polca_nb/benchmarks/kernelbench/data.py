"""KernelBench level-1 matmul tasks and the explicit paper -> CPU shape scaling.

The paper's shapes (KernelBench @ 6b1cea28) allocate up to gigabytes and take seconds per forward on a
laptop CPU, so the CPU backend substitutes smaller module-level size constants into the reference
source text. The substitution is a table in code (`CPU_SHAPES`), checked against the data: every
paper value in the table must equal the value the reference source assigns.
"""

from __future__ import annotations

import ast
import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from ...data import data_dir as default_data_dir, require
from ...types import Example

Backend = Literal["cpu", "cuda"]
BACKENDS: tuple[Backend, ...] = ("cpu", "cuda")

TASKS_FILE = "kernelbench/level1_matmul.json"
EXAMPLES_DIR = "kernelbench/prompt_examples"
HOW_TO_GET = (
    "copy kernelbench/level1_matmul.json and kernelbench/prompt_examples/ from the shared data folder "
    "(upstream: ScalingIntelligence/KernelBench @ 6b1cea28, KernelBench/level1/ and src/prompts/)"
)


@dataclass(frozen=True)
class ShapeScaling:
    """Module-level size constants of one reference: paper value -> CPU value, by constant name."""

    problem_id: int
    name: str
    paper: Mapping[str, int]
    cpu: Mapping[str, int]

    def __post_init__(self) -> None:
        if set(self.paper) != set(self.cpu):
            raise ValueError(
                f"ShapeScaling {self.name}: paper constants {sorted(self.paper)} != cpu constants {sorted(self.cpu)}"
            )
        for const, value in self.cpu.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ShapeScaling {self.name}: cpu[{const!r}] must be a positive int, got {value!r}")

    def sizes(self, backend: Backend) -> Mapping[str, int]:
        return self.paper if backend == "cuda" else self.cpu


# Keyed by KernelBench problem id (the number in the upstream file name), not by our idx, so the
# table reads like the upstream file list. CPU sizes keep each task's character (a huge K, a tiny K,
# tall-skinny, irregular non-multiple-of-8 sizes, 4D/3D batching) at roughly 0.2-0.5 GFLOP each,
# i.e. a few milliseconds for the MKL reference on 2 cores and well under a second for a naive loop.
CPU_SHAPES: dict[int, ShapeScaling] = {
    s.problem_id: s
    for s in (
        ShapeScaling(1, "1_Square_matrix_multiplication_", {"N": 4096}, {"N": 512}),
        ShapeScaling(2, "2_Standard_matrix_multiplication_",
                     {"M": 2048, "K": 8192, "N": 4096}, {"M": 256, "K": 1024, "N": 512}),
        ShapeScaling(3, "3_Batched_matrix_multiplication",
                     {"batch_size": 128, "m": 512, "k": 1024, "n": 2048},
                     {"batch_size": 8, "m": 128, "k": 256, "n": 512}),
        ShapeScaling(6, "6_Matmul_with_large_K_dimension_",
                     {"M": 256, "N": 256, "K": 524288}, {"M": 64, "N": 64, "K": 32768}),
        ShapeScaling(7, "7_Matmul_with_small_K_dimension_",
                     {"M": 32768, "N": 32768, "K": 64}, {"M": 2048, "N": 2048, "K": 64}),
        ShapeScaling(8, "8_Matmul_with_irregular_shapes_",
                     {"M": 8205, "K": 2949, "N": 5921}, {"M": 821, "K": 295, "N": 593}),
        ShapeScaling(9, "9_Tall_skinny_matrix_multiplication_", {"M": 32768, "N": 32}, {"M": 2048, "N": 32}),
        ShapeScaling(10, "10_3D_tensor_matrix_multiplication",
                     {"N": 16, "M": 1024, "K": 2048, "L": 768}, {"N": 4, "M": 256, "K": 512, "L": 192}),
        ShapeScaling(11, "11_4D_tensor_matrix_multiplication",
                     {"b": 8, "i": 256, "j": 512, "l": 256, "k": 768},
                     {"b": 2, "i": 64, "j": 128, "l": 64, "k": 192}),
        ShapeScaling(12, "12_Matmul_with_diagonal_matrices_", {"M": 4096, "N": 4096}, {"M": 512, "N": 512}),
        ShapeScaling(13, "13_Matmul_for_symmetric_matrices", {"N": 4096}, {"N": 512}),
        ShapeScaling(14, "14_Matmul_for_upper_triangular_matrices", {"N": 4096}, {"N": 512}),
        ShapeScaling(15, "15_Matmul_for_lower_triangular_matrices", {"M": 4096}, {"M": 512}),
        ShapeScaling(16, "16_Matmul_with_transposed_A",
                     {"M": 2048, "K": 8192, "N": 4096}, {"M": 256, "K": 1024, "N": 512}),
        ShapeScaling(17, "17_Matmul_with_transposed_B",
                     {"M": 2048, "K": 8192, "N": 4096}, {"M": 256, "K": 1024, "N": 512}),
        ShapeScaling(18, "18_Matmul_with_transposed_both",
                     {"M": 2048, "K": 8192, "N": 4096}, {"M": 256, "K": 1024, "N": 512}),
    )
}


@dataclass(frozen=True)
class KernelTask:
    """One KernelBench problem. `ref_arch_src` is the paper-version reference (defines Model,
    get_inputs, get_init_inputs); `source(backend)` gives the one a backend evaluates and prompts with."""

    idx: int
    level: int
    problem_id: int
    name: str
    ref_arch_src: str

    @property
    def scaling(self) -> ShapeScaling:
        try:
            return CPU_SHAPES[self.problem_id]
        except KeyError:
            raise ValueError(f"no CPU shape scaling for problem_id={self.problem_id} ({self.name})") from None

    def source(self, backend: Backend) -> str:
        """Reference source for `backend`: the paper's for cuda, the shape-scaled one for cpu."""
        check_backend(backend)
        if backend == "cuda":
            return self.ref_arch_src
        return substitute_constants(self.ref_arch_src, self.scaling.cpu)

    def sizes(self, backend: Backend) -> Mapping[str, int]:
        check_backend(backend)
        return self.scaling.sizes(backend)

    @property
    def example_id(self) -> str:
        return f"kernelbench/{self.idx}"

    def to_example(self) -> Example:
        return Example(id=self.example_id, data=self)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def load_tasks(data_dir: str | Path | None = None) -> list[KernelTask]:
    """The 16 level-1 matmul tasks in the paper's index order (idx 0..15)."""
    path = Path(data_dir) / TASKS_FILE if data_dir is not None else require(TASKS_FILE, HOW_TO_GET)
    if not path.exists():
        raise FileNotFoundError(f"KernelBench tasks not found: {path}; {HOW_TO_GET}")
    rows = json.loads(path.read_text(encoding="utf-8"))
    tasks = [
        KernelTask(idx=int(r["idx"]), level=int(r["level"]), problem_id=int(r["problem_id"]),
                   name=str(r["name"]), ref_arch_src=str(r["ref_arch_src"]))
        for r in rows
    ]
    tasks.sort(key=lambda t: t.idx)
    if [t.idx for t in tasks] != list(range(len(tasks))):
        raise ValueError(f"{path}: idx must run 0..{len(tasks) - 1}, got {[t.idx for t in tasks]}")
    return tasks


def task_examples(tasks: list[KernelTask] | None = None) -> list[Example]:
    """Tasks wrapped as `Example`s for the search loop (`data` is the KernelTask)."""
    return [t.to_example() for t in (tasks if tasks is not None else load_tasks())]


def load_prompt_examples(data_dir: str | Path | None = None) -> tuple[str, str]:
    """KernelBench's one-shot pair: (reference elementwise-add model, its CUDA ModelNew)."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = base / EXAMPLES_DIR
    arch, new_arch = folder / "model_ex_add.py", folder / "model_new_ex_add.py"
    for path in (arch, new_arch):
        if not path.exists():
            raise FileNotFoundError(f"KernelBench prompt example not found: {path}; {HOW_TO_GET}")
    return arch.read_text(encoding="utf-8"), new_arch.read_text(encoding="utf-8")


# --- constant substitution ----------------------------------------------------------------------

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


def _eval_int_expr(node: ast.expr) -> int:
    """Value of an integer-arithmetic expression like `1024 * 2` (no names, no calls)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_int_expr(node.left), _eval_int_expr(node.right))
    raise ValueError(f"not an integer constant expression: {ast.unparse(node)!r}")


def _module_constant_assignments(source: str) -> dict[str, list[ast.Assign]]:
    found: dict[str, list[ast.Assign]] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            found.setdefault(stmt.targets[0].id, []).append(stmt)
    return found


def module_constants(source: str, names: list[str] | None = None) -> dict[str, int]:
    """Integer values of module-level size constants (all integer ones, or exactly `names`)."""
    assignments = _module_constant_assignments(source)
    values: dict[str, int] = {}
    for name, stmts in assignments.items():
        if names is not None and name not in names:
            continue
        try:
            values[name] = _eval_int_expr(stmts[-1].value)
        except ValueError:
            if names is not None:
                raise
    if names is not None:
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"source has no module-level integer constant(s) {missing}")
    return values


def substitute_constants(source: str, sizes: Mapping[str, int]) -> str:
    """Rewrite the module-level `NAME = <int expr>` lines for `sizes` to `NAME = value`.

    Each name must be assigned exactly once at module level, so the rewritten text is also what
    executes; get_inputs reads the constants at call time and so builds the substituted shapes.
    """
    assignments = _module_constant_assignments(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    for name, value in sizes.items():
        stmts = assignments.get(name, [])
        if len(stmts) != 1:
            raise ValueError(f"constant {name!r} must be assigned exactly once at module level, found {len(stmts)}")
        stmt = stmts[0]
        _eval_int_expr(stmt.value)  # refuse to overwrite anything but a plain size constant
        if stmt.end_lineno is None or stmt.col_offset != 0:
            raise ValueError(f"constant {name!r} is not a plain top-level line")
        edits.append((stmt.lineno - 1, stmt.end_lineno, f"{name} = {int(value)}\n"))
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text]
    return "".join(lines)


# --- shapes, for display ------------------------------------------------------------------------

@dataclass(frozen=True)
class ShapeRow:
    """One row of the paper-vs-CPU shape table (what the notebook shows)."""

    idx: int
    problem_id: int
    name: str
    paper_sizes: dict[str, int]
    cpu_sizes: dict[str, int]
    paper_input_shapes: list[tuple[int, ...]]
    cpu_input_shapes: list[tuple[int, ...]]
    paper_output_shape: tuple[int, ...]
    cpu_output_shape: tuple[int, ...]
    paper_input_mb: float
    cpu_input_mb: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _shapes_on_meta(source: str) -> tuple[list[tuple[int, ...]], tuple[int, ...], float]:
    """Input shapes, output shape and input megabytes of a reference, computed on the meta device
    (no memory is allocated, so the paper's multi-GB shapes are free to inspect)."""
    import torch

    namespace: dict[str, Any] = {"__name__": "kernelbench_reference"}
    exec(compile(source, "<reference>", "exec"), namespace)  # our own pinned data, never model output
    with torch.device("meta"):
        inputs = namespace["get_inputs"]()
        model = namespace["Model"](*namespace["get_init_inputs"]())
        output = model(*inputs)
    shapes = [tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor)]
    megabytes = sum(x.numel() * x.element_size() for x in inputs if isinstance(x, torch.Tensor)) / 2**20
    return shapes, tuple(output.shape), megabytes


def shape_table(tasks: list[KernelTask] | None = None) -> list[ShapeRow]:
    """Paper vs CPU sizes, input/output shapes and input MB for every task (needs torch)."""
    rows = []
    for task in tasks if tasks is not None else load_tasks():
        paper_in, paper_out, paper_mb = _shapes_on_meta(task.source("cuda"))
        cpu_in, cpu_out, cpu_mb = _shapes_on_meta(task.source("cpu"))
        rows.append(ShapeRow(
            idx=task.idx, problem_id=task.problem_id, name=task.name,
            paper_sizes=dict(task.scaling.paper), cpu_sizes=dict(task.scaling.cpu),
            paper_input_shapes=paper_in, cpu_input_shapes=cpu_in,
            paper_output_shape=paper_out, cpu_output_shape=cpu_out,
            paper_input_mb=round(paper_mb, 2), cpu_input_mb=round(cpu_mb, 2),
        ))
    return rows
