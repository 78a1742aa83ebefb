"""Incremental LLM summarizer: folds a few candidates' successes and failures into one global context."""

from __future__ import annotations

import logging
import re
from dataclasses import KW_ONLY, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..errors import StopRun
from ..llm.base import LLM
from ..sampling import distinct_evaluated
from ..types import SUMMARY_PREFIX, Candidate, Example, Rollout
from .parsing import extract_tag, template_headings_in
from .templates import (
    InputRenderer,
    default_input_text,
    format_score,
    heading_lines,
    load_sections,
    truncate_middle,
)

logger = logging.getLogger(__name__)

TEMPLATE_FILE = "summarizer.txt"

CONTEXT_PREFIX = SUMMARY_PREFIX
"""Leads every context this summarizer returns (`types.SUMMARY_PREFIX`: the search starts from it too)."""


@dataclass(frozen=True)
class SummaryEvidence:
    """One sampled candidate with one random success and one random failure (None when it has none)."""

    candidate: Candidate
    success: Rollout | None
    failure: Rollout | None


@dataclass
class LLMSummarizer:
    """Implements `Summarizer` as the paper's incremental summarizer (role "summarizer").

    The search loop chooses which candidates a call sees (`sampling.sample_summary_candidates`: the
    public sampler or the experiment-era one); this role shows each with one random success and one
    random failure and asks for one consolidated summary in `<summary>` tags that replaces the old
    one. `max_candidates` (None: no cap) only guards direct callers. Returns `prefix + summary`; on
    any error, a missing tag or an echo it returns `previous` (a `StopRun` propagates).
    """

    llm: LLM
    _: KW_ONLY
    max_candidates: int | None = None
    success_threshold: float = 0.0
    max_tokens: int = 2048
    temperature: float = 0.0
    param_chars: int = 4000
    input_chars: int = 1000
    output_chars: int = 1000
    feedback_chars: int = 1000
    prefix: str = CONTEXT_PREFIX
    render_input: InputRenderer = field(default=default_input_text)

    def __post_init__(self) -> None:
        if self.max_candidates is not None and (not isinstance(self.max_candidates, int) or self.max_candidates < 1):
            raise ValueError(f"max_candidates must be a positive int or None, got {self.max_candidates!r}")
        for name in ("max_tokens", "param_chars", "input_chars", "output_chars", "feedback_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        if not isinstance(self.success_threshold, (int, float)) or not np.isfinite(self.success_threshold):
            raise ValueError(f"success_threshold must be a finite number, got {self.success_threshold!r}")

    @property
    def system_prompt(self) -> str:
        return load_sections(TEMPLATE_FILE)["system"].substitute()

    def select(self, candidates: Sequence[Candidate], seed: int) -> list[SummaryEvidence]:
        """The evidence one call shows, a pure function of (the set of candidates, seed).

        Candidates are de-duplicated by id (keeping the copy with most rollouts) and unevaluated ones
        skipped; above `max_candidates` a uniform random subset is kept. Sorted by candidate id.
        """
        rng = np.random.default_rng(seed)
        evaluated = distinct_evaluated(candidates)
        if not evaluated:
            return []
        chosen = evaluated
        if self.max_candidates is not None and len(evaluated) > self.max_candidates:
            chosen = [evaluated[i] for i in rng.choice(len(evaluated), size=self.max_candidates, replace=False)]
        evidence = []
        for candidate in sorted(chosen, key=lambda c: c.id):
            successes = [r for r in candidate.rollouts if r.score > self.success_threshold]
            failures = [r for r in candidate.rollouts if r.score <= self.success_threshold]
            evidence.append(SummaryEvidence(
                candidate=candidate,
                success=successes[rng.integers(len(successes))] if successes else None,
                failure=failures[rng.integers(len(failures))] if failures else None,
            ))
        return evidence

    def build_prompt(self, evidence: Sequence[SummaryEvidence], previous: str, examples: Mapping[str, Example]) -> str:
        """The user message for one summary call (public so notebooks can show it)."""
        sections = load_sections(TEMPLATE_FILE)
        threshold = format_score(self.success_threshold)
        blocks = []
        for index, item in enumerate(evidence, start=1):
            candidate = item.candidate
            parameters = "\n".join(
                sections["parameter"].substitute(name=name, value=truncate_middle(value, self.param_chars))
                for name, value in candidate.params.items()
            )
            blocks.append(sections["candidate"].substitute(
                index=index,
                mean=format_score(candidate.mean if candidate.mean is not None else 0.0),
                n=candidate.n,
                parameters=parameters,
                success=self._trajectory(item.success, examples)
                if item.success else sections["no_success"].substitute(threshold=threshold),
                failure=self._trajectory(item.failure, examples)
                if item.failure else sections["no_failure"].substitute(threshold=threshold),
            ))
        body = self._strip_prefix(previous)
        return sections["user"].substitute(
            previous=body if body else sections["no_previous"].substitute(),
            threshold=threshold,
            candidates="\n\n".join(blocks),
        )

    def summarize(
        self,
        candidates: Sequence[Candidate],
        previous: str,
        examples: Mapping[str, Example],
        seed: int,
    ) -> str:
        try:
            evidence = self.select(candidates, seed)
            if not evidence:
                logger.info("summarizer: no evaluated candidates yet, keeping the previous context")
                return previous
            reply = self.llm.complete(
                system=self.system_prompt,
                messages=[{"role": "user", "content": self.build_prompt(evidence, previous, examples)}],
                role="summarizer",
                max_tokens=self.max_tokens,
                temperature=float(self.temperature),
                sample_id=seed,
            )
            summary = self._accept(reply.text)
        except StopRun:  # a fatal error or a spent limit must end the run, not be absorbed here
            raise
        except Exception:  # the contract: a failed summary never stops the search
            logger.exception("summarizer: call failed, keeping the previous context")
            return previous
        if summary is None:
            logger.warning("summarizer: no usable <summary> in the reply, keeping the previous context; "
                           "reply starts %r", reply.text[:160])
            return previous
        return self.prefix + summary

    def _accept(self, reply: str) -> str | None:
        summary = extract_tag(reply, "summary")
        # "..." is what a model copying our instruction ("inside <summary>...</summary>") produces.
        if summary is None or not re.search(r"[A-Za-z0-9]", summary):
            return None
        summary = self._strip_prefix(summary)
        headings = heading_lines(load_sections(TEMPLATE_FILE)["user"])
        if template_headings_in(summary, headings) or re.search(r"^## Candidate \d+:", summary, re.M):
            return None
        return summary

    def _strip_prefix(self, text: str) -> str:
        text = text.strip()
        prefix = self.prefix.strip()
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
        return text.strip()

    def _trajectory(self, rollout: Rollout, examples: Mapping[str, Example]) -> str:
        example = examples.get(rollout.example_id)
        input_text = (
            truncate_middle(self.render_input(example), self.input_chars)
            if example is not None else f"(input of example {rollout.example_id!r} not available)"
        )
        return load_sections(TEMPLATE_FILE)["trajectory"].substitute(
            input=input_text,
            output=truncate_middle(rollout.output, self.output_chars) if rollout.output else "(no output recorded)",
            score=format_score(rollout.score),
            feedback=truncate_middle(rollout.feedback, self.feedback_chars) if rollout.feedback else "(none)",
        )
