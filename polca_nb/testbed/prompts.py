"""Reading the prompts each method builds, as a model would: the current program, the feedback of the
runs shown, the skills the shown examples needed, and any summary; and replying in the asked format.

Formats, each recognised by its own markers: POLCA's proposer (`prompts/proposer.txt`) and
summarizer (`prompts/summarizer.txt`), GEPA's reflection prompt (its InstructionProposalSignature),
OpenEvolve's full-rewrite prompt (our adapter puts feedback into its artifacts section), and DSPy's
adapter prompts ("Your output fields are: ..."): dspy.GEPA's proposer (`new_instruction`, a JSON reply,
feedback in `examples_with_feedback`), MIPROv2's grounded proposer (`proposed_instruction`: the current
instruction, a dataset description, task demos, no feedback) and MIPROv2's dataset summarizer
(`observations` / `summary`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from .problem import needs_in_input

PromptKind = Literal["polca_proposer", "polca_summarizer", "gepa_reflection", "openevolve", "dspy_gepa",
                     "dspy_mipro", "dspy_data"]
_DSPY_OUTPUT = re.compile(r"Your output fields are:\s*\n\s*1\.\s*`(\w+)`")

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
    if m := _DSPY_OUTPUT.search(text):
        field = m.group(1)
        if field == "new_instruction":
            return "dspy_gepa"
        if field == "proposed_instruction":
            return "dspy_mipro"
        if field in ("observations", "summary"):
            return "dspy_data"
    if "<summary>" in text and "## Candidate" in text:
        return "polca_summarizer"
    if "# Current parameter values" in text and '<param name="' in text:
        return "polca_proposer"
    if text.lstrip().startswith("I provided an assistant with the following instructions"):
        return "gepa_reflection"
    if "# Current Program" in text:
        return "openevolve"
    raise ValueError(f"not a prompt the simulated optimizer knows (POLCA proposer/summarizer, GEPA, "
                     f"OpenEvolve, DSPy): {text[:120]!r}")


def dspy_field(text: str, name: str) -> str:
    """The value of input field `name` in a DSPy ChatAdapter/JSONAdapter request (the last occurrence:
    the system message repeats every field name as a placeholder)."""
    parts = text.split(f"[[ ## {name} ## ]]\n")
    if len(parts) < 2:
        return ""
    return re.split(r"\n*\[\[ ## \w+ ## \]\]|\n\nRespond with ", parts[-1])[0].strip()


def _dspy_feedback(section: str) -> tuple[tuple[str, ...], str]:
    """(shortfall feedback items, the shown inputs' text) from dspy.GEPA's examples_with_feedback JSON."""
    try:
        records = json.loads(section)
    except json.JSONDecodeError:
        return tuple(_FEEDBACK_LINE.findall(section)), section
    items: list[str] = []
    inputs: list[str] = []
    for record in records if isinstance(records, list) else []:
        feedback = str(record.get("Feedback", "")) if isinstance(record, dict) else ""
        items.extend(_FEEDBACK_LINE.findall(feedback))
        shown = record.get("Inputs", {}) if isinstance(record, dict) else {}
        inputs.extend(str(v) for v in (shown.values() if isinstance(shown, dict) else [shown]))
    return tuple(items), "\n".join(inputs)


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
    if kind == "dspy_gepa":
        feedback, inputs = _dspy_feedback(dspy_field(text, "examples_with_feedback"))
        return ProposalRequest(kind, dspy_field(text, "current_instruction"), feedback, tuple(needs_in_input(inputs)))
    if kind == "dspy_mipro":
        # MIPROv2's proposer shows no feedback: what it has is the data summary (as context) and demos.
        demos = dspy_field(text, "task_demos")
        return ProposalRequest(kind, dspy_field(text, "basic_instruction"), (), tuple(needs_in_input(demos)),
                               dspy_field(text, "dataset_description"))
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
    if kind == "dspy_gepa":
        return json.dumps({"new_instruction": program})
    if kind == "dspy_mipro":
        return dspy_reply({"proposed_instruction": program})
    raise ValueError(f"a {kind} prompt does not ask for a program")


def dspy_reply(fields: dict[str, str]) -> str:
    """A reply in DSPy's ChatAdapter format: each output field under its marker, then the end marker."""
    return "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in fields.items()) + "[[ ## completed ## ]]"


def read_data_request(text: str) -> tuple[str, str, str]:
    """(output field, shown examples' text, earlier observations) of MIPROv2's dataset summarizer prompts."""
    m = _DSPY_OUTPUT.search(text)
    field = m.group(1) if m else "observations"
    if field == "summary":
        return field, "", dspy_field(text, "observations")
    return field, dspy_field(text, "examples"), dspy_field(text, "prior_observations")
