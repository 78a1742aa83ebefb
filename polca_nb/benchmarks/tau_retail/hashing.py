"""The type-aware database hash of the reward: SHA-256 of the Python `str()` of a canonical form.

Canonical form: dict -> tuple of (key, value) pairs sorted by key, list -> tuple, set -> sorted
tuple, scalars unchanged. `canonical_text` writes the `str()` of that form directly (repr of
scalars, so 62 and 62.0 differ), which lets untouched records reuse a memoised text: hashing an
episode DB then only formats the few records the episode rewrote.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from .data import Db, RetailData

Memo = Mapping[int, tuple[Any, str]]
"""id(object) -> (object, its canonical text); the object is kept so the id cannot be reused."""


def canonical_form(value: Any) -> Any:
    """The canonical nested-tuple form itself (reference implementation; slow on a whole DB)."""
    if isinstance(value, dict):
        return tuple(sorted((key, canonical_form(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(canonical_form(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(value))
    return value


def _tuple_text(parts: list[str]) -> str:
    if len(parts) == 1:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def canonical_text(value: Any, memo: Memo | None = None) -> str:
    """`str(canonical_form(value))`, reusing `memo` entries for objects that are identical (`is`)."""
    if memo:
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
    if isinstance(value, dict):
        pairs = sorted(value.items(), key=lambda pair: pair[0])
        return _tuple_text([f"({key!r}, {canonical_text(item, memo)})" for key, item in pairs])
    if isinstance(value, list):
        return _tuple_text([canonical_text(item, memo) for item in value])
    if isinstance(value, (set, frozenset)):
        return _tuple_text([repr(item) for item in sorted(value)])
    if isinstance(value, tuple):
        # Tuples are scalars to the canonicaliser, so their elements are printed as they are.
        return repr(value)
    return repr(value)


def record_memo(data: RetailData) -> Memo:
    """Canonical texts of every pristine record, computed once per RetailData."""
    memo = data.record_text_memo
    if not memo:
        for records in data.pristine.values():
            for record in records.values():
                memo[id(record)] = (record, canonical_text(record))
    return memo


def db_hash(db: Db, data: RetailData | None = None) -> str:
    """Hex SHA-256 of the canonical text of `db`; pass `data` to reuse its pristine-record memo."""
    memo = record_memo(data) if data is not None else None
    return hashlib.sha256(canonical_text(db, memo).encode("utf-8")).hexdigest()
