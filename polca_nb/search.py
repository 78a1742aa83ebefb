"""POLCA's iteration as small functions over plain data.

One iteration, as the paper ran it (polca-method.md §2.2):

    popped, memory = pop_top_k(memory, K, priority, t)          # memory.py
    explored = explore(popped, train batch ...)                 # fresh minibatch, append rollouts
    context = summarize(memory ∪ explored ...)                   # optional global context
    proposals = propose(explored, context ...)                  # local feedback -> new params
    admitted, rejected = filter_proposals(proposals, memory ∪ explored, eps)   # eps-Net
    admitted = validate(admitted, one shared fresh validation batch ...)
    memory = push(memory, explored + admitted)

Scoring (evaluate_examples, evaluate_on, reevaluate_top_k, the evaluator contract) is in `evaluation`.
Every function takes what it needs explicitly: the numpy Generator, a `RunLog` for events and
replay, and the roles. `runner.polca` chains them; notebooks can chain them by hand too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .epsnet import ReferenceEmbeddings, epsnet_filter
from .errors import StopRun
from .evaluation import (  # re-exported: the loop's scoring steps are part of this module's API
    _short,
    check_evaluation,
    describe_evaluator,
    draw_seeds,
    evaluate_examples,
    evaluate_on,
    failure_score,
    kept_rollouts,
    reevaluate_top_k,
)
from .memory import ScoreRange
from .protocols import Embedder, Evaluator, Executor, Proposer, SerialExecutor, Summarizer
from .runlog import RunLog
from .sampling import SummarySampler, sample_summary_candidates
from .types import Candidate, EvaluationErrors, Example, Params, Rollout, params_key, render_params

__all__ = ["ExploredBatch", "FilterDecision", "Proposal", "check_evaluation", "describe_evaluator", "draw_seeds",
           "ensure_embeddings", "evaluate_examples", "evaluate_on", "exploration_batches", "explore",
           "explored_candidates", "failure_score", "filter_proposals", "kept_rollouts", "proposal_problem", "propose",
           "reevaluate_top_k", "summarize", "validate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExploredBatch:
    """A candidate after exploration, with one sub-batch of examples and the rollouts it just got."""

    candidate: Candidate
    batch_index: int
    examples: tuple[Example, ...]
    rollouts: tuple[Rollout, ...]


@dataclass(frozen=True)
class Proposal:
    """New parameters proposed from `parent_id`'s sub-batch `batch_index` at `step`."""

    params: Params
    parent_id: int
    batch_index: int
    step: int
    identical_to_parent: bool = False


@dataclass(frozen=True)
class FilterDecision:
    """A proposal turned into a candidate (with its embedding), its eps-Net distance and verdict."""

    candidate: Candidate
    distance: float
    admitted: bool


def _embedding(candidate: Candidate) -> np.ndarray:
    """The embedding `ensure_embeddings` filled in."""
    assert candidate.embedding is not None, f"candidate {candidate.id} has no embedding"
    return candidate.embedding


def exploration_batches(num_batches: int, num_candidates: int, num_popped: int) -> int:
    """m after the paper's scaling: int(m*K/len(popped)) sub-batches when fewer than K were popped."""
    if num_popped < 1:
        raise ValueError(f"num_popped must be >= 1, got {num_popped}")
    return max(num_batches, int(num_batches * num_candidates / num_popped))


def explore(
    popped: Sequence[Candidate],
    batch: Sequence[Example],
    *,
    batch_size: int,
    evaluator: Evaluator,
    step: int,
    rng: np.random.Generator,
    log_: RunLog,
    executor: Executor | None = None,
    score_range: ScoreRange | None = None,
    evaluation_errors: EvaluationErrors = "zero",
) -> list[ExploredBatch]:
    """Evaluate every popped candidate on the SAME minibatch `batch`, split into sub-batches of `batch_size`.

    As in the paper's code, all explored candidates see common inputs (their means are compared on
    them), and each (candidate, sub-batch) later gets its own proposal call. With
    `evaluation_errors="exclude"`, rollouts with an evaluation error enter neither the candidate's
    history nor its sub-batch (so the proposer does not read them as program failures).
    """
    if not popped:
        return []
    if batch_size < 1 or len(batch) % batch_size:
        raise ValueError(f"the exploration batch ({len(batch)} examples) must split into sub-batches of "
                         f"batch_size {batch_size}")
    m = len(batch) // batch_size
    seeds = draw_seeds(rng, len(batch) * len(popped))
    out: list[ExploredBatch] = []
    for ci, candidate in enumerate(popped):
        cand_seeds = seeds[ci * len(batch):(ci + 1) * len(batch)]
        rollouts = evaluate_examples(candidate, batch, cand_seeds, evaluator=evaluator, step=step,
                                     source="explore", log_=log_, executor=executor, score_range=score_range)
        kept = kept_rollouts(rollouts, evaluation_errors)
        updated = candidate.with_rollouts(kept)
        kept_ids = {id(r) for r in kept}
        for bi in range(m):
            sl = slice(bi * batch_size, (bi + 1) * batch_size)
            pairs = [(ex, r) for ex, r in zip(batch[sl], rollouts[sl]) if id(r) in kept_ids]
            out.append(ExploredBatch(updated, bi, tuple(ex for ex, _ in pairs), tuple(r for _, r in pairs)))
    return out


def explored_candidates(explored: Sequence[ExploredBatch]) -> list[Candidate]:
    """The distinct candidates of an exploration round, with all their new rollouts."""
    seen: dict[int, Candidate] = {}
    for eb in explored:
        seen[eb.candidate.id] = eb.candidate
    return list(seen.values())


def proposal_problem(params_list: Any) -> str | None:
    """Why a proposer's return value is not a list of parameter dicts (str -> str), or None if it is."""
    if not isinstance(params_list, (list, tuple)):
        return (f"the proposer returned {_short(params_list)} ({type(params_list).__name__}), not a list of "
                "parameter dicts (name -> text)")
    for i, params in enumerate(params_list):
        if not isinstance(params, Mapping):
            return (f"proposal {i} is {_short(params)} ({type(params).__name__}), not a dict of parameter "
                    "name -> text")
        for name, value in params.items():
            if not isinstance(name, str):
                return f"proposal {i} has a parameter name {_short(name)} ({type(name).__name__}), not a str"
            if not isinstance(value, str):
                return (f"proposal {i} gives parameter {name!r} the value {_short(value)} "
                        f"({type(value).__name__}), not a str")
    return None


def propose(
    explored: Sequence[ExploredBatch],
    proposer: Proposer,
    *,
    context: str,
    num_proposals: int,
    step: int,
    rng: np.random.Generator,
    log_: RunLog,
    executor: Executor | None = None,
    drop_identical: bool = False,
) -> list[Proposal]:
    """Ask the proposer `num_proposals` times per explored sub-batch.

    As in the paper, only calls that raise and empty updates are dropped (and logged); a proposal
    identical to its parent is kept (the eps-Net's job) unless `drop_identical`, an explicit option.
    A call whose return value is not a list of parameter dicts (str -> str) is dropped too, and its
    `proposal_error` event says why. A `StopRun` from the proposer is never absorbed.
    """
    executor = executor or SerialExecutor()
    jobs = [(eb, p) for eb in explored for p in range(num_proposals)]
    seeds = draw_seeds(rng, len(jobs))

    def run_one(j: int) -> tuple[list[Params] | None, str | None]:
        eb, p = jobs[j]
        batch_index = eb.batch_index * num_proposals + p
        hit = log_.replayed(("proposal", step, eb.candidate.id, batch_index))
        if hit is not None:
            return (hit.get("proposals"), hit.get("error"))
        try:
            params_list = proposer.propose(eb.candidate, list(zip(eb.examples, eb.rollouts)), context, seeds[j])
        except StopRun:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed proposal is dropped, never fatal
            log.warning("proposer raised for candidate %s: %r", eb.candidate.id, exc)
            return (None, f"{type(exc).__name__}: {exc}")
        problem = proposal_problem(params_list)
        if problem is not None:
            log.warning("proposer output dropped for candidate %s: %s", eb.candidate.id, problem)
            return (None, problem)
        return (params_list, None)

    proposals: list[Proposal] = []
    for (eb, p), (params_list, error) in zip(jobs, executor.map(run_one, list(range(len(jobs))))):
        batch_index = eb.batch_index * num_proposals + p
        if error is not None or params_list is None:
            log_.emit({"type": "proposal_error", "step": step, "parent_id": eb.candidate.id,
                       "batch_index": batch_index, "error": error or "no proposals"})
            continue
        parent_key = params_key(eb.candidate.params)
        nonempty = [dict(ps) for ps in params_list if ps]
        identical = [params_key(ps) == parent_key for ps in nonempty]
        kept = [(ps, same) for ps, same in zip(nonempty, identical) if not (drop_identical and same)]
        log_.emit({"type": "proposal", "step": step, "parent_id": eb.candidate.id,
                   "batch_index": batch_index, "proposals": [ps for ps, _ in kept],
                   "identical_to_parent": sum(identical), "dropped_identical": len(nonempty) - len(kept)})
        proposals.extend(Proposal(ps, eb.candidate.id, batch_index, step, same) for ps, same in kept)
    return proposals


def ensure_embeddings(candidates: Sequence[Candidate], embedder: Embedder) -> list[Candidate]:
    """Candidates with `embedding` filled in (one batched call for those missing one)."""
    missing = [i for i, c in enumerate(candidates) if c.embedding is None]
    if not missing:
        return list(candidates)
    vectors = np.asarray(embedder.embed([render_params(candidates[i].params) for i in missing]), dtype=np.float64)
    out = list(candidates)
    for row, i in enumerate(missing):
        out[i] = candidates[i].with_embedding(vectors[row])
    return out


def _stacked_reference(reference: Sequence[Candidate], embedder: Embedder,
                       store: ReferenceEmbeddings) -> tuple[list[Candidate], np.ndarray, np.ndarray | None]:
    """`ensure_embeddings(reference)` and its stacked embeddings from `store`, touching only the
    candidates the store has not seen (a large reference is otherwise one pass over ids)."""
    out = list(reference)
    if not out:
        return [], np.zeros((0, 0)), None
    rows = store.probe(out)
    unseen = np.flatnonzero(rows < 0).tolist()
    missing = [i for i in unseen if out[i].embedding is None]
    if missing:  # as ensure_embeddings: one batched call, in reference order
        embedded = ensure_embeddings([out[i] for i in missing], embedder)
        for i, c in zip(missing, embedded):
            out[i] = c
    ref, ref_sq = store.stacked_for(out, rows)
    return out, ref, ref_sq


def filter_proposals(
    proposals: Sequence[Proposal],
    reference: Sequence[Candidate],
    *,
    eps: float,
    embedder: Embedder | None,
    first_id: int,
    step: int,
    log_: RunLog,
    store: ReferenceEmbeddings | None = None,
) -> tuple[list[FilterDecision], list[Candidate]]:
    """Turn proposals into candidates (ids from `first_id`) and run the eps-Net against `reference`.

    Returns the decisions (admitted first, in admission order) and the reference candidates with
    their embeddings filled in. eps = 0 admits everything; with an embedder the distances are still
    measured (and logged) so a run without the filter shows what eps would have done. No embedder:
    nothing is embedded, distance inf. `store`, carried from call to call, keeps the reference's
    embeddings stacked (same results, without re-stacking a large reference every call).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    news = [Candidate(first_id + i, dict(p.params), p.parent_id, step) for i, p in enumerate(proposals)]
    if not news:
        return [], list(reference)
    if embedder is None:
        if eps > 0:
            raise ValueError(f"eps is {eps} but no embedder was given")
        decisions = [FilterDecision(c, float("inf"), True) for c in news]
        reference_out = list(reference)
    else:
        news = ensure_embeddings(news, embedder)
        ref, ref_sq = np.zeros((0, 0)), None
        if store is None:
            reference_out = ensure_embeddings(reference, embedder)
            if reference_out:
                ref = np.stack([_embedding(c) for c in reference_out])
        else:
            reference_out, ref, ref_sq = _stacked_reference(reference, embedder, store)
        admissions = epsnet_filter(np.stack([_embedding(c) for c in news]), ref, eps, reference_sq_norms=ref_sq)
        decisions = [FilterDecision(news[a.index], a.distance, a.admitted) for a in admissions]
    for d in decisions:
        index = d.candidate.id - first_id
        log_.emit({"type": "admission" if d.admitted else "rejection", "step": step, "proposal_index": index,
                   "candidate_id": d.candidate.id, "parent_id": d.candidate.parent_id,
                   "distance": None if d.distance == float("inf") else round(d.distance, 6), "eps": eps,
                   "params": d.candidate.params})
    return decisions, reference_out


def validate(
    candidates: Sequence[Candidate],
    batch: Sequence[Example],
    *,
    evaluator: Evaluator,
    step: int,
    rng: np.random.Generator,
    log_: RunLog,
    executor: Executor | None = None,
    score_range: ScoreRange | None = None,
    evaluation_errors: EvaluationErrors = "zero",
) -> list[Candidate]:
    """Score the admitted candidates on ONE shared fresh validation batch (a fair comparison)."""
    if not candidates:
        return []
    seeds = draw_seeds(rng, len(batch) * len(candidates))
    out = []
    for i, c in enumerate(candidates):
        rollouts = evaluate_examples(c, batch, seeds[i * len(batch):(i + 1) * len(batch)], evaluator=evaluator,
                                     step=step, source="validate", log_=log_, executor=executor,
                                     score_range=score_range)
        out.append(c.with_rollouts(kept_rollouts(rollouts, evaluation_errors)))
    return out


def summarize(
    pool: Sequence[Candidate],
    summarizer: Summarizer,
    *,
    previous: str,
    examples: Mapping[str, Example],
    step: int,
    rng: np.random.Generator,
    log_: RunLog,
    summarized_ids: frozenset[int] = frozenset(),
    sampler: SummarySampler = "incremental",
    max_candidates: int | None = None,
    initial: str = "",
) -> tuple[str, frozenset[int]]:
    """The next global context and the ids summarized so far.

    The candidates shown are sampled from `pool` by `sampler` (see `sampling`) with the run's
    Generator. "incremental" folds them into `previous`; "experiment" summarizes afresh (from
    `initial`). With nothing new to show, or on a summarizer error, the previous context is kept.
    """
    shown = sample_summary_candidates(pool, summarized_ids, rng, sampler=sampler, max_candidates=max_candidates)
    seed = draw_seeds(rng, 1)[0]
    ids = [c.id for c in shown]
    hit = log_.replayed(("summary", step))
    if hit is not None:
        text = hit["text"]
    elif not shown:
        text = previous
    else:
        base = previous if sampler == "incremental" else initial
        try:
            text = summarizer.summarize(shown, base, examples, seed)
        except StopRun:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed summary keeps the old context
            log.warning("summarizer raised: %r", exc)
            text = previous
        if not isinstance(text, str):
            log.warning("summarizer returned %s (%s), not a str: keeping the previous context",
                        _short(text), type(text).__name__)
            text = previous
        if text == base:  # the summarizer's own "no usable summary" answer
            text = previous
    log_.emit({"type": "summary", "step": step, "seed": seed, "sampler": sampler, "candidate_ids": ids,
               "text": text})
    return text, summarized_ids | frozenset(ids)


