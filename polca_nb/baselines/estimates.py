"""How many search steps each method can make at a metric-call budget, and a warning where too few.

    budget_warnings(["polca", "gepa"], problem, budget=40)  # -> ["polca: at 40 metric calls ...", ...]

A step is one proposal the method can evaluate (write and score). Every estimate is a worst case, from the
method's own per-step metric-call cost:

- POLCA's loop methods: the loop's budget accounting replayed with every proposal admitted (no eps-Net
  rejection, no failed proposer call) and one program per proposer call (`loop_steps`).
- GEPA: (budget - |valset|) // (2 * minibatch + |valset|), every child accepted and so validated in full
  (`gepa_iteration_cost`, merge's max with use_merge): the iterations its budget stopper lets run.
- OpenEvolve: budget // minibatch - 1 (one minibatch per evaluated program, the seed's first).

A method without an entry in `STEP_ESTIMATORS` gets no estimate (and no warning).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Protocol, Sequence

from ..budget import Budget
from ..methods import METHODS, get_method
from ..problem import PolcaConfig, Problem
from ..search import exploration_batches

MIN_STEPS = 5
"""Fewer estimated steps than this at a budget warns: the method has no room to search."""

_MAX_BUDGET = 2**24  # search ceiling of `budget_for_steps` (far beyond any run's budget)


class BudgetWarning(UserWarning):
    """A method can make fewer than `MIN_STEPS` search steps at the comparison's budget."""


class StepEstimator(Protocol):
    """(problem, budget, base_config=..., settings=...) -> worst-case steps; `settings` is the method's own
    settings object (None: its defaults), `base_config` the loop configuration (None: `default_config`)."""

    def __call__(self, problem: Problem, budget: int, *, base_config: PolcaConfig | None,
                 settings: Any) -> int: ...


def loop_steps(config: PolcaConfig) -> int:
    """Proposals a loop configuration validates within `config.budget.max_metric_calls`, all admitted.

    Replays `runner.iterate`'s accounting: K popped (fewer while memory is small, with m scaled up), their
    exploration, one validation batch per proposal as far as the calls left pay, validated ones join memory.
    """
    limit = config.budget.max_metric_calls
    if limit is None:
        raise ValueError("loop_steps needs a Budget with max_metric_calls")
    memory, spent, validated = 1, 0, 0
    while True:
        popped = min(config.num_candidates, memory)
        m = exploration_batches(config.num_batches, config.num_candidates, popped)
        explore = popped * m * config.batch_size
        if spent + explore > limit:
            return validated
        spent += explore
        val_size = config.validation_batch(m)
        if limit - spent < val_size:
            # The loop skips proposing then; later iterations only re-explore the same memory.
            return validated
        affordable = min(popped * m * config.num_proposals, (limit - spent) // val_size)
        spent += affordable * val_size
        validated += affordable
        memory += affordable


def _loop_estimator(name: str) -> StepEstimator:
    def estimate(problem: Problem, budget: int, *, base_config: PolcaConfig | None, settings: Any) -> int:
        from .registry import default_config

        # The configuration run_baseline runs: the budget replaced, test and re-evaluation off.
        config = replace(base_config or default_config(budget), budget=Budget(max_metric_calls=budget),
                         test_every=None, final_reevaluation=None)
        return loop_steps(get_method(name).configure(config))

    return estimate


def gepa_steps(problem: Problem, budget: int, *, base_config: PolcaConfig | None = None,
               settings: Any = None) -> int:
    """GEPA iterations (one proposal each) after the seed's validation pass, each at its worst-case cost."""
    from .gepa_adapter import GepaSettings

    return _gepa_engine_steps(problem, budget, settings or GepaSettings())


def _gepa_engine_steps(problem: Problem, budget: int, settings: Any) -> int:
    """Iterations of GEPA's engine (GEPA or dspy.GEPA settings) after the seed's validation pass, at worst case."""
    from .gepa_adapter import gepa_iteration_cost

    n_val = len(problem.validation_examples)
    cost = gepa_iteration_cost(n_val, settings.reflection_minibatch_size, max(1, len(problem.trainset)),
                               settings.use_merge)
    return max(0, (budget - n_val) // cost)


def openevolve_steps(problem: Problem, budget: int, *, base_config: PolcaConfig | None = None,
                     settings: Any = None) -> int:
    """OpenEvolve's evaluated children: one minibatch each, after the seed's (capped by its max_iterations)."""
    if settings is None:
        from .openevolve_adapter import OpenEvolveSettings  # needs the openevolve package

        settings = OpenEvolveSettings()
    batch = max(1, min(settings.minibatch_size, len(problem.validation_examples)))
    return max(0, min(budget // batch - 1, settings.iterations_for(budget)))


def dspy_gepa_steps(problem: Problem, budget: int, *, base_config: PolcaConfig | None = None,
                    settings: Any = None) -> int:
    """dspy.GEPA iterations after the seed's validation pass, each at GEPA's worst-case cost (merge included)."""
    from .dspy_adapter import DspyGepaSettings

    return _gepa_engine_steps(problem, budget, settings or DspyGepaSettings())


def mipro_steps(problem: Problem, budget: int, *, base_config: PolcaConfig | None = None,
                settings: Any = None) -> int:
    """MIPROv2's trials when bootstrapping costs its worst case (0 where the budget cannot pay for one)."""
    from .dspy_adapter import MiproSettings, plan_mipro

    try:
        return plan_mipro(budget, n_train=len(problem.trainset), n_val=len(problem.validation_examples),
                          settings=settings or MiproSettings()).num_trials
    except ValueError:
        return 0


STEP_ESTIMATORS: dict[str, StepEstimator] = {
    **{name: _loop_estimator(name) for name in METHODS},
    "gepa": gepa_steps,
    "openevolve": openevolve_steps,
    "dspy-mipro": mipro_steps,
    "dspy-gepa": dspy_gepa_steps,
}
"""Method name -> its step estimator; a method without an entry gets no estimate and no warning."""


def estimated_steps(method: str, problem: Problem, budget: int, *, base_config: PolcaConfig | None = None,
                    peer_settings: Any = None) -> int:
    """Worst-case search steps `method` makes at `budget` metric calls (`peer_settings`: its own settings
    object, as `run_baseline` takes). ValueError for a method without an entry in `STEP_ESTIMATORS`."""
    if method not in STEP_ESTIMATORS:
        raise ValueError(f"no step estimator for {method!r}; known: {sorted(STEP_ESTIMATORS)}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    return int(STEP_ESTIMATORS[method](problem, budget, base_config=base_config, settings=peer_settings))


def budget_for_steps(method: str, problem: Problem, steps: int, *, base_config: PolcaConfig | None = None,
                     peer_settings: Any = None) -> int | None:
    """The smallest budget at which `estimated_steps` reaches `steps` (None: not below 2**24 calls)."""
    def enough(budget: int) -> bool:
        return estimated_steps(method, problem, budget, base_config=base_config, peer_settings=peer_settings) >= steps

    hi = 1
    while not enough(hi):
        if hi >= _MAX_BUDGET:
            return None
        hi *= 2
    lo = hi // 2  # enough(lo) is False (or lo == 0); estimates grow with the budget
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def budget_warnings(methods: Sequence[str], problem: Problem, budget: int, *,
                    base_config: PolcaConfig | None = None, peer_settings: Mapping[str, Any] | None = None,
                    min_steps: int = MIN_STEPS) -> list[str]:
    """One message per method estimated to make fewer than `min_steps` steps at `budget`.

    `peer_settings` maps method names to settings objects (as `compare_methods`). Methods without an
    estimator, or whose optional package is missing (the run reports that itself), are skipped.
    """
    settings = dict(peer_settings or {})
    messages = []
    for method in methods:
        if method not in STEP_ESTIMATORS:
            continue
        options = {"base_config": base_config, "peer_settings": settings.get(method)}
        try:
            steps = estimated_steps(method, problem, budget, **options)
            if steps >= min_steps:
                continue
            needed = budget_for_steps(method, problem, min_steps, **options)
        except ImportError:
            continue
        hint = f"; about {needed} metric calls give it {min_steps}" if needed is not None else ""
        messages.append(f"{method}: at {budget} metric calls it can evaluate only about {steps} proposal(s) in "
                        f"the worst case (fewer than {min_steps}){hint}")
    return messages


__all__ = ["MIN_STEPS", "STEP_ESTIMATORS", "BudgetWarning", "StepEstimator", "budget_for_steps",
           "budget_warnings", "dspy_gepa_steps", "estimated_steps", "gepa_steps", "loop_steps", "mipro_steps",
           "openevolve_steps"]
