"""The offline reference task: make a tiny model answer short questions with *only* the answer.

Designed so that the embedded 135M model can make progress: it usually knows the answer ("Paris")
but wraps it in a sentence ("The capital of France is Paris."). The score rewards the format:

    1.0  the reply, normalised, is exactly the answer
    0.5  the answer appears as a whole word in the reply
    0.0  otherwise

The task model samples at a non-zero temperature with the evaluator's seed, so repeated evaluations
of the same prompt differ (stochastic execution, the paper's noise source (ii)) while reruns hit the
cache. The questions are written for this project (no upstream data).

The benchmark shape (polca_nb/benchmarks/README.md): `data` (the questions, `download`), `evaluator`
(scoring), `presets` (`PRESETS`, `setup`, `short_answer_problem`), `experiment` (`run`). Every name is
re-exported here, so `from polca_nb.benchmarks.short_answer import ...` keeps working.
"""

from .data import DATA_FILE, QUESTIONS, download, examples, load_examples, main
from .evaluator import OBJECTIVE, PARAM, SEED_INSTRUCTIONS, SEED_PARAMS, ShortAnswerEvaluator, normalise, score_reply
from .experiment import run, score_on_test
from .presets import PRESETS, ShortAnswerPreset, get_preset, make_config, setup, short_answer_problem

__all__ = [
    "DATA_FILE", "QUESTIONS", "download", "examples", "load_examples", "main",
    "OBJECTIVE", "PARAM", "SEED_INSTRUCTIONS", "SEED_PARAMS", "ShortAnswerEvaluator", "normalise", "score_reply",
    "run", "score_on_test",
    "PRESETS", "ShortAnswerPreset", "get_preset", "make_config", "setup", "short_answer_problem",
]
