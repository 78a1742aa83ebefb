"""USD limits of a run: install `Budget.max_usd` on the LLM ledger, carry the spend across resumes.

The ledger refuses (raises BudgetExhausted) before a live call that could pass a limit; the runner
turns that into a clean stop. What a run has spent is kept in `<run_dir>/usd.json` (by role), so a
resumed run continues the same spend instead of starting again from zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .budget import Budget
from .llm.ledger import SpendLimit, ledger_of

SPEND_FILE = "usd.json"
LLM_USAGE_FILE = "llm_usage.json"
"""The ledger's snapshot (calls, tokens, cache hits, retries, faults by kind, latency) at the last
checkpoint or stop of this session: faults and retries vary from run to run, so they live here and
not in events.jsonl, which a rerun with a warm cache reproduces byte for byte."""


def carried_spend(run_dir: Path | None) -> dict[str, float]:
    """USD by role that earlier sessions of this run spent (empty for a new run)."""
    if run_dir is None or not (run_dir / SPEND_FILE).is_file():
        return {}
    data = json.loads((run_dir / SPEND_FILE).read_text())
    return {str(role): float(usd) for role, usd in data.get("usd_by_role", {}).items()}


def save_spend(run_dir: Path | None, usd_by_role: dict[str, float]) -> None:
    if run_dir is None:
        return
    tmp = run_dir / f".{SPEND_FILE}.tmp"
    tmp.write_text(json.dumps({"usd_by_role": usd_by_role, "usd": sum(usd_by_role.values())}, sort_keys=True))
    os.replace(tmp, run_dir / SPEND_FILE)


class RunSpend:
    """The USD a run has spent so far (carried + this session), by role; enforces the budget's limits."""

    def __init__(self, budget: Budget, llm: Any, run_dir: Path | None) -> None:
        self.ledger = ledger_of(llm)
        if budget.limits_usd and self.ledger is None:
            raise ValueError(f"Budget.max_usd={budget.max_usd!r} / max_usd_by_role={dict(budget.max_usd_by_role)!r} "
                             f"needs the LLM that makes the calls: pass llm=<your LLMClient> to polca() "
                             f"(got {type(llm).__name__ if llm is not None else 'none'}, which keeps no ledger)")
        self.run_dir = run_dir
        self.limit = SpendLimit(budget.max_usd, dict(budget.max_usd_by_role), carried_spend(run_dir))

    def install(self) -> None:
        """Start counting (and enforcing limits on) the ledger's live calls."""
        if self.ledger is not None:
            self.ledger.install_limit(self.limit)

    def remove(self) -> None:
        if self.ledger is not None:
            self.ledger.remove_limit(self.limit)

    def by_role(self) -> dict[str, float] | None:
        """USD by role of the whole run; None when no ledger was given."""
        if self.ledger is None:
            return None
        return {role: round(usd, 9) for role, usd in self.ledger.spent_under(self.limit).items()}

    def save(self) -> None:
        spent = self.by_role()
        if spent is None or self.run_dir is None or self.ledger is None:
            return
        save_spend(self.run_dir, spent)
        tmp = self.run_dir / f".{LLM_USAGE_FILE}.tmp"
        tmp.write_text(json.dumps(self.ledger.snapshot(), sort_keys=True, indent=1))
        os.replace(tmp, self.run_dir / LLM_USAGE_FILE)
