"""Prompt templates kept as data files (`polca_nb/prompts/*.txt`) and the text helpers the roles share.

A template file is a sequence of sections, each opened by a line `@@ name @@`; every section is a
`string.Template` (`$placeholder`), so braces in code or JSON need no escaping.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any, Callable, Mapping

from ..types import Example

_SECTION_HEADER = re.compile(r"^@@ (?P<name>[a-z_]+) @@[ \t]*$", re.M)

InputRenderer = Callable[[Example], str]


@lru_cache(maxsize=None)
def load_sections(filename: str) -> Mapping[str, Template]:
    """The sections of `polca_nb/prompts/<filename>`, each stripped of its trailing newlines."""
    text = resources.files("polca_nb").joinpath("prompts").joinpath(filename).read_text(encoding="utf-8")
    headers = list(_SECTION_HEADER.finditer(text))
    if not headers:
        raise ValueError(f"prompt template {filename!r} has no '@@ name @@' section headers")
    sections: dict[str, Template] = {}
    for header, following in zip(headers, headers[1:] + [None]):
        end = following.start() if following is not None else len(text)
        body = text[header.end():end].strip("\n")
        sections[header.group("name")] = Template(body)
    return sections


def heading_lines(template: Template) -> list[str]:
    """Markdown heading lines (`# ...`, `## ...`) of a template that contain no placeholder."""
    return [
        line.strip()
        for line in template.template.splitlines()
        if line.lstrip().startswith("#") and "$" not in line
    ]


def truncate_middle(text: str, max_chars: int) -> str:
    """`text` cut to about `max_chars` characters, keeping its head and tail (answers sit at the end)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    if len(text) <= max_chars:
        return text
    omitted = len(text) - max_chars
    head = max_chars - max_chars // 2
    tail = max_chars // 2
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[len(text) - tail:] if tail else ''}"


def default_input_text(example: Example) -> str:
    """Example input as text: strings as is, JSON-able data as compact JSON, anything else via str()."""
    data: Any = example.data
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(data)


def format_score(score: float) -> str:
    return f"{score:.4g}"
