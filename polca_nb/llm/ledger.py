"""Per-role accounting of LLM use: calls, cache hits, tokens, USD, latency.

Counts and spend are kept apart from wall-clock latency: `snapshot()["usage"]` depends only on what
was asked and what the cache held, so an event log can include it and stay byte-identical across
reruns, while `snapshot()["latency_s"]` varies from run to run.
"""

from __future__ import annotations

import html
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class RoleUsage:
    """Totals for one role. `calls` are live LLM calls (they cost tokens and money), `cache_hits`
    were answered from the cache, `errors` failed after all retries, `retries` counts extra
    attempts. Tokens and USD are live spend only."""

    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0

    @property
    def requests(self) -> int:
        """Everything asked of the client: live calls, cache hits and failures."""
        return self.calls + self.cache_hits + self.errors

    def add(self, other: "RoleUsage") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class Ledger:
    """Thread-safe per-role usage ledger; one can be shared by several clients."""

    def __init__(self) -> None:
        self._usage: dict[str, RoleUsage] = {}
        self._latency: dict[str, float] = {}
        self._lock = threading.Lock()

    def _role(self, role: str) -> RoleUsage:
        if not isinstance(role, str) or not role or role == "total":
            raise ValueError(f"role must be a non-empty string other than 'total', got {role!r}")
        if role not in self._usage:
            self._usage[role] = RoleUsage()
            self._latency[role] = 0.0
        return self._usage[role]

    def record_call(self, role: str, *, input_tokens: int, output_tokens: int, usd: float,
                    latency_s: float, retries: int = 0) -> None:
        """One successful live call (after `retries` failed attempts)."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                            ("usd", usd), ("latency_s", latency_s), ("retries", retries)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        with self._lock:
            usage = self._role(role)
            usage.calls += 1
            usage.retries += retries
            usage.input_tokens += int(input_tokens)
            usage.output_tokens += int(output_tokens)
            usage.usd += float(usd)
            self._latency[role] += float(latency_s)

    def record_cache_hit(self, role: str, *, latency_s: float = 0.0) -> None:
        with self._lock:
            self._role(role).cache_hits += 1
            self._latency[role] += float(latency_s)

    def record_error(self, role: str, *, latency_s: float, retries: int = 0) -> None:
        """A request that failed after all its attempts."""
        with self._lock:
            usage = self._role(role)
            usage.errors += 1
            usage.retries += retries
            self._latency[role] += float(latency_s)

    def usage(self, role: str) -> RoleUsage:
        """A copy of one role's totals (zeros for a role never seen)."""
        with self._lock:
            return RoleUsage(**asdict(self._usage[role])) if role in self._usage else RoleUsage()

    def total(self) -> RoleUsage:
        with self._lock:
            total = RoleUsage()
            for usage in self._usage.values():
                total.add(usage)
            return total

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: {"usage": {role: {...}, "total": {...}}, "latency_s": {role: s, "total": s}}.
        Roles are sorted; "usage" holds no timing, so it is reproducible; USD rounded to 1e-9."""
        with self._lock:
            roles = sorted(self._usage)
            usage = {role: _usage_dict(self._usage[role]) for role in roles}
            latency = {role: self._latency[role] for role in roles}
            total = RoleUsage()
            for role in roles:
                total.add(self._usage[role])
        usage["total"] = _usage_dict(total)
        latency["total"] = sum(latency.values())
        return {"usage": usage, "latency_s": latency}

    def reset(self) -> None:
        with self._lock:
            self._usage.clear()
            self._latency.clear()

    def _rows(self) -> list[list[str]]:
        snap = self.snapshot()
        rows = []
        for role, u in snap["usage"].items():
            rows.append([role, str(u["calls"]), str(u["cache_hits"]), str(u["errors"]), str(u["retries"]),
                         f"{u['input_tokens']:,}", f"{u['output_tokens']:,}", f"{u['usd']:.6f}",
                         f"{snap['latency_s'][role]:.1f}"])
        return rows

    _HEADER = ["role", "calls", "cache hits", "errors", "retries", "input tok", "output tok", "USD", "latency s"]

    def __str__(self) -> str:
        rows = [self._HEADER] + self._rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(self._HEADER))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self._rows())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        t = self.total()
        return f"Ledger(calls={t.calls}, cache_hits={t.cache_hits}, errors={t.errors}, usd={t.usd:.4f})"


def _usage_dict(usage: RoleUsage) -> dict[str, Any]:
    d = asdict(usage)
    d["usd"] = round(d["usd"], 9)
    d["requests"] = usage.requests
    return d
