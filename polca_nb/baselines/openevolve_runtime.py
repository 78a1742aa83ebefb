"""Running OpenEvolve inside a notebook process: its controller on a fresh thread with its own event
loop, a scratch directory per run, and a guard that restores the module-level state OpenEvolve
changes (logging, signal handlers, worker globals) and stops the threads and closes the event loops
it leaves behind.

The driver relies on internals of `openevolve.process_parallel` (worker globals, `_worker_init`,
`_run_iteration_worker`, `_submit_iteration`), so it runs only on the versions it was tested with:
`check_openevolve_version` refuses any other (`OPENEVOLVE_TESTED_RANGE`)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import random
import re
import sys
import tempfile
import threading
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

OPENEVOLVE_TESTED_RANGE = ">=0.4.1,<0.4.2"
"""The openevolve versions the driver was tested with (the `baselines` extra pins the same range)."""
_TESTED_RELEASES = ((0, 4, 1), (0, 4, 2))  # OPENEVOLVE_TESTED_RANGE as [low, high) release tuples


def installed_openevolve_version() -> str:
    """The version of the openevolve package that `import openevolve` loads."""
    module = importlib.import_module("openevolve")
    version = getattr(module, "__version__", None)
    return str(version) if version else importlib.metadata.version("openevolve")


def check_openevolve_version(version: str | None = None) -> str:
    """Return `version` (default: the installed one); raise RuntimeError unless it is in
    OPENEVOLVE_TESTED_RANGE (plain releases and post-releases only: a dev or rc build is refused)."""
    version = installed_openevolve_version() if version is None else version
    # A regex, not `packaging`: polca_nb does not depend on it, and these versions are plain releases.
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:\.post\d+)?", version.strip())
    release = tuple(int(g) for g in match.groups()) if match else None
    low, high = _TESTED_RELEASES
    if release is None or not low <= release < high:
        raise RuntimeError(
            f"openevolve {version} is installed, but polca_nb's OpenEvolve driver uses internals of "
            f"openevolve.process_parallel and is tested only with openevolve{OPENEVOLVE_TESTED_RANGE}; "
            f"install a tested version: pip install 'openevolve{OPENEVOLVE_TESTED_RANGE}'")
    return version


def _init_worker_thread(config_dict: dict, evaluation_file: str) -> None:
    """OpenEvolve's worker initializer, then the worker's event loop, made here so it can be closed.

    Left to `process_parallel._run_worker_async`, the loop would be made lazily with a process-exit
    finalizer (one more per run) and dropped unclosed by the next run's `_worker_init`."""
    from openevolve import process_parallel

    process_parallel._worker_init(config_dict, evaluation_file, None)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # this worker thread's loop, as `_run_worker_async` would set it
    process_parallel._worker_event_loop = loop


def _close_worker_event_loop() -> None:
    """Close the worker's event loop with OpenEvolve's own closer (idempotent).

    Run on a fresh thread: the worker thread has exited by now, and the calling thread (the driver)
    is inside its own running loop, where another loop cannot be run to completion."""
    from openevolve import process_parallel

    if process_parallel._worker_event_loop is not None:
        _run_in_fresh_thread(process_parallel._close_worker_event_loop, name="openevolve-loop-closer")


def _thread_controller_class():
    from openevolve import process_parallel

    class ThreadController(process_parallel.ProcessParallelController):
        """OpenEvolve's controller with its worker pool on one thread instead of spawned processes."""

        def start(self) -> None:
            self.executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="openevolve-worker", initializer=_init_worker_thread,
                initargs=(self._serialize_config(self.config), self.evaluation_file))

        def _submit_iteration(self, iteration: int, island_id: int | None = None):
            # Run each iteration to completion before the controller goes on. The controller (parent
            # sampling) and the worker (prompt building) both draw from the global `random`; overlapping,
            # their draws interleave by timing and a rerun with the same seed differs. Snapshots and
            # parents are still taken exactly where OpenEvolve takes them.
            future = super()._submit_iteration(iteration, island_id)
            if future is not None:
                wait([future])
            return future

        def stop(self) -> None:
            self.shutdown_event.set()
            executor, self.executor = self.executor, None  # type: ignore[assignment]  # stopped: no pool
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
            _close_worker_event_loop()  # after the worker thread is gone: nothing runs on the loop

    return ThreadController


def _run_in_fresh_thread(fn, *, name: str = "openevolve-driver"):
    """Run fn() on a new thread and return its result (asyncio.run is refused inside Jupyter's loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class _scratch_dir:
    """run_dir (kept) or a temporary directory (removed on exit)."""

    def __init__(self, run_dir: str | Path | None) -> None:
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return self.run_dir
        self._tmp = tempfile.TemporaryDirectory(prefix="openevolve-")
        return Path(self._tmp.name)

    def __exit__(self, *exc: Any) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


class _GlobalStateGuard:
    """Saves what OpenEvolve changes process-wide (global RNGs, root logger, sys.path/sys.modules)."""

    def __init__(self) -> None:
        self.random_state = random.getstate()
        self.numpy_state = np.random.get_state()
        root = logging.getLogger()
        self.root_level = root.level
        self.root_handlers = list(root.handlers)
        self.sys_path = list(sys.path)
        self.had_module = "evaluation_module" in sys.modules
        self.module = sys.modules.get("evaluation_module")

    def _added_handlers(self) -> list[logging.Handler]:
        return [h for h in logging.getLogger().handlers if h not in self.root_handlers]

    def drop_console_handlers(self) -> None:
        """Keep OpenEvolve's log file, not its console output (cells and the bench stay readable)."""
        for handler in self._added_handlers():
            if not isinstance(handler, logging.FileHandler):
                logging.getLogger().removeHandler(handler)

    def restore(self) -> None:
        root = logging.getLogger()
        for handler in self._added_handlers():
            root.removeHandler(handler)
            handler.close()
        root.setLevel(self.root_level)
        random.setstate(self.random_state)
        np.random.set_state(self.numpy_state)
        sys.path[:] = self.sys_path
        if self.had_module:
            sys.modules["evaluation_module"] = self.module  # type: ignore[assignment]  # had_module: not None
        else:
            sys.modules.pop("evaluation_module", None)


class _SeededUUIDs:
    """Makes the program ids OpenEvolve draws (uuid4) a function of the run's seed, per thread.

    OpenEvolve keeps program ids in Python sets and samples parents from `list(island)`, so random ids
    make a run differ from a rerun with the same `random_seed` (and a paid run miss the LLM cache).
    Only this run's threads (OpenEvolve's driver and worker, by name) get seeded ids, one stream per
    thread so their interleaving does not matter; every other thread keeps real uuid4. Set order also
    depends on str hashing: across processes runs repeat exactly under a fixed PYTHONHASHSEED."""

    THREAD_PREFIXES = ("openevolve-driver", "openevolve-worker")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.streams: dict[str, random.Random] = {}
        self.lock = threading.Lock()
        self.original = uuid.uuid4

    def uuid4(self) -> uuid.UUID:
        name = threading.current_thread().name
        if not name.startswith(self.THREAD_PREFIXES):
            return self.original()
        with self.lock:
            stream = self.streams.setdefault(name, random.Random(f"{self.seed}:{zlib.crc32(name.encode())}"))
            bits = stream.getrandbits(128)
        return uuid.UUID(int=bits, version=4)

    def __enter__(self) -> "_SeededUUIDs":
        uuid.uuid4 = self.uuid4  # restored in __exit__
        return self

    def __exit__(self, *exc: Any) -> None:
        uuid.uuid4 = self.original


def _shutdown_openevolve_threads(oe: Any) -> None:
    """Join the evaluation threads OpenEvolve's Evaluators own, close the worker's event loop (if the
    controller did not) and clear the worker's module globals."""
    from openevolve import process_parallel

    evaluators = [getattr(oe, "evaluator", None), getattr(process_parallel, "_worker_evaluator", None)]
    for evaluator in evaluators:
        executor = getattr(evaluator, "_executor", None)  # private: OpenEvolve has no close() for it
        if executor is not None:
            executor.shutdown(wait=True)
    _close_worker_event_loop()
    for name in ("_worker_config", "_worker_evaluation_file", "_worker_evaluator", "_worker_llm_ensemble",
                 "_worker_prompt_sampler"):
        if hasattr(process_parallel, name):
            setattr(process_parallel, name, None)
