"""Robust extraction of parameter updates and tagged sections from free-form LLM replies.

Nothing here raises on a bad reply: small local models produce junk, partial tags and echoes of the
prompt, and the search loop must simply get "no proposal" for those.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

_PARAM_TAG = re.compile(
    r"<param\s+name\s*=\s*(?P<quote>[\"'])(?P<name>[^\"'<>]*?)(?P=quote)\s*>(?P<value>.*?)</param\s*>",
    re.S | re.I,
)
_FENCE = re.compile(r"```(?P<lang>[^\n`]*)\n(?P<body>.*?)```", re.S)
_WHOLE_FENCE = re.compile(r"\A```[^\n`]*\n(?P<body>.*?)\n?```\Z", re.S)
_HEADING_LINE = re.compile(r"^[ \t]*#{1,6} [^\n]*$", re.M)

# Keys under which models like to nest the parameter object ({"suggestion": {...}} is OptoPrime's).
_NESTING_KEYS = ("parameters", "params", "suggestion", "suggestions", "updates", "update", "variables")


@dataclass(frozen=True)
class ParsedUpdate:
    """What a reply proposes: `changes` (name -> new text) plus why the other values were dropped."""

    changes: dict[str, str]
    format: str
    """Which form produced `changes`: "tags", "json", "fenced" or "none"."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Parameter name (or "reply") -> the reason its value was not accepted."""


def extract_tag(text: str, tag: str) -> str | None:
    """Stripped content of the last complete `<tag>...</tag>` in `text`, or None if there is none."""
    pattern = re.compile(rf"<{re.escape(tag)}\s*>(.*?)</{re.escape(tag)}\s*>", re.S | re.I)
    matches = pattern.findall(text)
    return matches[-1].strip() if matches else None


def template_headings_in(text: str, headings: Sequence[str]) -> set[str]:
    """The `headings` (whole markdown heading lines) that occur as lines of `text`."""
    wanted = {h.strip() for h in headings}
    return {line.strip() for line in _HEADING_LINE.findall(text)} & wanted


UNCHANGED = "unchanged value"


def parse_param_updates(
    reply: str,
    current: Mapping[str, str],
    *,
    forbidden_markers: Sequence[str] = (),
    template_headings: Sequence[str] = (),
    keep_unchanged: bool = False,
) -> ParsedUpdate:
    """Parameter changes proposed in `reply` for the parameters named in `current`.

    Forms tried in order, the first that yields an accepted value wins: XML tags (`<param name="N">`
    or `<N>`), a JSON object (possibly nested one level), and, for a single parameter, the last
    fenced code block. Unknown names are ignored; empty, unchanged or truncated values are dropped,
    as is any value containing one of `forbidden_markers` (an echo of our prompt). A reply that
    repeats two or more `template_headings` is treated as an echo as a whole.

    `keep_unchanged=True` accepts a value equal to the current one as OptoPrime does (its update dict
    holds every suggested value, so the paper's loop evaluates a copy of the parent unless the eps-Net
    rejects it); such a suggestion is returned only when no form of the reply suggests a real change.
    """
    if not isinstance(reply, str) or not reply.strip():
        return ParsedUpdate({}, "none", {"reply": "empty reply"})
    headings_seen = template_headings_in(reply, template_headings)
    if len(headings_seen) >= 2:
        return ParsedUpdate({}, "none", {"reply": f"echo of the prompt (repeats {sorted(headings_seen)})"})

    rejected: dict[str, str] = {}
    strategies: list[tuple[str, dict[str, str]]] = [
        ("tags", _values_from_tags(reply, current)),
        ("json", _values_from_json(reply, current)),
    ]
    if len(current) == 1 and not headings_seen:
        strategies.append(("fenced", _value_from_fence(reply, current)))
    unchanged_only: ParsedUpdate | None = None
    for form, raw_values in strategies:
        accepted: dict[str, str] = {}
        same: dict[str, str] = {}
        for name, raw in raw_values.items():
            value, reason = _accept(raw, current[name], forbidden_markers)
            if value is None:
                rejected[name] = f"{form}: {reason}"
                if reason == UNCHANGED:
                    same[name] = current[name].strip()
            else:
                accepted[name] = value
        if accepted:
            return ParsedUpdate(accepted, form, rejected)
        if same and unchanged_only is None:
            unchanged_only = ParsedUpdate(same, form, {})
    if keep_unchanged and unchanged_only is not None:
        return ParsedUpdate(unchanged_only.changes, unchanged_only.format, rejected)
    if not rejected:
        rejected["reply"] = "no parameter value found (no tags, JSON object or fenced block)"
    return ParsedUpdate({}, "none", rejected)


def _accept(raw: str, current_value: str, forbidden_markers: Sequence[str]) -> tuple[str | None, str]:
    value = raw.strip()
    whole_fence = _WHOLE_FENCE.match(value)
    # Models often fence code inside a tag; unwrap unless the parameter itself is fenced text.
    if whole_fence and not current_value.lstrip().startswith("```"):
        value = whole_fence.group("body").strip()
    if not value:
        return None, "empty value"
    if value == current_value.strip():
        return None, UNCHANGED
    for marker in forbidden_markers:
        if marker and marker in value:
            return None, f"contains prompt text {marker!r} (echo)"
    return value, ""


def _values_from_tags(reply: str, current: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in current:
        pattern = re.compile(rf"<{re.escape(name)}\s*>(.*?)</{re.escape(name)}\s*>", re.S)
        found = pattern.findall(reply)
        if found:
            values[name] = found[-1]
    # The explicit <param name="..."> form wins over bare name tags; the last occurrence wins
    # because replies reason first and answer last.
    for match in _PARAM_TAG.finditer(reply):
        name = match.group("name").strip()
        if name in current:
            values[name] = match.group("value")
    return values


def _values_from_json(reply: str, current: Mapping[str, str]) -> dict[str, str]:
    best: dict[str, str] = {}
    for obj in _json_objects(reply):
        values = _known_string_values(obj, current)
        if not values:
            for key in _NESTING_KEYS:
                nested = obj.get(key)
                if isinstance(nested, dict):
                    values = _known_string_values(nested, current)
                    if values:
                        break
        if values:
            best = values
    return best


def _known_string_values(obj: Mapping[str, Any], current: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in obj.items() if k in current and isinstance(v, str)}


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Top-level JSON objects embedded anywhere in `text`, in order."""
    decoder = json.JSONDecoder()
    position = text.find("{")
    while position != -1:
        try:
            obj, end = decoder.raw_decode(text, position)
        except (json.JSONDecodeError, RecursionError):
            position = text.find("{", position + 1)
            continue
        if isinstance(obj, dict):
            yield obj
        position = text.find("{", end)


def _value_from_fence(reply: str, current: Mapping[str, str]) -> dict[str, str]:
    (name,) = current
    blocks = [m for m in _FENCE.finditer(reply) if not _is_json_object_block(m)]
    return {name: blocks[-1].group("body")} if blocks else {}


def _is_json_object_block(match: re.Match[str]) -> bool:
    # A fenced JSON object means the model tried the JSON form with wrong keys, not a new value.
    if match.group("lang").strip().lower() != "json":
        return False
    try:
        return isinstance(json.loads(match.group("body")), dict)
    except (json.JSONDecodeError, RecursionError):
        return False
