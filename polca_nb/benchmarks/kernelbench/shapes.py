"""The explicit paper -> CPU shape scaling of the KernelBench tasks, and the constant substitution it uses.

The paper's shapes (KernelBench @ 6b1cea28) allocate up to gigabytes and take seconds per forward on a
laptop CPU, so the CPU backend substitutes smaller module-level size constants into the reference
source text. The substitution is a table in code (`CPU_SHAPES`), checked against the data: every
paper value in the table must equal the value the reference source assigns.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from .data import Backend


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

