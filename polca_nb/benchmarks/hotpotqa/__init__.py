"""HotpotQA prompt optimization, the paper's setup (benchmarks.md §2, polca-method.md §3 and §5.2).

The program is one parameter, `meta_instructions`, put in front of a question and its ten distractor
paragraphs; the task model (ledger role "task") answers, and the answer is scored 1 if, after
lower-casing, stripping and dropping trailing `.,!?;:`, it equals the gold answer or contains it.
Feedback is "Correct." or "Incorrect. Expected: ..., Got: ..." followed by the context, the question and
the harness's closing sentence (`feedback_text`). Train = test = the first `n` tasks; validation = the
first `PAPER_NUM_VALIDATION` (10) of them, as in the harness (`make_problem`).

    examples = load_examples()                       # the paper's 100 tasks
    evaluator = HotpotQAEvaluator(llm)               # llm: polca_nb.llm.default_client()
    run = run_seed(PRESETS["smoke"], llm, seed=0, embedder=default_embedder())

Data: `hotpotqa/hotpot_dev_distractor_first100.json` under `polca_nb.data.data_dir()`, or
`python -m polca_nb.benchmarks.hotpotqa download` (needs `datasets` and internet).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...budget import Budget
from ...data import ENV_VAR, PROJECT_ROOT, data_dir, download_dir
from ...llm.base import LLM
from ...llm.config import Price
from ...llm.usage import UsageTracker
from ...methods import CurvePoint
from ...protocols import Embedder, Executor, as_executor
from ...roles import LLMProposer, LLMSummarizer
from ...runner import PolcaConfig, Problem, RunResult, polca
from ...types import Evaluation, Example, Params

# --- data ------------------------------------------------------------------------------------------
DATA_FILE = "hotpotqa/hotpot_dev_distractor_first100.json"
DATA_SHA256 = "32ed3ffab548f1d57ba65365bd581d17b428980fa7be881ab0c45f79d9fe6827"
"""sha256 of the shared file (the paper's 100 tasks); the downloader reproduces it byte for byte."""
PAPER_NUM_EXAMPLES = 100
PAPER_NUM_VALIDATION = 10
"""Validation set = the first 10 tasks: the harness's `--num_validate_samples` default, which the paper's
command leaves unset (polca-method.md §3: "train first 100, val first 10 (default), test 100")."""
HF_DATASET = "hotpotqa/hotpot_qa"
HF_CONFIG = "distractor"
HF_SPLIT = "validation"
DOWNLOAD_COMMAND = "python -m polca_nb.benchmarks.hotpotqa download"
RECORD_KEYS = ("question", "answer", "type", "level", "supporting_facts", "context")

# --- the program -----------------------------------------------------------------------------------
PARAM_NAME = "meta_instructions"
INITIAL_INSTRUCTIONS = "Answer the question based on the context."
TRAILING_PUNCTUATION = ".,!?;:"
TASK_ROLE = "task"
FEEDBACK_CLOSING = ("Identify the failure mode and update meta_instructions with improved reasoning and "
                    "formatting guidance.")
"""The last line of the paper guide's feedback on a wrong answer, verbatim (`HotpotQAGuide.get_feedback`
in xuanfeiren/hotpotqa `prompt_opt/trace_opt.py`)."""
UPSTREAM_TASK_MAX_TOKENS = 4096
"""`max_tokens` of the harness's task-model call (`evaluate_single` in xuanfeiren/hotpotqa `hotpotqa_eval.py`)."""

OBJECTIVE = (
    "The parameter meta_instructions is placed before a multi-hop question and ten Wikipedia paragraphs "
    "(two relevant, eight distractors). The answering model reads them and replies; a reply is correct "
    "when it equals the gold answer or contains it (case-insensitive, trailing punctuation ignored). "
    "Rewrite meta_instructions so the model finds the facts across paragraphs and states the short "
    "answer exactly, raising accuracy on all such questions."
)

EVAL_STEPS_PER_ITERATION = 2
"""One POLCA iteration = an exploration round and a validation round of parallel evaluations
(polca-method.md §5, inferred from the KernelBench CSVs); the paper's x-axis counts these."""


@dataclass(frozen=True)
class HotpotQuestion:
    """One HotpotQA distractor task: the question, gold answer and its ten (title, sentences) paragraphs."""

    question: str
    answer: str
    titles: tuple[str, ...]
    sentences: tuple[tuple[str, ...], ...]
    supporting_titles: tuple[str, ...] = ()
    kind: str = ""
    level: str = ""

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise ValueError(f"HotpotQuestion.question must be non-empty, got {self.question!r}")
        if not _normalize(self.answer):
            raise ValueError(f"HotpotQuestion.answer must be non-empty after normalisation, got {self.answer!r}")
        if len(self.titles) != len(self.sentences):
            raise ValueError(f"HotpotQuestion.titles has {len(self.titles)} entries but sentences has "
                             f"{len(self.sentences)}")

    def paragraphs(self, max_paragraphs: int | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """The (title, sentences) paragraphs shown to the model, in the data's order.

        `max_paragraphs=None` keeps all ten (the paper). A smaller number keeps every supporting
        paragraph (so the question stays answerable) and fills up with the earliest distractors.
        """
        pairs = list(zip(self.titles, self.sentences))
        if max_paragraphs is None or max_paragraphs >= len(pairs):
            return pairs
        if max_paragraphs < 1:
            raise ValueError(f"max_paragraphs must be >= 1 or None, got {max_paragraphs!r}")
        supporting = {i for i, (title, _) in enumerate(pairs) if title in self.supporting_titles}
        distractors = [i for i in range(len(pairs)) if i not in supporting]
        keep = supporting | set(distractors[: max(0, max_paragraphs - len(supporting))])
        return [pairs[i] for i in sorted(keep)]

    def context(self, max_paragraphs: int | None = None) -> str:
        return format_context(self.paragraphs(max_paragraphs))


def format_context(paragraphs: Sequence[tuple[str, Sequence[str]]]) -> str:
    """`Paragraph {j+1} ({title}):` then the paragraph's sentences joined by spaces; blank line between."""
    return "\n\n".join(f"Paragraph {j + 1} ({title}):\n{' '.join(sentences)}"
                       for j, (title, sentences) in enumerate(paragraphs))


def build_prompt(meta_instructions: str, context: str, question: str) -> str:
    """The task model's whole input, exactly the harness's format (benchmarks.md §2)."""
    return f"{meta_instructions}\n\nContext:\n{context}\n\nQuestion: {question}\n\nAnswer:"


def parse_record(record: Mapping[str, Any], index: int) -> HotpotQuestion:
    """One record of the HF schema (question, answer, type, level, supporting_facts, context)."""
    try:
        context = record["context"]
        return HotpotQuestion(
            question=str(record["question"]),
            answer=str(record["answer"]),
            titles=tuple(str(t) for t in context["title"]),
            sentences=tuple(tuple(str(s) for s in para) for para in context["sentences"]),
            supporting_titles=tuple(dict.fromkeys(str(t) for t in record.get("supporting_facts", {}).get("title", []))),
            kind=str(record.get("type", "")),
            level=str(record.get("level", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"HotpotQA record {index} is malformed ({type(exc).__name__}: {exc}); expected the HF "
                         f"schema with keys {RECORD_KEYS}") from exc


def data_file(path: str | Path | None = None) -> Path:
    """The data file: `path` if given, else the data directory's copy, else the project's data/ folder
    (where the downloader writes). FileNotFoundError names both ways to get it."""
    if path is not None:
        candidates = [Path(path)]
    else:
        candidates = list(dict.fromkeys([data_dir() / DATA_FILE, PROJECT_ROOT / "data" / DATA_FILE]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"HotpotQA data not found (looked in: {looked}). Either set {ENV_VAR} to a data folder that holds "
        f"'{DATA_FILE}' (the shared data folder ../shared/data has it), or download the paper's 100 examples "
        f"with: {DOWNLOAD_COMMAND}  (needs `pip install datasets` and internet access)"
    )


def load_examples(n: int = PAPER_NUM_EXAMPLES, *, path: str | Path | None = None) -> list[Example]:
    """The first `n` examples (ids hotpot000, hotpot001, ...) in the file's order, which is the paper's."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (number of HotpotQA examples) must be a positive int, got {n!r}")
    records = json.loads(data_file(path).read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"HotpotQA data must be a JSON list of records, got {type(records).__name__}")
    if n > len(records):
        raise ValueError(f"n={n} is more than the {len(records)} examples in the HotpotQA data file")
    return [Example(f"hotpot{i:03d}", parse_record(records[i], i)) for i in range(n)]


# --- scoring ---------------------------------------------------------------------------------------
def _normalize(text: str) -> str:
    return text.lower().strip().rstrip(TRAILING_PUNCTUATION)


def normalize_answer(text: str) -> str:
    """Lower-case, strip whitespace, then strip trailing `.,!?;:` (the harness's normalisation)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}: {text!r:.60}")
    return _normalize(text)


def is_correct(output: str, answer: str) -> bool:
    """True if the normalised output equals the normalised answer or contains it as a substring."""
    gold = normalize_answer(answer)
    if not gold:
        raise ValueError(f"answer must be non-empty after normalisation, got {answer!r}")
    got = normalize_answer(output)
    return got == gold or gold in got


def feedback_text(output: str, answer: str, context: str, question: str, correct: bool) -> str:
    r"""The paper guide's feedback (benchmarks.md §2), exactly:

        "Correct."                                                              (score 1)
        "Incorrect. Expected: '<ans>', Got: '<output>'.\nContext: <context>\nQuestion: <q>\n"
        "Identify the failure mode and update meta_instructions with improved reasoning and formatting guidance."
                                                                                (score 0)
    """
    if correct:
        return "Correct."
    return (f"Incorrect. Expected: '{answer}', Got: '{output}'.\n"
            f"Context: {context}\n"
            f"Question: {question}\n"
            f"{FEEDBACK_CLOSING}")


def score_output(output: str, question: HotpotQuestion, max_paragraphs: int | None = None) -> Evaluation:
    """Score 1.0/0.0 with feedback for one reply; the context is what the program was shown."""
    correct = is_correct(output, question.answer)
    feedback = feedback_text(output, question.answer, question.context(max_paragraphs), question.question, correct)
    return Evaluation(1.0 if correct else 0.0, feedback, output)


def render_input(example: Example) -> str:
    """What proposer and summarizer prompts show as a task's input: the question and the paragraph titles
    (a failure's feedback already carries the full context)."""
    q: HotpotQuestion = example.data
    return f"Question: {q.question}\nParagraph titles: " + "; ".join(q.titles)


@dataclass(frozen=True)
class HotpotQAEvaluator:
    """Implements `Evaluator`: one task-model call (role "task", sample_id = the evaluation seed, so
    repeated evaluations are fresh samples while reruns hit the cache), then `score_output`.

    `max_paragraphs` shortens the context (None = all ten, as in the paper); `max_tokens` defaults to the
    harness's 4096. LLM errors propagate; the search loop records an `LLMError` as an evaluation error
    (`Rollout.error`), not a failing program, and lets a fatal one stop the run.
    """

    llm: LLM
    max_tokens: int = UPSTREAM_TASK_MAX_TOKENS
    temperature: float = 0.1
    max_paragraphs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"HotpotQAEvaluator.max_tokens must be a positive int, got {self.max_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"HotpotQAEvaluator.temperature must be in [0, 2], got {self.temperature!r}")
        if self.max_paragraphs is not None and (not isinstance(self.max_paragraphs, int) or self.max_paragraphs < 1):
            raise ValueError(f"HotpotQAEvaluator.max_paragraphs must be None or an int >= 1, "
                             f"got {self.max_paragraphs!r}")

    def prompt(self, params: Params, question: HotpotQuestion) -> str:
        if PARAM_NAME not in params:
            raise ValueError(f"params must contain {PARAM_NAME!r}, got keys {sorted(params)}")
        return build_prompt(params[PARAM_NAME], question.context(self.max_paragraphs), question.question)

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        question: HotpotQuestion = example.data
        reply = self.llm.complete(system="", messages=[{"role": "user", "content": self.prompt(params, question)}],
                                  role=TASK_ROLE, max_tokens=self.max_tokens, temperature=float(self.temperature),
                                  sample_id=int(seed))
        return score_output(reply.text, question, self.max_paragraphs)


# --- presets, problem, roles -----------------------------------------------------------------------
@dataclass(frozen=True)
class HotpotPreset:
    """A complete HotpotQA experiment: data size, loop knobs, model-call settings, seeds.

    Train = test = the first `n_examples` tasks; validation = the first `n_validation` of them (the
    harness's setup: 10, or all `n_examples` when there are fewer; `n_validation=None` validates on all
    `n_examples`, i.e. validation = train, this package's former setup). The budget is `iterations` (the
    paper's num_steps) unless `max_metric_calls` is set. `task_max_tokens` defaults to the harness's 4096.
    """

    name: str
    n_examples: int
    iterations: int
    seeds: tuple[int, ...]
    num_candidates: int = 5
    batch_size: int = 2
    eps: float = 0.1
    use_summarizer: bool = True
    priority: str = "mean"
    test_every: int = 10
    test_repeats: int = 5
    max_metric_calls: int | None = None
    max_paragraphs: int | None = None
    n_validation: int | None = PAPER_NUM_VALIDATION
    task_max_tokens: int = UPSTREAM_TASK_MAX_TOKENS
    task_temperature: float = 0.1
    proposer_max_tokens: int = 4096
    proposer_temperature: float = 0.7
    summarizer_max_tokens: int = 2048
    workers: int = 1

    def __post_init__(self) -> None:
        positive = ("n_examples", "iterations", "num_candidates", "batch_size", "test_every", "test_repeats",
                    "task_max_tokens", "proposer_max_tokens", "summarizer_max_tokens", "workers")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HotpotPreset.{name} must be a positive int, got {value!r}")
        if self.n_examples > PAPER_NUM_EXAMPLES:
            raise ValueError(f"HotpotPreset.n_examples must be <= {PAPER_NUM_EXAMPLES}, got {self.n_examples}")
        if self.batch_size > self.n_examples:
            raise ValueError(f"HotpotPreset.batch_size {self.batch_size} exceeds n_examples {self.n_examples}")
        if not self.seeds:
            raise ValueError(f"HotpotPreset.seeds must name at least one seed, got {self.seeds!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"HotpotPreset.eps must be a finite number >= 0, got {self.eps!r}")
        if self.max_paragraphs is not None and (not isinstance(self.max_paragraphs, int) or self.max_paragraphs < 1):
            raise ValueError(f"HotpotPreset.max_paragraphs must be None or an int >= 1, got {self.max_paragraphs!r}")
        if self.max_metric_calls is not None and self.max_metric_calls < 1:
            raise ValueError(f"HotpotPreset.max_metric_calls must be None or >= 1, got {self.max_metric_calls!r}")
        if self.n_validation is not None and (not isinstance(self.n_validation, int)
                                              or isinstance(self.n_validation, bool) or self.n_validation < 1):
            raise ValueError(f"HotpotPreset.n_validation must be None or an int >= 1, got {self.n_validation!r}")
        if self.batch_size > self.validation_size:
            raise ValueError(f"HotpotPreset.batch_size {self.batch_size} exceeds the {self.validation_size} "
                             f"validation tasks (n_validation={self.n_validation!r})")

    @property
    def validation_size(self) -> int:
        """How many tasks (the first ones) form the validation set."""
        return num_validation_tasks(self.n_examples, self.n_validation)


def num_validation_tasks(n_examples: int, n_validation: int | None = PAPER_NUM_VALIDATION) -> int:
    """min(n_validation, n_examples); all `n_examples` when `n_validation` is None."""
    return n_examples if n_validation is None else min(n_validation, n_examples)


SMOKE_TASK_MAX_TOKENS = 24
"""The smoke preset's task-reply cap for the offline 135M model (the paper preset uses the harness's 4096)."""

PRESETS: dict[str, HotpotPreset] = {
    # polca-method.md §3: 100 tasks (validation: the first 10), K=5, b=2, 100 steps, eps 0.1, summarizer, test
    # every 10 on 100 x 5, 3 seeds; task replies up to the harness's 4096 tokens.
    "paper": HotpotPreset("paper", n_examples=100, iterations=100, seeds=(0, 1, 2), num_candidates=5, batch_size=2,
                          eps=0.1, use_summarizer=True, test_every=10, test_repeats=5, max_paragraphs=None,
                          n_validation=PAPER_NUM_VALIDATION, task_max_tokens=UPSTREAM_TASK_MAX_TOKENS,
                          proposer_max_tokens=4096, summarizer_max_tokens=2048, workers=8),
    # Sized for the embedded SmolLM2-135M on 2 idle cores: 6 tasks (fewer than 10, so all 6 validate),
    # contexts cut to the 2 supporting paragraphs + 1 distractor (~400 instead of ~1,600 prompt tokens), and
    # task replies capped at SMOKE_TASK_MAX_TOKENS (24, not the paper's 4096: a short answer fits, and the 135M
    # model's rambling costs ~16 ms a token on these cores). Its 47 requests (38 task, 6 proposer,
    # 3 summarizer) need ~260 s of single-thread llama.cpp time (prefill ~117 tok/s, generation ~62 tok/s, measured
    # with llama-bench as CPU time), i.e. ~3-5 minutes for the whole notebook cold.
    "smoke": HotpotPreset("smoke", n_examples=6, iterations=3, seeds=(0,), num_candidates=2, batch_size=2,
                          eps=0.1, use_summarizer=True, test_every=1, test_repeats=1, max_paragraphs=3,
                          n_validation=PAPER_NUM_VALIDATION, task_max_tokens=SMOKE_TASK_MAX_TOKENS,
                          proposer_max_tokens=192, summarizer_max_tokens=160, workers=1),
}


def make_problem(examples: Sequence[Example], evaluator: HotpotQAEvaluator,
                 seed_instructions: str = INITIAL_INSTRUCTIONS, *,
                 n_validation: int | None = PAPER_NUM_VALIDATION) -> Problem:
    """One parameter `meta_instructions`; train = test = `examples`, validation = the first `n_validation`
    of them (the harness's `all_tasks[:num_validate_samples]`, 10 by default; all of them when there are
    fewer). `n_validation=None` validates on all `examples` (validation = train, the former setup)."""
    if not examples:
        raise ValueError("examples must not be empty")
    if n_validation is not None and (not isinstance(n_validation, int) or isinstance(n_validation, bool)
                                     or n_validation < 1):
        raise ValueError(f"n_validation must be None or an int >= 1, got {n_validation!r}")
    examples = list(examples)
    valset = examples[:num_validation_tasks(len(examples), n_validation)]
    return Problem(name="hotpotqa", seed_params={PARAM_NAME: seed_instructions}, trainset=examples,
                   evaluator=evaluator, valset=valset, testset=examples, score_range=(0.0, 1.0),
                   objective=OBJECTIVE)


def make_config(preset: HotpotPreset, **overrides: Any) -> PolcaConfig:
    """The preset's `PolcaConfig`; `overrides` replace fields (e.g. eps=0, use_summarizer=False)."""
    budget = Budget(max_metric_calls=preset.max_metric_calls) if preset.max_metric_calls else \
        Budget(max_iterations=preset.iterations)
    config = PolcaConfig(budget, num_candidates=preset.num_candidates, batch_size=preset.batch_size, eps=preset.eps,
                         priority=preset.priority, use_summarizer=preset.use_summarizer,
                         test_every=preset.test_every, test_repeats=preset.test_repeats)
    return replace(config, **overrides)


@dataclass(frozen=True)
class HotpotRoles:
    """The three LLM roles of a HotpotQA run, sharing one client."""

    evaluator: HotpotQAEvaluator
    proposer: LLMProposer
    summarizer: LLMSummarizer


def make_roles(llm: LLM, preset: HotpotPreset) -> HotpotRoles:
    """Task model, proposer and summarizer on one client (one cache, one ledger)."""
    evaluator = HotpotQAEvaluator(llm, max_tokens=preset.task_max_tokens, temperature=preset.task_temperature,
                                  max_paragraphs=preset.max_paragraphs)
    proposer = LLMProposer(llm, max_tokens=preset.proposer_max_tokens, temperature=preset.proposer_temperature,
                           objective=OBJECTIVE, render_input=render_input)
    summarizer = LLMSummarizer(llm, max_tokens=preset.summarizer_max_tokens, render_input=render_input)
    return HotpotRoles(evaluator, proposer, summarizer)


# --- runs and curves -------------------------------------------------------------------------------
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
    run = (lambda job: evaluator(params, job[0], job[1]))
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


REFERENCE_FILE = "hotpotqa.json"


def paper_reference() -> dict[str, Any]:
    """The paper's curves (polca_nb/reference/hotpotqa.json): {"curves": {method: {"points": [[x, y]...]}}, ...}."""
    from importlib import resources

    text = resources.files("polca_nb").joinpath("reference").joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def plot_runs(ax, runs: Sequence[HotpotRun], *, x: str = "eval_step", label: str = "POLCA (this run)",
              reference: Mapping[str, Sequence[Sequence[float]]] | None = None) -> None:
    """Best-so-far test accuracy, mean over `runs` with a std/sqrt(n) band, plus dashed reference curves."""
    from ...plots import curves_on_grid, plot_score_curves

    if not runs:
        raise ValueError("runs must hold at least one HotpotRun")
    curves = [run.best_so_far(x) for run in runs]
    end = max(p.metric_calls for c in curves for p in c)
    ref_end = max((pt[0] for pts in (reference or {}).values() for pt in pts), default=0)
    # the grid stops at our last test: a step curve drawn further would claim results we do not have
    grid = sorted({0, *range(0, int(end) + 1, max(1, int(end) // 200)), *(p.metric_calls for c in curves for p in c)})
    initial = float(np.mean([run.initial_test for run in runs]))
    plot_score_curves(ax, {label: curves}, grid=grid, initial=initial,
                      xlabel="evaluation step" if x == "eval_step" else "metric calls",
                      ylabel="best test accuracy so far")
    for (name, points), style, shade in zip((reference or {}).items(), ("--", ":", "-.", (0, (1, 3))),
                                            ("0.2", "0.45", "0.6", "0.7")):
        xs, ys = zip(*points)
        ax.plot(xs, ys, linestyle=style, marker=".", color=shade, label=f"{name} (paper, approx)")
    # our points can be few and early: mark them so they stay visible on the paper's x range
    marks = sorted({p.metric_calls for c in curves for p in c})
    ax.plot(marks, curves_on_grid(curves, marks, initial).mean(axis=0), "o", ms=4, color=ax.lines[0].get_color())
    ax.set_xlim(-0.02 * max(end, ref_end, 1), 1.02 * max(end, ref_end, 1))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="lower right")


# --- cost of the paper preset ----------------------------------------------------------------------
def max_calls_per_seed(preset: HotpotPreset) -> dict[str, int]:
    """Upper bound on LLM requests per seed and role (every proposal admitted and validated).

    Per iteration: K*b exploration rollouts, K proposals, <= K*b validation rollouts, one summary;
    plus the seed program's test and one test every `test_every` iterations, n_examples x repeats each.
    """
    explore = preset.num_candidates * preset.batch_size
    validate = preset.num_candidates * preset.batch_size
    tests = (preset.iterations // preset.test_every + 1) * preset.n_examples * preset.test_repeats
    return {
        TASK_ROLE: preset.iterations * (explore + validate) + tests,
        "proposer": preset.iterations * preset.num_candidates,
        "summarizer": preset.iterations if preset.use_summarizer else 0,
    }


@dataclass(frozen=True)
class CostEstimate:
    """Estimated USD of a preset: per role, requests x (tokens per request) x price, all seeds."""

    requests: Mapping[str, int]
    input_tokens: Mapping[str, float]
    output_tokens: Mapping[str, float]
    usd: Mapping[str, float]

    @property
    def total_usd(self) -> float:
        return float(sum(self.usd.values()))

    def table(self):
        import pandas as pd

        rows = {role: {"requests": self.requests[role], "input Mtok": self.input_tokens[role] / 1e6,
                       "output Mtok": self.output_tokens[role] / 1e6, "USD": self.usd[role]}
                for role in self.requests}
        rows["total"] = {"requests": sum(self.requests.values()),
                         "input Mtok": sum(self.input_tokens.values()) / 1e6,
                         "output Mtok": sum(self.output_tokens.values()) / 1e6, "USD": self.total_usd}
        return pd.DataFrame(rows).T.round(3)


def estimate_cost(preset: HotpotPreset, tokens_per_request: Mapping[str, tuple[float, float]],
                  price: Price, *, caching: bool = False) -> CostEstimate:
    """Cost of running `preset` (all seeds) when each request of a role uses the given
    (input, output) tokens; roles missing from `tokens_per_request` raise ValueError.

    `caching`: Claude's prompt caching as the client applies it. The task prompt is one user
    message that starts with the candidate's instructions, so only a prompt sent again can be read
    from the cache: the test repeats (each program x question `test_repeats` times) pay the first
    send in full, write the second and read the rest. Exploration and validation prompts are
    one-offs, and the proposer's and summarizer's system prompts are under the 512-token minimum.
    """
    calls = {role: n * len(preset.seeds) for role, n in max_calls_per_seed(preset).items()}
    missing = [role for role, n in calls.items() if n and role not in tokens_per_request]
    if missing:
        raise ValueError(f"tokens_per_request lacks roles {missing}; it has {sorted(tokens_per_request)}")
    test_calls = (preset.iterations // preset.test_every + 1) * preset.n_examples * preset.test_repeats * len(preset.seeds)
    inputs, outputs, usd = {}, {}, {}
    for role, n in calls.items():
        tin, tout = tokens_per_request.get(role, (0.0, 0.0))
        if not (tin >= 0 and tout >= 0):
            raise ValueError(f"tokens_per_request[{role!r}] must be two numbers >= 0, got {(tin, tout)!r}")
        inputs[role], outputs[role] = n * tin, n * tout
        usd[role] = (inputs[role] * price.input_per_mtok + outputs[role] * price.output_per_mtok) / 1e6
        if caching and role == TASK_ROLE and preset.test_repeats >= 2:
            groups = test_calls / preset.test_repeats
            full_price = test_calls * tin * price.input_per_mtok
            cached = groups * tin * (price.input_per_mtok + price.cache_write_per_mtok
                                     + (preset.test_repeats - 2) * price.cache_read_per_mtok)
            usd[role] -= (full_price - cached) / 1e6
    return CostEstimate(calls, inputs, outputs, usd)


def mean_prompt_chars(examples: Sequence[Example], instructions: str = INITIAL_INSTRUCTIONS,
                      max_paragraphs: int | None = None) -> float:
    """Mean length in characters of the task prompt over `examples` (for scaling measured tokens/char)."""
    return float(np.mean([len(build_prompt(instructions, ex.data.context(max_paragraphs), ex.data.question))
                          for ex in examples]))


def tokens_per_char(llm: Any, texts: Sequence[str], usage: UsageTracker | None = None) -> tuple[float, str]:
    """Measured input tokens per prompt character, and how it was measured.

    On the embedded llama-server the replies' input_tokens leave out the server's prompt-cache reads,
    so the texts are counted with its /tokenize endpoint instead (SmolLM2's tokenizer). On any other
    backend the task requests `usage` (a tracker of the search: `llm.ledger.track()`) saw give the
    ratio (those counts are complete).
    """
    if not texts:
        raise ValueError("texts must not be empty")
    server = getattr(llm, "server", None)
    if server is not None:
        import urllib.request

        url = server.ensure_running()
        total = 0
        for text in texts:
            body = json.dumps({"content": text}).encode()
            request = urllib.request.Request(f"{url}/tokenize", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                total += len(json.loads(response.read())["tokens"])
        return total / sum(len(t) for t in texts), f"/tokenize of {len(texts)} prompts (local model's tokenizer)"
    task = usage.usage(TASK_ROLE) if usage is not None else None
    if task is None or not task.prompt_chars:
        raise ValueError("no task requests measured yet: track the search with usage = llm.ledger.track() "
                         "and pass usage=")
    return task.tokens_per_char(), f"{task.requests} task requests (provider's token counts)"


def paper_tokens_per_request(usage: UsageTracker, ratio: float, paper_examples: Sequence[Example],
                             preset: HotpotPreset, worst_case: bool = False) -> dict[str, tuple[float, float]]:
    """(input, output) tokens per request and role for `preset`, from this session's measurements
    (`usage`: a tracker of the search, `llm.ledger.track()`, cached replies included).

    Task input = `ratio` x the mean full prompt of `paper_examples` (the preset's context length);
    proposer and summarizer input = `ratio` x their measured characters per request. Outputs are the
    measured means, or every reply at the preset's max_tokens when `worst_case`.
    """
    if not ratio > 0:
        raise ValueError(f"ratio (tokens per char) must be > 0, got {ratio!r}")
    caps = {TASK_ROLE: preset.task_max_tokens, "proposer": preset.proposer_max_tokens,
            "summarizer": preset.summarizer_max_tokens}
    profile = {}
    for role, cap in caps.items():
        measured = usage.usage(role)
        if measured.requests == 0:
            raise ValueError(f"no {role!r} requests measured yet: track the search with usage = llm.ledger.track()")
        chars = (mean_prompt_chars(paper_examples, max_paragraphs=preset.max_paragraphs) if role == TASK_ROLE
                 else measured.prompt_chars / measured.requests)
        output = float(cap) if worst_case else min(float(cap), measured.output_tokens / measured.requests)
        profile[role] = (ratio * chars, output)
    return profile


# --- download --------------------------------------------------------------------------------------
def download(n: int = PAPER_NUM_EXAMPLES, dest: str | Path | None = None) -> Path:
    """Write the first `n` HF `hotpot_qa` distractor validation examples in the shared file's format
    (streamed, so the 600 MB dataset is not fetched). Needs `datasets` and internet access."""
    try:
        import datasets  # noqa: PLC0415 - optional, online-only dependency
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the HotpotQA downloader needs the optional package `datasets` (pip install datasets) and internet "
            f"access; offline, point {ENV_VAR} at a folder holding {DATA_FILE} instead") from exc
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of examples to download) must be a positive int, got {n!r}")
    stream = datasets.load_dataset(HF_DATASET, HF_CONFIG, split=HF_SPLIT, streaming=True)
    records = []
    for row in stream:
        records.append(_hf_record(row))
        if len(records) == n:
            break
    text = json.dumps(records, indent=2, ensure_ascii=False)
    target = Path(dest) if dest is not None else download_dir() / DATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def _hf_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An HF row in the shared file's key order, without the `id` the shared file lacks."""
    sf, ctx = row["supporting_facts"], row["context"]
    return {
        "question": row["question"],
        "answer": row["answer"],
        "type": row["type"],
        "level": row["level"],
        "supporting_facts": {"title": list(sf["title"]), "sent_id": [int(i) for i in sf["sent_id"]]},
        "context": {"title": list(ctx["title"]), "sentences": [list(s) for s in ctx["sentences"]]},
    }


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polca_nb.benchmarks.hotpotqa",
                                     description="HotpotQA data for polca_nb.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="fetch the paper's first-100 distractor validation examples")
    get.add_argument("--n", type=int, default=PAPER_NUM_EXAMPLES, help="how many examples (default 100)")
    get.add_argument("--out", default=None, help=f"output file (default <data dir>/{DATA_FILE})")
    args = parser.parse_args(argv)
    try:
        path = download(args.n, args.out)
    except ModuleNotFoundError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    digest = sha256_of(path)
    print(f"wrote {args.n} examples to {path}")
    if args.n == PAPER_NUM_EXAMPLES:
        same = digest == DATA_SHA256
        print(f"sha256 {digest}: " + ("identical to the paper's 100-task file" if same else
                                      f"differs from the paper's file ({DATA_SHA256}); the HF revision may differ"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
