"""MIPROv2 under a hard metric-call budget: its settings, the worst-case call count of each of its steps
(checked against DSPy's real spending in the tests), the pre-run plan, the subclass that re-plans its
trials after bootstrapping, and the callback that records the program it would return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..types import Params
from .accounting import MeteredEvaluator, ProgramPoint
from .dspy_program import _check_temperature

@dataclass(frozen=True)
class MiproSettings:
    """MIPROv2's knobs we expose; defaults are DSPy's (auto="light" candidate count, minibatch 35)."""

    num_candidates: int = 6
    minibatch_size: int = 35
    minibatch_full_eval_steps: int = 5
    num_trials: int | None = None  # None: the most trials the budget pays for in the worst case
    init_temperature: float = 1.0
    data_aware_proposer: bool = True
    tip_aware_proposer: bool = True
    fewshot_aware_proposer: bool = True
    max_tokens: int = 1024
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("num_candidates", "minibatch_size", "minibatch_full_eval_steps", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_candidates < 3:
            raise ValueError(f"num_candidates must be >= 3 (MIPROv2 reserves 3 demo-set slots), "
                             f"got {self.num_candidates!r}")
        if self.num_trials is not None and (not isinstance(self.num_trials, int) or self.num_trials < 1):
            raise ValueError(f"num_trials must be a positive int or None, got {self.num_trials!r}")
        _check_temperature(self.init_temperature, "init_temperature")
        _check_temperature(self.temperature, "temperature")


@dataclass(frozen=True)
class MiproPlan:
    """How MIPROv2 will spend a budget: trials if bootstrapping costs its worst case (more are run when it
    costs less), whether trials use minibatches, and the worst-case metric calls of that plan."""

    num_trials: int
    minibatch: bool
    minibatch_size: int
    worst_case_calls: int
    bootstrap_calls: int


def mipro_bootstrap_calls(*, n_train: int, num_candidates: int) -> int:
    """Worst-case metric calls of zero-shot MIPROv2's step 1: num_candidates - 1 demo sets (only the plain
    zero-shot set is free: the "labels only" slot falls through to a bootstrapped one), each running the
    program on every training example when no run succeeds."""
    return (num_candidates - 1) * n_train


def mipro_search_calls(num_trials: int, *, n_val: int, minibatch: bool, minibatch_size: int,
                       full_eval_steps: int) -> int:
    """Metric calls of MIPROv2's step 3: the default program on the valset, then the trials and, with
    minibatches, the periodic full evaluations, counted the way `_optimize_prompt_parameters` numbers them."""
    if not minibatch:
        return n_val + num_trials * n_val
    adjusted = num_trials + num_trials // full_eval_steps + 1 + (1 if num_trials % full_eval_steps else 0)
    trials_in_study, full_evals = 1, 0  # the default program's trial is added first
    for _ in range(num_trials):
        trial_num = trials_in_study + 1
        trials_in_study += 1
        if trial_num % (full_eval_steps + 1) == 0 or trial_num == adjusted - 1:
            full_evals += 1
            trials_in_study += 1
    return n_val + num_trials * minibatch_size + full_evals * n_val


def mipro_worst_case_calls(num_trials: int, *, n_train: int, n_val: int, num_candidates: int, minibatch: bool,
                           minibatch_size: int, full_eval_steps: int) -> tuple[int, int]:
    """(total, bootstrap) worst-case metric calls of zero-shot MIPROv2 (dspy 3.4) with these settings."""
    bootstrap = mipro_bootstrap_calls(n_train=n_train, num_candidates=num_candidates)
    return bootstrap + mipro_search_calls(num_trials, n_val=n_val, minibatch=minibatch,
                                          minibatch_size=minibatch_size, full_eval_steps=full_eval_steps), bootstrap


def mipro_trials_for(remaining: int, *, n_val: int, settings: MiproSettings) -> int:
    """The most trials step 3 can pay for with `remaining` metric calls (capped at settings.num_trials);
    -1 when not even the default program's evaluation fits."""
    minibatch, size = _mipro_batches(n_val, settings)

    def cost(trials: int) -> int:
        return mipro_search_calls(trials, n_val=n_val, minibatch=minibatch, minibatch_size=size,
                                  full_eval_steps=settings.minibatch_full_eval_steps)

    if cost(0) > remaining:
        return -1
    trials = 0
    while (settings.num_trials is None or trials < settings.num_trials) and cost(trials + 1) <= remaining:
        trials += 1
    return trials


def _mipro_batches(n_val: int, settings: MiproSettings) -> tuple[bool, int]:
    # Minibatch trials only when the valset is larger than the minibatch (DSPy's auto modes decide alike).
    minibatch = n_val > settings.minibatch_size
    return minibatch, (settings.minibatch_size if minibatch else n_val)


def plan_mipro(budget: int, *, n_train: int, n_val: int, settings: MiproSettings) -> MiproPlan:
    """The trials `budget` pays for if bootstrapping costs its worst case (`settings.num_trials` if set).

    ValueError when the budget cannot pay for worst-case bootstrapping, the default program and one trial.
    The run itself re-plans after bootstrapping, from the calls really left (`mipro_trials_for`).
    """
    minibatch, size = _mipro_batches(n_val, settings)
    bootstrap = mipro_bootstrap_calls(n_train=n_train, num_candidates=settings.num_candidates)
    trials = mipro_trials_for(budget - bootstrap, n_val=n_val, settings=settings)
    if trials < 1:
        first = bootstrap + mipro_search_calls(1, n_val=n_val, minibatch=minibatch, minibatch_size=size,
                                               full_eval_steps=settings.minibatch_full_eval_steps)
        raise ValueError(f"budget {budget} is too small for MIPROv2: bootstrapping ({bootstrap} calls at worst), "
                         f"the default program ({n_val}) and one trial take up to {first} metric calls")
    total = bootstrap + mipro_search_calls(trials, n_val=n_val, minibatch=minibatch, minibatch_size=size,
                                           full_eval_steps=settings.minibatch_full_eval_steps)
    return MiproPlan(trials, minibatch, size, total, bootstrap)


def _budgeted_mipro_class() -> type:
    import dspy

    class BudgetedMIPROv2(dspy.MIPROv2):
        """MIPROv2 whose step 3 runs as many trials as the metric calls left after bootstrapping pay for
        (DSPy fixes num_trials before bootstrapping, whose cost it cannot know)."""

        def __init__(self, *args: Any, trials_for: Callable[[int], int], meter: MeteredEvaluator,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._trials_for = trials_for
            self._meter = meter
            self.trials_run: int | None = None

        def _optimize_prompt_parameters(self, program: Any, instruction_candidates: Any, demo_candidates: Any,
                                        evaluate: Any, valset: Any, num_trials: int, *args: Any) -> Any:
            self.trials_run = self._trials_for(self._meter.remaining)
            if self.trials_run < 0:  # bootstrapping left too little to evaluate even the default program
                return program
            return super()._optimize_prompt_parameters(program, instruction_candidates, demo_candidates, evaluate,
                                                       valset, self.trials_run, *args)

    return BudgetedMIPROv2


class _FullEvalRecorder:
    """DSPy callback: after each full-valset evaluation, the program MIPROv2 would return (its rule: the
    default program first, then any later full evaluation scoring strictly higher)."""

    def __init__(self, meter: MeteredEvaluator) -> None:
        self.meter = meter
        self.points: list[ProgramPoint] = []
        self.full_evals = 0
        self._pending: dict[str, Params] = {}
        self._best: tuple[float, Params] | None = None

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        metadata = inputs.get("callback_metadata") or {}
        if metadata.get("metric_key") == "eval_full":
            self._pending[call_id] = inputs["program"].params()

    def on_evaluate_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        params = self._pending.pop(call_id, None)
        if params is None or exception is not None or outputs is None:
            return
        self.full_evals += 1
        score = float(outputs.score)
        if self._best is None or score > self._best[0]:
            self._best = (score, params)
        self.points.append(ProgramPoint(self.full_evals, self.meter.calls, dict(self._best[1])))

    def returned(self) -> Params | None:
        return dict(self._best[1]) if self._best is not None else None


def _callback_base() -> type:
    from dspy.utils.callback import BaseCallback

    class Callback(_FullEvalRecorder, BaseCallback):
        pass

    return Callback
