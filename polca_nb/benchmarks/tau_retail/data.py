"""Loading the τ-bench retail data: the pristine database, the task splits, the policy wiki and rules.

`python -m polca_nb.benchmarks.tau_retail.data download [--dest DIR]` fetches the files from
sierra-research/tau-bench @ 59a200c (MIT) and converts the Python task and rule lists to JSON.

The pristine database is loaded once and never mutated. Each episode gets its own copy from
`fresh_db`, which is copy-on-write at record granularity (see its docstring), so starting an
episode costs about a millisecond instead of a 2.3 MB deep copy.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import pickle
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...data import download_dir, require

Db = dict[str, dict[str, Any]]
"""A retail database: {"orders": {...}, "products": {...}, "users": {...}}, each keyed by id."""

COLLECTIONS = ("orders", "products", "users")
SPLITS = ("test", "dev")
BENCHMARK_FOLDER = "tau_retail"
HOW_TO_GET = (
    "copy orders.json, products.json, users.json and wiki.md from sierra-research/tau-bench @ 59a200c "
    "(tau_bench/envs/retail/), plus rules.json and tasks_{test,dev}.json converted from rules.py and "
    "tasks_{test,dev}.py, into <data dir>/tau_retail/ (see shared/data/README.md)"
)


@dataclass(frozen=True)
class Action:
    """One agent action: a tool call, or `respond` with kwargs {"content": text}."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Action.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.kwargs, Mapping):
            raise ValueError(f"Action.kwargs must be a mapping, got {self.kwargs!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class Task:
    """One retail task: the customer (`user_id`, `instruction`), the gold actions and the outputs the
    agent must say. `split` and `index` (0-based position in the split file) identify it."""

    split: str
    index: int
    annotator: str
    user_id: str
    instruction: str
    actions: tuple[Action, ...]
    outputs: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.split}/{self.index}"


@dataclass(frozen=True)
class RetailData:
    """Everything the retail env reads: the pristine DB (never mutate it), tasks per split, wiki, rules."""

    pristine: Db
    tasks: Mapping[str, tuple[Task, ...]]
    wiki: str
    rules: tuple[str, ...]
    source_dir: Path
    # Derived caches (filled lazily, shared by every episode on this data):
    # canonical text of each pristine record, and the gold-replay hash of each action list.
    record_text_memo: dict[int, tuple[Any, str]] = field(default_factory=dict, repr=False, compare=False)
    gold_hash_cache: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _pickled: list[bytes] = field(default_factory=list, repr=False, compare=False)

    def task(self, split: str, index: int) -> Task:
        """The task at `index` of `split` ("test" or "dev")."""
        if split not in self.tasks:
            raise ValueError(f"split must be one of {sorted(self.tasks)}, got {split!r}")
        tasks = self.tasks[split]
        if not 0 <= index < len(tasks):
            raise ValueError(f"index must be in [0, {len(tasks)}) for split {split!r}, got {index!r}")
        return tasks[index]


def parse_task(raw: Mapping[str, Any], split: str, index: int) -> Task:
    """A Task from one entry of tasks_<split>.json; ValueError naming the missing field otherwise."""
    for key in ("annotator", "user_id", "instruction", "actions", "outputs"):
        if key not in raw:
            raise ValueError(f"task {split}/{index}: field {key!r} is missing")
    actions = tuple(Action(name=a["name"], kwargs=dict(a["kwargs"])) for a in raw["actions"])
    return Task(
        split=split,
        index=index,
        annotator=str(raw["annotator"]),
        user_id=raw["user_id"],
        instruction=raw["instruction"],
        actions=actions,
        outputs=tuple(raw["outputs"]),
    )


def _data_file(data_dir: Path | None, name: str) -> Path:
    relative = f"{BENCHMARK_FOLDER}/{name}"
    if data_dir is None:
        return require(relative, HOW_TO_GET)
    path = Path(data_dir) / relative
    if not path.exists():
        raise FileNotFoundError(f"benchmark data not found: {path}\nGet it with: {HOW_TO_GET}")
    return path


_CACHE: dict[Path, RetailData] = {}
_CACHE_LOCK = threading.Lock()


def load_retail(data_dir: str | Path | None = None, *, cache: bool = True) -> RetailData:
    """Load the retail DB, tasks, wiki and rules from `<data_dir>/tau_retail/` (default: the project
    data directory). With `cache`, repeated calls for the same folder return the same object."""
    base = None if data_dir is None else Path(data_dir).expanduser().resolve()
    folder = _data_file(base, "orders.json").parent
    if cache:
        with _CACHE_LOCK:
            if folder in _CACHE:
                return _CACHE[folder]
    pristine: Db = {}
    for collection in COLLECTIONS:
        with open(_data_file(base, f"{collection}.json"), encoding="utf-8") as f:
            pristine[collection] = json.load(f)
    tasks = {}
    for split in SPLITS:
        with open(_data_file(base, f"tasks_{split}.json"), encoding="utf-8") as f:
            tasks[split] = tuple(parse_task(raw, split, i) for i, raw in enumerate(json.load(f)))
    wiki = _data_file(base, "wiki.md").read_text(encoding="utf-8")
    with open(_data_file(base, "rules.json"), encoding="utf-8") as f:
        rules = tuple(json.load(f))
    data = RetailData(pristine=pristine, tasks=tasks, wiki=wiki, rules=rules, source_dir=folder)
    if cache:
        with _CACHE_LOCK:
            data = _CACHE.setdefault(folder, data)
    return data


def fresh_db(data: RetailData) -> Db:
    """A new episode DB: fresh collection dicts whose records are shared with the pristine data.

    Copy-on-write contract: tools replace a record with a private deep copy (`writable_record`)
    before changing it, so nothing reaches the pristine data. Code outside the tools must treat
    records as read-only, or use `deep_copy_db` for a fully independent copy.
    """
    return {collection: dict(records) for collection, records in data.pristine.items()}


def deep_copy_db(data_or_db: RetailData | Db) -> Db:
    """A fully independent copy (pickle round trip: ~2.5x faster than copy.deepcopy here)."""
    if isinstance(data_or_db, RetailData):
        if not data_or_db._pickled:
            data_or_db._pickled.append(pickle.dumps(data_or_db.pristine, protocol=pickle.HIGHEST_PROTOCOL))
        return pickle.loads(data_or_db._pickled[0])
    return pickle.loads(pickle.dumps(data_or_db, protocol=pickle.HIGHEST_PROTOCOL))


def writable_record(db: Db, collection: str, key: str) -> dict[str, Any]:
    """Give `db` a private deep copy of one record and return it: the only way tools may mutate."""
    record = copy.deepcopy(db[collection][key])
    db[collection][key] = record
    return record


# -- download ---------------------------------------------------------------------------------------------

UPSTREAM_COMMIT = "59a200c6d575d595120f1cb70fea53cef0632f6b"
UPSTREAM_BASE = (f"https://raw.githubusercontent.com/sierra-research/tau-bench/{UPSTREAM_COMMIT}"
                 "/tau_bench/envs/retail/")
COPIED_FILES: dict[str, str] = {
    "orders.json": "data/orders.json",
    "products.json": "data/products.json",
    "users.json": "data/users.json",
    "wiki.md": "wiki.md",
}
"""Files used as they are upstream: our name -> path under UPSTREAM_BASE."""
CONVERTED_FILES: dict[str, str] = {
    "rules.json": "rules.py",
    "tasks_test.json": "tasks_test.py",
    "tasks_dev.json": "tasks_dev.py",
}
"""Upstream Python literals (read with `ast`, never executed) written as JSON."""
TASK_FIELDS = ("annotator", "user_id", "instruction", "actions", "outputs")


def fetch(url: str, timeout_s: float = 60.0) -> bytes:
    """The bytes at `url`; RuntimeError naming the URL when it cannot be fetched."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"could not download {url}: {exc}; offline, copy the files into "
                           f"<data dir>/{BENCHMARK_FOLDER}/ instead ({HOW_TO_GET})") from exc


def _literal(node: ast.AST) -> Any:
    """A Python literal, with `Task(...)` / `Action(...)` keyword calls read as dicts."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Task", "Action"):
        if node.args or any(k.arg is None for k in node.keywords):
            raise ValueError(f"{node.func.id}(...) at line {node.lineno}: expected keyword arguments only")
        fields = {k.arg: _literal(k.value) for k in node.keywords}
        order = TASK_FIELDS if node.func.id == "Task" else ("name", "kwargs")
        missing = [f for f in order if f not in fields]
        if missing:
            raise ValueError(f"{node.func.id}(...) at line {node.lineno}: missing {missing}")
        return {f: fields[f] for f in order}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    return ast.literal_eval(node)


def python_list_to_json(source: str, name: str = "<source>") -> list[Any]:
    """The one module-level list assigned in an upstream `rules.py` / `tasks_<split>.py`, as JSON data."""
    lists = [stmt.value for stmt in ast.parse(source).body
             if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.List)]
    if len(lists) != 1:
        raise ValueError(f"{name}: expected exactly one module-level list assignment, found {len(lists)}")
    return _literal(lists[0])


def download(dest: str | Path | None = None) -> Path:
    """Fetch the retail data into `<dest>/tau_retail/` (default: `$POLCA_DATA_DIR` or the project's
    `data/`) in the layout `load_retail(dest)` reads; returns that folder. Needs internet access."""
    root = Path(dest).expanduser() if dest is not None else download_dir()
    folder = root / BENCHMARK_FOLDER
    payload: dict[str, bytes] = {}
    for ours, theirs in COPIED_FILES.items():
        payload[ours] = fetch(UPSTREAM_BASE + theirs)
    for ours, theirs in CONVERTED_FILES.items():
        rows = python_list_to_json(fetch(UPSTREAM_BASE + theirs).decode("utf-8"), theirs)
        payload[ours] = json.dumps(rows, indent=1, ensure_ascii=False).encode("utf-8")
    folder.mkdir(parents=True, exist_ok=True)  # only once everything arrived: no half-written folder
    for name, content in payload.items():
        (folder / name).write_bytes(content)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.tau_retail.data",
                                     description="τ-bench retail data for polca_nb.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download",
                         help=f"fetch the retail DB, wiki, rules and tasks (tau-bench @ {UPSTREAM_COMMIT[:7]})")
    get.add_argument("--dest", default=None, help="data directory (default: $POLCA_DATA_DIR or <project>/data)")
    args = parser.parse_args(argv)
    try:
        folder = download(args.dest)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(COPIED_FILES) + len(CONVERTED_FILES)} files to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
