"""The synthetic skills problem's data: generated from a seed, so there is nothing to download.

Each example needs two *skills* (keywords) drawn with a skew; `download` writes the generated sets
to JSON for inspection and says so. CLI: `python -m polca_nb.benchmarks.skills.data download [--dest DIR]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ...data import PROJECT_ROOT
from ...types import Example

SKILLS = ("cite", "verify", "concise", "units", "format", "steps", "examples", "check")


def make_examples(n: int, rng: np.random.Generator, skills: Sequence[str] = SKILLS) -> list[Example]:
    """n examples, each needing two distinct skills drawn with a skew (some skills matter more)."""
    if n < 1:
        raise ValueError(f"n (number of examples) must be >= 1, got {n}")
    weights = np.linspace(2.0, 0.5, len(skills))
    weights /= weights.sum()
    return [Example(f"ex{i}", {"needs": tuple(sorted(rng.choice(skills, size=2, replace=False, p=weights)))})
            for i in range(n)]


def load_examples(n_train: int = 40, n_val: int = 20, n_test: int = 40,
                  seed: int = 0) -> tuple[list[Example], list[Example], list[Example]]:
    """Train, validation and test sets, generated from `seed` (the same seed gives the same sets)."""
    rng = np.random.default_rng(seed)
    train = make_examples(n_train, rng)
    val = [Example(f"val{i}", ex.data) for i, ex in enumerate(make_examples(n_val, rng))]
    test = [Example(f"test{i}", ex.data) for i, ex in enumerate(make_examples(n_test, rng))]
    return train, val, test


def download(dest: str | Path | None = None, *, seed: int = 0) -> Path:
    """Nothing to fetch (the data is generated): write the default sets to `<dest>/skills/examples.json`."""
    root = Path(dest) if dest is not None else PROJECT_ROOT / "data"
    path = root / "skills" / "examples.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    sets = dict(zip(("train", "val", "test"), load_examples(seed=seed)))
    path.write_text(json.dumps({name: [{"id": ex.id, **ex.data} for ex in examples] for name, examples in sets.items()},
                               indent=1, default=list))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.skills.data",
                                     description="The skills problem's data is generated; download writes it out.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("download", help="write the generated examples to JSON (nothing is fetched)")
    cmd.add_argument("--dest", default=None, help="folder to write skills/examples.json into (default: data/)")
    args = parser.parse_args(argv)
    path = download(args.dest)
    print(f"nothing to download: the skills problem's examples are generated from a seed; wrote them to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
