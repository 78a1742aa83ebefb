"""DSPy's own optimizers (MIPROv2 and dspy.GEPA, from the real `dspy` package) on a polca_nb Problem.

    result = run_dspy("dspy-mipro", problem, llm, budget=200, seed=0)
    result = run_dspy("dspy-gepa", problem, llm, budget=200, seed=0)

What is DSPy's and what is ours:
- DSPy's: the optimizers (MIPROv2's bootstrapping, grounded instruction proposer and Optuna TPE search;
  dspy.GEPA's adapter, reflection prompts and merge), its adapters' prompt formats and reply parsing.
- Ours: the program and the LM. The program is `InstructionProgram`, a `dspy.Module` with one
  `dspy.Predict` per parameter whose signature's *instructions* are that parameter's text (the optimized
  parameter). Running it makes one metric call: the problem's evaluator scores the instructions on the
  example through one `MeteredEvaluator` capped at the budget, and the evaluation goes back to DSPy as
  the prediction (its output) and to the metric (score, feedback). Every DSPy LM call goes through
  `PolcaEngine` (DSPy's custom-engine protocol) to our `LLM` with role "proposer": cached by our cache,
  counted and priced by our ledger; DSPy's own cache is off, so no call hides from the ledger.

Budgets are hard. MIPROv2 checks before it runs that the budget pays for worst-case bootstrapping and one
trial (`plan_mipro`), and after bootstrapping runs as many trials as the calls really left pay for;
dspy.GEPA runs GEPA's engine with the same budget-aware stopper as our GEPA adapter (it stops before an
iteration it could not finish). The meter refuses any call past the budget anyway; such a refusal aborts
DSPy (a `BaseException`, which DSPy does not swallow) and the result is the program DSPy would have
returned after its last completed full evaluation.

Instruction-only: our programs are texts, so MIPROv2 runs zero-shot (no few-shot demos in the program;
it still bootstraps demos to show the proposer, as DSPy does) and its program-aware proposer is off (the
module's code is this harness, not a task program: describing it would mislead the proposer).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from ..llm.base import LLM, with_ledger
from ..roles.templates import InputRenderer, default_input_text
from ..runner import Problem
from ..types import Evaluation, Example, Params
from .accounting import OPTIMIZER_ROLES, BudgetExhausted, MeteredEvaluator, MethodResult, ProgramPoint

DSPY_METHODS = ("dspy-mipro", "dspy-gepa")
DSPY_TESTED = (">=3.4.1", "<3.5")
"""The dspy versions this adapter was tested with (the `baselines` extra pins the same range)."""

SAMPLE_ID_STRIDE = 1_000_000
"""LM call k of the run with seed s uses sample_id s * SAMPLE_ID_STRIDE + k (distinct resamples, cached reruns)."""

INPUT_FIELD = "task_input"
OUTPUT_FIELD = "response"


class BudgetStop(BaseException):
    """The meter refused a metric call. A BaseException because DSPy scores an `Exception` inside a
    program run as a failure and keeps going (spending LM calls); this one aborts `compile()`."""


class _EvaluatorError(BaseException):
    """Carries an exception the problem's evaluator raised past DSPy (which would score it 0 and go on);
    `run_dspy` re-raises the original."""


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
class DspyGepaSettings:
    """dspy.GEPA's knobs we expose; defaults are dspy.GEPA's (which, unlike GEPA itself, merges)."""

    reflection_minibatch_size: int = 3
    candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto"
    skip_perfect_score: bool = True
    use_merge: bool = True
    max_merge_invocations: int = 5
    max_tokens: int = 1024
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("reflection_minibatch_size", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.max_merge_invocations, int) or self.max_merge_invocations < 0:
            raise ValueError(f"max_merge_invocations must be an int >= 0, got {self.max_merge_invocations!r}")
        if self.candidate_selection_strategy not in ("pareto", "current_best"):
            raise ValueError("candidate_selection_strategy must be 'pareto' or 'current_best', "
                             f"got {self.candidate_selection_strategy!r}")
        _check_temperature(self.temperature, "temperature")


def _check_temperature(value: Any, name: str) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 2.0:
        raise ValueError(f"{name} must be a number in [0, 2], got {value!r}")


def check_dspy_version() -> str:
    """The installed dspy version; ImportError naming the extra if missing, RuntimeError if untested."""
    # litellm (a dspy dependency, imported lazily) downloads a price list at import unless told not to.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import dspy
    except ModuleNotFoundError as exc:
        raise ImportError("dspy is not installed: install the baselines extra "
                          "(pip install -e '.[baselines]', done by `make setup`)") from exc
    version = str(dspy.__version__)
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if not (3, 4, 1) <= parts < (3, 5):
        raise RuntimeError(f"dspy {version} is installed; this adapter is tested with dspy{','.join(DSPY_TESTED)}")
    return version


# --- the LM: DSPy's custom-engine protocol over our LLM --------------------------------------------------

@dataclass
class PolcaEngine:
    """`complete(Request) -> Response` (DSPy's engine protocol) over our `LLM.complete` with one role.

    Calls are numbered under a lock; call k gets sample_id seed * SAMPLE_ID_STRIDE + k. `allowed=False`
    makes every call an error: the task-model slot MIPROv2 requires, which our program never uses
    (its task model runs inside the evaluator, metered).
    """

    llm: LLM
    role: str
    seed: int
    max_tokens: int
    temperature: float
    allowed: bool = True
    calls: int = 0
    requests_by_output: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def complete(self, request: Any) -> Any:
        from dspy.lm15 import Message, Response, TextPart, Usage

        if not self.allowed:
            raise RuntimeError("an LM call reached the unused task-model slot: the program's task model runs "
                               "inside the metered evaluator, so this call would bypass the budget")
        system = request.system if isinstance(request.system, str) or request.system is None else \
            "".join(getattr(p, "text", "") for p in request.system)
        # The Messages API takes user/assistant turns only: DSPy's system/developer turns join the system text.
        extra = [m.text or "" for m in request.messages if m.role in ("system", "developer")]
        system = "\n\n".join(t for t in [system or "", *extra] if t)
        messages = [{"role": m.role, "content": m.text or ""} for m in request.messages
                    if m.role not in ("system", "developer")]
        config = request.config
        max_tokens = min(config.max_tokens or self.max_tokens, self.max_tokens)
        temperature = self.temperature if config.temperature is None else float(config.temperature)
        with self._lock:
            sample_id = self.seed * SAMPLE_ID_STRIDE + self.calls
            self.calls += 1
            kind = _requested_output(system or "")
            self.requests_by_output[kind] = self.requests_by_output.get(kind, 0) + 1
        reply = self.llm.complete(system=system or "", messages=messages, role=self.role, max_tokens=max_tokens,
                                  temperature=temperature, sample_id=sample_id)
        finish = "length" if reply.stop_reason == "max_tokens" else "stop"
        return Response(id=None, model=reply.model or "polca-llm", message=Message.assistant([TextPart(reply.text)]),
                        finish_reason=finish,
                        usage=Usage(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                                    total_tokens=reply.input_tokens + reply.output_tokens))


_OUTPUT_FIELDS = re.compile(r"Your output fields are:\s*\n\s*1\.\s*`(\w+)`")


def _requested_output(system: str) -> str:
    """The first output field a DSPy adapter prompt asks for ('proposed_instruction', ...), or 'other'."""
    match = _OUTPUT_FIELDS.search(system)
    return match.group(1) if match else "other"


def polca_lm(engine: PolcaEngine) -> Any:
    """A `dspy.LM` whose every call goes to `engine`, DSPy's cache off (our cache and ledger see each call)."""
    import dspy

    return dspy.LM("polca/optimizer", engine=engine, cache=False, max_tokens=engine.max_tokens,
                   temperature=engine.temperature)


# --- the program ---------------------------------------------------------------------------------------

class _Harness:
    """What every copy of the program shares: the meter and the example lookup (deepcopy returns self,
    so DSPy's many program copies all spend from one budget)."""

    def __init__(self, meter: MeteredEvaluator, examples: Sequence[Example], render_input: InputRenderer) -> None:
        self.meter = meter
        self.render_input = render_input
        # DSPy hands a program its input fields only, so the example is found by its rendered text
        # (identical texts are the same task instance as far as the program can tell).
        self.by_text: dict[str, Example] = {}
        for ex in examples:
            self.by_text.setdefault(render_input(ex), ex)

    def __deepcopy__(self, memo: dict) -> "_Harness":
        return self

    def __copy__(self) -> "_Harness":
        return self

    def evaluate(self, params: Params, text: str) -> Evaluation:
        example = self.by_text.get(text)
        if example is None:
            raise KeyError(f"no example renders as {text[:80]!r}")
        try:
            return self.meter.evaluate(params, example)
        except BudgetExhausted as exc:
            raise BudgetStop(str(exc)) from exc
        except Exception as exc:
            raise _EvaluatorError() from exc

    def dspy_example(self, example: Example) -> Any:
        import dspy

        return dspy.Example(**{INPUT_FIELD: self.render_input(example)}).with_inputs(INPUT_FIELD)


def _attribute_names(names: Sequence[str]) -> dict[str, str]:
    """Parameter name -> a distinct Python identifier for its predictor attribute."""
    out: dict[str, str] = {}
    for name in names:
        base = re.sub(r"\W", "_", name) or "param"
        base = base if not base[0].isdigit() else f"p_{base}"
        attr, k = base, 1
        while attr in out.values() or attr.startswith("_"):
            attr, k = f"{base}_{k}".lstrip("_") or f"param_{k}", k + 1
        out[name] = attr
    return out


def _make_program_class() -> type:
    import dspy

    class InstructionProgram(dspy.Module):
        """The problem's program as a DSPy module: one Predict per parameter, its signature's instructions
        the parameter's text. A call makes one metric call (all parameters scored together)."""

        def __init__(self, params: Params, harness: _Harness) -> None:
            super().__init__()
            self._harness = harness
            self._attrs = _attribute_names(list(params))
            signature = dspy.Signature({INPUT_FIELD: dspy.InputField(desc="the task"),
                                        OUTPUT_FIELD: dspy.OutputField(desc="the program's answer")})
            for name, attr in self._attrs.items():
                setattr(self, attr, dspy.Predict(signature.with_instructions(params[name])))

        def params(self) -> Params:
            return {name: getattr(self, attr).signature.instructions for name, attr in self._attrs.items()}

        def forward(self, **inputs: Any) -> Any:
            text = str(inputs[INPUT_FIELD])
            evaluation = self._harness.evaluate(self.params(), text)
            prediction = dspy.Prediction(**{OUTPUT_FIELD: evaluation.output or ""})
            prediction._evaluation = evaluation  # underscore: kept off the prediction's fields
            # Each predictor "ran" on this input (DSPy's optimizers read per-predictor traces).
            if dspy.settings.trace is not None:
                for attr in self._attrs.values():
                    dspy.settings.trace.append((getattr(self, attr), {INPUT_FIELD: text}, prediction))
            return prediction

    return InstructionProgram


def _evaluation_of(prediction: Any) -> Evaluation | None:
    return getattr(prediction, "_evaluation", None)


def mipro_metric(gold: Any, prediction: Any, trace: Any = None) -> float:
    """MIPROv2's metric: the score our evaluator gave this run (0 for a run that failed)."""
    evaluation = _evaluation_of(prediction)
    return float(evaluation.score) if evaluation is not None else 0.0


def gepa_metric(gold: Any, prediction: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
    """dspy.GEPA's feedback metric: our score and feedback, the same text our GEPA adapter gives GEPA."""
    import dspy

    evaluation = _evaluation_of(prediction)
    if evaluation is None:
        return dspy.Prediction(score=0.0, feedback="The program produced no output.")
    return dspy.Prediction(score=float(evaluation.score),
                           feedback=f"Score {evaluation.score:.4g}. {evaluation.feedback}".strip())


# --- MIPROv2 -------------------------------------------------------------------------------------------

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


def _peer_failure(exc: Exception) -> str:
    """The stop reason of a run that DSPy (or GEPA under it) aborted by raising out of `compile()`, as it
    would for any user; re-raises anything raised from our own code (a bug to see, not an outcome).

    Two ends are known: DSPy cannot parse its LM's reply (AdapterParseError: the common end with a weak
    local model), and gepa 0.1.4's merge proposer draws a common ancestor with all-zero weights
    (ValueError from random.choices, which dspy.GEPA's raise_on_exception=True turns into an abort).
    """
    from dspy.utils.exceptions import AdapterParseError

    if isinstance(exc, AdapterParseError):
        fields = getattr(exc, "signature", None)
        wanted = ", ".join(fields.output_fields) if fields is not None else "its output fields"
        return f"failed: DSPy could not parse its LM's reply (AdapterParseError; expected {wanted})"
    frames = [f.filename.replace("\\", "/") for f in traceback.extract_tb(exc.__traceback__)]
    peer = [f for f in frames if "/dspy/" in f or "/gepa/" in f]
    ours = Path(__file__).resolve().parents[1].as_posix()
    if not peer or (frames and frames[-1].startswith(ours)):
        raise exc
    where = peer[-1].split("site-packages/")[-1]
    return f"failed: {type(exc).__name__}: {exc} (raised in {where})"


# --- the runs ------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One DSPy run's shared pieces (built by `_setup`)."""

    meter: MeteredEvaluator
    harness: _Harness
    program: Any
    trainset: list[Any]
    valset: list[Any]
    engine: PolcaEngine
    llm: Any


def _setup(problem: Problem, llm: LLM, budget: int, seed: int, max_tokens: int, temperature: float,
           render_input: InputRenderer) -> _Run:
    examples = [*problem.trainset, *problem.validation_examples]
    meter = MeteredEvaluator(problem.evaluator, budget, np.random.default_rng(seed))
    harness = _Harness(meter, examples, render_input)
    program = _make_program_class()(dict(problem.seed_params), harness)
    ledgered = with_ledger(llm)
    engine = PolcaEngine(ledgered, "proposer", seed, max_tokens, temperature)
    return _Run(meter, harness, program, [harness.dspy_example(e) for e in problem.trainset],
                [harness.dspy_example(e) for e in problem.validation_examples], engine, ledgered)


class _quiet_dspy:
    """Keep DSPy's logging, prints and progress bars out of notebooks and bench output for one run.

    DSPy prints ("Bootstrapping set 1/6") and draws tqdm bars it has no switch for; they go to `console`
    (kept in the result's details, last lines only). Process-wide while the run lasts, as DSPy's own are.
    """

    _LOGGERS = ("dspy", "optuna", "gepa")

    def __init__(self) -> None:
        self.console = io.StringIO()

    def __enter__(self) -> "_quiet_dspy":
        self._levels = {name: logging.getLogger(name).level for name in self._LOGGERS}
        for name in self._LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        self._redirects = [contextlib.redirect_stdout(self.console), contextlib.redirect_stderr(self.console)]
        for r in self._redirects:
            r.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for r in reversed(self._redirects):
            r.__exit__(None, None, None)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    def tail(self, lines: int = 5) -> str:
        """DSPy's last printed lines, progress-bar frames left out."""
        text = self.console.getvalue().replace("\r", "\n").splitlines()
        return "\n".join([t for t in text if t.strip() and "it/s]" not in t and "%|" not in t][-lines:])


def run_dspy(method: str, problem: Problem, llm: LLM, *, budget: int, seed: int = 0,
             settings: MiproSettings | DspyGepaSettings | None = None, run_dir: str | Path | None = None,
             render_input: InputRenderer = default_input_text) -> MethodResult:
    """Run DSPy's MIPROv2 ("dspy-mipro") or dspy.GEPA ("dspy-gepa") with at most `budget` metric calls.

    Raises ValueError if the budget cannot pay for one step of the method (named with its cost).
    `run_dir` receives summary.json (returned program, calls, details); DSPy runs do not resume, so a
    rerun into the same run_dir starts over (its LLM calls are cache hits).
    """
    if method not in DSPY_METHODS:
        raise ValueError(f"method must be one of {list(DSPY_METHODS)}, got {method!r}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    check_dspy_version()
    try:
        result = _run(method, problem, llm, budget, seed, settings, render_input)
    except _EvaluatorError as wrapped:
        raise wrapped.__cause__ from None  # type: ignore[misc]
    if run_dir is not None:
        directory = Path(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
        summary = {"method": method, "seed": seed, "final_params": result.final_params,
                   "metric_calls": result.metric_calls, "budget": budget, "stop_reason": result.stop_reason,
                   **{k: v for k, v in result.details.items() if isinstance(v, (int, float, str, bool, dict))}}
        (directory / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return result


def _run(method: str, problem: Problem, llm: LLM, budget: int, seed: int,
         settings: MiproSettings | DspyGepaSettings | None, render_input: InputRenderer) -> MethodResult:
    if method == "dspy-mipro":
        mipro = settings if settings is not None else MiproSettings()
        if not isinstance(mipro, MiproSettings):
            raise TypeError(f"dspy-mipro takes MiproSettings, got {type(settings).__name__}")
        return _run_mipro(problem, llm, budget, seed, mipro, render_input)
    gepa_settings = settings if settings is not None else DspyGepaSettings()
    if not isinstance(gepa_settings, DspyGepaSettings):
        raise TypeError(f"dspy-gepa takes DspyGepaSettings, got {type(settings).__name__}")
    return _run_dspy_gepa(problem, llm, budget, seed, gepa_settings, render_input)


def _finish(method: str, run: _Run, budget: int, seed: int, points: list[ProgramPoint], final: Params | None,
            stop_reason: str, details: Mapping[str, Any], seed_params: Params) -> MethodResult:
    final = dict(final) if final is not None else dict(seed_params)
    if not points or points[-1].metric_calls != run.meter.calls or points[-1].params != final:
        iteration = points[-1].iteration if points else 0
        points = [*points, ProgramPoint(iteration, run.meter.calls, final)]
    return MethodResult(method, seed, final, tuple(points), run.meter.calls, budget, stop_reason,
                        {**details, "unused_calls": budget - run.meter.calls,
                         "lm_requests_by_output": dict(run.engine.requests_by_output)})


def _run_mipro(problem: Problem, llm: LLM, budget: int, seed: int, settings: MiproSettings,
               render_input: InputRenderer) -> MethodResult:
    import dspy

    plan = plan_mipro(budget, n_train=len(problem.trainset), n_val=len(problem.validation_examples),
                      settings=settings)
    run = _setup(problem, llm, budget, seed, settings.max_tokens, settings.temperature, render_input)
    prompt_lm = polca_lm(run.engine)
    task_lm = polca_lm(PolcaEngine(run.llm, "task", seed, settings.max_tokens, 0.0, allowed=False))
    recorder = _callback_base()(run.meter)
    n_val = len(problem.validation_examples)
    optimizer = _budgeted_mipro_class()(
        metric=mipro_metric, prompt_model=prompt_lm, task_model=task_lm, auto=None,
        num_candidates=settings.num_candidates, max_bootstrapped_demos=0, max_labeled_demos=0, num_threads=1,
        seed=seed, init_temperature=settings.init_temperature, verbose=False, track_stats=True,
        trials_for=lambda remaining: mipro_trials_for(remaining, n_val=n_val, settings=settings), meter=run.meter)
    stop_reason = "trials done"
    llm_calls = run.llm.ledger.track(roles=OPTIMIZER_ROLES)
    quiet = _quiet_dspy()
    try:
        with quiet, dspy.context(lm=task_lm, callbacks=[recorder]):
            optimizer.compile(run.program, trainset=run.trainset, valset=run.valset, num_trials=plan.num_trials,
                              minibatch=plan.minibatch, minibatch_size=plan.minibatch_size,
                              minibatch_full_eval_steps=settings.minibatch_full_eval_steps,
                              program_aware_proposer=False, data_aware_proposer=settings.data_aware_proposer,
                              tip_aware_proposer=settings.tip_aware_proposer,
                              fewshot_aware_proposer=settings.fewshot_aware_proposer)
    except BudgetStop as exc:
        stop_reason = f"max_metric_calls (refused a call that would overspend: {exc})"
    except Exception as exc:
        stop_reason = _peer_failure(exc)
    finally:
        run.meter.close()
        llm_calls.stop()
    proposals = run.engine.requests_by_output.get("proposed_instruction", 0)
    if stop_reason == "trials done":
        stop_reason = (f"trials done ({optimizer.trials_run} trials, as many as the calls left after "
                       "bootstrapping pay for)")
    details = {"trials": optimizer.trials_run, "planned_trials": plan.num_trials, "minibatch": plan.minibatch,
               "worst_case_calls": plan.worst_case_calls,
               "full_evaluations": recorder.full_evals, "proposals": proposals,
               "lm_calls": run.engine.calls, "llm_calls": llm_calls.requests(), "console_tail": quiet.tail()}
    return _finish("dspy-mipro", run, budget, seed, recorder.points, recorder.returned(), stop_reason, details,
                   problem.seed_params)


def _run_dspy_gepa(problem: Problem, llm: LLM, budget: int, seed: int, settings: DspyGepaSettings,
                   render_input: InputRenderer) -> MethodResult:
    import dspy

    from .gepa_adapter import BudgetAwareStopper, gepa_iteration_cost

    n_val, n_train = len(problem.validation_examples), len(problem.trainset)
    iteration_cost = gepa_iteration_cost(n_val, settings.reflection_minibatch_size, n_train, settings.use_merge)
    if budget < n_val + iteration_cost:
        raise ValueError(f"budget {budget} is too small for dspy.GEPA: the seed's validation pass takes {n_val} "
                         f"calls and one iteration up to {iteration_cost} more")
    run = _setup(problem, llm, budget, seed, settings.max_tokens, settings.temperature, render_input)
    reflection_lm = polca_lm(run.engine)
    recorder = _GepaRecorder(run.meter, run.program)
    stopper = BudgetAwareStopper(run.meter, iteration_cost)
    perfect = problem.score_range[1] if problem.score_range is not None else 1.0
    optimizer = dspy.GEPA(metric=gepa_metric, max_metric_calls=budget, reflection_lm=reflection_lm,
                          reflection_minibatch_size=settings.reflection_minibatch_size,
                          candidate_selection_strategy=settings.candidate_selection_strategy,
                          skip_perfect_score=settings.skip_perfect_score, use_merge=settings.use_merge,
                          max_merge_invocations=settings.max_merge_invocations, num_threads=1,
                          perfect_score=perfect, seed=seed, track_stats=False,
                          gepa_kwargs={"stop_callbacks": [stopper], "callbacks": [recorder]})
    stop_reason = "max_metric_calls"
    llm_calls = run.llm.ledger.track(roles=OPTIMIZER_ROLES)
    quiet = _quiet_dspy()
    try:
        with quiet, dspy.context(lm=None):
            optimizer.compile(run.program, trainset=run.trainset, valset=run.valset)
        if stopper.stopped:
            stop_reason = stopper.reason
    except BudgetStop as exc:
        stop_reason = f"max_metric_calls (refused a call that would overspend: {exc})"
    except Exception as exc:
        stop_reason = _peer_failure(exc)
    finally:
        run.meter.close()
        llm_calls.stop()
    state = recorder.state
    details = {"iterations": recorder.iteration, "candidates": len(state.program_candidates) if state else 0,
               "accepted": recorder.accepted, "proposals": run.engine.calls,
               "lm_calls": run.engine.calls, "llm_calls": llm_calls.requests(), "console_tail": quiet.tail()}
    return _finish("dspy-gepa", run, budget, seed, recorder.points, recorder.returned(), stop_reason, details,
                   problem.seed_params)


class _GepaRecorder:
    """GEPA callback (GEPA's engine under dspy.GEPA): the returned program after every iteration."""

    def __init__(self, meter: MeteredEvaluator, program: Any) -> None:
        self.meter = meter
        self.names: Mapping[str, str] = {attr: name for name, attr in program._attrs.items()}
        self.state: Any = None
        self.points: list[ProgramPoint] = []
        self.accepted = 0

    @property
    def iteration(self) -> int:
        return int(self.state.i) + 1 if self.state is not None else 0

    def returned(self) -> Params | None:
        from gepa.core.result import GEPAResult

        if self.state is None or not self.state.program_candidates:
            return None
        result = GEPAResult.from_state(self.state)
        best = result.candidates[result.best_idx]
        return {self.names.get(k, k): v for k, v in best.items()}

    def _record(self, iteration: int) -> None:
        params = self.returned()
        if params is None:
            return
        point = ProgramPoint(iteration, self.meter.calls, params)
        if self.points and (self.points[-1].metric_calls, self.points[-1].params) == (point.metric_calls, params):
            self.points[-1] = point
        else:
            self.points.append(point)

    def on_iteration_start(self, event: Mapping[str, Any]) -> None:
        if self.state is None:
            self.state = event["state"]
            self._record(0)  # the seed, after its validation pass

    def on_iteration_end(self, event: Mapping[str, Any]) -> None:
        self.state = event["state"]
        self._record(self.iteration)

    def on_candidate_accepted(self, event: Mapping[str, Any]) -> None:
        self.accepted += 1


__all__ = [
    "DSPY_METHODS",
    "DSPY_TESTED",
    "BudgetStop",
    "DspyGepaSettings",
    "MiproPlan",
    "MiproSettings",
    "PolcaEngine",
    "check_dspy_version",
    "gepa_metric",
    "mipro_metric",
    "mipro_bootstrap_calls",
    "mipro_search_calls",
    "mipro_trials_for",
    "mipro_worst_case_calls",
    "plan_mipro",
    "polca_lm",
    "run_dspy",
]

