"""Search methods as configurations of the one loop: POLCA, its ablations, and simple baselines.

Sequential updating and best-of-N are not separate code: they are the POLCA loop with K = 1, no
eps-Net, no summarizer, and a priority that always explores the newest candidate (sequential) or the
seed (best-of-N). So every method shares the evaluator, cache, ledger and metric-call accounting.
Score curves and the comparison harness that runs these methods side by side are in `curves`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

from .memory import best_by_mean
from .progress import ProgressMode
from .protocols import Embedder, Executor, Proposer, Summarizer
from .runner import IterationStats, PolcaConfig, Problem, RunResult, polca
from .types import Candidate


@dataclass(frozen=True)
class Method:
    """A named way to configure the loop; `returns` says which program the method hands back."""

    name: str
    description: str
    configure: Callable[[PolcaConfig], PolcaConfig]
    returns: Literal["best_mean", "newest"] = "best_mean"

    @property
    def uses_epsnet(self) -> bool:
        return self.configure(_PROBE).eps > 0

    @property
    def uses_summarizer(self) -> bool:
        return self.configure(_PROBE).use_summarizer


def _probe() -> PolcaConfig:
    from .budget import Budget

    return PolcaConfig(Budget(max_iterations=1), eps=0.1, use_summarizer=True)


_PROBE = _probe()

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("polca", "POLCA: priority queue + eps-Net + summarizer", lambda c: c),
        Method("polca-vanilla", "priority queue only (no eps-Net, no summarizer)",
               lambda c: replace(c, eps=0.0, use_summarizer=False)),
        Method("polca+epsnet", "priority queue + eps-Net", lambda c: replace(c, use_summarizer=False)),
        Method("polca+summarizer", "priority queue + summarizer", lambda c: replace(c, eps=0.0)),
        Method("polca-ucb", "POLCA with the UCB priority", lambda c: replace(c, priority="ucb")),
        Method("sequential", "always improve the latest proposal (K=1)",
               lambda c: replace(c, num_candidates=1, num_batches=1, eps=0.0, use_summarizer=False,
                                 priority="newest"), returns="newest"),
        Method("best-of-n", "N independent proposals from the seed, keep the best mean (K=1)",
               lambda c: replace(c, num_candidates=1, num_batches=1, eps=0.0, use_summarizer=False,
                                 priority="oldest")),
    ]
}


def get_method(method: str | Method) -> Method:
    """String-or-object: a name from METHODS, or a Method."""
    if isinstance(method, Method):
        return method
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method]


def run_method(
    method: str | Method,
    problem: Problem,
    proposer: Proposer,
    base_config: PolcaConfig,
    *,
    embedder: Embedder | None = None,
    summarizer: Summarizer | None = None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    executor: Executor | int | None = None,
    progress: ProgressMode = True,
    extra_log: Callable[[], dict[str, Any]] | None = None,
    llm: Any = None,
) -> RunResult:
    """Run one method on a problem; a summarizer the method does not use is not passed on.
    `llm` (the roles' client) enforces a `Budget.max_usd` and records the run's spend.

    The embedder is passed on even without the eps-Net (eps = 0): it then only measures proposal
    distances (logged, reported by `RunResult.epsnet`), so every arm shows what eps would have done.
    """
    m = get_method(method)
    config = m.configure(base_config)
    return polca(problem, proposer, config, embedder=embedder,
                 summarizer=summarizer if config.use_summarizer else None, seed=seed, run_dir=run_dir,
                 executor=executor, progress=progress, extra_log=extra_log, llm=llm)


def returned_id(method: str | Method, stats: IterationStats) -> int:
    """Id of the program the method would hand back after this iteration."""
    return stats.newest_id if get_method(method).returns == "newest" else stats.best_id


def returned_program(method: str | Method, result: RunResult) -> Candidate:
    """The program the method hands back at the end of a run."""
    if get_method(method).returns == "newest":
        return result.memory.candidates[max(result.memory.candidates)]
    best = best_by_mean(result.memory)
    assert best is not None
    return best


__all__ = ["METHODS", "Method", "get_method", "returned_id", "returned_program", "run_method"]
