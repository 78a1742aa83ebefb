"""Reading kernel sources: fenced code blocks of a reply, the kernel module it proposes, ModelNew."""

from __future__ import annotations

import ast
import hashlib
import re


MODEL_NEW = "ModelNew"

# ```python ... ``` blocks; the last alternative takes a fence the reply never closed (a reply cut by max_tokens).
_CLOSED_FENCE = re.compile(r"```[ \t]*(?P<lang>[A-Za-z0-9_+\-]*)[^\n`]*\n(?P<body>.*?)```", re.S)
_OPEN_FENCE = re.compile(r"```[ \t]*(?P<lang>[A-Za-z0-9_+\-]*)[^\n`]*\n(?P<body>(?:(?!```).)*)\Z", re.S)
_NON_PYTHON_LANGS = {"cpp", "c++", "c", "cuda", "cu", "bash", "sh", "shell", "json", "text", "txt", "console"}


# --- reading kernel sources ----------------------------------------------------------------------

def defines_model_new(source: str) -> bool:
    """True when `source` binds the name ModelNew anywhere (class, assignment, import alias).

    A source that does not parse falls back to a textual `class ModelNew` check, so a truncated but
    otherwise real kernel still counts as an attempt (its syntax error is then reported by the evaluator).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return re.search(rf"\bclass\s+{MODEL_NEW}\b", source) is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == MODEL_NEW:
            return True
        if isinstance(node, ast.Name) and node.id == MODEL_NEW and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name.rsplit(".", 1)[-1]) == MODEL_NEW:
            return True
    return False


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def code_blocks(text: str) -> list[str]:
    """Bodies of the fenced code blocks of `text` that may be Python, in order; an unclosed last
    fence counts too. Blocks explicitly tagged as another language (cpp, cuda, json, ...) are skipped."""
    blocks: list[tuple[int, str]] = []
    end_of_closed = 0
    for match in _CLOSED_FENCE.finditer(text):
        if match.group("lang").strip().lower() not in _NON_PYTHON_LANGS:
            blocks.append((match.start(), match.group("body")))
        end_of_closed = match.end()
    tail = _OPEN_FENCE.search(text, end_of_closed)
    if tail is not None and tail.group("lang").strip().lower() not in _NON_PYTHON_LANGS:
        blocks.append((tail.start(), tail.group("body")))
    return [body.strip("\n") for _, body in sorted(blocks)]


def extract_kernel_source(reply: str, parsed_value: str | None = None) -> str | None:
    """The kernel module a reply proposes, or None when it holds no code at all.

    Preference: the last fenced block (or the `parsed_value` a generic parser found, or the whole
    reply when it is plain Python) that defines ModelNew; failing that, `parsed_value`, then the
    last fenced block. A source without ModelNew is still returned: the evaluator records it as a
    failed attempt with feedback rather than the proposal vanishing.
    """
    if not isinstance(reply, str):
        raise ValueError(f"reply must be a str, got {type(reply).__name__}")
    options: list[str] = []
    if parsed_value is not None and parsed_value.strip():
        inner = code_blocks(parsed_value)
        options.extend(inner if inner else [parsed_value.strip()])
    options.extend(code_blocks(reply))
    stripped = reply.strip()
    if stripped and "```" not in stripped and _parses(stripped):
        options.append(stripped)
    with_model_new = [s for s in options if s.strip() and defines_model_new(s)]
    if with_model_new:
        return with_model_new[-1].strip() + "\n"
    if parsed_value is not None and parsed_value.strip():
        return parsed_value.strip() + "\n"
    blocks = [b for b in code_blocks(reply) if b.strip()]
    return blocks[-1].strip() + "\n" if blocks else None


def _normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]

