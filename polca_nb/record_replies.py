"""Re-execute notebooks against the live model and rewrite their recorded replies (notebooks/replies/).

    python -m polca_nb.record_replies                      # every notebook that builds an LLM client
    python -m polca_nb.record_replies notebooks/00_quickstart.ipynb
    python -m polca_nb.record_replies --replay-only          # refresh outputs from the existing packs

Each notebook runs in place with an empty reply cache of its own and only the other notebooks' packs,
so every request they did not record goes to the model; the replies it got become
`notebooks/replies/<notebook>.jsonl.gz` (a request has one reply across all packs: the model's
sampling is not repeatable across server sessions, so two recordings of one request would disagree).
Then it runs once more from all the packs, as a clean clone does, and those outputs are the committed
ones; a request that second pass still sends live fails the recording. Re-recording a notebook whose
replies another notebook reuses changes that notebook's outputs too: record all of them together. Run directories
under build/runs/ would be resumed (and ask nothing), so the ones there before are moved aside to
build/runs-before-recording-<time>/ first, never deleted.
Commit the notebooks and their packs together: a pack answers only the requests its notebook makes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .data import PROJECT_ROOT, shown_path
from .llm.config import ENV_CACHE_DIR
from .llm.replay import ENV_REPLAY, PACK_SUFFIX, REPLIES_DIR, cache_dir_entries, read_pack, write_pack
from .reproduce import execute_notebook

NOTEBOOKS = PROJECT_ROOT / "notebooks"
RUNS = PROJECT_ROOT / "build" / "runs"
RECORDING_CACHE = PROJECT_ROOT / "build" / "recording-cache"
"""The empty reply caches of the two passes: inside the project, so outputs show a relative path."""


def notebooks_with_llm(folder: Path = NOTEBOOKS) -> list[Path]:
    """The notebooks whose code builds the project's LLM client (`default_client`)."""
    return sorted(path for path in folder.glob("*.ipynb") if "default_client(" in path.read_text(encoding="utf-8"))


def pack_path(notebook: Path) -> Path:
    return REPLIES_DIR / f"{notebook.stem}{PACK_SUFFIX}"


def move_runs_aside(runs: Path = RUNS) -> Path | None:
    """Rename a non-empty `runs` folder to a timestamped sibling; returns the new path, or None."""
    if not runs.is_dir() or not any(runs.iterdir()):
        return None
    aside = runs.with_name(f"runs-before-recording-{time.strftime('%Y%m%d-%H%M%S')}")
    runs.rename(aside)
    return aside


def _execute_with(notebook: Path, timeout_s: int, cache_dir: str, replay: str) -> float:
    saved = {name: os.environ.get(name) for name in (ENV_CACHE_DIR, ENV_REPLAY, "PYTHONHASHSEED")}
    os.environ.update({ENV_CACHE_DIR: cache_dir, ENV_REPLAY: replay, "PYTHONHASHSEED": "0"})
    try:
        return execute_notebook(notebook, notebook, timeout_s)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _fresh_cache(name: str) -> Path:
    path = RECORDING_CACHE / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def record(notebook: Path, timeout_s: int, *, live: bool = True) -> Recording:
    """Execute `notebook` live with a fresh cache and no packs and write its pack (or remove a stale
    one when it asked nothing); then execute it again, fresh, from that pack alone, so the committed
    outputs are the ones a clean clone reproduces and any request the pack misses is counted.
    `live=False` skips the first pass and re-executes from the existing pack only."""
    target = pack_path(notebook)
    live_s, replies = 0.0, len(read_pack_keys(target))
    if live:
        cache = _fresh_cache("live")
        # Requests another notebook recorded (the quickstart and the ablations share the short-answer task) are
        # answered from its pack, so every request has one reply in notebooks/replies/ however the packs combine.
        others = os.pathsep.join(str(path) for path in sorted(REPLIES_DIR.glob(f"*{PACK_SUFFIX}")) if path != target)
        live_s = _execute_with(notebook, timeout_s, str(cache), others or "off")
        entries = cache_dir_entries(cache)
        if entries:
            write_pack(target, entries)
        else:
            target.unlink(missing_ok=True)
        replies = len(entries)
    shutil.rmtree(RUNS, ignore_errors=True)  # runs of this recording: the replay pass must not resume them
    cache = _fresh_cache("replay")
    everything = os.pathsep.join(str(path) for path in sorted(REPLIES_DIR.glob(f"*{PACK_SUFFIX}")))
    replay_s = _execute_with(notebook, timeout_s, str(cache), everything or "off")  # as a clean clone replays
    missed = len(cache_dir_entries(cache))
    shutil.rmtree(RECORDING_CACHE, ignore_errors=True)
    return Recording(notebook.name, replies, missed, live_s, replay_s)


def read_pack_keys(path: Path) -> list[str]:
    """The keys of an existing pack ([] when there is none)."""
    return [key for key, _ in read_pack(path)] if path.is_file() else []


@dataclass(frozen=True)
class Recording:
    """One notebook's recording: replies packed, requests the replay pass still sent live, seconds."""

    notebook: str
    replies: int
    missed_on_replay: int
    live_s: float
    replay_s: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook that builds an LLM client")
    parser.add_argument("--replay-only", action="store_true",
                        help="skip the live pass: re-execute from the existing packs only")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    args = parser.parse_args(argv)
    chosen = [path.resolve() for path in args.notebooks] or notebooks_with_llm()
    missing = [str(path) for path in chosen if not path.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    if args.replay_only:
        lacking = [path.name for path in chosen if not pack_path(path).is_file()]
        if lacking:
            parser.error(f"--replay-only needs recorded replies, and these have none: {', '.join(lacking)}")
    aside = move_runs_aside()
    if aside is not None:
        print(f"moved the earlier run directories to {shown_path(aside)} (they would be resumed, not re-asked)")
    failed: list[str] = []
    for notebook in chosen:
        print(f"recording {notebook.name} ...", flush=True)
        done = record(notebook, args.timeout, live=not args.replay_only)
        where = shown_path(pack_path(notebook)) if done.replies else "no pack (it asked the model nothing)"
        recorded = f"{done.replies} replies in {done.live_s:.0f} s -> {where}; " if not args.replay_only else ""
        print(f"  {recorded}replayed {done.replies} recorded replies in {done.replay_s:.0f} s, "
              f"{done.missed_on_replay} requests missed the pack", flush=True)
        if done.missed_on_replay:
            failed.append(done.notebook)
    if failed:
        print(f"not reproducible from their packs (their requests changed between two executions): "
              f"{', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
