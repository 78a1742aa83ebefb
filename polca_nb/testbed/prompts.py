"""Reading the prompts each method builds, as a model would: the current program, the feedback of the
runs shown, the skills the shown examples needed, and any summary; and replying in the asked format.

Four formats, each recognised by its own markers: POLCA's proposer (`prompts/proposer.txt`) and
summarizer (`prompts/summarizer.txt`), GEPA's reflection prompt (its InstructionProposalSignature) and
OpenEvolve's full-rewrite prompt (our adapter puts feedback into its artifacts section).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from .problem import needs_in_input

PromptKind = Literal["polca_proposer", "polca_summarizer", "gepa_reflection", "openevolve"]

_FEEDBACK_LINE = re.compile(r"Incorrect[^\n]*")


@dataclass(frozen=True)
class ProposalRequest:
    """What a proposal prompt shows: the program, the feedback of its shown runs that fell short, the
    skills each shown example needed, and the summary (context) if there is one."""

    kind: PromptKind
    program: str
    feedback: tuple[str, ...]
    shown_needs: tuple[frozenset[str], ...]
    context: str = ""


@dataclass(frozen=True)
class SummaryRequest:
    """What POLCA's summarizer prompt shows: the previous summary, every shown run's shortfall feedback
    and the candidates' programs."""

    previous: str
    feedback: tuple[str, ...]
    programs: tuple[str, ...]


def prompt_text(system: str, messages: Sequence[dict[str, Any]]) -> str:
    """The request's text (system, then every text part of every message)."""
    parts = [system or ""]
    for m in messages:
        content = m.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(b.get("text", "") for b in content if isinstance(b, dict))
    return "\n".join(parts)


def prompt_kind(text: str) -> PromptKind:
    """Which method's prompt `text` is; ValueError naming the start of the text if none."""
    if "<summary>" in text and "## Candidate" in text:
        return "polca_summarizer"
    if "# Current parameter values" in text and '<param name="' in text:
        return "polca_proposer"
    if text.lstrip().startswith("I provided an assistant with the following instructions"):
        return "gepa_reflection"
    if "# Current Program" in text:
        return "openevolve"
    raise ValueError(f"not a prompt the simulated optimizer knows (POLCA proposer/summarizer, GEPA, "
                     f"OpenEvolve): {text[:120]!r}")


def _section(text: str, heading: str, next_heading: str = r"\n# ") -> str:
    start = text.find(heading)
    if start < 0:
        return ""
    body = text[start + len(heading):]
    end = re.search(next_heading, body)
    return body[: end.start()] if end else body


def _first_param(text: str) -> str:
    m = re.search(r'<param name="[^"]+">\n?(.*?)\n?</param>', text, flags=re.DOTALL)
    return m.group(1).strip() if m else ""


def _fenced(text: str, after: str = "") -> str:
    start = text.find(after) if after else 0
    m = re.search(r"```[A-Za-z]*\n(.*?)\n?```", text[max(start, 0):], flags=re.DOTALL)
    return m.group(1).strip() if m else ""


def read_proposal_request(text: str) -> ProposalRequest:
    """Parse a proposal prompt of any of the three proposal formats."""
    kind = prompt_kind(text)
    if kind == "polca_proposer":
        results = _section(text, "# Results on the latest minibatch")
        return ProposalRequest(kind, _first_param(_section(text, "# Current parameter values")),
                               tuple(_FEEDBACK_LINE.findall(results)), tuple(needs_in_input(results)),
                               _section(text, "# Context\n").strip())
    if kind == "gepa_reflection":
        side = text.split("The following are examples of different task inputs", 1)[-1]
        return ProposalRequest(kind, _fenced(text), tuple(_FEEDBACK_LINE.findall(side)),
                               tuple(needs_in_input(side)))
    if kind == "openevolve":
        start = text.find("# Current Program\n")
        program = _fenced(text, "# Current Program\n")
        head = text[:start]
        return ProposalRequest(kind, program, tuple(_FEEDBACK_LINE.findall(head)), tuple(needs_in_input(head)))
    raise ValueError(f"a {kind} prompt is not a proposal request")


def read_summary_request(text: str) -> SummaryRequest:
    """Parse POLCA's summarizer prompt: the previous summary, the runs' feedback, the programs shown."""
    previous = _section(text, "# Summary written so far", r"\n# Newly observed").strip()
    shown = text.split("# Newly observed candidates", 1)[-1]
    shown = shown.split("# What to write", 1)[0]
    # Every shown run's feedback: with a continuous score a "successful" run (above the threshold)
    # can still say what it lacked, and a model reads that too.
    feedback = tuple(_FEEDBACK_LINE.findall(shown))
    programs = tuple(re.findall(r'### Parameters\n<param name="[^"]+">\n?(.*?)\n?</param>', shown, flags=re.DOTALL))
    return SummaryRequest(previous, feedback, tuple(p.strip() for p in programs))


def format_proposal(kind: PromptKind, program: str, reasoning: str) -> str:
    """The reply in the format `kind`'s prompt asks for."""
    if kind == "polca_proposer":
        return f'{reasoning}\n<param name="instructions">\n{program}\n</param>'
    if kind == "gepa_reflection":
        return f"{reasoning}\n```\n{program}\n```"
    if kind == "openevolve":
        return f"{reasoning}\n```text\n{program}\n```"
    raise ValueError(f"a {kind} prompt does not ask for a program")
