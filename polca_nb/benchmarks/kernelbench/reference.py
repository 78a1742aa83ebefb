"""The paper's KernelBench numbers (`polca_nb/reference/kernelbench.json`), each with its source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE_FILE = Path(__file__).resolve().parents[2] / "reference" / "kernelbench.json"


def load_reference(path: str | Path | None = None) -> dict[str, Any]:
    """The paper's KernelBench numbers (`polca_nb/reference/kernelbench.json`, each with its source)."""
    return json.loads(Path(path or REFERENCE_FILE).read_text(encoding="utf-8"))


def paper_reference() -> dict[str, Any]:
    """The paper's KernelBench numbers (the benchmark-shape name of `load_reference()`)."""
    return load_reference()
