"""`make reproduce`: execute every notebook top to bottom (offline, `smoke` scale by default).

Executed copies go to build/notebooks/ (the sources stay clean); the notebooks write figures/.
Set POLCA_SCALE=paper for the paper's setup (needs ANTHROPIC_API_KEY to be meaningful).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .data import PROJECT_ROOT


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", help="notebook paths (default: all in notebooks/)")
    parser.add_argument("--scale", default=os.environ.get("POLCA_SCALE", "smoke"), choices=["smoke", "paper"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    os.environ["POLCA_SCALE"] = args.scale
    paths = [Path(p) for p in args.notebooks] or sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    out_dir = PROJECT_ROOT / "build" / "notebooks"
    failed = []
    for path in paths:
        print(f"== {path.name} ({args.scale})", flush=True)
        try:
            seconds = execute_notebook(path.resolve(), out_dir / path.name, args.timeout)
            print(f"   ok in {seconds:.0f} s -> {out_dir / path.name}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report every notebook, then fail
            print(f"   FAILED: {type(exc).__name__}: {str(exc)[:2000]}", flush=True)
            failed.append(path.name)
    figures = sorted((PROJECT_ROOT / "figures").glob("*.png"))
    print(f"\n{len(paths) - len(failed)}/{len(paths)} notebooks ran; {len(figures)} figures in figures/:")
    for fig in figures:
        print(f"   {fig.relative_to(PROJECT_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
