"""The LLM judge (ledger role "judge"): candidate vs Python source vs gold reference, scored 0-1.

The prompt is data (`polca_nb/prompts/veribench_judge.txt`, our own rubric: behaviour, specification
and tests, Lean quality, `max_score / 3` points each). The reply must hold `<SCORE>n</SCORE>` with an
integer 0..max_score (the paper's harness asked for 0..30 in its own tag); the score is n / max_score,
and a reply without a readable score scores 0 (as upstream). A file with no Lean declaration at all
(only comments, like the seed program) scores 0 without asking the judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...llm.base import LLM
from ...roles.templates import load_sections, truncate_middle
from .data import VeriTask
from .unit_tests import declared_names

JUDGE_ROLE = "judge"
TEMPLATE_FILE = "veribench_judge.txt"
MAX_SCORE = 30
UPSTREAM_JUDGE_MAX_TOKENS = 4000
"""The harness's judge `max_tokens` (temperature 0.1, top_p 0.9; benchmarks.md §3)."""
_SCORE = re.compile(r"<SCORE>\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\s*</SCORE>", re.I)
_LOOSE_SCORE = re.compile(r"\bscore\b[^0-9\n]{0,20}(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)", re.I)
_RATIONALE = re.compile(r"<RATIONALE>(.*?)(?:</RATIONALE>|<SCORE>|$)", re.I | re.S)
_LEAN_KEYWORDS = re.compile(r"^\s*(def|theorem|lemma|example|abbrev|structure|inductive|instance|#eval)\b", re.M)


@dataclass(frozen=True)
class JudgeVerdict:
    """A parsed judge reply: `score` in [0, 1], the raw points, whether a score was found, the rationale."""

    score: float
    points: float | None
    parsed: bool
    rationale: str
    reply: str = ""
    asked: bool = True

    def feedback(self, max_score: int = MAX_SCORE) -> str:
        if not self.asked:
            return f"LLM judge: 0/{max_score} without asking (the file declares nothing: it is only comments)."
        if not self.parsed:
            return f"LLM judge: no <SCORE> in its reply, so 0/{max_score}. Reply starts: {self.reply[:300]!r}"
        return f"LLM judge: {self.points:g}/{max_score}. {self.rationale}".strip()


def parse_verdict(reply: str, max_score: int = MAX_SCORE) -> JudgeVerdict:
    """The last `<SCORE>` tag (else a 'score: n/m' phrase, rescaled), clipped to [0, max_score]."""
    tagged = _SCORE.findall(reply)
    points: float | None = None
    if tagged:
        points = float(tagged[-1])
    else:
        loose = _LOOSE_SCORE.findall(reply)
        if loose and float(loose[-1][1]) > 0:
            points = float(loose[-1][0]) / float(loose[-1][1]) * max_score
    match = _RATIONALE.search(reply)
    rationale = (match.group(1) if match else _SCORE.sub("", reply)).strip()
    if points is None:
        return JudgeVerdict(0.0, None, False, rationale, reply)
    points = min(max(points, 0.0), float(max_score))
    return JudgeVerdict(points / max_score, points, True, rationale, reply)


def has_declarations(source: str) -> bool:
    """Whether `source` declares anything (def, theorem, example, #eval, ...) outside comments."""
    no_block = re.sub(r"/-.*?-/", "", source, flags=re.S)
    no_line = re.sub(r"--[^\n]*", "", no_block)
    return bool(_LEAN_KEYWORDS.search(no_line) or declared_names(no_line))


@dataclass(frozen=True)
class LeanJudge:
    """Asks `llm` (role "judge", sample_id = the evaluation seed) to grade a candidate.

    `gold_chars` / `python_chars` / `candidate_chars` cut the three files (keeping head and tail) for
    small-context models; None keeps them whole (the paper). LLM errors propagate, so the search loop
    records an evaluation error rather than a failing program.
    """

    llm: LLM
    max_tokens: int = UPSTREAM_JUDGE_MAX_TOKENS
    temperature: float = 0.1
    max_score: int = MAX_SCORE
    gold_chars: int | None = None
    python_chars: int | None = None
    candidate_chars: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"LeanJudge.max_tokens must be a positive int, got {self.max_tokens!r}")
        if not isinstance(self.max_score, int) or self.max_score < 3 or self.max_score % 3:
            raise ValueError(f"LeanJudge.max_score must be a positive multiple of 3, got {self.max_score!r}")
        if not isinstance(self.temperature, (int, float)) or not 0 <= self.temperature <= 2:
            raise ValueError(f"LeanJudge.temperature must be in [0, 2], got {self.temperature!r}")

    @property
    def system_prompt(self) -> str:
        return load_sections(TEMPLATE_FILE)["system"].substitute(max_score=self.max_score)

    def prompt(self, task: VeriTask, candidate: str) -> str:
        """The user message: Python program, gold file, rubric, then the candidate (last, so a server's
        prompt cache reuses the task's part across candidates)."""
        def cut(text: str, limit: int | None) -> str:
            return truncate_middle(text.strip(), limit) if limit else text.strip()

        return load_sections(TEMPLATE_FILE)["user"].substitute(
            python=cut(task.python_code, self.python_chars), gold=cut(task.gold_lean, self.gold_chars),
            candidate=cut(candidate, self.candidate_chars) or "(empty file)",
            max_score=self.max_score, part=self.max_score // 3)

    def judge(self, task: VeriTask, candidate: str, seed: int) -> JudgeVerdict:
        """One judge call (none for a file that declares nothing), parsed."""
        if not has_declarations(candidate):
            return JudgeVerdict(0.0, 0.0, True, "the file declares nothing", "", asked=False)
        reply = self.llm.complete(system=self.system_prompt,
                                  messages=[{"role": "user", "content": self.prompt(task, candidate)}],
                                  role=JUDGE_ROLE, max_tokens=self.max_tokens, temperature=float(self.temperature),
                                  sample_id=int(seed))
        return parse_verdict(reply.text, self.max_score)
