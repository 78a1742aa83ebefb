"""The reference's unit tests and the file that runs them against a candidate translation.

A gold file's functional tests sit between its "# Tests" (or "# Unit Tests") heading and its
"# Pre-Condition" heading (U+2011 or "-"). Each test is an `example` (a proposition, proved by
`native_decide`, `decide`, `rfl` or `sorry`) or an `#eval` whose `-- expected: v` comment states the
value (`"a" or "b"` lists alternatives). `combined_file` appends those tests, inside the gold
namespace, to the candidate's file, opening the candidate's namespaces and aliasing a differently
named candidate function (`myFoo` for `foo`) when exactly one matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .data import VeriTask

TEST_HEADING = re.compile(r"^(unit\s+)?tests\b", re.I)
PRE_HEADING = re.compile(r"^pre-?\s*condition", re.I)
TESTS_BANNER = "-- ===== VeriBench unit tests (from the task's reference file) ====="
_EVAL = re.compile(r"^\s*#eval!?\s+(?P<expr>.*?)\s*(?:--\s*expected:\s*(?P<expected>.*?))?\s*$")
_DECL = re.compile(r"^\s*(?:@\[[^\]]*\]\s*)?(?:(?:private|protected|partial|noncomputable|unsafe)\s+)*"
                   r"(?:def|abbrev|instance\s*:?|structure|inductive|opaque)\s+(?P<name>[^\s(:{\[]+)", re.M)
_CAND_NAMESPACE = re.compile(r"^\s*namespace\s+(\S+)", re.M)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_'.]*")


@dataclass(frozen=True)
class TestItem:
    """One unit test: an `example` or an `#eval` (with its expected values), at `line` of the tests block
    (1-based within the block; the item spans `line`..`end_line`)."""

    kind: str          # "example" or "eval"
    line: int
    end_line: int
    text: str
    expression: str = ""
    expected: tuple[str, ...] = ()

    @property
    def checked(self) -> bool:
        """An example always is; an #eval only when the task states its expected value."""
        return self.kind == "example" or bool(self.expected)


@dataclass(frozen=True)
class TestsBlock:
    """The gold file's functional-tests section, its items and the gold functions they call."""

    text: str
    items: tuple[TestItem, ...]
    tested_names: tuple[str, ...]

    @property
    def num_checked(self) -> int:
        return sum(1 for i in self.items if i.checked)


@dataclass(frozen=True)
class CombinedFile:
    """The candidate with the tests appended: `tests_start` is the first line (1-based) of the tests part;
    a line `k` of the tests block is file line `k + block_offset`; `aliases` maps gold -> candidate names."""

    source: str
    tests_start: int
    block_offset: int
    aliases: tuple[tuple[str, str], ...]
    missing: tuple[str, ...]


def _headings(lines: list[str]) -> list[tuple[int, str]]:
    return [(k, line[2:].strip().replace("\u2011", "-")) for k, line in enumerate(lines) if line.startswith("# ")]


def _comment_start(lines: list[str], heading: int) -> int:
    """The line of the `/-!` comment holding the heading (the heading itself when it opens none)."""
    for k in range(heading, -1, -1):
        if lines[k].lstrip().startswith("/-"):
            return k
        if "-/" in lines[k] and k != heading:
            break
    return heading


def split_expected(text: str) -> tuple[str, ...]:
    """`"bab" or "aba"` -> ('"bab"', '"aba"'); a plain value -> (value,)."""
    text = text.strip()
    if not text:
        return ()
    parts = re.split(r"\s+or\s+(?=(?:\"|'|-?\d|\[|\(|some|none|true|false))", text)
    return tuple(p.strip() for p in parts if p.strip())


def _items(block_lines: list[str]) -> tuple[TestItem, ...]:
    starts = [k for k, line in enumerate(block_lines) if re.match(r"^\s*(example\b|#eval!?\s)", line)]
    items = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(block_lines)
        end = start
        for k in range(start + 1, stop):  # an example's proof continues on indented lines
            if block_lines[k].startswith((" ", "\t")) and block_lines[k].strip():
                end = k
            else:
                break
        text = "\n".join(block_lines[start:end + 1])
        match = _EVAL.match(block_lines[start])
        if match and block_lines[start].lstrip().startswith("#eval"):
            items.append(TestItem("eval", start + 1, end + 1, text, match.group("expr"),
                                  split_expected(match.group("expected") or "")))
        else:
            items.append(TestItem("example", start + 1, end + 1, text))
    return tuple(items)


def strip_comments(source: str) -> str:
    """`source` without `/- ... -/` blocks and `--` line comments (string literals are not parsed)."""
    return re.sub(r"--[^\n]*", "", re.sub(r"/-.*?-/", "", source, flags=re.S))


def declared_names(source: str) -> tuple[str, ...]:
    """Names a Lean file declares with def/abbrev/structure/inductive/opaque, in order."""
    return tuple(dict.fromkeys(m.group("name") for m in _DECL.finditer(source)))


@lru_cache(maxsize=256)
def _extract(gold: str) -> TestsBlock | None:
    lines = gold.splitlines()
    heads = _headings(lines)
    tests = next((k for k, h in heads if TEST_HEADING.match(h)), None)
    if tests is None:
        return None
    pre = next((k for k, h in heads if k > tests and PRE_HEADING.match(h)), None)
    if pre is None:
        return None
    block_lines = lines[_comment_start(lines, tests):_comment_start(lines, pre)]
    text = "\n".join(block_lines).rstrip() + "\n"
    used = set(_IDENT.findall(strip_comments(text)))
    impl = "\n".join(lines[:tests])
    tested = tuple(n for n in declared_names(impl) if n in used)
    return TestsBlock(text, _items(block_lines), tested)


def extract_tests(task: VeriTask) -> TestsBlock | None:
    """The gold file's functional tests, or None when it has no tests section (e.g. tasks 78, 112-124)."""
    return _extract(task.gold_lean)


def _normal(name: str) -> str:
    short = name.rsplit(".", 1)[-1].lower().replace("_", "")
    return short[2:] if short.startswith("my") and len(short) > 2 else short


def plan_aliases(tested: tuple[str, ...], candidate: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(aliases gold -> candidate name, tested names with neither a definition nor a unique match)."""
    defined = declared_names(candidate)
    short = {d.rsplit(".", 1)[-1] for d in defined}
    aliases, missing = [], []
    for name in tested:
        if name in defined or name.rsplit(".", 1)[-1] in short:
            continue
        matches = [d for d in defined if _normal(d) == _normal(name) and "." not in d]
        if len(matches) == 1:
            aliases.append((name, matches[0]))
        else:
            missing.append(name)
    return tuple(aliases), tuple(missing)


def combined_file(candidate: str, task: VeriTask, tests: TestsBlock | None = None) -> CombinedFile:
    """The candidate's file followed by the reference's unit tests (ValueError when the task has none)."""
    tests = tests if tests is not None else extract_tests(task)
    if tests is None:
        raise ValueError(f"VeriBench task {task.idx} has no unit-tests section")
    body = candidate.rstrip("\n")
    aliases, missing = plan_aliases(tests.tested_names, candidate)
    header = ["", "", TESTS_BANNER]
    if task.namespace:
        header.append(f"namespace {task.namespace}")
    opened = [ns for ns in dict.fromkeys(_CAND_NAMESPACE.findall(candidate)) if ns != task.namespace]
    if opened:
        header.append("open " + " ".join(opened))
    header += [f"abbrev {gold} := @{cand}" for gold, cand in aliases]
    body_lines = body.count("\n") + 1
    tests_start = body_lines + 3  # the banner, after two blank lines
    block_offset = body_lines + len(header)  # file line = block line + block_offset
    footer = [f"end {task.namespace}"] if task.namespace else []
    source = "\n".join([body, *header, tests.text.rstrip("\n"), *footer]) + "\n"
    return CombinedFile(source, tests_start, block_offset, aliases, missing)
