"""DSPy plumbing for the DSPy baselines: the LM engine over our `LLM`, the program as a `dspy.Module` whose
predictors' instructions are the parameters (each call one metered metric call), the metrics, and how a
run that DSPy aborts is reported. `dspy_adapter` runs the optimizers on top of these."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..llm.base import LLM
from ..roles.templates import InputRenderer
from ..types import Evaluation, Example, Params
from .accounting import BudgetExhausted, MeteredEvaluator

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
