"""DaskExecutor: POLCA's evaluations on a LocalCluster of process workers.

The run's process logs and counts every evaluation, so a run on the cluster must log exactly the
serial run's events for the same seed, even when a worker dies under a task. No assert here depends
on timing; every cluster a test starts is closed by its fixture, and the fixture checks that no
worker process outlives it.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import replace

import numpy as np
import psutil
import pytest

distributed = pytest.importorskip("distributed")

from distributed import Client, KilledWorker, LocalCluster  # noqa: E402

from polca_nb.errors import FatalError  # noqa: E402
from polca_nb.budget import Budget  # noqa: E402
from polca_nb.evaluation import evaluate_examples  # noqa: E402
from polca_nb.executors import (  # noqa: E402
    Attempt,
    DaskAddress,
    DaskExecutor,
    EvaluatorCall,
    OnWorker,
    WorkerSetup,
    forget_worker_resources,
    worker_ledger,
)
from polca_nb.executors.chunks import ChunkCall, check_policy, chunk_size_for, plan_chunks  # noqa: E402
from polca_nb.executors.gpu import GPU, kernel_cluster, kernel_evaluator, visible_gpus  # noqa: E402
from polca_nb.executors.loads import DieOnce, SleepEvaluator, fake_llm_evaluator  # noqa: E402
from polca_nb.executors.usage import UsageRecord, WorkerLedger, record_usage, usage_tab  # noqa: E402
from polca_nb.llm.ledger import Ledger  # noqa: E402
from polca_nb.protocols import SerialExecutor, as_executor  # noqa: E402
from polca_nb.runlog import RunLog  # noqa: E402
from polca_nb.runner import PolcaConfig, polca  # noqa: E402
from polca_nb.synthetic import ScriptedProposer, SkillEvaluator, SkillsEmbedder, SkillsSummarizer, skills_problem  # noqa: E402
from polca_nb.types import Candidate  # noqa: E402


def start_cluster(n_workers: int = 2) -> LocalCluster:
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")


def worker_processes() -> set[int]:
    """This process's live children, less multiprocessing's resource tracker (one per process, kept)."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def close_and_check(cluster: LocalCluster, client: Client, children_before: set[int]) -> None:
    """Close client and cluster; no process they started may be left (waits up to 20 s for exits)."""
    client.close()
    cluster.close()
    deadline = time.monotonic() + 20
    while True:
        left = worker_processes() - children_before
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == set(), f"cluster processes left running: {sorted(left)}"


@pytest.fixture(scope="module")
def client():
    before = worker_processes()
    cluster = start_cluster()
    dask_client = Client(cluster)
    yield dask_client
    close_and_check(cluster, dask_client, before)


def run(problem, executor=None, budget=60, seed=0, max_usd=None, llm=None):
    config = PolcaConfig(Budget(max_metric_calls=budget, max_usd=max_usd), eps=0.5)
    return polca(problem, ScriptedProposer(), config, embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(),
                 seed=seed, executor=executor, progress=False, llm=llm)


def evaluations(result):
    return [e for e in result.events if e["type"] == "evaluation"]


# -- the run is the serial run ---------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 3, "auto"])
def test_polca_on_process_workers_logs_the_serial_runs_events(client, chunk_size):
    problem = skills_problem()
    serial = run(problem)
    on_cluster = run(problem, executor=DaskExecutor(client, chunk_size=chunk_size))
    assert on_cluster.events == serial.events
    assert on_cluster.best.params == serial.best.params
    assert len(evaluations(on_cluster)) == on_cluster.spent.metric_calls == serial.spent.metric_calls


@pytest.mark.parametrize("budget", [13, 37])
def test_budget_is_never_exceeded_on_the_cluster(client, budget):
    result = run(skills_problem(), executor=DaskExecutor(client), budget=budget, seed=1)
    assert len(evaluations(result)) == result.spent.metric_calls <= budget
    assert result.stop_reason == "max_metric_calls"


def test_executor_given_as_an_address_or_a_client(client):
    problem = skills_problem()
    serial = run(problem, budget=30)
    address = "dask://" + client.scheduler.address.removeprefix("tcp://")
    assert run(problem, executor=address, budget=30).events == serial.events
    assert run(problem, executor=client, budget=30).events == serial.events
    assert client.status == "running"  # a client the caller gave stays open after the run
    assert isinstance(as_executor(address), DaskAddress) and isinstance(as_executor(client), DaskExecutor)
    with pytest.raises(ValueError, match="dask://host:port"):
        as_executor("tcp://somewhere:8786")


def test_an_address_executor_closes_the_client_it_opened(client):
    executor = DaskAddress("dask://" + client.scheduler.address.removeprefix("tcp://"))
    assert list(executor.map(EvaluatorCall(SkillEvaluator(), {"instructions": "x"}), [])) == []
    opened = executor.connected().client
    executor.close()
    assert opened.status == "closed" and client.status == "running"


# -- a worker dying -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 4])
def test_a_worker_killed_mid_iteration_loses_no_evaluation(tmp_path, chunk_size):
    problem = skills_problem()
    serial = run(problem)
    victim = evaluations(serial)[3]["example_id"]  # met in iteration 0's exploration; with 4 per task, the
    # worker dies on its chunk's last evaluation, after three ran: the chunk runs again as a whole
    marker = tmp_path / "worker-died"
    dying = replace(problem, evaluator=DieOnce(SkillEvaluator(), victim, str(marker)))
    before = worker_processes()
    cluster = start_cluster()
    dask_client = Client(cluster)
    try:
        setup = WorkerSetup(env={"POLCA_WORKER_SETUP_TEST": "replaced"})
        result = run(dying, executor=DaskExecutor(dask_client, setup=setup, chunk_size=chunk_size))
        dask_client.wait_for_workers(2, timeout=120)
        after = dask_client.run(os.getenv, "POLCA_WORKER_SETUP_TEST")  # the replacement ran the setup too
    finally:
        close_and_check(cluster, dask_client, before)
    assert marker.exists()  # a worker did die mid-task
    assert list(after.values()) == ["replaced", "replaced"]
    assert result.events == serial.events  # the task ran again elsewhere; nothing lost, nothing twice
    keys = [(e["step"], e["source"], e["candidate_id"], e["example_id"], e["seed"]) for e in evaluations(result)]
    assert len(keys) == len(set(keys)) == result.spent.metric_calls


class LostFuture:
    """A future whose task killed every worker it ran on."""

    key = "EvaluatorCall-lost-0"

    class last_worker:  # noqa: N801 - stands for the scheduler's WorkerState
        address = "tcp://127.0.0.1:1"

    def result(self):
        raise KilledWorker(self.key, self.last_worker, allowed_failures=3)

    def done(self):
        return True


def test_a_task_that_keeps_killing_workers_comes_back_as_a_crashing_program():
    call = EvaluatorCall(SkillEvaluator(), {"instructions": "x"})
    executor = DaskExecutor.__new__(DaskExecutor)  # no client needed to read one future
    executor.resubmits = 0
    [attempt] = executor._chunk_result(call, [("job", 0)], range(0, 1), [LostFuture()], 0)
    assert isinstance(attempt, Attempt) and attempt.raised and attempt.error_type == "KilledWorker"


class ChunkFuture:
    """A finished task run in this process, unless it holds `killer` among other calls: then it
    killed every worker it ran on (a chunk with one deadly evaluation)."""

    def __init__(self, call, key, killer):
        self.call, self.key, self.killer = call, key, killer

    def result(self):
        jobs = [job for job in self.call.items]
        if any(example.id == self.killer for example, _ in jobs):
            raise KilledWorker(self.key, LostFuture.last_worker, allowed_failures=3)
        return self.call()


class ChunkClient:
    """Stands for a distributed.Client: `map` returns a ChunkFuture per chunk."""

    def __init__(self, killer):
        self.killer, self.submitted = killer, []

    def map(self, fn, calls, key, pure, resources):
        self.submitted.append([len(c.items) for c in calls])
        return [ChunkFuture(c, k, self.killer) for c, k in zip(calls, key)]


def test_a_chunk_that_keeps_killing_workers_is_split_so_only_the_killer_crashes():
    examples = skills_problem().trainset[:3]
    jobs = [(ex, i) for i, ex in enumerate(examples)]
    call = EvaluatorCall(SkillEvaluator(), {"instructions": "answer carefully"})
    stub = ChunkClient(killer=examples[1].id)
    executor = DaskExecutor.__new__(DaskExecutor)
    executor.client, executor.resubmits = stub, 0
    lost = LostFuture()
    attempts = executor._chunk_result(call, jobs, range(0, 3), [lost], 0)
    assert stub.submitted == [[1, 1, 1]]  # the chunk ran again, one call per task
    assert [a.raised for a in attempts] == [False, True, False]
    assert [a.value for a in attempts[::2]] == [call(jobs[0]).value, call(jobs[2]).value]


# -- chunks ----------------------------------------------------------------------------------------------

def test_chunks_are_contiguous_and_cover_every_job_once():
    assert plan_chunks(10, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    assert plan_chunks(3, 8) == [range(0, 3)] and plan_chunks(0, 2) == []
    assert chunk_size_for(32, slots=2, policy="auto") == 8  # ceil(32 / (2 workers x 2))
    assert chunk_size_for(3, slots=8, policy="auto") == 1 and chunk_size_for(32, slots=2, policy=5) == 5
    assert ChunkCall(lambda x: x * 2, (1, 2, 3))() == [2, 4, 6]
    for bad in (0, -1, 2.5, True, "big"):
        with pytest.raises(ValueError, match="chunk_size"):
            check_policy(bad)


def test_auto_chunks_follow_the_worker_threads_and_keep_gpu_calls_one_per_task(client):
    executor = DaskExecutor(client)  # 2 workers x 1 thread
    call = EvaluatorCall(SkillEvaluator(), {})
    assert executor.chunk_size_for(call, 32) == 8 and executor.chunk_size_for(call, 3) == 1
    assert executor.chunk_size_for(EvaluatorCall(kernel_evaluator(backend="cuda"), {}), 32) == 1
    assert DaskExecutor(client, chunk_size=5).chunk_size_for(call, 32) == 5


# -- what ships, what stays --------------------------------------------------------------------------------

def test_calls_that_cannot_ship_run_in_the_parent(client):
    seen = []

    def closure(i):  # a closure over this process's state, like the proposal calls
        seen.append(os.getpid())
        return i * 2

    assert list(DaskExecutor(client).map(closure, [1, 2, 3])) == [2, 4, 6]
    assert set(seen) == {os.getpid()}


@pytest.mark.parametrize("chunk_size", [1, 3, "auto"])
def test_evaluations_run_on_the_workers_in_input_order(client, chunk_size):
    candidate = Candidate(0, {"instructions": "answer carefully"})
    examples = skills_problem().trainset[:8]
    seeds = list(np.random.default_rng(3).integers(0, 1000, size=len(examples)))
    evaluator = SleepEvaluator(0.0)

    def rollouts(executor):
        return evaluate_examples(candidate, examples, seeds, evaluator=evaluator, step=0, source="explore",
                                 log_=RunLog(), executor=executor)

    assert rollouts(DaskExecutor(client, chunk_size=chunk_size)) == rollouts(SerialExecutor())
    pids = client.run(os.getpid)
    assert os.getpid() not in pids.values()


def test_on_worker_ships_its_factory_not_the_built_evaluator(client):
    forget_worker_resources()
    evaluator = OnWorker(SleepEvaluator, {"seconds": 0.0})
    built = evaluator.built()
    assert evaluator.built() is built  # once per process
    shipped = pickle.loads(pickle.dumps(evaluator))
    assert shipped == evaluator and "built" not in vars(shipped)
    problem = replace(skills_problem(), evaluator=evaluator)
    serial = run(replace(problem, evaluator=SleepEvaluator(0.0)), budget=30)
    assert run(problem, executor=DaskExecutor(client), budget=30).events == serial.events


def test_worker_setup_runs_on_every_worker(client):
    DaskExecutor(client, setup=WorkerSetup(env={"POLCA_WORKER_SETUP_TEST": "yes"}, prepare=forget_worker_resources))
    values = client.run(os.getenv, "POLCA_WORKER_SETUP_TEST")
    assert set(values.values()) == {"yes"} and len(values) == 2


# -- LLM spend on the workers --------------------------------------------------------------------------------

def test_a_worker_ledger_tabs_each_calls_records_in_its_own_thread():
    ledger = WorkerLedger()
    ledger.record_call("task", input_tokens=5, output_tokens=1, usd=0.25, latency_s=0.0)  # no tab open
    with usage_tab() as tab:
        ledger.record_call("task", input_tokens=7, output_tokens=2, usd=0.5, latency_s=0.1)
        ledger.record_fault("task", "429")
        ledger.record_error("task", latency_s=0.2, retries=3)
    assert [r.kind for r in tab] == ["call", "fault", "error"] and tab[0].input_tokens == 7
    parent = Ledger()
    with parent.track() as tracked:
        record_usage(parent, tab + [UsageRecord("request", "task", 7, 2, prompt_chars=30)])
    assert parent.usage("task").calls == 1 and parent.usage("task").usd == 0.5
    assert parent.usage("task").errors == 1 and parent.faults() == {"429": 1}
    assert tracked.usage("task").input_tokens == 7 and tracked.usage("task").prompt_chars == 30
    assert ledger.usage("task").calls == 2  # the worker's own totals are kept as before


def worker_task_calls():
    return worker_ledger().usage("task").calls


def test_the_run_ledger_gets_the_workers_calls_and_tokens(client):
    forget_worker_resources()
    client.run(forget_worker_resources)
    candidate = Candidate(0, {"instructions": "answer carefully"})
    examples = skills_problem().trainset[:8]
    evaluator = OnWorker(fake_llm_evaluator, {"max_tokens": 4})
    kwargs = dict(evaluator=evaluator, step=0, source="explore", log_=RunLog())
    evaluate_examples(candidate, examples, list(range(8)), **kwargs)  # in this process, on its worker_ledger
    expected = worker_ledger().usage("task")
    parent = Ledger()
    with parent.track() as tracked:
        evaluate_examples(candidate, examples, list(range(8)), executor=DaskExecutor(client, ledger=parent,
                                                                                     chunk_size=3), **kwargs)
    got = parent.usage("task")
    assert (got.calls, got.input_tokens, got.output_tokens) == (8, expected.input_tokens, expected.output_tokens)
    assert got.usd == pytest.approx(expected.usd) and got.usd > 0
    assert tracked.requests() == {"task": 8}
    assert sum(client.run(worker_task_calls).values()) == 8  # each call made once, on a worker


def test_budget_max_usd_counts_the_workers_spend(client):
    problem = replace(skills_problem(), evaluator=OnWorker(fake_llm_evaluator, {"max_tokens": 4}))
    parent = Ledger()
    result = run(problem, executor=DaskExecutor(client, ledger=parent), budget=500, max_usd=0.002, llm=parent)
    assert result.stop_reason == "max_usd"
    assert sum(result.usd.values()) == pytest.approx(parent.usage("task").usd) and parent.usage("task").usd > 0.002
    stopped = result.events[-1]
    assert stopped["type"] == "stopped" and stopped["reason"] == "max_usd"
    # every logged evaluation was paid for; calls in flight when the limit passed were paid, not logged
    assert len(evaluations(result)) <= parent.usage("task").calls


# -- KernelBench: GPU workers, cpu workers -------------------------------------------------------------------

def test_kernel_evaluations_pick_the_cpu_backend_on_a_cluster_without_gpus(client):
    evaluator = kernel_evaluator(client)
    assert evaluator.kwargs["backend"] == "cpu" and evaluator.worker_resources is None
    forced = kernel_evaluator(backend="cuda")
    assert forced.kwargs["backend"] == "cuda" and dict(forced.worker_resources) == {GPU: 1.0}
    assert EvaluatorCall(forced, {}).resources == {GPU: 1.0}


def test_each_gpu_times_under_its_own_lock(monkeypatch):
    from polca_nb.benchmarks.kernelbench.evaluate import timing_lock_path

    cpu_lock = timing_lock_path("cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    gpu0 = timing_lock_path("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert len({cpu_lock, gpu0, timing_lock_path("cuda")}) == 3
    assert timing_lock_path("cpu") == cpu_lock


@pytest.mark.slow
@pytest.mark.skipif(visible_gpus() == 0, reason="needs a CUDA GPU: torch sees none on this machine "
                    "(torch.cuda.is_available() is False or torch is not installed)")
def test_kernel_evaluations_run_on_gpu_workers_one_per_gpu():
    from polca_nb.benchmarks.kernelbench import load_tasks, reference_as_candidate

    task = next(t for t in load_tasks() if t.problem_id == 1)
    before = worker_processes()
    cluster = kernel_cluster(n_gpus=1, dashboard_address=":0")
    dask_client = Client(cluster)
    try:
        executor = DaskExecutor(dask_client)
        assert [w["resources"] for w in executor.workers().values()] == [{GPU: 1.0}]
        assert dask_client.run(os.getenv, "CUDA_VISIBLE_DEVICES").popitem()[1] == "0"
        evaluator = kernel_evaluator(dask_client, num_perf_trials=5, timeout_s=600.0)
        assert evaluator.kwargs["backend"] == "cuda"
        params = {"kernel": reference_as_candidate(task, "cuda")}
        rollouts = evaluate_examples(Candidate(0, params), [task.to_example()] * 2, [1, 2], evaluator=evaluator,
                                     step=0, source="explore", log_=RunLog(), executor=executor)
    finally:
        close_and_check(cluster, dask_client, before)
    assert all(r.feedback.startswith("SUCCESS") and r.score > 0 for r in rollouts), [r.feedback for r in rollouts]


class DroppingExecutor:
    """An executor that loses the last result of every map (as a broken distributed one could)."""

    def map(self, fn, items):
        return iter([fn(item) for item in items][:-1])


def test_an_executor_that_loses_a_result_stops_the_run_with_a_named_error():
    with pytest.raises(FatalError, match=r"DroppingExecutor.map returned fewer than the \d+ results asked for"):
        run(skills_problem(), executor=DroppingExecutor())
