"""Kill -9 during a live LLM run, 20 times (issue 12).

A worker process (this file run as a script) runs a small real POLCA loop on the short-answer task with
a run dir and an on-disk reply cache, against one embedded llama-server that the test starts and the
workers reach via base_url. The test SIGKILLs the worker at seeded random moments after it has started
its loop, restarts it (it resumes from the run dir), 20 times, then lets it finish. Then an
uninterrupted reference run with the same seed and the (now warm) cache, in a fresh run dir, must make
no live call and write the same event log: every evaluation exactly once, none lost, the same result.
The cache must hold no torn entry.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
KILL_SEED = 20261202
RUN_SEED = 3
BUDGET = 48
KILL_DELAY_S = (0.3, 3.0)
"""Uniform range of the delay between the worker's "started" line (its loop is about to run) and the
SIGKILL: a real call here takes 0.2-3 s, so kills land inside task, proposer and summarizer calls,
cache writes and checkpoints."""


# --- the worker ------------------------------------------------------------------------------------

def worker(url: str, cache_dir: Path, run_dir: Path, result_path: Path) -> None:
    from polca_nb.benchmarks.short_answer import ShortAnswerEvaluator, short_answer_problem
    from polca_nb.budget import Budget
    from polca_nb.llm import LLMCache, LLMClient, RetryPolicy, config
    from polca_nb.roles import LLMProposer, LLMSummarizer
    from polca_nb.runner import PolcaConfig, polca

    llm = LLMClient(model=config.LOCAL_MODEL_NAME, base_url=url, api_key=config.LOCAL_API_KEY,
                    cache=LLMCache(cache_dir), timeout_s=60, max_concurrency=1,
                    retry=RetryPolicy(max_attempts=4, initial_s=0.05, max_s=0.5, jitter=0.0))
    problem = short_answer_problem(llm, n_train=6, n_test=2, seed=RUN_SEED)
    problem = replace(problem, evaluator=ShortAnswerEvaluator(llm, temperature=0.5, max_tokens=16))
    proposer = LLMProposer(llm, max_tokens=32, temperature=0.8, objective=problem.objective)
    summarizer = LLMSummarizer(llm, max_tokens=32)
    cfg = PolcaConfig(Budget(max_metric_calls=BUDGET), num_candidates=2, batch_size=2, eps=0.0)
    print("started", flush=True)
    res = polca(problem, proposer, cfg, summarizer=summarizer, seed=RUN_SEED, run_dir=run_dir, progress=False)
    out = {"stop_reason": res.stop_reason, "error": getattr(res, "error", None),
           "metric_calls": res.spent.metric_calls, "best_id": res.best.id, "best_params": res.best.params,
           "memory": {str(c.id): [c.params, [r.to_dict() for r in c.rollouts]] for c in res.memory},
           "ledger": llm.ledger.snapshot()["usage"]["total"]}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, sort_keys=True))
    os.replace(tmp, result_path)


# --- the test --------------------------------------------------------------------------------------

def _start(url: str, cache_dir: Path, run_dir: Path, result: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, __file__, url, str(cache_dir), str(run_dir), str(result)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_started(proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == "started":
                return
            if line == "":  # EOF: it died
                break
    pytest.fail(f"worker {proc.pid} did not start its loop (rc={proc.poll()})")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def _generating(url: str) -> bool:
    """llama-server's /slots: is a slot decoding a request right now (the kill lands inside a live call)?"""
    try:
        with urllib.request.urlopen(f"{url}/slots", timeout=2) as response:
            return any(slot.get("is_processing") for slot in json.load(response))
    except (OSError, ValueError):
        return False


def _wait_generating(url: str, proc: subprocess.Popen, after_s: float, timeout_s: float = 120.0) -> int:
    """Wait `after_s`, then until the server is generating (raising TimeoutExpired for the kill), or
    return the worker's exit code if it ends first."""
    deadline = time.monotonic() + after_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.02)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        if _generating(url):
            raise subprocess.TimeoutExpired(proc.args, after_s)
        time.sleep(0.02)
    raise subprocess.TimeoutExpired(proc.args, timeout_s)


def _evaluation_keys(events: list[dict]) -> list[tuple]:
    return [(e["step"], e["source"], e["candidate_id"], e["example_id"], e["seed"])
            for e in events if e["type"] == "evaluation"]


def _read_log(run_dir: Path) -> list[dict]:
    from polca_nb.runlog import read_events

    return read_events(run_dir / "events.jsonl")


@pytest.mark.slow
@pytest.mark.server
def test_kill_9_at_random_points_of_a_live_llm_run_loses_and_repeats_nothing(tmp_path):
    from polca_nb.llm import LocalServer, ServerSettings

    cache_dir, run_dir, result = tmp_path / "cache", tmp_path / "run", tmp_path / "result.json"
    rng = np.random.default_rng(KILL_SEED)
    server = LocalServer(ServerSettings(log_dir=tmp_path, threads=1, extra_args=("--slots",)))
    kills, progress, live, proc = [], [], 0, None
    started = time.perf_counter()
    try:
        url = server.start()
        for _ in range(KILLS):
            proc = _start(url, cache_dir, run_dir, result)
            _wait_started(proc)
            delay = float(rng.uniform(*KILL_DELAY_S))
            # Every other kill waits for the server to be generating a reply first, so kills land inside
            # live LLM calls however fast or slow this machine is; the others fall at a random moment.
            wait_for_call = len(kills) % 2 == 0
            try:
                rc = proc.wait(timeout=delay) if not wait_for_call else _wait_generating(url, proc, delay)
            except subprocess.TimeoutExpired:
                live += _generating(url)
                os.kill(proc.pid, signal.SIGKILL)
                rc = proc.wait(timeout=30)
            _stop(proc)
            assert rc == -signal.SIGKILL, f"the worker exited with {rc} before its kill (budget too small?)"
            kills.append(round(delay, 2))
            # what the log holds after each kill: complete lines only, no evaluation twice
            keys = _evaluation_keys(_read_log(run_dir))
            assert len(keys) == len(set(keys)), [k for k, n in Counter(keys).items() if n > 1]
            progress.append(len(keys))
        proc = _start(url, cache_dir, run_dir, result)
        _wait_started(proc)
        assert proc.wait(timeout=300) == 0
        _stop(proc)
        killed_s = time.perf_counter() - started
        resumed = json.loads(result.read_text())

        # The reference: uninterrupted, same seed, the cache the killed runs left (warm), a fresh run dir.
        result.unlink()
        proc = _start(url, cache_dir, tmp_path / "reference", result)
        _wait_started(proc)
        assert proc.wait(timeout=300) == 0
        _stop(proc)
        reference = json.loads(result.read_text())
    finally:
        if proc is not None:
            _stop(proc)
        server.stop()
    assert not server.is_running()

    events, reference_events = _read_log(run_dir), _read_log(tmp_path / "reference")
    keys = _evaluation_keys(events)
    print(f"\n[kill-resume] {len(kills)} kills at {kills} s after start ({live} while the server was generating "
          f"a reply); evaluations logged after each kill {progress}; final {len(keys)}; killed+resumed run "
          f"{killed_s:.0f} s")
    assert len(kills) == KILLS
    assert live >= KILLS // 4, f"only {live} of {KILLS} kills landed inside a live LLM call"
    assert progress[-1] < BUDGET  # the last kill still interrupted the search
    assert resumed["stop_reason"] == "max_metric_calls" and resumed["error"] is None
    assert reference["ledger"]["calls"] == 0 and reference["ledger"]["errors"] == 0  # all from the cache
    assert len(keys) == len(set(keys)) == resumed["metric_calls"] == BUDGET           # none repeated
    assert keys == _evaluation_keys(reference_events)                                 # none lost
    assert events == reference_events
    assert {k: v for k, v in resumed.items() if k != "ledger"} == {k: v for k, v in reference.items() if k != "ledger"}
    assert not (run_dir / "replay.jsonl").exists()
    json.loads((run_dir / "checkpoint.json").read_text())
    entries = sorted(cache_dir.glob("*/*.json"))
    assert entries
    for path in entries:  # no torn entry
        entry = json.loads(path.read_text(encoding="utf-8"))
        assert entry["reply"]["content"], path
    print(f"[kill-resume] cache: {len(entries)} entries, {len(list(cache_dir.glob('*/.*.tmp')))} temp files "
          f"left by killed writers (younger than the stale-temp age, so kept)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="kill-resume worker: one small real POLCA loop")
    parser.add_argument("url")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("result", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    worker(args.url, args.cache_dir, args.run_dir, args.result)
