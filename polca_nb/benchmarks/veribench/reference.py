"""The paper's VeriBench numbers (`polca_nb/reference/veribench.json`), each with its source."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

REFERENCE_FILE = "veribench.json"


def paper_reference() -> dict[str, Any]:
    """The paper numbers: "compile_pass_rate" {method: [mean, se]} and "score_curves" {method: [[x, y], ...]}."""
    text = resources.files("polca_nb").joinpath("reference").joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    return json.loads(text)
