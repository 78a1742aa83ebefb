"""The loop's state between iterations (what a checkpoint stores) and what a run returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .budget import Spent
from .epsnet import EpsNetReport, ReferenceEmbeddings, epsnet_report
from .memory import Memory
from .problem import Problem
from .sampling import EpochSampler
from .types import SUMMARY_PREFIX, Candidate

# Stream ids for Generators derived from the run's seed: evaluations outside the search (test curve,
# final re-evaluation) must never change what the search itself draws.
TEST_STREAM = 1
REEVALUATION_STREAM = 2


def derived_rng(seed: int, stream: int) -> np.random.Generator:
    """An independent Generator for one purpose of a run (a fixed function of (seed, stream))."""
    return np.random.default_rng([int(seed), int(stream)])


@dataclass(frozen=True)
class IterationStats:
    """One row of the best-so-far curve."""

    iteration: int
    metric_calls: int
    best_id: int
    best_mean: float | None
    best_n: int
    memory_size: int
    admitted: int
    rejected: int
    newest_id: int
    test_score: float | None = None
    explore_examples: int = 0        # distinct examples in the shared exploration minibatch
    identical_evaluated: int = 0     # validated proposals identical to their parent
    evaluation_errors: int = 0       # evaluations of this iteration with an evaluation error (all sources)


@dataclass
class SearchState:
    """Everything the loop carries between iterations (and what a checkpoint stores)."""

    iteration: int
    memory: Memory
    context: str
    next_id: int
    spent: Spent
    rng: np.random.Generator
    history: list[IterationStats] = field(default_factory=list)
    test_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    train_sampler: EpochSampler = EpochSampler()
    val_sampler: EpochSampler = EpochSampler()
    summarized_ids: frozenset[int] = frozenset()
    # The eps-Net reference stacked once and grown by the loop: a cache derived from the memory's
    # embeddings, so a checkpoint leaves it out and a resumed run rebuilds it on first use.
    reference_embeddings: ReferenceEmbeddings = field(default_factory=ReferenceEmbeddings, compare=False,
                                                      repr=False)

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "memory": [c.to_dict() for c in self.memory],
            "context": self.context,
            "next_id": self.next_id,
            "spent": asdict(self.spent),
            "rng": self.rng.bit_generator.state,
            "test_rng": self.test_rng.bit_generator.state,
            "train_sampler": self.train_sampler.to_dict(),
            "val_sampler": self.val_sampler.to_dict(),
            "summarized_ids": sorted(self.summarized_ids),
            "history": [dict(vars(h)) for h in self.history],
        }

    @classmethod
    def from_checkpoint(cls, d: dict[str, Any]) -> "SearchState":
        def restored(state: dict[str, Any]) -> np.random.Generator:
            rng = np.random.default_rng()
            rng.bit_generator.state = state
            return rng

        return cls(
            iteration=int(d["iteration"]),
            memory=Memory({c["id"]: Candidate.from_dict(c) for c in d["memory"]}),
            context=d["context"],
            next_id=int(d["next_id"]),
            spent=Spent(**d["spent"]),
            rng=restored(d["rng"]),
            history=[IterationStats(**h) for h in d["history"]],
            test_rng=restored(d["test_rng"]),
            train_sampler=EpochSampler.from_dict(d["train_sampler"]),
            val_sampler=EpochSampler.from_dict(d["val_sampler"]),
            summarized_ids=frozenset(int(i) for i in d["summarized_ids"]),
        )


@dataclass(frozen=True)
class RunResult:
    """The outcome: best-by-mean candidate, the final memory, the curve and where the log is.

    With `final_reevaluation`, `reevaluated` holds the top-k by mean with their fresh scores (best
    first) and `best_reevaluated` the winner of those; `best` stays the best by mean.
    """

    best: Candidate
    memory: Memory
    history: list[IterationStats]
    spent: Spent
    stop_reason: str
    context: str
    events: list[dict[str, Any]]
    run_dir: Path | None = None
    eps: float = 0.0
    embedder: str | None = None
    reevaluated: tuple[tuple[Candidate, float], ...] = ()
    error: str | None = None         # "<Type>: <message>" of the fatal error that stopped the run
    usd: dict[str, float] | None = None  # USD of live LLM calls by role, whole run (with polca(llm=...))
    warnings: dict[str, int] = field(default_factory=dict)  # this session's warnings by reason (progress.py)

    @property
    def evaluation_errors(self) -> int:
        """Evaluations that could not be carried out (an LLM failure inside them), all sources."""
        return sum(1 for e in self.events if e.get("type") == "evaluation" and e.get("error"))

    @property
    def best_reevaluated(self) -> Candidate | None:
        return self.reevaluated[0][0] if self.reevaluated else None

    @property
    def epsnet(self) -> EpsNetReport:
        """Rejection rate and proposal distances of this run (eps means something only per embedder)."""
        return epsnet_report(self.events, self.eps, self.embedder)

    def summary(self) -> str:
        """A few lines for people: best program, budget lines, eps-Net behaviour, re-evaluation."""
        lines = [f"stopped by {self.stop_reason} after {len(self.history)} iterations; "
                 f"metric calls {self.spent.metric_calls} (search), {self.spent.test_calls} (test curve), "
                 f"{self.spent.reevaluation_calls} (final re-evaluation)"]
        if self.error is not None:
            lines.append(f"fatal error: {self.error}")
        if self.usd is not None:
            roles = ", ".join(f"{role} ${usd:.4f}" for role, usd in self.usd.items())
            lines.append(f"LLM spend ${sum(self.usd.values()):.4f}" + (f" ({roles})" if roles else ""))
        if self.best.mean is None:
            lines.append(f"best by mean: candidate {self.best.id}, not evaluated yet")
        else:
            lines.append(f"best by mean: candidate {self.best.id}, mean {self.best.mean:.3f} over {self.best.n} "
                         "rollouts")
        lines.append(str(self.epsnet))
        identical = sum(h.identical_evaluated for h in self.history)
        lines.append(f"proposals identical to their parent that were evaluated: {identical}")
        lines.append(f"evaluation errors (an LLM call failed inside the evaluation; not program failures): "
                     f"{self.evaluation_errors}")
        if self.warnings:
            reasons = ", ".join(f"{count}× {reason}" for reason, count in
                                sorted(self.warnings.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"warnings in this session: {reasons}")
        if self.reevaluated:
            top = self.reevaluated[0]
            lines.append(f"best after re-evaluating the top {len(self.reevaluated)}: candidate {top[0].id}, "
                         f"fresh score {_fmt(top[1])} (its search mean {_fmt(top[0].mean)})")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def initial_state(problem: Problem, seed: int) -> SearchState:
    """Memory holds only the seed program, unevaluated (so it is explored first)."""
    seed_candidate = Candidate(0, dict(problem.seed_params), None, 0)
    return SearchState(0, Memory({0: seed_candidate}), SUMMARY_PREFIX, 1, Spent(), np.random.default_rng(seed),
                       test_rng=derived_rng(seed, TEST_STREAM))
