"""The convenience runner: POLCA's loop built only from the functions in `search` and `memory`.

    result = polca(problem, proposer, PolcaConfig(...), seed=0, run_dir="runs/x")

A run directory gives an append-only event log and a per-iteration checkpoint; calling `polca` again
with the same directory resumes where the run stopped, repeating no logged evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from .budget import Budget, Spent, exhausted, remaining_metric_calls
from .errors import BudgetExhausted, FatalError
from .memory import Memory, PriorityRule, ScoreRange, best_by_mean, make_priority, pop_top_k, push
from .protocols import Embedder, Evaluator, Executor, Proposer, Summarizer, as_executor
from .runlog import CHECKPOINT, REPLAY, RunLog, read_events
from .epsnet import EpsNetReport, epsnet_report
from .spend import RunSpend
from .sampling import SUMMARY_SAMPLERS, EpochSampler, SummarySampler, next_batch
from .search import (
    EVALUATION_ERRORS,
    EvaluationErrors,
    evaluate_on,
    exploration_batches,
    explore,
    explored_candidates,
    filter_proposals,
    propose,
    reevaluate_top_k,
    summarize,
    validate,
)
from .types import Candidate, Example, Params, params_key

logger = logging.getLogger(__name__)

ReevaluationSet = Literal["validation", "test", "train"]

# Stream ids for Generators derived from the run's seed: evaluations outside the search (test curve,
# final re-evaluation) must never change what the search itself draws.
TEST_STREAM = 1
REEVALUATION_STREAM = 2


def derived_rng(seed: int, stream: int) -> np.random.Generator:
    """An independent Generator for one purpose of a run (a fixed function of (seed, stream))."""
    return np.random.default_rng([int(seed), int(stream)])

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
    # Validation batch shared by this round's admitted proposals. None: b*m after the num_batches
    # scaling, as the paper's code; an int fixes it (a named deviation).
    validation_batch_size: int | None = None
    eps: float = 0.1                 # eps-Net radius; 0 disables (meaningful only per embedder)
    priority: str | PriorityRule = "mean"
    ucb_c: float = 1.0
    use_summarizer: bool = True
    summary_sampler: SummarySampler = "incremental"   # or "experiment" (paper-era: 20 random, afresh)
    summary_max_candidates: int | None = None         # None: the sampler's published 5 / 20
    # The paper evaluates a proposal identical to its parent (the eps-Net rejects it when eps > 0);
    # True drops exact copies before the eps-Net, a deliberate deviation.
    drop_identical_proposals: bool = False
    test_every: int | None = None    # evaluate the best-by-mean on the test set every N iterations
    test_repeats: int = 1
    # Winner's-curse correction after the search: re-score the top-k by mean on a whole set and also
    # return the best of them; its metric calls are a budget line of their own.
    final_reevaluation: int | None = None
    final_reevaluation_set: ReevaluationSet = "validation"
    final_reevaluation_repeats: int = 1
    # An LLM failure inside an evaluation is an evaluation *error*, not a failing program. "zero" keeps
    # it as a score-0 (range minimum) rollout flagged with `error`; "exclude" keeps it out of the
    # candidate's history and means (still logged, still a metric call).
    evaluation_errors: EvaluationErrors = "zero"

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
            ("summary_sampler", self.summary_sampler in SUMMARY_SAMPLERS),
            ("summary_max_candidates", self.summary_max_candidates is None or self.summary_max_candidates >= 1),
            ("final_reevaluation", self.final_reevaluation is None or self.final_reevaluation >= 1),
            ("final_reevaluation_set", self.final_reevaluation_set in ("validation", "test", "train")),
            ("final_reevaluation_repeats", self.final_reevaluation_repeats >= 1),
            ("evaluation_errors", self.evaluation_errors in EVALUATION_ERRORS),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"PolcaConfig.{name} is invalid: {getattr(self, name)!r}")
        if not problem.seed_params:
            raise ValueError("Problem.seed_params is empty: give at least one parameter to optimize")
        # Batches larger than a set are fine: they walk the set epoch by epoch (sampling.next_batch).
        if len(problem.trainset) == 0:
            raise ValueError("Problem.trainset is empty")
        if len(problem.validation_examples) == 0:
            raise ValueError("Problem.valset is empty")
        if self.test_every is not None and not problem.testset:
            raise ValueError("PolcaConfig.test_every is set but Problem.testset is empty")
        if self.final_reevaluation is not None and not reevaluation_examples(problem, self.final_reevaluation_set):
            raise ValueError(f"PolcaConfig.final_reevaluation_set is {self.final_reevaluation_set!r} but that set "
                             "of the problem is empty")
        make_priority(self.priority, problem.score_range, self.ucb_c)  # raises for ucb without a range
        return self

    def validation_batch(self, num_batches: int) -> int:
        """Examples in the shared validation batch when exploration used `num_batches` sub-batches."""
        return self.validation_batch_size or self.batch_size * num_batches

    def fingerprint(self) -> str:
        """Identifies the settings a checkpoint was made with (resume refuses a different config)."""
        d = asdict(self)
        d["priority"] = self.priority if isinstance(self.priority, str) else getattr(self.priority, "name", "custom")
        d.pop("budget")  # a resumed run may extend its budget
        # Fields added after run dirs existed enter only when set to a non-default value, so those
        # run dirs keep resuming.
        for name, default in _LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


_LATER_FIELDS: dict[str, Any] = {"evaluation_errors": "zero"}


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


def reevaluation_examples(problem: Problem, which: str) -> Sequence[Example]:
    """The set named by `PolcaConfig.final_reevaluation_set`."""
    if which == "validation":
        return problem.validation_examples
    if which == "test":
        return problem.testset or ()
    if which == "train":
        return problem.trainset
    raise ValueError(f"final_reevaluation_set must be 'validation', 'test' or 'train', got {which!r}")


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
    first_event = len(log_.events)
    scoring = {"score_range": problem.score_range, "evaluation_errors": config.evaluation_errors}
    priority = make_priority(config.priority, problem.score_range, config.ucb_c)
    popped, rest = pop_top_k(state.memory, config.num_candidates, priority, t)
    m = exploration_batches(config.num_batches, config.num_candidates, len(popped))
    if len(popped) * m * config.batch_size > remaining_metric_calls(config.budget, state.spent):
        return None

    # One shared minibatch of b*m examples for every popped candidate (common inputs).
    batch, train_sampler = next_batch(state.train_sampler, problem.trainset, config.batch_size * m, rng)
    explored = explore(popped, batch, batch_size=config.batch_size, evaluator=problem.evaluator, step=t, rng=rng,
                       log_=log_, executor=executor, **scoring)
    fresh = explored_candidates(explored)
    spent = state.spent.add(metric_calls=len(popped) * len(batch))
    val_size = config.validation_batch(m)

    # Proposals are worth asking for only if one of them can still be validated; the budget never
    # grows within a run, so neither can a later summary be used then.
    left = remaining_metric_calls(config.budget, spent)
    skip = left < val_size
    if skip:
        skipped = (["summarizer"] if config.use_summarizer and summarizer is not None else []) + ["proposer"]
        log_.emit({"type": "skipped", "step": t, "roles": skipped,
                   "reason": f"{int(left)} metric calls left cannot pay for one validation of {val_size} examples"})

    context, summarized_ids = state.context, state.summarized_ids
    if config.use_summarizer and summarizer is not None and not skip:
        context, summarized_ids = summarize(
            list(rest) + fresh, summarizer, previous=context, examples=problem.examples_by_id(), step=t, rng=rng,
            log_=log_, summarized_ids=summarized_ids, sampler=config.summary_sampler,
            max_candidates=config.summary_max_candidates, initial=SUMMARY_PREFIX)

    proposals = [] if skip else propose(
        explored, proposer, context=context if config.use_summarizer else "", num_proposals=config.num_proposals,
        step=t, rng=rng, log_=log_, executor=executor, drop_identical=config.drop_identical_proposals)
    spent = spent.add(proposals=len(proposals))

    decisions, reference = filter_proposals(proposals, list(rest) + fresh, eps=config.eps, embedder=embedder,
                                            first_id=state.next_id, step=t, log_=log_)
    admitted = [d.candidate for d in decisions if d.admitted]
    affordable = int(min(len(admitted), remaining_metric_calls(config.budget, spent) // val_size))
    for dropped in admitted[affordable:]:
        log_.emit({"type": "budget_drop", "step": t, "proposal_index": dropped.id - state.next_id,
                   "candidate_id": dropped.id})
    val_sampler = state.val_sampler
    validated: list[Candidate] = []
    if affordable:
        val_batch, val_sampler = next_batch(val_sampler, problem.validation_examples, val_size, rng)
        validated = validate(admitted[:affordable], val_batch, evaluator=problem.evaluator, step=t, rng=rng,
                             log_=log_, executor=executor, **scoring)
    spent = spent.add(metric_calls=len(validated) * val_size, iterations=1)
    identical_ids = {state.next_id + i for i, p in enumerate(proposals) if p.identical_to_parent}

    memory = push(Memory({c.id: c for c in reference}), validated)
    best = best_by_mean(memory)
    assert best is not None
    test_score = None
    if config.test_every and problem.testset and (t + 1) % config.test_every == 0:
        test_score = evaluate_on(best, problem.testset, evaluator=problem.evaluator, repeats=config.test_repeats,
                                 step=t, rng=state.test_rng, log_=log_, executor=executor, **scoring)
        spent = spent.add(test_calls=len(problem.testset) * config.test_repeats)
    stats = IterationStats(t, spent.metric_calls, best.id, best.mean, best.n, len(memory),
                           len(admitted), sum(1 for d in decisions if not d.admitted),
                           max(memory.candidates), test_score, len({ex.id for ex in batch}),
                           sum(1 for c in validated if c.id in identical_ids),
                           sum(1 for e in log_.events[first_event:] if e.get("type") == "evaluation" and e.get("error")))
    log_.emit({"type": "iteration", **asdict(stats), "explored": [c.id for c in fresh],
               "explore_example_ids": [ex.id for ex in batch]})
    return SearchState(t + 1, memory, context, state.next_id + len(proposals), spent, rng,
                       state.history + [stats], state.test_rng, train_sampler, val_sampler, summarized_ids)


def final_reevaluation(
    state: SearchState,
    problem: Problem,
    config: PolcaConfig,
    *,
    seed: int,
    log_: RunLog,
    executor: Executor,
) -> tuple[tuple[tuple[Candidate, float], ...], Spent]:
    """Re-score the top-k by mean on the configured set (its own Generator); charge its own budget line."""
    if config.final_reevaluation is None:
        return (), state.spent
    dataset = reevaluation_examples(problem, config.final_reevaluation_set)
    scored = reevaluate_top_k(list(state.memory), config.final_reevaluation, dataset, evaluator=problem.evaluator,
                              repeats=config.final_reevaluation_repeats, step=state.iteration,
                              rng=derived_rng(seed, REEVALUATION_STREAM), log_=log_, executor=executor,
                              score_range=problem.score_range, evaluation_errors=config.evaluation_errors)
    calls = len(scored) * len(dataset) * config.final_reevaluation_repeats
    log_.emit({"type": "reevaluation", "step": state.iteration, "set": config.final_reevaluation_set,
               "repeats": config.final_reevaluation_repeats,
               "scores": [{"candidate_id": c.id, "search_mean": c.mean, "score": s} for c, s in scored]})
    return tuple(scored), state.spent.add(reevaluation_calls=calls)


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
    llm: Any = None,
    confirm: Callable[[Any], bool] | None = None,
) -> RunResult:
    """Run POLCA until the budget is spent; resume automatically from `run_dir` if it has a checkpoint.

    `embedder=None` (or eps=0) disables the eps-Net; `summarizer=None` disables the summary.
    `extra_log` adds a JSON-able dict (e.g. an LLM ledger snapshot) to each iteration's checkpoint.
    `llm` (the LLMClient the roles use, or its Ledger) enforces `Budget.max_usd` and puts the run's
    USD in the result; a USD stop ends the run cleanly before the call that could pass the limit.
    `confirm` (e.g. `preview.confirm_below(50)`) is shown the projected cost (`preview.preview_run`,
    one dry iteration through `llm`) before anything runs; False raises `preview.RunRefused`.
    """
    config.validated(problem)
    if config.eps > 0 and embedder is None:
        raise ValueError(f"PolcaConfig.eps is {config.eps} but no embedder was given: pass an embedder "
                         "or set eps=0 to disable the eps-Net")
    if config.use_summarizer and summarizer is None:
        raise ValueError("PolcaConfig.use_summarizer is True but no summarizer was given: pass one or set "
                         "use_summarizer=False")
    if run_dir is None or not (Path(run_dir) / CHECKPOINT).exists():
        check_first_exploration(config)  # a fresh run: refuse a budget that cannot pay for anything
    if confirm is not None:
        _confirm_cost(problem, proposer, config, llm=llm, summarizer=summarizer, embedder=embedder, seed=seed,
                      confirm=confirm)
    exec_ = as_executor(executor)
    log_ = RunLog(Path(run_dir) if run_dir is not None else None)
    embedder_name = getattr(embedder, "name", None) if embedder is not None else None
    meta = {"problem": problem.name, "config": config.fingerprint(), "seed": seed, "embedder": embedder_name,
            "problem_data": problem_fingerprint(problem)}
    checkpoint = log_.load_checkpoint()
    if checkpoint is not None:
        _check_same_run(run_dir, checkpoint.get("meta") or {}, meta, log_.events)
        state = SearchState.from_checkpoint(checkpoint["state"])
    else:
        # A run killed (or stopped by a fatal error) before its first checkpoint: its events are the
        # replay table now; refuse them too when they belong to another run.
        previous = next((e for e in read_events(log_.directory / REPLAY) if e.get("type") == "start"), None) \
            if log_.directory is not None else None
        if previous is not None:
            _check_same_run(run_dir, {k: previous.get(k) for k in meta}, meta, [previous])
        state = initial_state(problem, seed)
        if not log_.events:
            log_.emit({"type": "start", **meta, "seed_params": dict(problem.seed_params)})

    spend = RunSpend(config.budget, llm, log_.directory)
    bar = _progress_bar(config.budget, state, enabled=progress)
    stop_reason = exhausted(config.budget, state.spent)
    spend.install()
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
                spend.save()
            if on_iteration is not None:
                on_iteration(state)
            _advance(bar, config.budget, before, state)
            stop_reason = exhausted(config.budget, state.spent)
        reevaluated, spent = final_reevaluation(state, problem, config, seed=seed, log_=log_, executor=exec_)
    except BudgetExhausted as exc:
        # A clean stop before the call that could pass a USD limit. As after a kill, the last
        # checkpoint is the state; the events since then replay (their LLM replies are cached, so
        # a resumed run with a larger budget pays for none of them again).
        stop_reason, reevaluated, spent = exc.limit, (), state.spent
        log_.emit({"type": "stopped", "reason": exc.limit, "message": str(exc), "step": state.iteration,
                   "usd": spend.by_role()})
    except FatalError as exc:
        # Nothing is saved here: the last checkpoint stays the state to resume from, and the events
        # logged since then become its replay table (this "stopped" event is not replayed).
        error = f"{type(exc).__name__}: {exc}"
        log_.emit({"type": "stopped", "reason": "fatal_error", "error": error, "step": state.iteration})
        exc.result = _result(state, state.spent, "fatal_error", (), log_, config, embedder_name, error=error,
                             usd=spend.by_role())
        raise
    finally:
        spend.remove()
        spend.save()
        if bar is not None:
            bar.close()
    return _result(state, spent, stop_reason, reevaluated, log_, config, embedder_name, usd=spend.by_role())


def _confirm_cost(problem: Problem, proposer: Proposer, config: PolcaConfig, *, llm: Any, summarizer: Any,
                  embedder: Any, seed: int, confirm: Callable[[Any], bool]) -> None:
    from .preview import RunRefused, preview_run  # noqa: PLC0415 - preview runs polca itself

    if llm is None:
        raise ValueError("confirm= needs llm=<the LLMClient the roles use>: the preview runs one dry iteration on it")
    preview = preview_run(problem, proposer, config, llm=llm, summarizer=summarizer, embedder=embedder, seed=seed)
    if not confirm(preview):
        raise RunRefused(f"confirm refused to start the run: projected ${preview.usd():,.2f} for "
                         f"{preview.requests:,} LLM calls on {preview.model}", preview)


def _result(state: SearchState, spent: Spent, stop_reason: str, reevaluated: tuple, log_: RunLog,
            config: PolcaConfig, embedder_name: str | None, *, error: str | None = None,
            usd: dict[str, float] | None = None) -> RunResult:
    best = best_by_mean(state.memory)
    assert best is not None
    return RunResult(best, state.memory, state.history, spent, stop_reason, state.context,
                     list(log_.events), log_.directory, float(config.eps), embedder_name, reevaluated, error, usd)


def _ids_hash(examples: Sequence[Example] | None) -> str:
    ids = [str(ex.id) for ex in (examples or ())]
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def problem_fingerprint(problem: Problem) -> dict[str, Any]:
    """What a checkpoint must share with the problem it resumes: hashes of the seed parameters and of
    the example ids (in order) of each set, and the score range."""
    return {
        "seed_params": hashlib.sha256(params_key(problem.seed_params).encode()).hexdigest()[:16],
        "trainset": _ids_hash(problem.trainset),
        "valset": _ids_hash(problem.validation_examples),
        "testset": _ids_hash(problem.testset),
        "score_range": None if problem.score_range is None else [float(v) for v in problem.score_range],
    }


_META_LABELS = {"problem": "the problem name", "config": "the PolcaConfig settings (fingerprint)",
                "seed": "the seed", "embedder": "the embedder"}
_DATA_LABELS = {"seed_params": "the seed parameters", "trainset": "the training set's example ids",
                "valset": "the validation set's example ids", "testset": "the test set's example ids",
                "score_range": "the score_range"}


def _check_same_run(run_dir: Any, old: dict[str, Any], new: dict[str, Any], events: Sequence[dict[str, Any]]) -> None:
    """Refuse to resume a run dir made by another problem, data set, seed program or config."""
    differs = [f"{label} ({old.get(key)!r} there, {new[key]!r} now)"
               for key, label in _META_LABELS.items() if old.get(key) != new[key]]
    old_data = old.get("problem_data")
    if old_data is None:
        # A run dir from before problem fingerprints: only its logged seed parameters can be checked.
        start = next((e for e in events if e.get("type") == "start"), None)
        seed_params = new_seed = None
        if start is not None and "seed_params" in start:
            seed_params = hashlib.sha256(params_key(start["seed_params"]).encode()).hexdigest()[:16]
            new_seed = new["problem_data"]["seed_params"]
        if seed_params is not None and seed_params != new_seed:
            differs.append(_DATA_LABELS["seed_params"])
        elif not differs:
            logger.warning("run_dir %s predates data fingerprints: resuming without checking its data sets", run_dir)
    else:
        differs += [label for key, label in _DATA_LABELS.items() if old_data.get(key) != new["problem_data"][key]]
    if differs:
        raise ValueError(f"run_dir {run_dir} holds a run with different settings: {'; '.join(differs)} "
                         "differ from this call's; use a new run_dir or delete it")


def first_exploration_calls(config: PolcaConfig) -> int:
    """Metric calls of iteration 0: the seed alone explored on the scaled number of sub-batches."""
    m = exploration_batches(config.num_batches, config.num_candidates, 1)
    return m * config.batch_size


def check_first_exploration(config: PolcaConfig) -> None:
    """ValueError up front when the metric-call budget cannot pay for even the first exploration."""
    limit = config.budget.max_metric_calls
    needed = first_exploration_calls(config)
    if limit is not None and limit < needed:
        m = needed // config.batch_size
        raise ValueError(
            f"Budget(max_metric_calls={limit}) cannot pay for the first exploration, which needs {needed} metric "
            f"calls: the seed program on {m} sub-batches (num_batches={config.num_batches} scaled by "
            f"num_candidates={config.num_candidates}, as only the seed is in memory) of batch_size="
            f"{config.batch_size} examples. Raise max_metric_calls to at least {needed} (each proposal then "
            f"needs {config.validation_batch(m)} more to be validated) or lower num_candidates, num_batches "
            "or batch_size")


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
