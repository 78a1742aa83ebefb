"""Lean 4's messages as data: the parsers for its two output forms and the text shown to the proposer.

`lean --json FILE` prints one JSON object per message (`severity` "information" / "warning" /
"error", `pos` {line (1-based), column (0-based)}, optional `endPos`, `data` the text, `fileName`).
Plain `lean FILE` prints errors and warnings as `FILE:LINE:COL: error: TEXT` (newer versions may add
`-ENDLINE:ENDCOL` after the position and a name in parentheses after the label); continuation lines
belong to the message above, and information messages (`#eval` output) are printed bare, without a
position, so in that form they cannot be told from a continuation. The checker therefore asks for JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal, Sequence

Severity = Literal["error", "warning", "info"]
SORRY_WARNING = "declaration uses 'sorry'"

_SEVERITIES: dict[str, Severity] = {"error": "error", "warning": "warning", "information": "info", "info": "info"}
_TEXT = re.compile(r"^(?P<file>[^\n:]+?):(?P<line>\d+):(?P<col>\d+)(?:-(?P<eline>\d+):(?P<ecol>\d+))?:\s*"
                   r"(?P<sev>error|warning|info)(?:\([^)]*\))?:\s?(?P<text>.*)$")


@dataclass(frozen=True)
class LeanMessage:
    """One compiler message; `line` is 1-based and `column` 0-based, as Lean reports them (None when
    the text form printed no position)."""

    severity: Severity
    text: str
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None

    @property
    def is_sorry(self) -> bool:
        return self.severity == "warning" and SORRY_WARNING in self.text

    def where(self) -> str:
        return f"line {self.line}, column {self.column}" if self.line is not None else "(no position)"


def _from_json(obj: dict) -> LeanMessage | None:
    severity = _SEVERITIES.get(str(obj.get("severity", "")))
    if severity is None or "data" not in obj:
        return None
    pos, end = obj.get("pos") or {}, obj.get("endPos") or {}
    caption = str(obj.get("caption") or "")
    text = str(obj["data"]).rstrip("\n")
    return LeanMessage(severity, f"{caption}:\n{text}" if caption else text, pos.get("line"), pos.get("column"),
                       end.get("line"), end.get("column"))


def parse_json_output(stdout: str) -> tuple[list[LeanMessage], list[str]]:
    """Messages from `lean --json` output, and the lines that were not messages (kept for diagnosis)."""
    messages, other = [], []
    for raw in stdout.splitlines():
        line = raw.strip()
        message = None
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            message = _from_json(obj) if isinstance(obj, dict) else None
        if message is not None:
            messages.append(message)
        elif line:
            other.append(raw)
    return messages, other


def parse_text_output(stdout: str) -> list[LeanMessage]:
    """Messages from plain `lean` output: positioned lines open a message, other lines continue it;
    bare lines before the first positioned one become one information message."""
    messages: list[LeanMessage] = []
    pending: list[str] = []
    for raw in stdout.splitlines():
        match = _TEXT.match(raw)
        if match:
            if pending and not messages:
                messages.append(LeanMessage("info", "\n".join(pending)))
                pending = []
            eline, ecol = match.group("eline"), match.group("ecol")
            messages.append(LeanMessage(_SEVERITIES[match.group("sev")], match.group("text"),
                                        int(match.group("line")), int(match.group("col")),
                                        int(eline) if eline else None, int(ecol) if ecol else None))
        elif messages:
            last = messages[-1]
            messages[-1] = LeanMessage(last.severity, f"{last.text}\n{raw}".rstrip("\n"), last.line, last.column,
                                       last.end_line, last.end_column)
        elif raw.strip():
            pending.append(raw)
    if pending and not messages:
        messages.append(LeanMessage("info", "\n".join(pending)))
    return messages


def parse_output(stdout: str) -> list[LeanMessage]:
    """JSON messages when the output holds any, else the text form."""
    messages, _ = parse_json_output(stdout)
    return messages if messages else parse_text_output(stdout)


def errors(messages: Sequence[LeanMessage]) -> list[LeanMessage]:
    return [m for m in messages if m.severity == "error"]


def source_context(source: str, line: int | None, radius: int = 1) -> str:
    """The lines around `line` (1-based) of `source`, numbered, the line itself marked `>>`."""
    if line is None:
        return ""
    lines = source.splitlines()
    lo, hi = max(1, line - radius), min(len(lines), line + radius)
    width = len(str(hi))
    return "\n".join(f"{'>>' if k == line else '  '} {k:>{width}} | {lines[k - 1]}" for k in range(lo, hi + 1))


def describe(message: LeanMessage, source: str, *, max_chars: int = 600, radius: int = 1) -> str:
    """One message for feedback: position, severity, text (cut to `max_chars`) and the source around it."""
    text = message.text if len(message.text) <= max_chars else message.text[:max_chars] + " [...]"
    head = f"{message.where()}: {message.severity}: {text}"
    context = source_context(source, message.line, radius)
    return f"{head}\n{context}" if context else head


def compile_feedback(messages: Sequence[LeanMessage], source: str, *, max_errors: int = 5) -> str:
    """What the proposer reads about a file that failed to compile: counts, then the first errors in context."""
    errs = errors(messages)
    warnings = [m for m in messages if m.severity == "warning"]
    lines = [f"Lean compilation FAILED with {len(errs)} error(s) and {len(warnings)} warning(s)."]
    for n, message in enumerate(errs[:max_errors], start=1):
        lines += ["", f"Error {n} of {len(errs)}, {describe(message, source)}"]
    if len(errs) > max_errors:
        lines += ["", f"({len(errs) - max_errors} more errors not shown; fix the first ones first)"]
    return "\n".join(lines)
