"""The convenience runner: POLCA's loop built only from the functions in `search` and `memory`.

    result = polca(problem, proposer, PolcaConfig(...), seed=0, run_dir="runs/x")

A run directory gives an append-only event log and a per-iteration checkpoint; calling `polca` again
with the same directory resumes where the run stopped, repeating no logged evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .budget import Budget, Spent, exhausted, remaining_metric_calls
from .memory import Memory, PriorityRule, ScoreRange, best_by_mean, make_priority, pop_top_k, push
from .protocols import Embedder, Evaluator, Executor, Proposer, Summarizer, as_executor
from .runlog import RunLog
from .search import (
    evaluate_on,
    explore,
    explored_candidates,
    filter_proposals,
    propose,
    summarize,
    validate,
)
from .types import Candidate, Example, Params

SUMMARY_PREFIX = (
    "Concrete recommendations for generating better parameters based on successful patterns "
    "observed in the trajectories: "
)


@dataclass(frozen=True)
class Problem:
    """What to optimize: seed parameters, data, and the evaluator (score + feedback per example).

    `valset` defaults to the training set and `score_range` bounds every score (needed by UCB).
    """

    name: str
    seed_params: Params
    trainset: Sequence[Example]
    evaluator: Evaluator
    valset: Sequence[Example] | None = None
    testset: Sequence[Example] | None = None
    score_range: ScoreRange | None = (0.0, 1.0)
    objective: str = ""

    @property
    def validation_examples(self) -> Sequence[Example]:
        return self.trainset if self.valset is None else self.valset

    def examples_by_id(self) -> dict[str, Example]:
        out: dict[str, Example] = {}
        for ds in (self.trainset, self.valset or (), self.testset or ()):
            out.update({ex.id: ex for ex in ds})
        return out


@dataclass(frozen=True)
class PolcaConfig:
    """The knobs of the paper's loop (defaults: the paper's HotpotQA / tau-bench setting)."""

    budget: Budget
    num_candidates: int = 5          # K: candidates explored per iteration
    batch_size: int = 2              # b: training examples per sub-batch
    num_batches: int = 1             # m: sub-batches per explored candidate
    num_proposals: int = 1           # P: proposals per (candidate, sub-batch)
    validation_batch_size: int | None = None  # default: batch_size
    eps: float = 0.1                 # eps-Net radius; 0 disables
    priority: str | PriorityRule = "mean"
    ucb_c: float = 1.0
    use_summarizer: bool = True
    test_every: int | None = None    # evaluate the best-by-mean on the test set every N iterations
    test_repeats: int = 1

    def validated(self, problem: Problem) -> "PolcaConfig":
        """Raise ValueError naming the bad field before any evaluation happens."""
        checks = [
            ("num_candidates", self.num_candidates >= 1),
            ("batch_size", self.batch_size >= 1),
            ("num_batches", self.num_batches >= 1),
            ("num_proposals", self.num_proposals >= 1),
            ("validation_batch_size", self.validation_batch_size is None or self.validation_batch_size >= 1),
            ("eps", isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0),
            ("test_repeats", self.test_repeats >= 1),
            ("test_every", self.test_every is None or self.test_every >= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"PolcaConfig.{name} is invalid: {getattr(self, name)!r}")
        if not problem.seed_params:
            raise ValueError("Problem.seed_params is empty: give at least one parameter to optimize")
        if len(problem.trainset) == 0:
            raise ValueError("Problem.trainset is empty")
        if self.batch_size > len(problem.trainset):
            raise ValueError(f"PolcaConfig.batch_size {self.batch_size} is larger than Problem.trainset "
                             f"({len(problem.trainset)} examples)")
        if len(problem.validation_examples) == 0:
            raise ValueError("Problem.valset is empty")
        if self.val_batch > len(problem.validation_examples):
            raise ValueError(f"PolcaConfig.validation_batch_size {self.val_batch} is larger than the validation "
                             f"set ({len(problem.validation_examples)} examples)")
        if self.test_every is not None and not problem.testset:
            raise ValueError("PolcaConfig.test_every is set but Problem.testset is empty")
        make_priority(self.priority, problem.score_range, self.ucb_c)  # raises for ucb without a range
        return self

    @property
    def val_batch(self) -> int:
        return self.validation_batch_size or self.batch_size

    def fingerprint(self) -> str:
        """Identifies the settings a checkpoint was made with (resume refuses a different config)."""
        d = asdict(self)
        d["priority"] = self.priority if isinstance(self.priority, str) else getattr(self.priority, "name", "custom")
        d.pop("budget")  # a resumed run may extend its budget
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


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

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "memory": [c.to_dict() for c in self.memory],
            "context": self.context,
            "next_id": self.next_id,
            "spent": asdict(self.spent),
            "rng": self.rng.bit_generator.state,
            "history": [dict(vars(h)) for h in self.history],
        }

    @classmethod
    def from_checkpoint(cls, d: dict[str, Any]) -> "SearchState":
        rng = np.random.default_rng()
        rng.bit_generator.state = d["rng"]
        return cls(
            iteration=int(d["iteration"]),
            memory=Memory({c["id"]: Candidate.from_dict(c) for c in d["memory"]}),
            context=d["context"],
            next_id=int(d["next_id"]),
            spent=Spent(**d["spent"]),
            rng=rng,
            history=[IterationStats(**h) for h in d["history"]],
        )


@dataclass(frozen=True)
class RunResult:
    """The outcome: best-by-mean candidate, the final memory, the curve and where the log is."""

    best: Candidate
    memory: Memory
    history: list[IterationStats]
    spent: Spent
    stop_reason: str
    context: str
    events: list[dict[str, Any]]
    run_dir: Path | None = None


def initial_state(problem: Problem, seed: int) -> SearchState:
    """Memory holds only the seed program, unevaluated (so it is explored first)."""
    seed_candidate = Candidate(0, dict(problem.seed_params), None, 0)
    return SearchState(0, Memory({0: seed_candidate}), SUMMARY_PREFIX, 1, Spent(), np.random.default_rng(seed))


def iterate(
    state: SearchState,
    problem: Problem,
    config: PolcaConfig,
    *,
    proposer: Proposer,
    embedder: Embedder | None,
    summarizer: Summarizer | None,
    log_: RunLog,
    executor: Executor,
) -> SearchState | None:
    """One POLCA iteration; None if the budget cannot pay for its exploration (nothing is spent then)."""
    t = state.iteration
    rng = state.rng
    priority = make_priority(config.priority, problem.score_range, config.ucb_c)
    popped, rest = pop_top_k(state.memory, config.num_candidates, priority, t)
    m = max(config.num_batches, int(config.num_batches * config.num_candidates / len(popped)))
    if len(popped) * m * config.batch_size > remaining_metric_calls(config.budget, state.spent):
        return None

    explored = explore(popped, problem.trainset, batch_size=config.batch_size, num_batches=config.num_batches,
                       num_candidates=config.num_candidates, evaluator=problem.evaluator, step=t, rng=rng,
                       log_=log_, executor=executor)
    fresh = explored_candidates(explored)
    spent = state.spent.add(metric_calls=sum(len(eb.rollouts) for eb in explored))

    context = state.context
    if config.use_summarizer and summarizer is not None:
        context = summarize(list(rest) + fresh, summarizer, previous=context, examples=problem.examples_by_id(),
                            step=t, rng=rng, log_=log_)

    proposals = propose(explored, proposer, context=context if config.use_summarizer else "",
                        num_proposals=config.num_proposals, step=t, rng=rng, log_=log_, executor=executor)
    spent = spent.add(proposals=len(proposals))

    decisions, reference = filter_proposals(proposals, list(rest) + fresh, eps=config.eps, embedder=embedder,
                                            first_id=state.next_id, step=t, log_=log_)
    admitted = [d.candidate for d in decisions if d.admitted]
    affordable = int(min(len(admitted), remaining_metric_calls(config.budget, spent) // config.val_batch))
    for dropped in admitted[affordable:]:
        log_.emit({"type": "budget_drop", "step": t, "proposal_index": dropped.id - state.next_id,
                   "candidate_id": dropped.id})
    validated = validate(admitted[:affordable], problem.validation_examples, batch_size=config.val_batch,
                         evaluator=problem.evaluator, step=t, rng=rng, log_=log_, executor=executor)
    spent = spent.add(metric_calls=len(validated) * config.val_batch, iterations=1)

    memory = push(Memory({c.id: c for c in reference}), validated)
    best = best_by_mean(memory)
    assert best is not None
    test_score = None
    if config.test_every and problem.testset and (t + 1) % config.test_every == 0:
        test_score = evaluate_on(best, problem.testset, evaluator=problem.evaluator, repeats=config.test_repeats,
                                 step=t, rng=rng, log_=log_, executor=executor)
        spent = spent.add(test_calls=len(problem.testset) * config.test_repeats)
    stats = IterationStats(t, spent.metric_calls, best.id, best.mean, best.n, len(memory),
                           len(admitted), sum(1 for d in decisions if not d.admitted),
                           max(memory.candidates), test_score)
    log_.emit({"type": "iteration", **asdict(stats), "explored": [c.id for c in fresh]})
    return SearchState(t + 1, memory, context, state.next_id + len(proposals), spent, rng,
                       state.history + [stats])


def polca(
    problem: Problem,
    proposer: Proposer,
    config: PolcaConfig,
    *,
    embedder: Embedder | None = None,
    summarizer: Summarizer | None = None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    executor: Executor | int | None = None,
    progress: bool = True,
    on_iteration: Callable[[SearchState], None] | None = None,
    extra_log: Callable[[], dict[str, Any]] | None = None,
) -> RunResult:
    """Run POLCA until the budget is spent; resume automatically from `run_dir` if it has a checkpoint.

    `embedder=None` (or eps=0) disables the eps-Net; `summarizer=None` disables the summary.
    `extra_log` adds a JSON-able dict (e.g. an LLM ledger snapshot) to each iteration's checkpoint.
    """
    config.validated(problem)
    if config.eps > 0 and embedder is None:
        raise ValueError(f"PolcaConfig.eps is {config.eps} but no embedder was given: pass an embedder "
                         "or set eps=0 to disable the eps-Net")
    if config.use_summarizer and summarizer is None:
        raise ValueError("PolcaConfig.use_summarizer is True but no summarizer was given: pass one or set "
                         "use_summarizer=False")
    exec_ = as_executor(executor)
    log_ = RunLog(Path(run_dir) if run_dir is not None else None)
    meta = {"problem": problem.name, "config": config.fingerprint(), "seed": seed,
            "embedder": getattr(embedder, "name", None) if config.eps > 0 else None}
    checkpoint = log_.load_checkpoint()
    if checkpoint is not None:
        if checkpoint.get("meta") != meta:
            raise ValueError(f"run_dir {run_dir} holds a run with different settings {checkpoint.get('meta')}; "
                             f"this call has {meta}: use a new run_dir")
        state = SearchState.from_checkpoint(checkpoint["state"])
    else:
        state = initial_state(problem, seed)
        if not log_.events:
            log_.emit({"type": "start", **meta, "seed_params": dict(problem.seed_params)})

    bar = _progress_bar(config.budget, state, enabled=progress)
    stop_reason = exhausted(config.budget, state.spent)
    try:
        while stop_reason is None:
            started = time.perf_counter()
            new_state = iterate(state, problem, config, proposer=proposer, embedder=embedder,
                                summarizer=summarizer if config.use_summarizer else None, log_=log_,
                                executor=exec_)
            if new_state is None:
                stop_reason = "max_metric_calls"
                break
            new_state.spent = new_state.spent.add(seconds=time.perf_counter() - started)
            before, state = state, new_state
            if log_.directory is not None:
                payload = {"meta": meta, "state": state.to_checkpoint()}
                if extra_log is not None:
                    payload["extra"] = extra_log()
                log_.save_checkpoint(payload)
            if on_iteration is not None:
                on_iteration(state)
            _advance(bar, config.budget, before, state)
            stop_reason = exhausted(config.budget, state.spent)
    finally:
        if bar is not None:
            bar.close()
    best = best_by_mean(state.memory)
    assert best is not None
    return RunResult(best, state.memory, state.history, state.spent, stop_reason, state.context,
                     list(log_.events), log_.directory)


def _progress_bar(budget: Budget, state: SearchState, *, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    if budget.max_metric_calls is not None:
        return tqdm(total=budget.max_metric_calls, initial=state.spent.metric_calls, unit="call", desc="POLCA")
    total = budget.max_iterations
    return tqdm(total=total, initial=state.iteration, unit="it", desc="POLCA")


def _advance(bar, budget: Budget, before: SearchState, after: SearchState) -> None:
    if bar is None:
        return
    if budget.max_metric_calls is not None:
        bar.update(after.spent.metric_calls - before.spent.metric_calls)
    else:
        bar.update(1)
    last = after.history[-1]
    bar.set_postfix(best=f"{last.best_mean:.3f}" if last.best_mean is not None else "-", mem=last.memory_size)
