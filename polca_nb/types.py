"""Plain data the search loop works on: examples, rollouts, candidates.

Everything here is a frozen dataclass so a search step can be written as a function from old data
to new data; updating a candidate means `with_rollouts`, never mutation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal, Mapping

import numpy as np

Params = dict[str, str]
"""A program's parameters: parameter name -> text (a prompt, instructions, code)."""

Source = Literal["explore", "validate", "test", "reevaluate"]

SEED_BOUND = 2**31 - 1
"""Evaluation and LLM-sample seeds are drawn from [0, SEED_BOUND): they fit every backend's int32 seed."""

SUMMARY_PREFIX = (
    "Concrete recommendations for generating better parameters based on successful patterns "
    "observed in the trajectories: "
)
"""Leads every summarizer context, the search's initial one included (the paper's prefix, "agent" dropped)."""

EvaluationErrors = Literal["zero", "exclude"]
"""What becomes of an evaluation *error* (an LLM failure inside an evaluation, not a bad program):
"zero" keeps it as a score-0 rollout flagged with `error`; "exclude" keeps it out of the candidate's
history (it is still logged and still a metric call)."""
EVALUATION_ERRORS: tuple[str, ...] = ("zero", "exclude")


@dataclass(frozen=True)
class Example:
    """One task instance. `id` must be unique within its dataset; `data` is whatever the evaluator needs."""

    id: str
    data: Any


@dataclass(frozen=True)
class Evaluation:
    """What an evaluator returns for one (params, example): one metric call.

    `error` marks an *evaluation error*: the evaluation itself could not be carried out (e.g. an LLM
    call inside it failed for good), as opposed to a program that ran and scored badly. The score is
    then a placeholder (0 or the range minimum); `PolcaConfig.evaluation_errors` decides whether such
    rollouts count as zeros or are kept out of the candidate's history.
    """

    score: float
    feedback: str
    output: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Rollout:
    """One scored evaluation of a candidate on an example, as kept in its history."""

    example_id: str
    score: float
    feedback: str
    step: int
    source: Source
    output: str = ""
    seed: int = 0
    error: str | None = None   # an evaluation error (see `Evaluation.error`), not a program failure

    def to_dict(self) -> dict[str, Any]:
        d = {
            "example_id": self.example_id,
            "score": self.score,
            "feedback": self.feedback,
            "step": self.step,
            "source": self.source,
            "output": self.output,
            "seed": self.seed,
        }
        if self.error is not None:  # only when set: error-free checkpoints stay as they were
            d["error"] = self.error
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Rollout":
        return cls(**{k: d[k] for k in ("example_id", "score", "feedback", "step", "source", "output", "seed")},
                   error=d.get("error"))


@dataclass(frozen=True)
class Candidate:
    """A program in memory with its full evaluation history.

    n, mean and variance are derived from `rollouts` (all sources, all steps: this is how POLCA
    averages noise out). `embedding` is filled once by the eps-Net step and then reused.
    """

    id: int
    params: Params
    parent_id: int | None = None
    step_created: int = 0
    rollouts: tuple[Rollout, ...] = ()
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def n(self) -> int:
        return len(self.rollouts)

    # Cached: priorities and rankings read these many times per iteration, and rollouts never change.
    @cached_property
    def mean(self) -> float | None:
        """Empirical mean score, or None before the first evaluation."""
        if not self.rollouts:
            return None
        return math.fsum(r.score for r in self.rollouts) / len(self.rollouts)

    @cached_property
    def variance(self) -> float | None:
        """Population variance of the scores (ddof=0), or None before the first evaluation."""
        mean = self.mean
        if mean is None:
            return None
        return math.fsum((r.score - mean) ** 2 for r in self.rollouts) / len(self.rollouts)

    def with_rollouts(self, new: tuple[Rollout, ...] | list[Rollout]) -> "Candidate":
        return replace(self, rollouts=self.rollouts + tuple(new))

    def with_embedding(self, embedding: np.ndarray) -> "Candidate":
        return replace(self, embedding=np.asarray(embedding, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (cached: a checkpoint serialises every unchanged candidate again)."""
        return self._as_dict

    @cached_property
    def _as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "params": dict(self.params),
            "parent_id": self.parent_id,
            "step_created": self.step_created,
            "rollouts": [r.to_dict() for r in self.rollouts],
            "embedding": None if self.embedding is None else self.embedding.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Candidate":
        emb = d.get("embedding")
        return cls(
            id=int(d["id"]),
            params=dict(d["params"]),
            parent_id=d.get("parent_id"),
            step_created=int(d.get("step_created", 0)),
            rollouts=tuple(Rollout.from_dict(r) for r in d.get("rollouts", ())),
            embedding=None if emb is None else np.asarray(emb, dtype=np.float64),
        )


def render_params(params: Mapping[str, str]) -> str:
    """Canonical text of a parameter dict: what gets embedded, hashed and shown to people."""
    if len(params) == 1:
        return next(iter(params.values()))
    return "\n\n".join(f"<{name}>\n{value}\n</{name}>" for name, value in sorted(params.items()))


def params_key(params: Mapping[str, str]) -> str:
    """Stable identity of a parameter dict (used for caching and de-duplication)."""
    return json.dumps(dict(params), sort_keys=True, ensure_ascii=False)
