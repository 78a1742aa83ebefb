"""What to optimize and how: `Problem` (seed parameters, data, evaluator) and `PolcaConfig` (the
knobs of the paper's loop), plain frozen data that benchmarks build without importing the runner."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

from .budget import Budget
from .memory import PriorityRule, ScoreRange, make_priority
from .protocols import Evaluator
from .sampling import SUMMARY_SAMPLERS, SummarySampler
from .types import EVALUATION_ERRORS, EvaluationErrors, Example, Params, params_key

ReevaluationSet = Literal["validation", "test", "train"]


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


def reevaluation_examples(problem: Problem, which: str) -> Sequence[Example]:
    """The set named by `PolcaConfig.final_reevaluation_set`."""
    if which == "validation":
        return problem.validation_examples
    if which == "test":
        return problem.testset or ()
    if which == "train":
        return problem.trainset
    raise ValueError(f"final_reevaluation_set must be 'validation', 'test' or 'train', got {which!r}")


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
