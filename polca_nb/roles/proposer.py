"""OptoPrime-style proposer: one LLM call turns a candidate plus fresh minibatch feedback into new params."""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass, field
from typing import Sequence

from ..llm.base import LLM
from ..types import Candidate, Example, Params, Rollout
from .parsing import ParsedUpdate, parse_param_updates
from .templates import (
    InputRenderer,
    default_input_text,
    format_score,
    heading_lines,
    load_sections,
    truncate_middle,
)

logger = logging.getLogger(__name__)

TEMPLATE_FILE = "proposer.txt"
_CONTEXT_HEADING = "# Context"


@dataclass
class LLMProposer:
    """Implements `Proposer`: asks `llm` (role "proposer") for improved parameter values.

    The prompt holds the objective, every current parameter by name, the minibatch (input, output,
    score, feedback; input/output/feedback cut to the `*_chars` limits) and, only when non-empty, the
    summarizer's context under "# Context". Returns [] (and logs) for a reply with no usable value;
    errors raised by the LLM itself propagate so the search loop can count them. A reply that only
    restates the current values is a proposal identical to its parent, as OptoPrime's update dict
    in the paper's loop; `keep_unchanged=False` drops it here instead (a named deviation).
    """

    llm: LLM
    _: KW_ONLY
    max_tokens: int
    temperature: float
    objective: str = ""
    input_chars: int = 2000
    output_chars: int = 2000
    feedback_chars: int = 2000
    render_input: InputRenderer = field(default=default_input_text)
    keep_unchanged: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        for name in ("input_chars", "output_chars", "feedback_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    @property
    def system_prompt(self) -> str:
        return load_sections(TEMPLATE_FILE)["system"].substitute()

    def build_prompt(self, candidate: Candidate, batch: Sequence[tuple[Example, Rollout]], context: str) -> str:
        """The user message for one proposal call (public so notebooks can show it)."""
        if not candidate.params:
            raise ValueError(f"candidate.params must name at least one parameter, got {candidate.params!r}")
        sections = load_sections(TEMPLATE_FILE)
        parameters = "\n\n".join(
            sections["parameter"].substitute(name=name, value=value) for name, value in candidate.params.items()
        )
        examples = "\n\n".join(
            sections["example"].substitute(
                index=index,
                score=format_score(rollout.score),
                input=truncate_middle(self.render_input(example), self.input_chars),
                output=truncate_middle(rollout.output, self.output_chars) if rollout.output else "(no output recorded)",
                feedback=truncate_middle(rollout.feedback, self.feedback_chars) if rollout.feedback else "(none)",
            )
            for index, (example, rollout) in enumerate(batch, start=1)
        ) or "(no evaluations in this minibatch)"
        context_section = ""
        if context.strip():
            context_section = "\n" + sections["context"].substitute(context=context.strip()) + "\n"
        objective = self.objective.strip() or sections["default_objective"].substitute()
        return sections["user"].substitute(
            objective=objective,
            parameters=parameters,
            examples=examples,
            context_section=context_section,
            names=", ".join(f'"{name}"' for name in candidate.params),
        )

    def parse(self, reply: str, current: Params) -> ParsedUpdate:
        """Changes proposed by `reply`, rejecting values that echo this proposer's prompt."""
        sections = load_sections(TEMPLATE_FILE)
        user_template = sections["user"]
        # "# Context" is left out: it is a plausible heading inside a real prompt parameter.
        headings = [h for h in heading_lines(user_template) if h != _CONTEXT_HEADING]
        placeholders = ["COMPLETE NEW VALUE OF THE PARAMETER", 'name="PARAMETER_NAME"']
        return parse_param_updates(
            reply, current, forbidden_markers=headings + placeholders, template_headings=headings,
            keep_unchanged=self.keep_unchanged,
        )

    def propose(
        self,
        candidate: Candidate,
        batch: Sequence[tuple[Example, Rollout]],
        context: str,
        seed: int,
    ) -> list[Params]:
        prompt = self.build_prompt(candidate, batch, context)
        reply = self.llm.complete(
            system=self.system_prompt,
            messages=[{"role": "user", "content": prompt}],
            role="proposer",
            max_tokens=self.max_tokens,
            temperature=float(self.temperature),
            sample_id=seed,
        )
        parsed = self.parse(reply.text, candidate.params)
        if not parsed.changes:
            logger.warning(
                "proposer: no usable proposal for candidate %s (seed %s): %s; reply starts %r",
                candidate.id, seed, parsed.rejected, reply.text[:160],
            )
            return []
        if parsed.rejected:
            logger.info("proposer: candidate %s, dropped values: %s", candidate.id, parsed.rejected)
        return [{**candidate.params, **parsed.changes}]
