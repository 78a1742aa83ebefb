"""Per-role accounting of LLM use: calls, cache hits, tokens (incl. prompt-cache writes and reads),
USD, latency, faults; USD spend limits checked before each live call; and scoped tracking of every
request, cached ones included (`Ledger.track()`, see `usage.py`).

Counts and spend are kept apart from wall-clock latency and faults: `snapshot()["usage"]` depends
only on what was asked and what the cache held, so an event log can include it and stay
byte-identical across reruns, while `snapshot()["latency_s"]` and `snapshot()["faults"]` vary from
run to run.
"""

from __future__ import annotations

import html
import math
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..errors import BudgetExhausted
from .usage import UsageTracker

if TYPE_CHECKING:
    from .base import LLMReply


@dataclass
class RoleUsage:
    """Totals for one role. `calls` are live LLM calls (they cost tokens and money), `cache_hits`
    were answered from the cache, `errors` failed after all retries, `retries` counts extra
    attempts. Tokens and USD are live spend only: `input_tokens` is the uncached part of the
    prompts, `cache_write_tokens` / `cache_read_tokens` the parts written to / read from the
    endpoint's prompt cache (their sum is the whole prompt)."""

    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens sent: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    @property
    def requests(self) -> int:
        """Everything asked of the client: live calls, cache hits and failures."""
        return self.calls + self.cache_hits + self.errors

    def add(self, other: "RoleUsage") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class SpendLimit:
    """A USD limit on live calls, in total (`max_usd`) and/or per role (`max_usd_by_role`).

    Spend counts from when the limit is installed, plus `carried` (what an earlier session of the
    same run spent, by role), so a resumed run continues the same spend.
    """

    max_usd: float | None = None
    max_usd_by_role: Mapping[str, float] = field(default_factory=dict)
    carried: dict[str, float] = field(default_factory=dict)
    _base: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name, value in [("max_usd", self.max_usd), *((f"max_usd_by_role[{r!r}]", v)
                                                          for r, v in dict(self.max_usd_by_role).items())]:
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number of USD, got {value!r}")


class Ledger:
    """Thread-safe per-role usage ledger; one can be shared by several clients."""

    def __init__(self) -> None:
        self._usage: dict[str, RoleUsage] = {}
        self._latency: dict[str, float] = {}
        self._faults: dict[str, int] = {}
        self._limits: list[SpendLimit] = []
        self._reserved: dict[str, float] = {}  # worst-case USD of calls in flight, by role
        self._trackers: list[UsageTracker] = []
        self._lock = threading.Lock()

    # -- scoped tracking -------------------------------------------------------------------------
    def track(self, roles: Iterable[str] | None = None) -> UsageTracker:
        """An active `UsageTracker` of every request this ledger's clients answer from now on (live or
        from the reply cache, with the reply's tokens) and every one that fails, per role (only
        `roles` when given), until `stop()` or the end of a `with` block:

            with client.ledger.track() as usage:
                ...
            usage.usage("task").input_tokens
        """
        return UsageTracker(self, roles).start()

    def _attach(self, tracker: UsageTracker) -> None:
        with self._lock:
            if not tracker.active:
                self._trackers.append(tracker)
                tracker.active = True

    def _detach(self, tracker: UsageTracker) -> None:
        with self._lock:
            self._trackers = [t for t in self._trackers if t is not tracker]
            tracker.active = False

    def record_request(self, role: str, *, prompt_chars: int, reply: LLMReply | None) -> None:
        """One request a client answered with `reply` (live or cached; None: it failed), for the
        active trackers. The ledger's own totals are kept by record_call/record_cache_hit/record_error."""
        with self._lock:
            trackers = list(self._trackers)
        for tracker in trackers:
            tracker.record(role, prompt_chars=prompt_chars, reply=reply)

    # -- spend limits ----------------------------------------------------------------------------
    def install_limit(self, limit: SpendLimit) -> SpendLimit:
        """Start enforcing `limit` (its spend counts from now, plus what it carries)."""
        with self._lock:
            limit._base = {role: u.usd for role, u in self._usage.items()}
            self._limits.append(limit)
        return limit

    def remove_limit(self, limit: SpendLimit) -> None:
        with self._lock:
            self._limits = [lim for lim in self._limits if lim is not limit]

    def spent_under(self, limit: SpendLimit) -> dict[str, float]:
        """USD by role counted against `limit` (carried spend included)."""
        with self._lock:
            return self._spent_under(limit)

    def _spent_under(self, limit: SpendLimit) -> dict[str, float]:
        roles = set(self._usage) | set(limit.carried)
        spent = {}
        for role in sorted(roles):
            now = self._usage[role].usd if role in self._usage else 0.0
            spent[role] = limit.carried.get(role, 0.0) + now - limit._base.get(role, 0.0)
        return spent

    def check_spend(self, role: str, projected_usd: float) -> None:
        """Raise BudgetExhausted if a call costing up to `projected_usd` for `role` could exceed an
        installed limit; otherwise reserve that amount until `release_spend` (calls in flight on
        other threads count, so concurrent calls cannot pass a limit together). Called before every
        live call."""
        with self._lock:
            for limit in self._limits:
                spent = self._spent_under(limit)
                pending = self._reserved
                total = sum(spent.values()) + sum(pending.values())
                if limit.max_usd is not None and total + projected_usd > limit.max_usd:
                    raise BudgetExhausted(
                        f"max_usd: spent ${total:.4f} of ${limit.max_usd:g} (calls in flight included); the next "
                        f"{role} call could cost up to ${projected_usd:.4f}", limit="max_usd")
                cap = dict(limit.max_usd_by_role).get(role)
                mine = spent.get(role, 0.0) + pending.get(role, 0.0)
                if cap is not None and mine + projected_usd > cap:
                    raise BudgetExhausted(
                        f"max_usd[{role}]: spent ${mine:.4f} of ${cap:g}; the next call could cost up "
                        f"to ${projected_usd:.4f}", limit=f"max_usd[{role}]")
            if self._limits:
                self._reserved[role] = self._reserved.get(role, 0.0) + projected_usd

    def release_spend(self, role: str, projected_usd: float) -> None:
        """End the reservation `check_spend` made (the call was recorded, or failed)."""
        with self._lock:
            if role in self._reserved:
                self._reserved[role] = max(0.0, self._reserved[role] - projected_usd)

    def record_fault(self, role: str, kind: str) -> None:
        """One failed attempt (retried or not), by kind: "429", "529", "500", "timeout",
        "connection", "malformed", ... Faults are not reproducible, so they stay out of "usage"."""
        with self._lock:
            self._role(role)
            self._faults[kind] = self._faults.get(kind, 0) + 1

    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._faults.items()))

    def _role(self, role: str) -> RoleUsage:
        if not isinstance(role, str) or not role or role == "total":
            raise ValueError(f"role must be a non-empty string other than 'total', got {role!r}")
        if role not in self._usage:
            self._usage[role] = RoleUsage()
            self._latency[role] = 0.0
        return self._usage[role]

    def record_call(self, role: str, *, input_tokens: int, output_tokens: int, usd: float,
                    latency_s: float, retries: int = 0, cache_write_tokens: int = 0,
                    cache_read_tokens: int = 0) -> None:
        """One successful live call (after `retries` failed attempts)."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                            ("usd", usd), ("latency_s", latency_s), ("retries", retries),
                            ("cache_write_tokens", cache_write_tokens), ("cache_read_tokens", cache_read_tokens)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        with self._lock:
            usage = self._role(role)
            usage.calls += 1
            usage.retries += retries
            usage.input_tokens += int(input_tokens)
            usage.output_tokens += int(output_tokens)
            usage.cache_write_tokens += int(cache_write_tokens)
            usage.cache_read_tokens += int(cache_read_tokens)
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
        """JSON-able state: {"usage": {role: {...}, "total": {...}}, "latency_s": {role: s, "total": s},
        "faults": {kind: n}}. Roles are sorted; "usage" holds no timing, so it is reproducible; USD
        rounded to 1e-9."""
        with self._lock:
            roles = sorted(self._usage)
            usage = {role: _usage_dict(self._usage[role]) for role in roles}
            latency = {role: self._latency[role] for role in roles}
            total = RoleUsage()
            for role in roles:
                total.add(self._usage[role])
        usage["total"] = _usage_dict(total)
        latency["total"] = sum(latency.values())
        return {"usage": usage, "latency_s": latency, "faults": self.faults()}

    def reset(self) -> None:
        with self._lock:
            self._usage.clear()
            self._latency.clear()
            self._faults.clear()

    def _rows(self) -> list[list[str]]:
        snap = self.snapshot()
        rows = []
        for role, u in snap["usage"].items():
            rows.append([role, str(u["calls"]), str(u["cache_hits"]), str(u["errors"]), str(u["retries"]),
                         f"{u['input_tokens']:,}", f"{u['cache_write_tokens']:,}", f"{u['cache_read_tokens']:,}",
                         f"{u['output_tokens']:,}", f"{u['usd']:.6f}",
                         f"{snap['latency_s'][role]:.1f}"])
        return rows

    _HEADER = ["role", "calls", "cache hits", "errors", "retries", "input tok", "cache write tok", "cache read tok",
               "output tok", "USD", "latency s"]

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


def ledger_of(llm: Any) -> Ledger | None:
    """The ledger of an LLM client (or a Ledger itself); None for None or an LLM without one (a
    scripted fake without a ledger): then a run bills nothing and refuses a USD limit (spend.RunSpend)."""
    if llm is None or isinstance(llm, Ledger):
        return llm
    ledger = getattr(llm, "ledger", None)
    return ledger if isinstance(ledger, Ledger) else None


def _usage_dict(usage: RoleUsage) -> dict[str, Any]:
    d = asdict(usage)
    d["usd"] = round(d["usd"], 9)
    d["requests"] = usage.requests
    return d
