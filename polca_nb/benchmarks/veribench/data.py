"""VeriBench tasks: a Python program and its gold Lean 4 reference, the loader and the downloader.

    tasks = load_tasks()            # the paper's 41 easy tasks (idx 10..50), from <data dir>/veribench/
    python -m polca_nb.benchmarks.veribench.data download [--dest DIR]

Each task file is `{"task_id", "python_code", "gold_reference_lean4_code"}` (benchmarks.md §3).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

from ...data import data_dir as default_data_dir, download_dir
from ...types import Example

TASK_DIR = "veribench"
NUM_TASKS = 140
PAPER_TASKS: tuple[int, ...] = tuple(range(10, 51))
"""The paper's 41 easy tasks (idx 10-50), one POLCA run each (polca-method.md §3)."""
ALL_TASKS: tuple[int, ...] = tuple(range(NUM_TASKS))
"""All 140 tasks: the compile-only pass-rate table's set (polca-method.md §5.3)."""
UPSTREAM_COMMIT = "d180eaa9a5ebce78d182459b6b2a715aaf6c55b9"
UPSTREAM_BASE = (f"https://raw.githubusercontent.com/xuanfeiren/Trace-Bench/{UPSTREAM_COMMIT}/"
                 "Veribench/veribench_dataset_utils/dataset/")
DOWNLOAD_COMMAND = "python -m polca_nb.benchmarks.veribench.data download"
HOW_TO_GET = (f"copy veribench/task_<i>.json from the shared data folder, or run {DOWNLOAD_COMMAND} "
              f"(xuanfeiren/Trace-Bench @ {UPSTREAM_COMMIT[:8]}, needs internet)")
KEYS = ("task_id", "python_code", "gold_reference_lean4_code")

_NAMESPACE = re.compile(r"^\s*namespace\s+([^\s]+)", re.M)
_IMPORT = re.compile(r"^\s*import\s+(\S+)", re.M)


@dataclass(frozen=True)
class VeriTask:
    """One VeriBench task: the Python program to translate and the gold Lean 4 file."""

    idx: int
    python_code: str
    gold_lean: str

    def __post_init__(self) -> None:
        if not isinstance(self.idx, int) or self.idx < 0:
            raise ValueError(f"VeriTask.idx must be an int >= 0, got {self.idx!r}")
        if not self.python_code.strip() or not self.gold_lean.strip():
            raise ValueError(f"VeriTask {self.idx}: python_code and gold_lean must be non-empty")

    @property
    def example_id(self) -> str:
        return f"veribench/{self.idx}"

    def to_example(self) -> Example:
        return Example(id=self.example_id, data=self)

    @cached_property
    def namespace(self) -> str | None:
        """The gold file's first `namespace` (every shipped task has exactly one), or None."""
        match = _NAMESPACE.search(self.gold_lean)
        return match.group(1) if match else None

    @cached_property
    def gold_imports(self) -> tuple[str, ...]:
        """Modules the gold file imports (tasks 0-9, 107, 108 import Mathlib; the others none)."""
        return tuple(_IMPORT.findall(self.gold_lean))

    @property
    def needs_mathlib(self) -> bool:
        return any(m == "Mathlib" or m.startswith("Mathlib.") for m in self.gold_imports)

    @property
    def title(self) -> str:
        """The gold file's '# VeriBench – ...' heading without the prefix, else ''."""
        match = re.search(r"^# VeriBench\s*[–-]\s*(.+)$", self.gold_lean, re.M)
        return match.group(1).strip() if match else ""


def task_path(idx: int, data_dir: str | Path | None = None) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return root / TASK_DIR / f"task_{idx}.json"


def parse_task(record: dict, idx: int) -> VeriTask:
    """A task from its JSON record; ValueError naming the missing keys or a task_id mismatch."""
    missing = [k for k in KEYS if k not in record]
    if missing:
        raise ValueError(f"VeriBench task {idx}: record lacks keys {missing} (expected {KEYS})")
    if int(record["task_id"]) != idx:
        raise ValueError(f"VeriBench task file {idx} holds task_id {record['task_id']!r}")
    return VeriTask(idx, str(record["python_code"]), str(record["gold_reference_lean4_code"]))


def load_task(idx: int, data_dir: str | Path | None = None) -> VeriTask:
    """Task `idx` from `<data dir>/veribench/task_<idx>.json`; FileNotFoundError says how to get it."""
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < NUM_TASKS:
        raise ValueError(f"task idx must be an int in 0..{NUM_TASKS - 1}, got {idx!r}")
    path = task_path(idx, data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"VeriBench task not found: {path}. Set POLCA_DATA_DIR to a folder holding "
                                f"veribench/, or {HOW_TO_GET}")
    return parse_task(json.loads(path.read_text(encoding="utf-8")), idx)


def load_tasks(indices: Sequence[int] = PAPER_TASKS, data_dir: str | Path | None = None) -> list[VeriTask]:
    """The tasks `indices` (default: the paper's 10..50), in the given order."""
    indices = tuple(indices)
    if not indices or len(set(indices)) != len(indices):
        raise ValueError(f"indices must be distinct task numbers, got {indices!r}")
    return [load_task(i, data_dir) for i in indices]


def task_examples(tasks: Sequence[VeriTask]) -> list[Example]:
    """Tasks as `Example`s for the search loop (`data` is the VeriTask)."""
    return [t.to_example() for t in tasks]


# --- download -----------------------------------------------------------------------------------
def fetch(url: str, timeout_s: float = 60.0) -> bytes:
    """The bytes at `url`; RuntimeError naming the URL when it cannot be fetched."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"could not download {url}: {exc}; offline, {HOW_TO_GET}") from exc


def download(dest: str | Path | None = None, indices: Sequence[int] = ALL_TASKS) -> Path:
    """Fetch `indices` (default all 140) from Trace-Bench @ d180eaa9 into `<dest>/veribench/` (default
    `$POLCA_DATA_DIR` or the project's `data/`), checked with `parse_task`; returns that folder.
    Every file is fetched before any is written, so a failed download leaves no half-written folder."""
    root = Path(dest).expanduser() if dest is not None else download_dir()
    records = {}
    for idx in indices:
        raw = fetch(f"{UPSTREAM_BASE}task_{idx}.json")
        parse_task(json.loads(raw.decode("utf-8")), idx)
        records[idx] = raw
    folder = root / TASK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for idx, raw in records.items():
        (folder / f"task_{idx}.json").write_bytes(raw)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.veribench.data",
                                     description="VeriBench data for polca_nb.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help=f"fetch the 140 task files (Trace-Bench @ {UPSTREAM_COMMIT[:8]})")
    get.add_argument("--dest", default=None, help="data directory (default: $POLCA_DATA_DIR or <project>/data)")
    args = parser.parse_args(argv)
    try:
        folder = download(args.dest)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {NUM_TASKS} tasks to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
