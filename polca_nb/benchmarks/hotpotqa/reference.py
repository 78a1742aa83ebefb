"""The paper's HotpotQA numbers (Fig. 8 curves, read off the plot), each with its source."""

from __future__ import annotations

import json
from typing import Any

REFERENCE_FILE = "hotpotqa.json"


def paper_reference() -> dict[str, Any]:
    """The paper's curves (polca_nb/reference/hotpotqa.json): {"curves": {method: {"points": [[x, y]...]}}, ...}."""
    from importlib import resources

    text = resources.files("polca_nb").joinpath("reference").joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    return json.loads(text)
