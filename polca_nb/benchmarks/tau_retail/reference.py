"""The paper's τ-bench numbers (`polca_nb/reference/tau_bench.json`), each with its source."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def paper_reference() -> dict[str, Any]:
    """The paper's τ-bench numbers (`polca_nb/reference/tau_bench.json`, each with its source)."""
    text = resources.files("polca_nb").joinpath("reference").joinpath("tau_bench.json").read_text(encoding="utf-8")
    return json.loads(text)
