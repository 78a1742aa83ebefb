"""Run directory: an append-only JSON-lines event log plus a checkpoint, for no lost work.

`events.jsonl` gets one line per evaluation, proposal, admission, rejection, summary and iteration.
`checkpoint.json` is rewritten atomically at the end of every iteration. A killed run resumes from the
checkpoint; the iteration it was in is re-run with the restored RNG, and every evaluation, proposal
or summary logged after the checkpoint is *replayed* from the log instead of recomputed. The log is
cut back to the checkpoint on resume (its tail is kept in `replay.jsonl` until the next checkpoint,
so a second crash loses nothing), so the finished log equals that of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

EVENTS = "events.jsonl"
CHECKPOINT = "checkpoint.json"
REPLAY = "replay.jsonl"


def event_key(event: dict[str, Any]) -> tuple | None:
    """Identity of an event for replay (None: events that are always re-derived and re-written)."""
    kind = event.get("type")
    if kind == "evaluation":
        return (kind, event["step"], event["source"], event["candidate_id"], event["example_id"], event["seed"])
    if kind in ("proposal", "proposal_error"):
        return ("proposal", event["step"], event["parent_id"], event["batch_index"])
    if kind == "summary":
        return (kind, event["step"])
    if kind in ("admission", "rejection"):
        return ("filter", event["step"], event["proposal_index"])
    if kind == "budget_drop":
        return (kind, event["step"], event["proposal_index"])
    return None


def read_events(path: Path) -> list[dict[str, Any]]:
    """All complete events of a log; a torn last line (crash mid-write) is ignored."""
    if not path.exists():
        return []
    events = []
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            events.append(json.loads(line))
    return events


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


@dataclass
class RunLog:
    """Event sink with optional persistence and replay.

    With `directory=None` events are only kept in memory (notebooks chaining steps by hand).
    `listeners` are called with each event after it is recorded (see `polca_nb.events`).
    """

    directory: Path | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    replay: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    listeners: list[Callable[[Mapping[str, Any]], None]] = field(default_factory=list)

    def subscribe(self, listener: Callable[[Mapping[str, Any]], None]) -> None:
        """Call `listener(event)` for every event emitted from now on."""
        if not callable(listener):
            raise TypeError(f"a listener must be callable, got {type(listener).__name__}")
        self.listeners.append(listener)

    def __post_init__(self) -> None:
        if self.directory is not None:
            self.directory = Path(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def events_path(self) -> Path | None:
        return None if self.directory is None else self.directory / EVENTS

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.directory is None else self.directory / CHECKPOINT

    def replayed(self, key: tuple) -> dict[str, Any] | None:
        """The logged event with this key from the interrupted iteration, if any."""
        return self.replay.get(key)

    def emit(self, event: dict[str, Any]) -> None:
        """Record an event (appended to the log file when the run has a directory)."""
        self.events.append(event)
        if self.events_path is not None:
            with self.events_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, ensure_ascii=False) + "\n")
        for listener in self.listeners:
            listener(event)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Persist the end-of-iteration state together with how many events it covers."""
        if self.directory is None:
            return
        _atomic_write_text(self.directory / CHECKPOINT, json.dumps({**state, "events_count": len(self.events)}))
        (self.directory / REPLAY).unlink(missing_ok=True)
        self.replay = {}

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Restore events and the checkpoint (None if there is none yet).

        Events logged after the checkpoint become the replay table and are cut from the log.
        """
        if self.directory is None:
            return None
        checkpoint = None
        checkpoint_path, events_path = self.directory / CHECKPOINT, self.directory / EVENTS
        if checkpoint_path.exists():
            checkpoint = json.loads(checkpoint_path.read_text(encoding="utf-8"))
        logged = read_events(events_path)
        covered = int(checkpoint["events_count"]) if checkpoint else 0
        tail = read_events(self.directory / REPLAY) + logged[covered:]
        if tail:
            _atomic_write_text(self.directory / REPLAY, _jsonl(tail))
        _atomic_write_text(events_path, _jsonl(logged[:covered]))
        self.events = logged[:covered]
        self.replay = {k: e for e in tail if (k := event_key(e)) is not None}
        return checkpoint

    def of_type(self, *types: str) -> Iterator[dict[str, Any]]:
        return (e for e in self.events if e.get("type") in types)
