"""Recorded replies: read-only packs of LLM replies that the reply cache consults after its own levels.

A pack is one gzip'd JSON-lines file (`{"key": ..., "reply": ..., "latency_s": ...}` per line, sorted
by key) holding the replies a model gave to the requests one notebook made when it was last executed.
The key is the cache's request key (sha256 of the whole request, model included), so a pack answers
only the exact requests it recorded: another model, a changed prompt or another knob misses and goes
to the model live. The committed packs under `notebooks/replies/` make the smoke notebooks repeat
their committed outputs on any machine and keep nbval off the local model; `$POLCA_LLM_REPLAY=off`
ignores them (every uncached request goes live), a path list (os.pathsep) uses other packs.
`python -m polca_nb.record_replies` re-executes notebooks live and rewrites their packs.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ..data import PROJECT_ROOT, shown_path

ENV_REPLAY = "POLCA_LLM_REPLAY"
REPLIES_DIR = PROJECT_ROOT / "notebooks" / "replies"
PACK_SUFFIX = ".jsonl.gz"
OFF_VALUES = frozenset({"off", "0", "false", "no", "none"})


class ReplayPack:
    """One recorded-replies file, loaded on first lookup; `get(key)` -> the cache value or None."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._entries is None:
                self._entries = dict(read_pack(self.path))
            return self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        return self._load().get(key)

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        loaded = "not loaded" if self._entries is None else f"{len(self._entries)} replies"
        return f"ReplayPack({shown_path(self.path)}, {loaded})"


def read_pack(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, cache value) per line of a pack; ValueError naming the file and line on a bad line."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
                key = entry.pop("key")
            except (ValueError, KeyError, AttributeError) as exc:
                raise ValueError(f"{shown_path(path)} line {number} is not a recorded reply: {exc}") from exc
            if not isinstance(key, str) or not isinstance(entry.get("reply"), dict):
                raise ValueError(f"{shown_path(path)} line {number}: needs a string 'key' and a 'reply' object")
            yield key, entry


def write_pack(path: Path, entries: Mapping[str, Mapping[str, Any]]) -> int:
    """Write `entries` (key -> cache value) as a pack, sorted by key and byte-identical for equal
    entries (gzip mtime 0); the requests themselves are left out (the key identifies them). Returns
    how many replies were written."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as raw:
        for key in sorted(entries):
            value = entries[key]
            line = {"key": key, "reply": value["reply"], "latency_s": value.get("latency_s", 0.0)}
            raw.write((json.dumps(line, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return len(entries)


def cache_dir_entries(directory: Path) -> dict[str, dict[str, Any]]:
    """Every readable entry of an on-disk reply cache (`<dir>/<xx>/<key>.json`), key -> value."""
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*/*.json")):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(value, dict) and isinstance(value.get("reply"), dict):
            entries[path.stem] = value
    return entries


def pack_paths(setting: str | None) -> list[Path]:
    """The packs a `$POLCA_LLM_REPLAY` value names: unset -> every pack in notebooks/replies/;
    off/0/false/no/none/"" -> none; else os.pathsep-separated files or folders of packs."""
    if setting is None:
        places: Iterable[Path] = [REPLIES_DIR]
    elif setting.strip().lower() in OFF_VALUES or not setting.strip():
        return []
    else:
        places = [Path(part).expanduser() for part in setting.split(os.pathsep) if part.strip()]
    found: list[Path] = []
    for place in places:
        if place.is_dir():
            found.extend(sorted(place.glob(f"*{PACK_SUFFIX}")))
        elif place.is_file():
            found.append(place)
        elif setting is not None:
            raise ValueError(f"${ENV_REPLAY} names {str(place)!r}, which is neither a pack file nor a folder")
    return found


def default_replay() -> tuple[ReplayPack, ...]:
    """The packs named by `$POLCA_LLM_REPLAY` (default: the committed ones), not yet loaded."""
    return tuple(ReplayPack(path) for path in pack_paths(os.environ.get(ENV_REPLAY)))


def _clients_caches(clients: Iterable[Any]) -> list[Any]:
    caches = {id(c.cache): c.cache for c in clients if getattr(c, "cache", None) is not None}
    return list(caches.values())


def live_calls(*clients: Any) -> int:
    """Requests these clients sent to the model (not answered by a cache or a pack)."""
    return sum(client.ledger.total().calls for client in clients)


def reply_sources(*clients: Any) -> str:
    """One line: how these clients' requests were answered (live, recorded packs, the reply cache)."""
    totals = [client.ledger.total() for client in clients]
    requests = sum(t.requests for t in totals)
    replayed = sum(cache.replayed for cache in _clients_caches(clients))
    cached = sum(t.cache_hits for t in totals) - replayed
    packs = sorted({shown_path(p.path) for cache in _clients_caches(clients) for p in cache.replay})
    where = f" ({', '.join(packs)})" if packs else " (none in use)"
    return (f"LLM requests: {requests}; answered live by the model: {live_calls(*clients)}; "
            f"from recorded replies{where}: {replayed}; from the reply cache: {cached}")
