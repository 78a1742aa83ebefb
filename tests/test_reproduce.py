"""`make reproduce`'s report: which notebook ran, how long, which figures it wrote (no notebook is executed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from polca_nb import reproduce
from polca_nb.reproduce import NotebookRun, figure_snapshot, report_markdown, report_table, written_since


def touch(path: Path, text: str = "png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_snapshot_lists_files_relative_to_the_folder(tmp_path):
    assert figure_snapshot(tmp_path / "missing") == {}
    touch(tmp_path / "a.png")
    touch(tmp_path / "sub" / "b.svg", "longer")
    snap = figure_snapshot(tmp_path)
    assert set(snap) == {"a.png", "sub/b.svg"}
    assert snap["sub/b.svg"][1] == len("longer")


def test_written_since_sees_new_and_changed_files_not_removed_or_untouched_ones():
    before = {"same.png": (1, 10), "changed_time.png": (1, 10), "changed_size.png": (1, 10), "gone.png": (1, 1)}
    after = {"same.png": (1, 10), "changed_time.png": (2, 10), "changed_size.png": (1, 11), "new.png": (5, 5)}
    assert written_since(before, after) == ["changed_size.png", "changed_time.png", "new.png"]
    assert written_since(after, after) == []


def test_report_table_is_aligned_and_has_totals():
    rows = [NotebookRun("00_quickstart.ipynb", True, 65.4, ["a.png", "b.png"]),
            NotebookRun("1.ipynb", False, 3.0, [], "RuntimeError: boom"),
            NotebookRun("2.ipynb", True, 3725.0, [])]
    text = report_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["notebook", "status", "time", "figures", "written"]
    assert set(lines[1]) <= {"-", " "}
    body = lines[2:5]
    assert body[0].split(None, 3) == ["00_quickstart.ipynb", "ok", "1:05", "a.png, b.png"]
    assert body[1].split() == ["1.ipynb", "FAILED", "0:03", "-"]
    assert body[2].split() == ["2.ipynb", "ok", "62:05", "-"]
    column = lines[0].index("status")
    assert all(line[column:].startswith(("ok", "FAILED")) for line in body)
    assert lines[-1] == "2/3 notebooks ok, 1 FAILED; 63:13 in all; 2 figures written"


def test_report_markdown_is_a_table_with_the_failures_below():
    rows = [NotebookRun("a.ipynb", True, 1.0, ["x.png"]), NotebookRun("b.ipynb", False, 2.0, [], "E: one\ntwo")]
    md = report_markdown(rows, "smoke")
    assert "| notebook | status | time | figures written |" in md
    assert "| `a.ipynb` | ok | 0:01 | `x.png` |" in md
    assert "| `b.ipynb` | FAILED | 0:02 | - |" in md
    assert "- `b.ipynb`: E: one two" in md


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Three notebooks; the fake executor writes figures as the real ones would, the second one raises."""
    figures = tmp_path / "figures"
    touch(figures / "old.png")
    touch(figures / "kept.png")
    os.utime(figures / "old.png", ns=(1_000_000_000, 1_000_000_000))
    notebooks = [tmp_path / "notebooks" / name for name in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb")]
    executed = []

    def fake_execute(source: Path, target: Path, timeout_s: int) -> float:
        executed.append((source.name, target, timeout_s))
        if source.name == "00_a.ipynb":
            touch(figures / "a1.png")
            touch(figures / "old.png")  # rewritten with the same bytes: only its mtime changes
        elif source.name == "01_b.ipynb":
            touch(figures / "b_partial.png")
            raise RuntimeError("cell 3 failed")
        else:
            touch(figures / "sub" / "c.svg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("{}")
        return 0.0

    monkeypatch.setattr(reproduce, "execute_notebook", fake_execute)
    monkeypatch.delenv("POLCA_SCALE", raising=False)
    return tmp_path, notebooks, executed


def test_main_attributes_figures_marks_failures_and_exits_1(project, capsys, monkeypatch):
    root, notebooks, executed = project
    code = reproduce.main([str(p) for p in notebooks] + ["--timeout", "7"],
                          figures_dir=root / "figures", build_dir=root / "build")
    assert code == 1
    assert [name for name, _, _ in executed] == ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb"]
    assert all(target == root / "build" / "notebooks" / name and timeout == 7 for name, target, timeout in executed)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("0") and ".ipynb  " in line}
    assert rows["00_a.ipynb"].split(None, 3)[1::2] == ["ok", "a1.png, old.png"]
    assert rows["01_b.ipynb"].split(None, 3)[1::2] == ["FAILED", "b_partial.png"]
    assert rows["02_c.ipynb"].split(None, 3)[1::2] == ["ok", "sub/c.svg"]
    assert "kept.png" not in out
    assert re.search(r"FAILED after \d+:\d\d: RuntimeError: cell 3 failed", out)
    assert re.search(r"2/3 notebooks ok, 1 FAILED; \d+:\d\d in all; 4 figures written", out)
    md = (root / "build" / "reproduce.md").read_text()
    assert md.startswith("# make reproduce (smoke scale)")
    assert re.search(r"\| `01_b.ipynb` \| FAILED \| \d+:\d\d \| `b_partial.png` \|", md)
    assert "RuntimeError: cell 3 failed" in md


def test_main_exits_0_when_every_notebook_runs(project, capsys, monkeypatch):
    root, notebooks, _ = project
    code = reproduce.main([str(notebooks[0]), str(notebooks[2]), "--scale", "paper"],
                          figures_dir=root / "figures", build_dir=root / "build")
    assert code == 0
    assert os.environ["POLCA_SCALE"] == "paper"
    out = capsys.readouterr().out
    assert re.search(r"2/2 notebooks ok; \d+:\d\d in all; 3 figures written", out)
    assert "Failures" not in (root / "build" / "reproduce.md").read_text()
