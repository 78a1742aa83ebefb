"""The short-answer questions: written for this project, so they ship in the package (no upstream data).

`download` has nothing to fetch; it writes the questions to a JSON file, for reading or editing, which
`load_examples(path=...)` reads back. `python -m polca_nb.benchmarks.short_answer.data download [--dest DIR]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ...data import download_dir
from ...types import Example

DATA_FILE = "short_answer/questions.json"
"""Where `download` writes the questions under a data folder (the package does not read it by itself)."""

QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of China?", "Beijing"),
    ("What is the capital of England?", "London"),
    ("What is the capital of Greece?", "Athens"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Portugal?", "Lisbon"),
    ("What color is the sky on a clear day?", "blue"),
    ("What color is grass?", "green"),
    ("What color is snow?", "white"),
    ("What color is a ripe banana?", "yellow"),
    ("What color is coal?", "black"),
    ("What color is a ripe tomato?", "red"),
    ("What is the opposite of hot?", "cold"),
    ("What is the opposite of up?", "down"),
    ("What is the opposite of big?", "small"),
    ("What is the opposite of day?", "night"),
    ("What is the opposite of fast?", "slow"),
    ("What is the opposite of open?", "closed"),
    ("What is 2 + 2?", "4"),
    ("What is 3 + 5?", "8"),
    ("What is 10 - 3?", "7"),
    ("What is 6 + 3?", "9"),
    ("What is 5 + 5?", "10"),
    ("What is 9 - 8?", "1"),
    ("How many legs does a dog have?", "4"),
    ("How many days are in a week?", "7"),
    ("Which animal says moo?", "cow"),
    ("Which animal barks?", "dog"),
    ("Which planet do we live on?", "Earth"),
    ("What do bees make?", "honey"),
    ("What is frozen water called?", "ice"),
    ("Which star gives Earth its daylight?", "Sun"),
    ("What is the first month of the year?", "January"),
    ("What is the largest ocean on Earth?", "Pacific"),
)


def examples(rng: np.random.Generator | None = None) -> list[Example]:
    """All questions as examples, shuffled by `rng` when given (ids stay stable)."""
    items = [Example(f"q{i:02d}", {"question": q, "answer": a}) for i, (q, a) in enumerate(QUESTIONS)]
    if rng is not None:
        items = [items[int(i)] for i in rng.permutation(len(items))]
    return items


def load_examples(path: str | Path | None = None, rng: np.random.Generator | None = None) -> list[Example]:
    """`examples(rng)`: the built-in questions, or those of a file `download` wrote (a JSON list of
    {"question", "answer"}) when `path` is given; ids q00, q01, ... in the file's order."""
    if path is None:
        return examples(rng)
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(records, list) or not all(isinstance(r, dict) and {"question", "answer"} <= set(r)
                                                for r in records):
        raise ValueError(f"{path} must hold a JSON list of {{'question', 'answer'}} records")
    items = [Example(f"q{i:02d}", {"question": str(r["question"]), "answer": str(r["answer"])})
             for i, r in enumerate(records)]
    if rng is not None:
        items = [items[int(i)] for i in rng.permutation(len(items))]
    return items


def download(dest: str | Path | None = None) -> Path:
    """Nothing to fetch (the questions are this project's): write them as JSON to the file `dest`
    (default: `<download dir>/short_answer/questions.json`) and return its path."""
    target = Path(dest) if dest is not None else download_dir() / DATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    records = [{"question": q, "answer": a} for q, a in QUESTIONS]
    target.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.short_answer.data",
                                     description="Short-answer data for polca_nb (built in; nothing to fetch).")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="write the built-in questions to a JSON file (nothing is fetched)")
    get.add_argument("--dest", default=None, metavar="DIR", help=f"data folder to write DIR/{DATA_FILE} into")
    args = parser.parse_args(argv)
    path = download(Path(args.dest) / DATA_FILE if args.dest is not None else None)
    print(f"nothing to download: the {len(QUESTIONS)} short-answer questions are written for this project and "
          f"ship in polca_nb; wrote a copy to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
