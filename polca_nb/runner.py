"""The convenience runner: POLCA's loop built only from the functions in `search` and `memory`.

    result = polca(problem, proposer, PolcaConfig(...), seed=0, run_dir="runs/x")

A run directory gives an append-only event log and a per-iteration checkpoint; calling `polca` again
with the same directory resumes where the run stopped, repeating no logged evaluation. `Problem` and
`PolcaConfig` live in `problem`, the state and result types in `state` (re-exported here).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from .budget import Spent, exhausted, remaining_metric_calls
from .errors import BudgetExhausted, FatalError
from .memory import best_by_mean, make_priority, pop_top_k, push
from .problem import PolcaConfig, Problem, ReevaluationSet, problem_fingerprint, reevaluation_examples
from .protocols import Embedder, Executor, Proposer, Summarizer, as_executor
from .runlog import CHECKPOINT, REPLAY, RunLog, read_events
from .sampling import next_batch
from .search import (
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
from .events import Listener
from .lineage import save_lineage
from .progress import ProgressMode, ProgressView, progress_view, start_progress, tallied_warnings
from .spend import RunSpend
from .stoppers import Stopper, first_stop
from .state import (
    REEVALUATION_STREAM,
    SUMMARY_PREFIX,
    TEST_STREAM,
    IterationStats,
    RunResult,
    SearchState,
    derived_rng,
    initial_state,
)
from .types import Candidate, params_key

__all__ = ["IterationStats", "PolcaConfig", "Problem", "ReevaluationSet", "RunResult", "SearchState", "derived_rng",
           "final_reevaluation", "initial_state", "iterate", "polca", "problem_fingerprint", "reevaluation_examples",
           "REEVALUATION_STREAM", "SUMMARY_PREFIX", "TEST_STREAM"]

logger = logging.getLogger(__name__)


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
    scoring: dict[str, Any] = {"score_range": problem.score_range, "evaluation_errors": config.evaluation_errors}
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
                                            first_id=state.next_id, step=t, log_=log_,
                                            store=state.reference_embeddings)
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

    # reference is rest's candidates (some now embedded) in rest's order, then the explored: pushing it
    # onto rest builds the same memory, in the same order, and keeps the columns pop_top_k carries.
    memory = push(rest, reference + validated)
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
                           sum(1 for e in log_.events[first_event:]
                               if e.get("type") == "evaluation" and e.get("error")))
    log_.emit({"type": "iteration", **asdict(stats), "explored": [c.id for c in fresh],
               "explore_example_ids": [ex.id for ex in batch]})
    return SearchState(t + 1, memory, context, state.next_id + len(proposals), spent, rng,
                       state.history + [stats], state.test_rng, train_sampler, val_sampler, summarized_ids,
                       state.reference_embeddings)


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
    executor: Executor | int | str | None = None,
    progress: ProgressMode = True,
    on_iteration: Callable[[SearchState], None] | None = None,
    extra_log: Callable[[], dict[str, Any]] | None = None,
    llm: Any = None,
    confirm: Callable[[Any], bool] | None = None,
    listeners: Sequence[Listener] = (),
    stoppers: Sequence[Stopper] = (),
) -> RunResult:
    """Run POLCA until the budget is spent; resume automatically from `run_dir` if it has a checkpoint.

    `embedder=None` (or eps=0) disables the eps-Net; `summarizer=None` disables the summary.
    `extra_log` adds a JSON-able dict (e.g. an LLM ledger snapshot) to each iteration's checkpoint.
    `llm` (the LLMClient the roles use, or its Ledger) enforces `Budget.max_usd` and puts the run's
    USD in the result; a USD stop ends the run cleanly before the call that could pass the limit.
    `confirm` (e.g. `preview.confirm_below(50)`) is shown the projected cost (`preview.preview_run`,
    one dry iteration through `llm`) before anything runs; False raises `preview.RunRefused`.
    `listeners` hear every event as it is logged (`polca_nb.events`); `stoppers` (`polca_nb.stoppers`)
    end the run after an iteration on what it found, their reason being the stop reason.
    `progress` (`polca_nb.progress`): True shows a live dashboard in notebooks and a tqdm bar elsewhere.
    The package's warnings during the run are tallied by reason (`RunResult.warnings`) and logged once
    at the end instead of one line each.
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
    # Before the run dir is made: a USD limit without the client that pays is refused here.
    spend = RunSpend(config.budget, llm, Path(run_dir) if run_dir is not None else None)
    exec_ = as_executor(executor)
    log_ = RunLog(Path(run_dir) if run_dir is not None else None, listeners=list(listeners))
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

    with tallied_warnings(f"POLCA run ({problem.name}, seed {seed})") as tally:
        def view(current: SearchState, reason: str | None = None) -> ProgressView:
            usd = spend.by_role()
            return progress_view(current, config.budget, usd=None if usd is None else sum(usd.values()),
                                 warnings=dict(tally.counts), stop_reason=reason)

        display = start_progress(progress, view(state))
        # A resumed run that a stopper had ended stays ended; a fresh run makes at least one iteration.
        stop_reason = exhausted(config.budget, state.spent) or (
            first_stop(stoppers, state) if stoppers and state.history else None)
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
                state = new_state
                if log_.directory is not None:
                    payload = {"meta": meta, "state": state.to_checkpoint()}
                    if extra_log is not None:
                        payload["extra"] = extra_log()
                    log_.save_checkpoint(payload)
                    spend.save()
                if on_iteration is not None:
                    on_iteration(state)
                if display is not None:
                    display.update(view(state))
                stop_reason = exhausted(config.budget, state.spent)
                if stop_reason is None and stoppers:
                    stop_reason = first_stop(stoppers, state)
                    if stop_reason is not None:
                        log_.emit({"type": "stopped", "reason": stop_reason, "step": state.iteration})
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
            stop_reason = "fatal_error"
            log_.emit({"type": "stopped", "reason": "fatal_error", "error": error, "step": state.iteration})
            partial = _result(state, state.spent, "fatal_error", (), log_, config, embedder_name, error=error,
                              usd=spend.by_role(), warnings=dict(tally.counts))
            exc.result = partial  # type: ignore[attr-defined]
            raise
        finally:
            spend.remove()
            spend.save()
            close_built_executor(exec_, executor)
            if display is not None:
                display.close(view(state, stop_reason or "interrupted"))
        warnings = dict(tally.counts)
    return save_lineage(_result(state, spent, stop_reason, reevaluated, log_, config, embedder_name,
                                usd=spend.by_role(), warnings=warnings))


def close_built_executor(built: Executor, given: Any) -> None:
    """Close an executor `as_executor` made for this run (a `dask://` client); a given one stays open."""
    close = getattr(built, "close", None)
    if built is not given and close is not None:
        close()


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
            usd: dict[str, float] | None = None, warnings: dict[str, int] | None = None) -> RunResult:
    best = best_by_mean(state.memory)
    assert best is not None
    return RunResult(best, state.memory, state.history, spent, stop_reason, state.context,
                     list(log_.events), log_.directory, float(config.eps), embedder_name, reevaluated, error, usd,
                     dict(warnings or {}))


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
