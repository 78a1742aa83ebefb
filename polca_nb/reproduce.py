"""`make reproduce`: execute every notebook top to bottom (offline, `smoke` scale by default).

Executed copies go to build/notebooks/ (the sources stay clean); the notebooks write figures/.
At the end a table says per notebook whether it ran, how long it took and which figures it wrote
(the same table, in markdown, is saved as build/reproduce.md).
Set POLCA_SCALE=paper for the paper's setup (needs ANTHROPIC_API_KEY to be meaningful).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data import PROJECT_ROOT

Snapshot = dict[str, tuple[int, int]]


@dataclass
class NotebookRun:
    """What one notebook did: ok or not, its wall-clock seconds, the figures it (re)wrote."""

    name: str
    ok: bool
    seconds: float
    figures: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def status(self) -> str:
        return "ok" if self.ok else "FAILED"


def execute_notebook(source: Path, target: Path, timeout_s: int) -> float:
    """Run one notebook in its own kernel with the notebooks/ folder as working directory."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return time.perf_counter() - started


def figure_snapshot(directory: Path) -> Snapshot:
    """Every file under `directory` (posix path relative to it) -> (mtime_ns, size); {} if it does not exist."""
    if not directory.is_dir():
        return {}
    snapshot: Snapshot = {}
    for path in directory.rglob("*"):
        if path.is_file():
            stat = path.stat()
            snapshot[path.relative_to(directory).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return snapshot


def written_since(before: Snapshot, after: Snapshot) -> list[str]:
    """The files new in `after` or changed (mtime or size) since `before`, sorted; removed files are not listed."""
    return sorted(name for name, stamp in after.items() if before.get(name) != stamp)


def format_seconds(seconds: float) -> str:
    """m:ss (minutes keep counting past 60)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _cells(run: NotebookRun) -> list[str]:
    return [run.name, run.status, format_seconds(run.seconds), ", ".join(run.figures) or "-"]


HEADER = ["notebook", "status", "time", "figures written"]


def totals_line(rows: list[NotebookRun]) -> str:
    failed = sum(not run.ok for run in rows)
    figures = sum(len(run.figures) for run in rows)
    return (f"{len(rows) - failed}/{len(rows)} notebooks ok"
            + (f", {failed} FAILED" if failed else "")
            + f"; {format_seconds(sum(run.seconds for run in rows))} in all; {figures} figures written")


def report_table(rows: list[NotebookRun]) -> str:
    """A plain-text table, columns aligned, with a totals line under it."""
    table = [HEADER] + [_cells(run) for run in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER) - 1)]
    lines = ["  ".join([cell.ljust(width) for cell, width in zip(line, widths)] + [line[-1]]) for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths + [len(HEADER[-1])]))
    return "\n".join(lines + ["", totals_line(rows)])


def report_markdown(rows: list[NotebookRun], scale: str) -> str:
    """The same table in markdown, for build/reproduce.md."""
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [f"# make reproduce ({scale} scale)", "", row(HEADER), row(["---"] * len(HEADER))]
    for run in rows:
        cells = _cells(run)
        cells[0] = f"`{cells[0]}`"
        cells[-1] = ", ".join(f"`{name}`" for name in run.figures) or "-"
        lines.append(row(cells))
    lines += ["", totals_line(rows) + "."]
    errors = [run for run in rows if run.error]
    if errors:
        lines += ["", "## Failures", ""] + [f"- `{run.name}`: {' '.join(run.error.split())}" for run in errors]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, *, figures_dir: Path | None = None, build_dir: Path | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", help="notebook paths (default: all in notebooks/)")
    parser.add_argument("--scale", default=os.environ.get("POLCA_SCALE", "smoke"), choices=["smoke", "paper"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    os.environ["POLCA_SCALE"] = args.scale
    figures_dir = figures_dir or PROJECT_ROOT / "figures"
    build_dir = build_dir or PROJECT_ROOT / "build"
    paths = [Path(p) for p in args.notebooks] or sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    out_dir = build_dir / "notebooks"
    rows: list[NotebookRun] = []
    for path in paths:
        print(f"== {path.name} ({args.scale})", flush=True)
        before = figure_snapshot(figures_dir)
        started = time.perf_counter()
        try:
            execute_notebook(path.resolve(), out_dir / path.name, args.timeout)
            ok, error = True, ""
        except Exception as exc:  # noqa: BLE001 - report every notebook, then fail
            ok, error = False, f"{type(exc).__name__}: {str(exc)[:2000]}"
        seconds = time.perf_counter() - started
        run = NotebookRun(path.name, ok, seconds, written_since(before, figure_snapshot(figures_dir)), error)
        rows.append(run)
        if ok:
            print(f"   ok in {format_seconds(seconds)} -> {out_dir / path.name}", flush=True)
        else:
            print(f"   FAILED after {format_seconds(seconds)}: {error}", flush=True)
    print("\n" + report_table(rows))
    build_dir.mkdir(parents=True, exist_ok=True)
    report = build_dir / "reproduce.md"
    report.write_text(report_markdown(rows, args.scale), encoding="utf-8")
    print(f"(also in {report})", flush=True)
    return 1 if any(not run.ok for run in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
