"""The event log's schema: one TypedDict per event type, and listeners that follow a run live.

Every step of the loop emits a plain JSON-able dict (so `events.jsonl` stays readable anywhere); the
TypedDicts below state exactly which keys each type carries. A listener is any callable taking one
event; `polca(..., listeners=[...])` (or `RunLog.subscribe`) calls it after the event is logged:

    def show(event):
        if event["type"] in ("admission", "rejection"):
            print(event["type"], event["candidate_id"], event["distance"])

    polca(problem, proposer, config, listeners=[show])

On resume, events replayed from the interrupted iteration are emitted (and heard) again; a listener
that raises stops the run, as any other bug would.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping, TypedDict, Union

Listener = Callable[[Mapping[str, Any]], None]


class StartEvent(TypedDict):
    type: Literal["start"]
    problem: str
    config: str
    seed: int
    embedder: str | None
    problem_data: dict[str, Any]
    seed_params: dict[str, str]


class _EvaluationKeys(TypedDict):
    type: Literal["evaluation"]
    step: int
    source: Literal["explore", "validate", "test", "reevaluate"]
    candidate_id: int
    example_id: str
    seed: int
    score: float
    feedback: str
    output: str


class EvaluationEvent(_EvaluationKeys, total=False):
    error: str  # only for an evaluation error (an LLM call failed inside the evaluation)


class SummaryEvent(TypedDict):
    type: Literal["summary"]
    step: int
    seed: int
    sampler: str
    candidate_ids: list[int]
    text: str


class SkippedEvent(TypedDict):
    type: Literal["skipped"]
    step: int
    roles: list[str]
    reason: str


class ProposalEvent(TypedDict):
    type: Literal["proposal"]
    step: int
    parent_id: int
    batch_index: int
    proposals: list[dict[str, str]]
    identical_to_parent: int
    dropped_identical: int


class ProposalErrorEvent(TypedDict):
    type: Literal["proposal_error"]
    step: int
    parent_id: int
    batch_index: int
    error: str


class FilterEvent(TypedDict):
    """An eps-Net decision: type "admission" or "rejection"; distance None when nothing was near."""

    type: Literal["admission", "rejection"]
    step: int
    proposal_index: int
    candidate_id: int
    parent_id: int | None
    distance: float | None
    eps: float
    params: dict[str, str]


class BudgetDropEvent(TypedDict):
    type: Literal["budget_drop"]
    step: int
    proposal_index: int
    candidate_id: int


class IterationEvent(TypedDict):
    type: Literal["iteration"]
    iteration: int
    metric_calls: int
    best_id: int
    best_mean: float | None
    best_n: int
    memory_size: int
    admitted: int
    rejected: int
    newest_id: int
    test_score: float | None
    explore_examples: int
    identical_evaluated: int
    evaluation_errors: int
    explored: list[int]
    explore_example_ids: list[str]


class ReevaluationEvent(TypedDict):
    type: Literal["reevaluation"]
    step: int
    set: str
    repeats: int
    scores: list[dict[str, Any]]


class _StoppedKeys(TypedDict):
    type: Literal["stopped"]
    reason: str
    step: int


class StoppedEvent(_StoppedKeys, total=False):
    """The run ended early: a fatal error, a USD limit or a stopper (reason names which)."""

    error: str
    message: str
    usd: dict[str, float] | None


Event = Union[StartEvent, EvaluationEvent, SummaryEvent, SkippedEvent, ProposalEvent, ProposalErrorEvent,
              FilterEvent, BudgetDropEvent, IterationEvent, ReevaluationEvent, StoppedEvent]

EVENT_TYPES: dict[str, type] = {
    "start": StartEvent, "evaluation": EvaluationEvent, "summary": SummaryEvent, "skipped": SkippedEvent,
    "proposal": ProposalEvent, "proposal_error": ProposalErrorEvent, "admission": FilterEvent,
    "rejection": FilterEvent, "budget_drop": BudgetDropEvent, "iteration": IterationEvent,
    "reevaluation": ReevaluationEvent, "stopped": StoppedEvent,
}
"""Event type name -> its TypedDict."""


def schema_problems(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with an event against its TypedDict: unknown type, missing or unknown keys."""
    kind = event.get("type")
    typed = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if typed is None:
        return [f"unknown event type {kind!r}"]
    required = set(typed.__required_keys__)  # type: ignore[attr-defined]
    allowed = required | set(typed.__optional_keys__)  # type: ignore[attr-defined]
    problems = [f"{kind}: missing {key!r}" for key in sorted(required - set(event))]
    problems += [f"{kind}: unexpected {key!r}" for key in sorted(set(event) - allowed)]
    return problems
