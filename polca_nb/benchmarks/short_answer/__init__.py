"""The offline reference task: make a tiny model answer short questions with *only* the answer.

Designed so that the embedded 135M model can make progress: it usually knows the answer ("Paris")
but wraps it in a sentence ("The capital of France is Paris."). The score rewards the format:

    1.0  the reply, normalised, is exactly the answer
    0.5  the answer appears as a whole word in the reply
    0.0  otherwise

The task model samples at a non-zero temperature with the evaluator's seed, so repeated evaluations
of the same prompt differ (stochastic execution, the paper's noise source (ii)) while reruns hit the
cache. The questions are written for this project (no upstream data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...llm.base import LLM
from ...problem import Problem
from ...types import Evaluation, Example, Params

SEED_INSTRUCTIONS = "Answer the question."
OBJECTIVE = (
    "The parameter 'instructions' is the system prompt of a small assistant that answers short questions. "
    "Improve it so that every reply is exactly the answer (one word or number) with no other words."
)

QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of China?", "Beijing"),
    ("What is the capital of England?", "London"),
    ("What is the capital of Greece?", "Athens"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Portugal?", "Lisbon"),
    ("What color is the sky on a clear day?", "blue"),
    ("What color is grass?", "green"),
    ("What color is snow?", "white"),
    ("What color is a ripe banana?", "yellow"),
    ("What color is coal?", "black"),
    ("What color is a ripe tomato?", "red"),
    ("What is the opposite of hot?", "cold"),
    ("What is the opposite of up?", "down"),
    ("What is the opposite of big?", "small"),
    ("What is the opposite of day?", "night"),
    ("What is the opposite of fast?", "slow"),
    ("What is the opposite of open?", "closed"),
    ("What is 2 + 2?", "4"),
    ("What is 3 + 5?", "8"),
    ("What is 10 - 3?", "7"),
    ("What is 6 + 3?", "9"),
    ("What is 5 + 5?", "10"),
    ("What is 9 - 8?", "1"),
    ("How many legs does a dog have?", "4"),
    ("How many days are in a week?", "7"),
    ("Which animal says moo?", "cow"),
    ("Which animal barks?", "dog"),
    ("Which planet do we live on?", "Earth"),
    ("What do bees make?", "honey"),
    ("What is frozen water called?", "ice"),
    ("Which star gives Earth its daylight?", "Sun"),
    ("What is the first month of the year?", "January"),
    ("What is the largest ocean on Earth?", "Pacific"),
)


def normalise(text: str) -> str:
    """Lowercase, trim, drop surrounding quotes and trailing punctuation."""
    text = text.strip().lower().strip("\"'`* ")
    return re.sub(r"[\s.,!?;:]+$", "", text)


def score_reply(reply: str, answer: str) -> tuple[float, str]:
    """(score, feedback) for one reply; see the module docstring for the rule."""
    got = reply.strip()
    shown = got if len(got) <= 200 else got[:200] + "…"
    if normalise(got) == normalise(answer):
        return 1.0, "Correct."
    if re.search(rf"\b{re.escape(answer.lower())}\b", got.lower()):
        return 0.5, (f"Partially correct: the reply contains the answer '{answer}' but must be exactly the "
                     f"answer with no other words. Got: '{shown}'.")
    return 0.0, f"Incorrect. Expected: '{answer}'. Got: '{shown}'."


@dataclass(frozen=True)
class ShortAnswerEvaluator:
    """Asks the task model with `instructions` as the system prompt, then scores the reply."""

    llm: LLM
    temperature: float = 0.5
    max_tokens: int = 24

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        reply = self.llm.complete(system=params["instructions"],
                                  messages=[{"role": "user", "content": example.data["question"]}],
                                  role="task", max_tokens=self.max_tokens, temperature=self.temperature,
                                  sample_id=seed)
        score, feedback = score_reply(reply.text, example.data["answer"])
        return Evaluation(score, feedback, reply.text)


def examples(rng: np.random.Generator | None = None) -> list[Example]:
    """All questions as examples, shuffled by `rng` when given (ids stay stable)."""
    items = [Example(f"q{i:02d}", {"question": q, "answer": a}) for i, (q, a) in enumerate(QUESTIONS)]
    if rng is not None:
        items = [items[int(i)] for i in rng.permutation(len(items))]
    return items


def short_answer_problem(task_llm: LLM, *, n_train: int = 20, n_test: int = 20, seed: int = 0,
                         temperature: float = 0.5) -> Problem:
    """Train (also validation) and test splits drawn from the questions with `seed`."""
    if n_train < 1 or n_test < 1 or n_train + n_test > len(QUESTIONS):
        raise ValueError(f"n_train + n_test must be between 2 and {len(QUESTIONS)}, got {n_train} + {n_test}")
    shuffled = examples(np.random.default_rng(seed))
    return Problem(
        name="short-answer",
        seed_params={"instructions": SEED_INSTRUCTIONS},
        trainset=shuffled[:n_train],
        testset=shuffled[n_train:n_train + n_test],
        evaluator=ShortAnswerEvaluator(task_llm, temperature=temperature),
        score_range=(0.0, 1.0),
        objective=OBJECTIVE,
    )
