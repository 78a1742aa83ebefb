"""HotpotQA runs: the seed program's test accuracy, then POLCA for each seed; the paper's curves.

    examples = load_examples()                       # the paper's 100 tasks
    run = run_seed(PRESETS["smoke"], llm, seed=0, embedder=default_embedder())
    result = run(PRESETS["smoke"], llm, seeds=(0,), run_root=None, embedder=default_embedder())
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...llm.base import LLM
from ...curves import CurvePoint
from ...problem import PolcaConfig
from ...protocols import Embedder, Executor, as_executor
from ...runner import polca
from ...state import RunResult
from ...types import Example, Params
from ..common import ExperimentResult
from .data import load_examples
from .evaluator import PARAM_NAME, HotpotQAEvaluator
from .presets import HotpotPreset, HotpotRoles, get_preset, make_config, make_problem, make_roles

EVAL_STEPS_PER_ITERATION = 2
"""One POLCA iteration = an exploration round and a validation round of parallel evaluations
(polca-method.md §5, inferred from the KernelBench CSVs); the paper's x-axis counts these."""


def measure_accuracy(evaluator: HotpotQAEvaluator, params: Params, examples: Sequence[Example], *, repeats: int,
                  seed: int, executor: Executor | None = None) -> float:
    """Mean score of `params` over `examples` x `repeats`, sample ids drawn from `seed`.

    Unlike the search loop, this lets LLM errors raise: it runs first, so a broken model setup stops
    the notebook instead of silently scoring zero.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    jobs = [ex for _ in range(repeats) for ex in examples]
    sample_ids = np.random.default_rng([seed, 0x7E57]).integers(0, 2**31 - 1, size=len(jobs))
    calls = list(zip(jobs, (int(s) for s in sample_ids)))
    def run(job: tuple[Example, int]) -> Any:
        return evaluator(params, job[0], job[1])

    results = list(executor.map(run, calls)) if executor is not None else [run(c) for c in calls]
    return float(np.mean([r.score for r in results]))


@dataclass(frozen=True)
class HotpotRun:
    """One seed's run: the search result and the seed program's test accuracy (the curves' start)."""

    seed: int
    result: RunResult
    initial_test: float

    @property
    def best_instructions(self) -> str:
        return self.result.best.params[PARAM_NAME]

    def test_points(self) -> list[tuple[int, int, int, float]]:
        """(iteration, evaluation step, metric calls, test accuracy) at every tested iteration."""
        return [(h.iteration, EVAL_STEPS_PER_ITERATION * (h.iteration + 1), h.metric_calls, h.test_score)
                for h in self.result.history if h.test_score is not None]

    def best_so_far(self, x: str = "eval_step") -> list[CurvePoint]:
        """The paper's curve: running max of test accuracy, starting at the seed program's accuracy.

        `x` is "eval_step" or "metric_calls"; the x value sits in `CurvePoint.metric_calls`, the field
        `plots.plot_score_curves` reads x from.
        """
        if x not in ("eval_step", "metric_calls"):
            raise ValueError(f"x must be 'eval_step' or 'metric_calls', got {x!r}")
        best = self.initial_test
        points = [CurvePoint(-1, 0, best)]
        for iteration, step, calls, score in self.test_points():
            best = max(best, score)
            points.append(CurvePoint(iteration, step if x == "eval_step" else calls, best))
        return points


def run_seed(preset: HotpotPreset, llm: LLM, *, seed: int, embedder: Embedder | None,
             examples: Sequence[Example] | None = None, config: PolcaConfig | None = None,
             run_dir: str | Path | None = None, executor: Executor | int | None = None,
             progress: bool = False, roles: HotpotRoles | None = None) -> HotpotRun:
    """Test the seed program, then run POLCA with the preset (or `config`) for one seed."""
    examples = list(examples) if examples is not None else load_examples(preset.n_examples)
    roles = roles or make_roles(llm, preset)
    config = config or make_config(preset)
    problem = make_problem(examples, roles.evaluator, n_validation=preset.n_validation)
    exec_ = as_executor(executor if executor is not None else preset.workers)
    initial = measure_accuracy(roles.evaluator, problem.seed_params, problem.testset or examples,
                            repeats=config.test_repeats, seed=seed, executor=exec_)
    result = polca(problem, roles.proposer, config, embedder=embedder if config.eps > 0 else None,
                   summarizer=roles.summarizer if config.use_summarizer else None, seed=seed, run_dir=run_dir,
                   executor=exec_, progress=progress)
    return HotpotRun(seed, result, initial)


def run(preset: str | HotpotPreset, llm: LLM, *, seeds: Sequence[int] | None = None,
        run_root: str | Path | None = None, embedder: Embedder | None,
        examples: Sequence[Example] | None = None, config: PolcaConfig | None = None,
        executor: Executor | int | None = None, progress: bool = False) -> ExperimentResult:
    """`run_seed` for every seed (default: the preset's), the data loaded once. With `run_root`, seed s
    logs to `run_root/hotpotqa-<preset>-<config fingerprint>-seed<s>` (notebook 10's names), so a rerun
    resumes. `per_seed[i]` holds that seed's `HotpotRun` ("run"), its "initial_test" and "test_points"."""
    preset = get_preset(preset)
    seeds = tuple(preset.seeds if seeds is None else seeds)
    examples = list(examples) if examples is not None else load_examples(preset.n_examples)
    config = config or make_config(preset)
    runs: list[HotpotRun] = []
    for seed in seeds:
        run_dir = (Path(run_root) / f"hotpotqa-{preset.name}-{config.fingerprint()}-seed{seed}"
                   if run_root is not None else None)
        runs.append(run_seed(preset, llm, seed=seed, embedder=embedder, examples=examples, config=config,
                             run_dir=run_dir, executor=executor, progress=progress))
    per_seed: list[dict[str, Any]] = [{"seed": r.seed, "run": r, "initial_test": r.initial_test,
                                       "test_points": r.test_points()} for r in runs]
    return ExperimentResult(preset, seeds, [r.result for r in runs], per_seed)
