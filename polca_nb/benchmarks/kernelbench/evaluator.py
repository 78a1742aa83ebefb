"""One KernelBench task as a POLCA `Problem`, the kernel-writing proposer, and a screening evaluator.

As in the paper (polca-method.md §3): the parameter is the kernel source, the seed is a dummy comment,
the proposer's objective is the task prompt, and the task itself is both the training and the
validation example; the evaluator is deterministic (a compile or correctness verdict does not depend
on the seed), so the only noise is timing jitter.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from ...protocols import Evaluator
from ...roles.parsing import ParsedUpdate
from ...roles.proposer import LLMProposer
from ...problem import Problem
from ...types import Evaluation, Example, Params
from . import feedback as fb
from .evaluate import PARAM_NAME
from .feedback import status_of
from .prompts import INITIAL_KERNEL, build_prompt
from .tasks import Backend, KernelTask, check_backend

MODEL_NEW = "ModelNew"

# ```python ... ``` blocks; the last alternative takes a fence the reply never closed (a reply cut by max_tokens).
_CLOSED_FENCE = re.compile(r"```[ \t]*(?P<lang>[A-Za-z0-9_+\-]*)[^\n`]*\n(?P<body>.*?)```", re.S)
_OPEN_FENCE = re.compile(r"```[ \t]*(?P<lang>[A-Za-z0-9_+\-]*)[^\n`]*\n(?P<body>(?:(?!```).)*)\Z", re.S)
_NON_PYTHON_LANGS = {"cpp", "c++", "c", "cuda", "cu", "bash", "sh", "shell", "json", "text", "txt", "console"}


# --- reading kernel sources ----------------------------------------------------------------------

def defines_model_new(source: str) -> bool:
    """True when `source` binds the name ModelNew anywhere (class, assignment, import alias).

    A source that does not parse falls back to a textual `class ModelNew` check, so a truncated but
    otherwise real kernel still counts as an attempt (its syntax error is then reported by the evaluator).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return re.search(rf"\bclass\s+{MODEL_NEW}\b", source) is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == MODEL_NEW:
            return True
        if isinstance(node, ast.Name) and node.id == MODEL_NEW and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name.rsplit(".", 1)[-1]) == MODEL_NEW:
            return True
    return False


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def code_blocks(text: str) -> list[str]:
    """Bodies of the fenced code blocks of `text` that may be Python, in order; an unclosed last
    fence counts too. Blocks explicitly tagged as another language (cpp, cuda, json, ...) are skipped."""
    blocks: list[tuple[int, str]] = []
    end_of_closed = 0
    for match in _CLOSED_FENCE.finditer(text):
        if match.group("lang").strip().lower() not in _NON_PYTHON_LANGS:
            blocks.append((match.start(), match.group("body")))
        end_of_closed = match.end()
    tail = _OPEN_FENCE.search(text, end_of_closed)
    if tail is not None and tail.group("lang").strip().lower() not in _NON_PYTHON_LANGS:
        blocks.append((tail.start(), tail.group("body")))
    return [body.strip("\n") for _, body in sorted(blocks)]


def extract_kernel_source(reply: str, parsed_value: str | None = None) -> str | None:
    """The kernel module a reply proposes, or None when it holds no code at all.

    Preference: the last fenced block (or the `parsed_value` a generic parser found, or the whole
    reply when it is plain Python) that defines ModelNew; failing that, `parsed_value`, then the
    last fenced block. A source without ModelNew is still returned: the evaluator records it as a
    failed attempt with feedback rather than the proposal vanishing.
    """
    if not isinstance(reply, str):
        raise ValueError(f"reply must be a str, got {type(reply).__name__}")
    options: list[str] = []
    if parsed_value is not None and parsed_value.strip():
        inner = code_blocks(parsed_value)
        options.extend(inner if inner else [parsed_value.strip()])
    options.extend(code_blocks(reply))
    stripped = reply.strip()
    if stripped and "```" not in stripped and _parses(stripped):
        options.append(stripped)
    with_model_new = [s for s in options if s.strip() and defines_model_new(s)]
    if with_model_new:
        return with_model_new[-1].strip() + "\n"
    if parsed_value is not None and parsed_value.strip():
        return parsed_value.strip() + "\n"
    blocks = [b for b in code_blocks(reply) if b.strip()]
    return blocks[-1].strip() + "\n" if blocks else None


def _normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


# --- the proposer ---------------------------------------------------------------------------------

@dataclass
class KernelProposer(LLMProposer):
    """`LLMProposer` for the one kernel parameter, with code extraction tuned for kernel replies.

    The base parser's value (tags, JSON or last fence) is refined by `extract_kernel_source`: the last
    code block that defines ModelNew wins, so prose, usage snippets or a separate C++ block after the
    module do not replace it. Everything else (prompt, LLM call, seeds) is LLMProposer's.
    """

    param_name: str = PARAM_NAME

    def parse(self, reply: str, current: Params) -> ParsedUpdate:
        if self.param_name not in current:
            raise ValueError(f"params must contain {self.param_name!r}, got keys {sorted(current)}")
        base = super().parse(reply, current)
        if not base.changes and "echo" in base.rejected.get("reply", ""):
            return base  # the reply repeats our prompt as a whole: any code in it is ours
        source = extract_kernel_source(reply, base.changes.get(self.param_name))
        if source is None:
            return base
        if _normalized(source) == _normalized(current[self.param_name]):
            return ParsedUpdate({}, "none", {**base.rejected, self.param_name: "kernel: unchanged source"})
        if defines_model_new(source) and _normalized(source) in {_normalized(b) for b in code_blocks(self.objective)}:
            # A verbatim copy of the prompt's one-shot ModelNew solves a different problem (elementwise
            # addition): dropping it here saves a build. Copies without ModelNew go on to be screened.
            return ParsedUpdate({}, "none", {**base.rejected, self.param_name: "kernel: copy of code from the task prompt"})
        return ParsedUpdate({**base.changes, self.param_name: source}, base.format if base.changes else "kernel",
                            base.rejected)


def task_input_text(example: Example) -> str:
    """How a task appears as the 'Input' of a proposer or summarizer prompt: a one-line pointer,
    since the full task statement is the proposer's objective already."""
    task = example.data
    if not isinstance(task, KernelTask):
        raise ValueError(f"example.data must be a KernelTask, got {type(task).__name__} (example {example.id!r})")
    return (f"KernelBench level-{task.level} task idx {task.idx} (problem {task.problem_id}: {task.name}); "
            "the full task statement is the goal above.")


# --- the evaluator --------------------------------------------------------------------------------

How = Literal["evaluated", "screened", "memoized"]


@dataclass(frozen=True)
class EvaluationRecord:
    """One metric call as the screening evaluator saw it: how it was answered and what it cost."""

    task_idx: int
    example_id: str
    source_digest: str
    how: How
    status: str
    score: float
    seconds: float
    reason: str = ""


def screen_source(source: str) -> str | None:
    """Why `source` certainly fails before any process is started (None if it might work).

    Only certain failures are screened: an empty source, or one that never defines ModelNew (the
    harness needs it). Syntax errors are left to the evaluator, which reports them without a process.
    """
    if not isinstance(source, str) or not source.strip():
        return "the kernel source is empty"
    if not defines_model_new(source):
        return (f"the module does not define {MODEL_NEW} (no class, assignment or import binds that name), "
                "so the harness cannot construct it")
    return None


@dataclass
class ScreenedKernelEvaluator:
    """`Evaluator` around a kernel evaluator (normally `KernelBenchEvaluator`) that never pays a
    worker process or a build for a certain failure.

    Screened sources (see `screen_source`) and repeats of a source that already failed to build or
    load for the same task are answered at once with the four-form feedback; every such answer still
    is a metric call, logged like any other evaluation and marked in `output` and `records`.
    Build failures are memoized only when deterministic (not timeouts, kills or crashes).
    """

    inner: Evaluator
    memoize_build_failures: bool = True
    records: list[EvaluationRecord] = field(default_factory=list, repr=False)
    _failures: dict[tuple[str, str], Evaluation] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        if PARAM_NAME not in params:
            raise ValueError(f"params must contain {PARAM_NAME!r} (the kernel source), got keys {sorted(params)}")
        task = example.data
        if not isinstance(task, KernelTask):
            raise ValueError(f"example.data must be a KernelTask, got {type(task).__name__} (example {example.id!r})")
        source = params[PARAM_NAME]
        digest = source_digest(source) if isinstance(source, str) else "-"
        started = time.perf_counter()
        reason = screen_source(source)
        if reason is not None:
            evaluation = Evaluation(
                0.0, fb.compilation_failure("ScreenedOut", reason + " (found before building; no process was run)"),
                json.dumps({"task_idx": task.idx, "status": "compilation_failure", "compiled": False,
                            "correct": False, "speedup": 0.0, "screened": True, "error": reason}))
            self._record(task, example, digest, "screened", evaluation, started, reason)
            return evaluation
        key = (f"{task.idx}:{task.name}", digest)
        with self._lock:
            remembered = self._failures.get(key)
        if remembered is not None:
            output = _with_flag(remembered.output, "memoized")
            evaluation = Evaluation(remembered.score, remembered.feedback, output)
            self._record(task, example, digest, "memoized", evaluation, started, "same source failed to build before")
            return evaluation
        evaluation = self.inner(params, example, seed)
        if self.memoize_build_failures and _deterministic_build_failure(evaluation):
            with self._lock:
                self._failures[key] = evaluation
        self._record(task, example, digest, "evaluated", evaluation, started)
        return evaluation

    def _record(self, task: KernelTask, example: Example, digest: str, how: How, evaluation: Evaluation,
                started: float, reason: str = "") -> None:
        try:
            status = status_of(evaluation.feedback)
        except ValueError:
            status = "unknown"
        record = EvaluationRecord(task.idx, example.id, digest, how, status, float(evaluation.score),
                                  round(time.perf_counter() - started, 3), reason)
        with self._lock:
            self.records.append(record)

    def counts(self) -> dict[str, int]:
        """How many calls were evaluated, screened and memoized, and how many succeeded."""
        with self._lock:
            records = list(self.records)
        out = {"calls": len(records), "evaluated": 0, "screened": 0, "memoized": 0, "success": 0}
        for r in records:
            out[r.how] += 1
            out["success"] += r.status == "success"
        return out


def _with_flag(output: str, flag: str) -> str:
    try:
        data = json.loads(output) if output else {}
    except json.JSONDecodeError:
        return output
    if not isinstance(data, dict):
        return output
    return json.dumps({**data, flag: True})


def _deterministic_build_failure(evaluation: Evaluation) -> bool:
    """A build/load failure that would recur for the same source: not a timeout, kill or crash."""
    try:
        if status_of(evaluation.feedback) != "compilation_failure":
            return False
    except ValueError:
        return False
    try:
        summary = json.loads(evaluation.output) if evaluation.output else {}
    except json.JSONDecodeError:
        return False
    if not isinstance(summary, dict) or summary.get("timed_out") or summary.get("out_of_memory"):
        return False
    return not str(summary.get("error") or "").startswith(("TimeoutError", "WorkerDied"))


# --- the problem ----------------------------------------------------------------------------------

def kernel_problem(task: KernelTask, evaluator: Evaluator, backend: Backend = "cpu", *,
                   replicas: int = 1) -> Problem:
    """The POLCA problem for one task: params {"kernel": source}, seed = a dummy comment, objective =
    the task prompt, the task as training and validation example.

    `replicas` copies of the task (ids `<task id>#r`) form the training set, so that exploring fewer
    than K candidates can still draw K sub-batches of one task, as the paper's sampler does.
    """
    check_backend(backend)
    if not isinstance(task, KernelTask):
        raise ValueError(f"task must be a KernelTask, got {type(task).__name__}")
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be an int >= 1, got {replicas!r}")
    example = task.to_example()
    trainset = [Example(f"{example.id}#{r}", task) for r in range(replicas)]
    return Problem(
        name=f"kernelbench-{task.idx}-{backend}",
        seed_params={PARAM_NAME: INITIAL_KERNEL},
        trainset=trainset,
        evaluator=evaluator,
        valset=[example],
        score_range=None,  # a speedup has no upper bound; the mean priority needs none
        objective=build_prompt(task, backend),
    )
