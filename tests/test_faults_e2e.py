"""Faults measured end to end (issue 12): a real POLCA loop against the embedded llama-server behind a
fault-injecting proxy (tests/fault_proxy.py), plus the cache-sharing faults (d) and (e).

The server tests (slow, server) share one llama-server (one thread: the cores are shared) and one
faulty run (module fixture `faulty`); each test asserts one property of that run.

Accounting (what the client's ledger is held to): every failed attempt is recorded once by
`Ledger.record_fault(role, kind)`, and a call with k failed attempts adds k retries if it then
succeeds, or k - 1 retries and one error (a dropped call) if it does not. So, summed over roles,

    sum(ledger.faults().values()) == total.retries + total.errors
                                  == proxy faults injected + client-side timeouts of forwarded
                                     requests + upstream non-200 replies

and per kind the proxy's kinds map onto the ledger's (429, 529, 500, connection, timeout, malformed).
"""

from __future__ import annotations

import http.server
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from fault_proxy import KINDS, FaultProxy
from polca_nb.benchmarks.short_answer import ShortAnswerEvaluator, short_answer_problem
from polca_nb.budget import Budget
from polca_nb.llm import LLMCache, LLMClient, LLMError, Ledger, LocalServer, RetryPolicy, ServerSettings, config
from polca_nb.roles import LLMProposer, LLMSummarizer
from polca_nb.runner import PolcaConfig, RunResult, polca

ROOT = Path(__file__).resolve().parents[1]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

FAULT_RATE = 0.3
PROXY_SEED = 12
RUN_SEED = 0
MAX_ATTEMPTS = 4
TIMEOUT_S = 6.0
"""Client timeout floor: a real call here takes 0.2-3 s on one thread; the client adds
max_tokens / MIN_TOKENS_PER_S, and a stall costs exactly that (the proxy waits until the client hangs up)."""
RETRY = RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_s=0.01, multiplier=2.0, max_s=0.2, jitter=0.0)

# How each injected fault shows up in Ledger.faults() (client.fault_kind).
LEDGER_KIND = {"rate_limited": "429", "overloaded": "529", "server_error": "500", "reset": "connection",
               "stall": "timeout", "truncated": "malformed", "not_message": "malformed"}


def needs_server(test):
    return pytest.mark.server(pytest.mark.slow(test))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    local = LocalServer(ServerSettings(log_dir=tmp_path_factory.mktemp("llama-logs"), threads=1))
    local.start()
    yield local
    local.stop()
    assert not local.is_running()


def make_client(url: str, cache_dir: Path, **overrides: Any) -> LLMClient:
    options = dict(model=config.LOCAL_MODEL_NAME, base_url=url, api_key=config.LOCAL_API_KEY,
                   cache=LLMCache(cache_dir), ledger=Ledger(), timeout_s=TIMEOUT_S, retry=RETRY, max_concurrency=1)
    options.update(overrides)
    return LLMClient(**options)


def run_loop(llm: LLMClient, run_dir: Path, *, budget: int = 32, **config_overrides: Any) -> RunResult:
    """A small real POLCA loop on the short-answer task (K=2, b=2, no eps-Net, with the summarizer)."""
    problem = short_answer_problem(llm, n_train=6, n_test=2, seed=RUN_SEED)
    problem = replace(problem, evaluator=ShortAnswerEvaluator(llm, temperature=0.5, max_tokens=16))
    proposer = LLMProposer(llm, max_tokens=32, temperature=0.8, objective=problem.objective)
    summarizer = LLMSummarizer(llm, max_tokens=32)
    cfg = PolcaConfig(Budget(max_metric_calls=budget), num_candidates=2, batch_size=2, eps=0.0, **config_overrides)
    return polca(problem, proposer, cfg, summarizer=summarizer, seed=RUN_SEED, run_dir=run_dir, progress=False,
                 extra_log=lambda: {"llm": llm.ledger.snapshot()})


def evaluations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "evaluation"]


def cache_entries(cache_dir: Path) -> dict[Path, dict[str, Any]]:
    """Every entry on disk, parsed (a torn entry fails the test here)."""
    out = {}
    for path in sorted(cache_dir.glob("*/*.json")):
        out[path] = json.loads(path.read_text(encoding="utf-8"))
    return out


@dataclass
class FaultyRun:
    result: RunResult
    ledger: Ledger
    stats: Any
    cache_dir: Path
    entries: dict[Path, dict[str, Any]]   # the cache right after the faulty run (before the warm rerun)
    tmp_files: list[Path]
    seconds: float
    warm: RunResult | None = None
    warm_ledger: Ledger | None = None
    warm_forwarded: int = 0


@pytest.fixture(scope="module")
def faulty(server, tmp_path_factory):
    """One real loop through the proxy at 30% faults, then a warm rerun (new run dir, same cache) at 0%."""
    root = tmp_path_factory.mktemp("faulty")
    cache_dir = root / "cache"
    with FaultProxy(server.url, rate=FAULT_RATE, seed=PROXY_SEED, retry_after_s=0.05,
                    max_consecutive=MAX_ATTEMPTS - 1) as proxy:
        llm = make_client(proxy.url, cache_dir)
        started = time.perf_counter()
        try:
            result = run_loop(llm, root / "run")
        finally:
            llm.close()
        seconds = time.perf_counter() - started
        with proxy.lock:
            stats = proxy.stats
        run = FaultyRun(result, llm.ledger, stats, cache_dir, cache_entries(cache_dir),
                        sorted(cache_dir.glob("*/.*.tmp")), seconds)
        print(f"\n[faults-e2e] {stats.summary()}; ledger faults {llm.ledger.faults()}, "
              f"retries {llm.ledger.total().retries}, dropped {llm.ledger.total().errors}; run {seconds:.0f} s")

        proxy.rate = 0.0
        proxy.reset_stats()
        warm_llm = make_client(proxy.url, cache_dir)
        try:
            run.warm = run_loop(warm_llm, root / "warm")
        finally:
            warm_llm.close()
        run.warm_ledger = warm_llm.ledger
        with proxy.lock:
            run.warm_forwarded = proxy.stats.forwarded
    return run


@needs_server
def test_a_real_loop_finishes_through_30_percent_faults(faulty):
    res, stats = faulty.result, faulty.stats
    assert res.stop_reason == "max_metric_calls" and res.error is None
    assert res.spent.metric_calls == len(evaluations(res.events)) == 32
    assert stats.requests == stats.forwarded + stats.total_injected
    # the bag draw: every kind was injected at a ~30% rate
    assert set(stats.injected) == set(KINDS), stats.summary()
    assert 0.15 < stats.total_injected / stats.requests < 0.45, stats.summary()


@needs_server
def test_every_fault_is_counted_as_a_retry_or_a_dropped_call(faulty):
    total, stats = faulty.ledger.total(), faulty.stats
    expected = Counter()
    for kind, n in stats.injected.items():
        expected[LEDGER_KIND[kind]] += n
    expected["timeout"] += stats.client_gone
    for status, n in stats.upstream_not_ok.items():
        expected[str(status)] += n
    assert faulty.ledger.faults() == dict(sorted(expected.items())), stats.summary()
    assert sum(faulty.ledger.faults().values()) == total.retries + total.errors
    # every live success the ledger counts is one real reply the proxy delivered
    assert total.calls == stats.delivered


@needs_server
def test_every_retryable_fault_is_survived(faulty):
    """At most MAX_ATTEMPTS - 1 faults in a row (proxy max_consecutive): a client that retries every
    retryable fault absorbs them all, so a dropped call here is a misclassified fault."""
    stats = faulty.stats
    assert faulty.ledger.total().errors == 0, faulty.ledger.faults()
    assert stats.survived() == stats.injected, stats.summary()


@needs_server
def test_no_failed_reply_is_cached(faulty):
    delivered = Counter(faulty.stats.delivered_texts)
    assert len(faulty.entries) == faulty.ledger.total().calls
    for path, entry in faulty.entries.items():
        reply = entry["reply"]
        assert reply["content"] and reply["text"].strip(), f"{path.name} holds an empty reply: {reply}"
        assert "INJECTED" not in reply["text"]
        assert reply["text"] in delivered, f"{path.name}: reply text never came from a forwarded request"
    assert not faulty.tmp_files


@needs_server
def test_llm_failures_inside_the_faulty_run_are_evaluation_errors(faulty):
    """Every dropped task call (if any) is an evaluation flagged with `error`, never a plain 0."""
    evals = evaluations(faulty.result.events)
    flagged = [e for e in evals if e.get("error")]
    assert len(flagged) == faulty.ledger.usage("task").errors
    assert not [e for e in evals if not e.get("error") and "LLMError" in e["feedback"]]


@needs_server
def test_a_warm_rerun_at_zero_faults_reproduces_the_logged_evaluations(faulty):
    cold = [(e["step"], e["source"], e["candidate_id"], e["example_id"], e["seed"], e["score"], e["output"])
            for e in evaluations(faulty.result.events)]
    warm = [(e["step"], e["source"], e["candidate_id"], e["example_id"], e["seed"], e["score"], e["output"])
            for e in evaluations(faulty.warm.events)]
    assert warm == cold
    assert faulty.warm.best.params == faulty.result.best.params
    assert faulty.warm_ledger.total().calls == 0 and faulty.warm_forwarded == 0


@needs_server
def test_an_llm_failure_inside_an_evaluation_is_an_error_not_a_zero_score_program(server, tmp_path):
    """Every request fails (500 at rate 1.0, two attempts): each evaluation is an evaluation error; with
    evaluation_errors="exclude" none enters a candidate's mean (it is not a program that scored 0)."""
    with FaultProxy(server.url, rate=1.0, kinds=("server_error",), seed=1) as proxy:
        llm = make_client(proxy.url, tmp_path / "cache", retry=replace(RETRY, max_attempts=2))
        try:
            zero = run_loop(llm, tmp_path / "zero", budget=4)
            exclude = run_loop(llm, tmp_path / "exclude", budget=4, evaluation_errors="exclude")
        finally:
            llm.close()
        assert proxy.stats.forwarded == 0
    for res in (zero, exclude):
        evals = evaluations(res.events)
        assert evals and all(e.get("error") and "LLMError" in e["error"] for e in evals)
        assert res.evaluation_errors == len(evals)
    seed = zero.memory.candidates[0]
    assert seed.n == 4 and all(r.error for r in seed.rollouts)      # "zero": kept, flagged
    assert exclude.memory.candidates[0].n == 0                      # "exclude": out of the mean
    assert not list((tmp_path / "cache").rglob("*.json"))           # nothing failed was cached


# --- the proxy itself, against a fake upstream (no llama-server) -----------------------------------

class _FakeMessages(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "fake",
                           "content": [{"type": "text", "text": "Paris"}], "stop_reason": "end_turn",
                           "usage": {"input_tokens": 3, "output_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_upstream():
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeMessages)
    thread = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{upstream.server_address[1]}"
    upstream.shutdown()
    upstream.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("kind", KINDS)
def test_each_injected_fault_reaches_the_client_as_its_kind(fake_upstream, tmp_path, kind):
    with FaultProxy(fake_upstream, rate=1.0, kinds=(kind,), seed=0) as proxy:
        llm = make_client(proxy.url, tmp_path, timeout_s=0.5, retry=replace(RETRY, max_attempts=1))
        try:
            with pytest.raises(LLMError):
                llm.complete(system="", messages=QUESTION, role="task", max_tokens=4)
        finally:
            llm.close()
        assert proxy.stats.injected == {kind: 1} and proxy.stats.forwarded == 0
        if kind == "stall":  # the client hung up at its timeout, and the stalled handler saw it
            deadline = time.monotonic() + 5
            while proxy.stats.stall_abandoned == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proxy.stats.stall_abandoned == 1
    assert llm.ledger.faults() == {LEDGER_KIND[kind]: 1}


def test_a_reset_is_a_real_tcp_rst(fake_upstream):
    """SO_LINGER 0: the client reads ECONNRESET, not an orderly end of stream."""
    with FaultProxy(fake_upstream, rate=1.0, kinds=("reset",)) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            with pytest.raises(ConnectionResetError):
                while sock.recv(4096):
                    pass


def test_the_proxy_forwards_at_rate_zero_and_shuts_down(fake_upstream, tmp_path):
    with FaultProxy(fake_upstream, rate=0.0) as proxy:
        llm = make_client(proxy.url, tmp_path)
        try:
            assert llm.complete(system="", messages=QUESTION, role="task", max_tokens=4).text == "Paris"
        finally:
            llm.close()
        port = proxy.port
        assert proxy.stats.forwarded == proxy.stats.delivered == 1 and proxy.stats.delivered_texts == ["Paris"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# --- (d) three processes, one cache, the same request -----------------------------------------------

def _same_request(cache_dir: str, index: int, barrier, results) -> None:
    """One process of the race: a fake SDK call that answers after 0.3 s * index with its own text."""
    def create(**body):
        time.sleep(0.3 * index)
        return {"type": "message", "role": "assistant", "model": "fake",
                "content": [{"type": "text", "text": f"reply from process {index}"}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 4}}

    client = LLMClient(model="fake-endpoint-model", base_url="http://127.0.0.1:9", api_key="x",
                       cache=LLMCache(cache_dir), create=create)
    barrier.wait(timeout=30)  # all three miss the cache before anyone has stored
    reply = client.complete(system="Be terse.", messages=QUESTION, role="task", max_tokens=8)
    results.put((index, reply.text, reply.cached))


def test_three_processes_sharing_a_cache_all_get_the_first_stored_reply(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_same_request, args=(str(tmp_path), i, barrier, results)) for i in range(3)]
    for p in procs:
        p.start()
    try:
        got = sorted(results.get(timeout=60) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in procs)
    entries = list(cache_entries(tmp_path).values())
    assert len(entries) == 1
    stored = entries[0]["reply"]["text"]
    assert stored == "reply from process 0"      # the first writer (it answered 0.3 s before the others)
    assert [text for _, text, _ in got] == [stored] * 3


# --- (e) a killed writer's temp file ---------------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
from polca_nb.llm import LLMCache

def die(*args, **kwargs):  # killed after the temp file is written, before it becomes the entry
    os.kill(os.getpid(), signal.SIGKILL)

os.link = os.replace = os.rename = die
LLMCache(sys.argv[1]).put("ab" * 32, {"reply": {"text": "never stored"}})
"""


def test_a_temp_file_left_by_a_killed_writer_is_cleaned(tmp_path):
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=ROOT, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = list(tmp_path.glob("*/.*.tmp"))
    assert len(left) == 1 and not list(tmp_path.glob("*/*.json"))  # a temp file, no torn entry
    hour_ago = time.time() - 3600
    os.utime(left[0], (hour_ago, hour_ago))
    live = left[0].parent / ".cdcdcdcdcdcdcdcd.live.tmp"   # a writer still at work: must be kept
    live.write_text("{")

    cache = LLMCache(tmp_path)
    assert cache.get("ab" * 32) is None
    cache.put("ef" * 32, {"reply": {"text": "a later write"}})  # the first write of an instance sweeps
    assert not left[0].exists() and live.exists()
    assert [p.name for p in tmp_path.glob("*/*.json")] == ["ef" * 32 + ".json"]

    # the explicit API, for a cache that only reads
    os.utime(live, (hour_ago, hour_ago))
    assert LLMCache(tmp_path).clean_stale_tmp(max_age_s=60) == 1 and not live.exists()
