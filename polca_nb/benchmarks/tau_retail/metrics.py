"""τ-bench's table metric: Pass@1 per column group, and the table of ours against the paper's rows."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .episode import Episode


PAPER_GROUPS: dict[str, tuple[int, ...]] = {
    "first 10": tuple(range(10)),
    "last 105": tuple(range(10, 115)),
    "all 115": tuple(range(115)),
}
"""The column groups of the paper's Pass@1 table (test-split indices)."""


def pass_at_1(episodes: Sequence[Episode], groups: Mapping[str, Sequence[int]]) -> dict[str, tuple[float, int]]:
    """For each group: (mean reward over the episodes of its tasks, number of episodes); NaN if none."""
    out = {}
    for name, indices in groups.items():
        wanted = set(int(i) for i in indices)
        rewards = [e.reward for e in episodes if e.task.index in wanted]
        out[name] = (float(np.mean(rewards)) if rewards else math.nan, len(rewards))
    return out



def comparison_table(ours: Mapping[str, Sequence[Episode]], groups: Mapping[str, Sequence[int]],
                     reference: Mapping[str, Any] | None = None,
                     reference_rows: Sequence[str] = ("Base prompt", "POLCA")):
    """Pass@1 per table column: one row per program of ours ("ours: <name>"), then the paper's rows
    ("paper: <name>") from `reference` (the `paper_reference()` dict). A pandas DataFrame."""
    import pandas as pd  # noqa: PLC0415 - notebooks-only dependency

    rows = {}
    for name, episodes in ours.items():
        table = pass_at_1(episodes, groups)
        rows[f"ours: {name}"] = {column: round(value, 3) for column, (value, _) in table.items()}
    if reference is not None:
        paper = reference["table"]["rows"]
        for name in reference_rows:
            rows[f"paper: {name}"] = {column: paper[name].get(column, math.nan) for column in groups}
    return pd.DataFrame(rows).T[list(groups)]

