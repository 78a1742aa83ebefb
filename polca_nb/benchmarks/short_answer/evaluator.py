"""Short-answer scoring: a reply scores 1.0 when it is exactly the answer, 0.5 when it contains it.

    1.0  the reply, normalised, is exactly the answer
    0.5  the answer appears as a whole word in the reply
    0.0  otherwise
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...llm.base import LLM
from ...types import Evaluation, Example, Params

SEED_INSTRUCTIONS = "Answer the question."
OBJECTIVE = (
    "The parameter 'instructions' is the system prompt of a small assistant that answers short questions. "
    "Improve it so that every reply is exactly the answer (one word or number) with no other words."
)

PARAM = "instructions"
"""The optimized parameter: the task model's system prompt."""
SEED_PARAMS = {PARAM: SEED_INSTRUCTIONS}


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
