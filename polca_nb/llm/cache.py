"""Two-level (memory + disk) cache of LLM replies keyed by the whole request.

The key is the sha256 of the canonical JSON of everything that defines a reply: model, system,
messages, max_tokens, temperature, tools, stop and sample_id. The endpoint URL is deliberately not
part of it, so a local server restarted on a new port still hits. Disk entries are one JSON file per
key, created atomically and only if absent (temp file + hard link), so a crash never leaves a torn
entry and when several processes compute the same request, the first stored reply wins and every
writer hands that one back: logs written from a reply always match the cache. Temp files left by a
killed writer are removed the first time a cache instance writes. Behind memory and disk, read-only
packs of recorded replies (`replay.py`) answer the requests they recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data import shown_path

from .config import ENV_CACHE_DIR
from .replay import ReplayPack, default_replay

STALE_TMP_S = 600.0
"""A temp file this old was left by a killed writer (a live write takes milliseconds)."""

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_cache_dir() -> Path:
    """`$POLCA_CACHE_DIR` if set, else `<project>/.cache/llm`."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser().resolve()
    return PROJECT_ROOT / ".cache" / "llm"


def checked_temperature(temperature: float) -> float:
    """`temperature` as a float; ValueError unless it is a finite number >= 0."""
    value = float(temperature)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return value


def canonical_request(
    *,
    model: str,
    system: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int,
    temperature: float | None,
    sample_id: int,
    tools: Sequence[Mapping[str, Any]] | None,
    stop: Sequence[str] | None,
) -> dict[str, Any]:
    """The request as plain JSON data, normalised so that equal requests compare equal
    (temperature a float, or None when the backend does not send one; empty tools/stop the same as
    None, sequences as lists)."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if not isinstance(sample_id, int) or isinstance(sample_id, bool) or sample_id < 0:
        raise ValueError(f"sample_id must be an int >= 0, got {sample_id!r}")
    if temperature is not None:
        temperature = checked_temperature(temperature)
    if isinstance(stop, str):
        raise ValueError(f"stop must be a sequence of strings, not one string: {stop!r}")
    return {
        "model": model,
        "system": system,
        "messages": _plain(list(messages)),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "sample_id": sample_id,
        "tools": _plain(list(tools)) if tools else None,
        "stop": list(stop) if stop else None,
    }


def request_key(request: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of a request."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """Tuples become lists and mappings become dicts, so JSON sees one shape for equal data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class LLMCache:
    """Reply cache: an in-memory dict in front of one JSON file per key under `directory`, and behind
    both the read-only `replay` packs of recorded replies (consulted in order; never written).

    `directory=None` keeps the cache in memory only. Values are JSON-able dicts; the cache does not
    interpret them. `replayed` counts the lookups a pack answered. Thread-safe.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 replay: Sequence[ReplayPack] = ()) -> None:
        self.directory = None if directory is None else Path(directory).expanduser()
        self.replay = tuple(replay)
        self.replayed = 0
        self._from_pack: set[str] = set()
        self._memory: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._swept = False

    @classmethod
    def default(cls) -> "LLMCache":
        """A cache on `default_cache_dir()` over the recorded replies `$POLCA_LLM_REPLAY` names
        (default: the committed packs in notebooks/replies/)."""
        return cls(default_cache_dir(), replay=default_replay())

    def path_for(self, key: str) -> Path | None:
        if self.directory is None:
            return None
        # A two-character fan-out keeps directories small enough to list comfortably.
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value, or None; a disk or replay hit is promoted into memory.
        An unreadable disk entry counts as a miss (it will be overwritten)."""
        value = self._lookup(key)
        if value is not None and key in self._from_pack:
            with self._lock:
                self.replayed += 1
        return value

    def _lookup(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        path = self.path_for(key)
        value = self._read(path) if path is not None and path.is_file() else None
        from_pack = False
        if value is None:
            value = next((v for v in (pack.get(key) for pack in self.replay) if v is not None), None)
            from_pack = value is not None
        if value is None:
            return None
        with self._lock:
            self._memory[key] = value
            if from_pack:
                self._from_pack.add(key)
        return value

    def put(self, key: str, value: Mapping[str, Any]) -> dict[str, Any]:
        """Store a JSON-able value unless the key already holds one; return the stored value.

        Create-if-absent: when another thread or process stored this key first, its value is kept
        and returned, so every caller uses (and logs) the one reply the cache will replay.
        """
        value = dict(value)
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=1)
        path = self.path_for(key)
        if path is None:
            with self._lock:
                return self._memory.setdefault(key, value)
        self._sweep_once()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, created = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        tmp: str | None = created
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            try:
                os.link(created, path)  # atomic, and fails if the entry exists: no writer overwrites another
                stored = value
            except FileExistsError:
                existing = self._read(path)
                if existing is None:  # an unreadable entry (written by an older, non-atomic version)
                    os.replace(created, path)
                    tmp = None
                    stored = value
                else:
                    stored = existing
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        with self._lock:
            self._memory[key] = stored
        return stored

    def clean_stale_tmp(self, max_age_s: float = STALE_TMP_S) -> int:
        """Delete temp files older than `max_age_s` (left by killed writers); returns how many."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        cutoff = time.time() - max_age_s
        removed = 0
        for tmp in self.directory.glob("*/.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # another process cleaned or finished it
                continue
        return removed

    def _sweep_once(self) -> None:
        with self._lock:
            if self._swept:
                return
            self._swept = True
        self.clean_stale_tmp()

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def __contains__(self, key: str) -> bool:
        return self._lookup(key) is not None

    def __len__(self) -> int:
        """Entries in memory (disk entries not yet read are not counted)."""
        with self._lock:
            return len(self._memory)

    def clear_memory(self) -> None:
        """Forget the in-memory level; disk entries stay (used to test the disk level)."""
        with self._lock:
            self._memory.clear()

    def __repr__(self) -> str:
        where = "memory only" if self.directory is None else shown_path(self.directory)
        packs = f", {len(self.replay)} replay packs" if self.replay else ""
        return f"LLMCache({where}, {len(self)} in memory{packs})"
