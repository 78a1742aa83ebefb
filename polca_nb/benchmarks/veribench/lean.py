"""Finding a Lean 4 toolchain and running one file through it in an isolated, limited subprocess.

    toolchain = find_lean()              # None when there is none; lean_status() says which and where
    checker = LeanChecker()              # raises LeanUnavailable (with install steps) when there is none
    run = checker.run(source)            # LeanRun: status, parsed messages, output, seconds

Lean is looked for in this order: `$POLCA_LEAN` (a `lean` or `lake` executable, a toolchain's `bin/`
or its root), `lean` on PATH, `lake` on PATH (run as `lake env lean`), an elan install
(`$ELAN_HOME/bin` or `~/.elan/bin`). Each run writes the file into a fresh temporary directory,
starts Lean in its own session through a small Python trampoline that sets `RLIMIT_DATA` (heap and
private mappings) to `memory_mb` and then execs Lean, and kills the whole process group after
`timeout_s`. Not a security sandbox: Lean runs as the same user.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from ...errors import FatalError
from .messages import LeanMessage, errors, parse_output

ENV_VAR = "POLCA_LEAN"
PAPER_TOOLCHAIN = "leanprover/lean4:v4.18.0"
"""The toolchain the paper's harness compiled with (PyPantograph's lean-toolchain, benchmarks.md §3)."""
INSTALL_HELP = (
    "No Lean 4 toolchain found: looked at $POLCA_LEAN, `lean` and `lake` on PATH, and an elan install "
    "($ELAN_HOME/bin or ~/.elan/bin). Install one with elan, the Lean version manager:\n"
    "    curl https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh -sSf | sh -s -- -y "
    f"--default-toolchain {PAPER_TOOLCHAIN}\n"
    f"(or `apt install elan` and then `elan default {PAPER_TOOLCHAIN}`), then open a new shell or set "
    "POLCA_LEAN=~/.elan/bin/lean. VeriBench needs Lean core only (no Mathlib) for tasks 10-139 except 107-108."
)
Status = Literal["ok", "errors", "timeout", "out_of_memory", "crashed"]
EXEC_FAILED = 127
_OOM = re.compile(r"out of memory|std::bad_alloc|cannot allocate memory", re.I)
_TRAMPOLINE = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "if limit > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "try:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "except OSError as exc:\n"
    "    print(f'polca-lean: cannot execute {sys.argv[2]}: {exc}', file=sys.stderr)\n"
    f"    sys.exit({EXEC_FAILED})\n"
)


class LeanUnavailable(FatalError):
    """No usable Lean toolchain: the message says what was looked at and how to install one."""


@dataclass(frozen=True)
class LeanToolchain:
    """How to start Lean: the argv prefix (`(lean,)` or `(lake, "env", "lean")`) and where it was found."""

    command: tuple[str, ...]
    origin: str

    def version(self, timeout_s: float = 60.0) -> str:
        """`lean --version`'s first line ('' when it prints nothing or fails)."""
        try:
            out = subprocess.run([*self.command, "--version"], capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_path(path: Path, origin: str) -> LeanToolchain | None:
    """A toolchain from an executable (lean or lake) or a folder holding `lean` / `bin/lean`."""
    if path.is_dir():
        for candidate in (path / "lean", path / "bin" / "lean", path / "lake", path / "bin" / "lake"):
            if _executable(candidate):
                return _from_path(candidate, origin)
        return None
    if not _executable(path):
        return None
    if path.name.startswith("lake"):
        return LeanToolchain((str(path), "env", "lean"), origin)
    return LeanToolchain((str(path),), origin)


def find_lean(environ: Mapping[str, str] | None = None, home: str | Path | None = None) -> LeanToolchain | None:
    """The first toolchain in the documented order, or None. LeanUnavailable when `$POLCA_LEAN` is set
    but names no Lean executable (a typo there should not silently fall through to another Lean)."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_VAR)
    if explicit:
        found = _from_path(Path(explicit).expanduser(), ENV_VAR)
        if found is None:
            raise LeanUnavailable(f"${ENV_VAR}={explicit!r} is neither a lean/lake executable nor a folder "
                                  f"holding bin/lean. {INSTALL_HELP}")
        return found
    search = env.get("PATH", "")
    for name, origin in (("lean", "PATH (lean)"), ("lake", "PATH (lake)")):
        hit = shutil.which(name, path=search)
        if hit:
            return _from_path(Path(hit), origin)
    elan_home = Path(env["ELAN_HOME"]).expanduser() if env.get("ELAN_HOME") else \
        Path(home if home is not None else Path.home()) / ".elan"
    return _from_path(elan_home / "bin", f"elan ({elan_home / 'bin'})")


def lean_status(environ: Mapping[str, str] | None = None) -> str:
    """One line: which Lean would be used, or why there is none (never raises)."""
    try:
        found = find_lean(environ)
    except LeanUnavailable as exc:
        return str(exc).split(". ")[0]
    if found is None:
        return "no Lean 4 toolchain found ($POLCA_LEAN, PATH, ~/.elan/bin)"
    return f"Lean via {found.origin}: {' '.join(found.command)}"


def require_lean(environ: Mapping[str, str] | None = None) -> LeanToolchain:
    """The toolchain `find_lean` finds, or LeanUnavailable with the install steps."""
    found = find_lean(environ)
    if found is None:
        raise LeanUnavailable(INSTALL_HELP)
    return found


@dataclass(frozen=True)
class LeanRun:
    """One Lean run of one file: how it ended, its parsed messages and raw output."""

    status: Status
    messages: tuple[LeanMessage, ...]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    source: str

    @property
    def compiled(self) -> bool:
        return self.status == "ok"

    @property
    def errors(self) -> list[LeanMessage]:
        return errors(self.messages)

    @property
    def sorry_count(self) -> int:
        return sum(1 for m in self.messages if m.is_sorry)

    @property
    def infos(self) -> list[LeanMessage]:
        return [m for m in self.messages if m.severity == "info"]


def classify(returncode: int | None, messages: tuple[LeanMessage, ...], stderr: str, timed_out: bool) -> Status:
    """How a run ended: timeout, out of memory (Lean's or the C++ runtime's words), errors, a crash
    (a signal, or a failing exit code without any error message), else ok."""
    if timed_out:
        return "timeout"
    if _OOM.search(stderr) or any(m.severity == "error" and _OOM.search(m.text) for m in messages):
        return "out_of_memory"
    if errors(messages):
        return "errors"
    if returncode is None or returncode != 0:
        return "crashed"
    return "ok"


def strip_misplaced_imports(source: str) -> str:
    """`source` without `import` lines that follow other code (Lean accepts imports only at the top):
    the harness's retry without "invalid 'import' command" lines, done before compiling."""
    out, seen_code, in_comment = [], False, False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("import ") and seen_code:
            continue
        if stripped.startswith("/-"):
            in_comment = "-/" not in stripped[2:]
        elif in_comment:
            in_comment = "-/" not in stripped
        elif stripped and not stripped.startswith(("--", "import ")):
            seen_code = True
        out.append(line)
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


@dataclass
class LeanChecker:
    """Runs Lean on one source file per call (see the module docstring for the isolation).

    `toolchain` defaults to `require_lean()`, so constructing a checker where none is installed
    raises LeanUnavailable with the install steps. `json_output` passes `--json` (positions for
    `#eval` output); False parses the plain text form.
    """

    toolchain: LeanToolchain | None = None
    timeout_s: float = 60.0
    memory_mb: int | None = 4096
    json_output: bool = True
    runs: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise ValueError(f"LeanChecker.timeout_s must be > 0, got {self.timeout_s!r}")
        if self.memory_mb is not None and (not isinstance(self.memory_mb, int) or self.memory_mb < 1):
            raise ValueError(f"LeanChecker.memory_mb must be None or an int >= 1, got {self.memory_mb!r}")
        if self.toolchain is None:
            self.toolchain = require_lean()

    def argv(self, path: Path) -> list[str]:
        assert self.toolchain is not None
        limit = self.memory_mb * 1024 * 1024 if self.memory_mb else 0
        flags = ["--json"] if self.json_output else []
        return [sys.executable, "-I", "-c", _TRAMPOLINE, str(limit), *self.toolchain.command, *flags, str(path)]

    def run(self, source: str, *, name: str = "Candidate") -> LeanRun:
        """Compile `source` as `<name>.lean` in a fresh temp directory; LeanUnavailable if Lean cannot start."""
        assert self.toolchain is not None
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"name must be a Lean module name (letters, digits, _), got {name!r}")
        if not _executable(Path(self.toolchain.command[0])):
            raise LeanUnavailable(f"the Lean executable {self.toolchain.command[0]} (from {self.toolchain.origin}) "
                                  f"is missing or not executable. {INSTALL_HELP}")
        with tempfile.TemporaryDirectory(prefix="polca-lean-") as tmp:
            path = Path(tmp) / f"{name}.lean"
            path.write_text(source, encoding="utf-8")
            started = time.perf_counter()
            stdout, stderr, code, timed_out = self._spawn(self.argv(path), Path(tmp))
            seconds = time.perf_counter() - started
        self.runs += 1
        if code == EXEC_FAILED and "polca-lean: cannot execute" in stderr:
            raise LeanUnavailable(f"{stderr.strip()} (from {self.toolchain.origin}). {INSTALL_HELP}")
        messages = tuple(parse_output(stdout))
        return LeanRun(classify(code, messages, stderr, timed_out), messages, code, stdout, stderr,
                       round(seconds, 3), source)

    def _spawn(self, argv: list[str], cwd: Path) -> tuple[str, str, int | None, bool]:
        """Run `argv` in its own session; on timeout SIGKILL the group and keep what it printed."""
        process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   errors="replace", start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            stdout, stderr = process.communicate(timeout=self.timeout_s)
            return stdout, stderr, process.returncode, False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stdout, stderr = process.communicate()
            return stdout, stderr, process.returncode, True
