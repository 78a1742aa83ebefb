"""HotpotQA scoring: the task prompt, the answer check, the paper guide's feedback, the evaluator.

The program is one parameter, `meta_instructions`, put in front of a question and its ten distractor
paragraphs; the task model (ledger role "task") answers, and the answer is scored 1 if, after
lower-casing, stripping and dropping trailing `.,!?;:`, it equals the gold answer or contains it.
Feedback is "Correct." or "Incorrect. Expected: ..., Got: ..." followed by the context, the question and
the harness's closing sentence (`feedback_text`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...llm.base import LLM
from ...types import Evaluation, Example, Params
from .data import HotpotQuestion, _normalize

PARAM_NAME = "meta_instructions"
INITIAL_INSTRUCTIONS = "Answer the question based on the context."
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

PARAM = PARAM_NAME
"""The optimized parameter's name (the name every benchmark's evaluator module uses)."""
SEED_PARAMS = {PARAM: INITIAL_INSTRUCTIONS}
"""The seed program: the harness's initial meta-instructions."""


def build_prompt(meta_instructions: str, context: str, question: str) -> str:
    """The task model's whole input, exactly the harness's format (benchmarks.md §2)."""
    return f"{meta_instructions}\n\nContext:\n{context}\n\nQuestion: {question}\n\nAnswer:"


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
