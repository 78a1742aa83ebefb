"""Search budgets: metric calls (one per example evaluation), proposals, iterations, wall time, and
USD of live LLM calls (in total and per role; enforced by the LLM ledger before each call)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping


@dataclass(frozen=True)
class Budget:
    """Limits of a run; None means unlimited, but at least one limit must be set."""

    max_metric_calls: int | None = None
    max_proposals: int | None = None
    max_iterations: int | None = None
    max_seconds: float | None = None
    max_usd: float | None = None
    max_usd_by_role: Mapping[str, float] = field(default_factory=dict)
    """USD limits on live LLM calls (cache hits are free). The run stops cleanly before the call whose
    worst case (its max_tokens, the prompt at 3 characters per token) could pass a limit;
    `polca(..., llm=client)` must be given the client (or its ledger) that makes the calls."""

    def __post_init__(self) -> None:
        limits = {
            "max_metric_calls": self.max_metric_calls,
            "max_proposals": self.max_proposals,
            "max_iterations": self.max_iterations,
            "max_seconds": self.max_seconds,
            "max_usd": self.max_usd,
        }
        limits.update({f"max_usd_by_role[{role!r}]": v for role, v in dict(self.max_usd_by_role).items()})
        if all(v is None for v in limits.values()):
            raise ValueError("Budget needs at least one limit: max_metric_calls, max_proposals, "
                             "max_iterations, max_seconds or max_usd")
        for name, value in limits.items():
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"Budget.{name} must be a positive finite number, got {value!r}")

    @property
    def limits_usd(self) -> bool:
        return self.max_usd is not None or bool(self.max_usd_by_role)


@dataclass(frozen=True)
class Spent:
    """What a run has used so far. Test-curve evaluations and the final re-evaluation are budget lines
    of their own, reported next to (not inside) the search's metric calls."""

    metric_calls: int = 0
    proposals: int = 0
    iterations: int = 0
    seconds: float = 0.0
    test_calls: int = 0
    reevaluation_calls: int = 0

    def add(self, **deltas: float) -> "Spent":
        return replace(self, **{k: getattr(self, k) + v for k, v in deltas.items()})


def remaining_metric_calls(budget: Budget, spent: Spent) -> float:
    """Metric calls still allowed (inf when there is no metric-call limit)."""
    if budget.max_metric_calls is None:
        return math.inf
    return max(0, budget.max_metric_calls - spent.metric_calls)


def exhausted(budget: Budget, spent: Spent) -> str | None:
    """The name of the first spent limit, or None while the run may continue."""
    if budget.max_metric_calls is not None and spent.metric_calls >= budget.max_metric_calls:
        return "max_metric_calls"
    if budget.max_proposals is not None and spent.proposals >= budget.max_proposals:
        return "max_proposals"
    if budget.max_iterations is not None and spent.iterations >= budget.max_iterations:
        return "max_iterations"
    if budget.max_seconds is not None and spent.seconds >= budget.max_seconds:
        return "max_seconds"
    return None
