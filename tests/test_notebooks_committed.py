"""The committed notebooks as people open them: executed, small, no machine paths, numbers checked by nbval.

nbval runs with --nbval-lax, so only cells tagged `nbval-check-output` have their outputs compared: every
notebook must have such a cell with a saved output, or a changed number in it could never fail `make test`.
"""

import json
from pathlib import Path

import pytest

from polca_nb.data import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
CHECK_TAG = "nbval-check-output"
MAX_OUTPUT_BYTES = 600_000  # figures included; a warning wall or an uncapped table would pass this


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def output_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                parts.append("".join(value))
    return "".join(parts)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_checked_cells_with_saved_outputs(path):
    checked = [c for c in cells(path) if CHECK_TAG in c.get("metadata", {}).get("tags", [])
               or "# NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert checked, f"{path.name}: no cell tagged {CHECK_TAG!r}, so nbval compares none of its numbers"
    assert all(output_text(c).strip() for c in checked), f"{path.name}: a checked cell has no saved output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_and_small(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never executed in the committed copy"
    size = sum(len(json.dumps(c.get("outputs", []))) for c in code)
    assert size < MAX_OUTPUT_BYTES, f"{path.name}: {size} bytes of outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_show_no_path_of_the_machine_that_ran_them(path):
    for i, cell in enumerate(cells(path)):
        text = output_text(cell)
        assert str(PROJECT_ROOT) not in text, f"{path.name} cell {i}: shows {PROJECT_ROOT}"
        assert "PosixPath(" not in text, f"{path.name} cell {i}: shows a PosixPath repr"
        assert "Traceback (most recent call last)" not in text, f"{path.name} cell {i}: saved a traceback"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_warnings_are_summarized_not_one_line_each(path):
    for i, cell in enumerate(cells(path)):
        lines = [line for line in output_text(cell).splitlines() if line.startswith("proposer: no usable proposal")]
        assert len(lines) <= 1, f"{path.name} cell {i}: {len(lines)} proposer warning lines (expected a summary)"
