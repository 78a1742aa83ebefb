"""KernelBench level-1 matmul tasks: the loader, the one-shot prompt example, and the download command.

    tasks = load_tasks()            # 16 KernelTasks in the paper's index order, from <data dir>/kernelbench/
    python -m polca_nb.benchmarks.kernelbench.data download [--dest DIR]

The shape scaling the CPU backend uses lives in `shapes.py`; `shape_table` (here) shows it per task.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from ...data import data_dir as default_data_dir, download_dir, require
from ...types import Example
from .shapes import CPU_SHAPES, ShapeScaling, substitute_constants

Backend = Literal["cpu", "cuda"]
BACKENDS: tuple[Backend, ...] = ("cpu", "cuda")

TASKS_FILE = "kernelbench/level1_matmul.json"
EXAMPLES_DIR = "kernelbench/prompt_examples"
HOW_TO_GET = (
    "copy kernelbench/level1_matmul.json and kernelbench/prompt_examples/ from the shared data folder "
    "(upstream: ScalingIntelligence/KernelBench @ 6b1cea28, KernelBench/level1/ and src/prompts/)"
)



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


# --- download -----------------------------------------------------------------------------------

UPSTREAM_COMMIT = "6b1cea28ddea79af6b295fb9a3e3413f393efe3d"
UPSTREAM_BASE = f"https://raw.githubusercontent.com/ScalingIntelligence/KernelBench/{UPSTREAM_COMMIT}/"
LEVEL = 1
MATMUL_FILES: tuple[str, ...] = tuple(f"{s.name}.py" for s in sorted(CPU_SHAPES.values(), key=lambda s: s.name))
"""The 16 level-1 files whose reference contains "matrix multiplication", in the paper's idx order (the
HF dataset's: lexicographic by file name), so idx i is MATMUL_FILES[i]."""
PROMPT_EXAMPLE_FILES: tuple[str, ...] = ("model_ex_add.py", "model_new_ex_add.py")


def fetch(url: str, timeout_s: float = 60.0) -> bytes:
    """The bytes at `url`; RuntimeError naming the URL when it cannot be fetched."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"could not download {url}: {exc}; offline, {HOW_TO_GET}") from exc


def download(dest: str | Path | None = None) -> Path:
    """Fetch the 16 tasks and the one-shot example from KernelBench @ 6b1cea28 into `<dest>/kernelbench/`
    (default: `$POLCA_DATA_DIR` or the project's `data/`) in the layout `load_tasks(dest)` reads; returns
    that folder. Needs internet access."""
    root = Path(dest).expanduser() if dest is not None else download_dir()
    rows = []
    for idx, name in enumerate(MATMUL_FILES):
        source = fetch(f"{UPSTREAM_BASE}KernelBench/level{LEVEL}/{name}").decode("utf-8")
        stem = name.removesuffix(".py")
        rows.append({"level": LEVEL, "problem_id": int(stem.split("_", 1)[0]), "name": stem,
                     "ref_arch_src": source, "idx": idx})
    examples = {name: fetch(f"{UPSTREAM_BASE}src/prompts/{name}") for name in PROMPT_EXAMPLE_FILES}
    tasks_path, examples_dir = root / TASKS_FILE, root / EXAMPLES_DIR
    examples_dir.mkdir(parents=True, exist_ok=True)  # only once everything arrived: no half-written folder
    tasks_path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    for name, content in examples.items():
        (examples_dir / name).write_bytes(content)
    return tasks_path.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.kernelbench.data",
                                     description="KernelBench level-1 matmul data for polca_nb.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help=f"fetch the 16 tasks and the prompt example (KernelBench @ "
                                          f"{UPSTREAM_COMMIT[:8]})")
    get.add_argument("--dest", default=None, help="data directory (default: $POLCA_DATA_DIR or <project>/data)")
    args = parser.parse_args(argv)
    try:
        folder = download(args.dest)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(MATMUL_FILES)} tasks and {len(PROMPT_EXAMPLE_FILES)} prompt examples to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
