"""LLM spend on workers, brought back to the run: what a worker's clients recorded during one
evaluator call travels back in its `Attempt` as plain data, and the run's process records it on its
own ledger, so `Budget(max_usd)`, the run's USD totals and `ledger.track()` include it.

- On a worker, the evaluator's client keeps a `WorkerLedger` (`worker.worker_ledger()`, the
  process's one). It is a `Ledger` that, besides its own totals, copies every record made while a
  `usage_tab()` is open *in the same thread* (a context variable) into that tab, as `UsageRecord`s.
  `EvaluatorCall` opens one tab per call, so concurrent calls on a multi-threaded worker never see
  each other's records. Calls the evaluator makes on threads it starts itself are not in its tab.
- In the run's process, `record_usage(ledger, records)` replays them on the run's ledger (live calls
  with their tokens and USD, cache hits, errors, faults, and the requests its trackers see);
  `over_limit(ledger, role)` says whether the ledger's installed USD limits are now passed.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

from ..errors import BudgetExhausted
from ..llm.base import LLMReply
from ..llm.ledger import Ledger

RecordKind = Literal["call", "cache_hit", "error", "fault", "request"]


@dataclass(frozen=True)
class UsageRecord:
    """One ledger record, as plain data (it pickles): `kind` says which `Ledger.record_*` made it.

    "call": a live call (tokens, `usd`, `latency_s`, `retries`); "cache_hit": a reply from the cache;
    "error": a request that failed after `retries`; "fault": one failed attempt of kind `fault`;
    "request": what the ledger's trackers saw (`prompt_chars`, the reply's tokens and `cached`;
    `failed` when there was no reply).
    """

    kind: RecordKind
    role: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    usd: float = 0.0
    latency_s: float = 0.0
    retries: int = 0
    fault: str = ""
    prompt_chars: int = 0
    cached: bool = False
    failed: bool = False


_tab: contextvars.ContextVar[list[UsageRecord] | None] = contextvars.ContextVar("polca_usage_tab", default=None)


@contextlib.contextmanager
def usage_tab() -> Iterator[list[UsageRecord]]:
    """Collect, in the yielded list, what every `WorkerLedger` records in this thread until exit."""
    records: list[UsageRecord] = []
    token = _tab.set(records)
    try:
        yield records
    finally:
        _tab.reset(token)


def _note(record: UsageRecord) -> None:
    records = _tab.get()
    if records is not None:
        records.append(record)


class WorkerLedger(Ledger):
    """A `Ledger` whose records also go to the open `usage_tab()` of the thread that makes them."""

    def record_call(self, role: str, *, input_tokens: int, output_tokens: int, usd: float,
                    latency_s: float, retries: int = 0, cache_write_tokens: int = 0,
                    cache_read_tokens: int = 0) -> None:
        super().record_call(role, input_tokens=input_tokens, output_tokens=output_tokens, usd=usd,
                            latency_s=latency_s, retries=retries, cache_write_tokens=cache_write_tokens,
                            cache_read_tokens=cache_read_tokens)
        _note(UsageRecord("call", role, int(input_tokens), int(output_tokens), int(cache_write_tokens),
                          int(cache_read_tokens), float(usd), float(latency_s), int(retries)))

    def record_cache_hit(self, role: str, *, latency_s: float = 0.0) -> None:
        super().record_cache_hit(role, latency_s=latency_s)
        _note(UsageRecord("cache_hit", role, latency_s=float(latency_s)))

    def record_error(self, role: str, *, latency_s: float, retries: int = 0) -> None:
        super().record_error(role, latency_s=latency_s, retries=retries)
        _note(UsageRecord("error", role, latency_s=float(latency_s), retries=int(retries)))

    def record_fault(self, role: str, kind: str) -> None:
        super().record_fault(role, kind)
        _note(UsageRecord("fault", role, fault=str(kind)))

    def record_request(self, role: str, *, prompt_chars: int, reply: LLMReply | None) -> None:
        super().record_request(role, prompt_chars=prompt_chars, reply=reply)
        if reply is None:
            _note(UsageRecord("request", role, prompt_chars=int(prompt_chars), failed=True))
        else:
            _note(UsageRecord("request", role, reply.input_tokens, reply.output_tokens, reply.cache_write_tokens,
                              reply.cache_read_tokens, prompt_chars=int(prompt_chars), cached=bool(reply.cached)))


def record_usage(ledger: Ledger, records: Sequence[UsageRecord]) -> None:
    """Replay `records` (made on a worker) on `ledger`, in order, as if its own clients had made them."""
    for r in records:
        if r.kind == "call":
            ledger.record_call(r.role, input_tokens=r.input_tokens, output_tokens=r.output_tokens, usd=r.usd,
                               latency_s=r.latency_s, retries=r.retries, cache_write_tokens=r.cache_write_tokens,
                               cache_read_tokens=r.cache_read_tokens)
        elif r.kind == "cache_hit":
            ledger.record_cache_hit(r.role, latency_s=r.latency_s)
        elif r.kind == "error":
            ledger.record_error(r.role, latency_s=r.latency_s, retries=r.retries)
        elif r.kind == "fault":
            ledger.record_fault(r.role, r.fault)
        else:
            ledger.record_request(r.role, prompt_chars=r.prompt_chars, reply=_reply_of(r))


def _reply_of(r: UsageRecord) -> LLMReply | None:
    """The reply a "request" record stands for (its tokens only), for the ledger's trackers."""
    if r.failed:
        return None
    return LLMReply(text="", input_tokens=r.input_tokens, output_tokens=r.output_tokens, cached=r.cached,
                    cache_write_tokens=r.cache_write_tokens, cache_read_tokens=r.cache_read_tokens)


def spent_usd(records: Sequence[UsageRecord]) -> float:
    """USD of the live calls among `records`."""
    return sum(r.usd for r in records if r.kind == "call")


def over_limit(ledger: Ledger, role: str) -> BudgetExhausted | None:
    """The BudgetExhausted a call of `role` costing nothing would meet now: an installed USD limit
    of `ledger` is already passed (worker spend recorded after the fact); None while within limits."""
    try:
        ledger.check_spend(role, 0.0)
    except BudgetExhausted as exc:
        return exc
    ledger.release_spend(role, 0.0)
    return None


def usage_of(result: Any) -> tuple[UsageRecord, ...]:
    """The usage records a result carries (an `Attempt`'s), else none."""
    usage = getattr(result, "usage", ())
    return tuple(usage) if isinstance(usage, (tuple, list)) else ()
