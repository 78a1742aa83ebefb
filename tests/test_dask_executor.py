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
)
from polca_nb.executors.gpu import GPU, kernel_cluster, kernel_evaluator, visible_gpus  # noqa: E402
from polca_nb.executors.loads import DieOnce, SleepEvaluator  # noqa: E402
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


def run(problem, executor=None, budget=60, seed=0):
    config = PolcaConfig(Budget(max_metric_calls=budget), eps=0.5)
    return polca(problem, ScriptedProposer(), config, embedder=SkillsEmbedder(), summarizer=SkillsSummarizer(),
                 seed=seed, executor=executor, progress=False)


def evaluations(result):
    return [e for e in result.events if e["type"] == "evaluation"]


# -- the run is the serial run ---------------------------------------------------------------------------

def test_polca_on_process_workers_logs_the_serial_runs_events(client):
    problem = skills_problem()
    serial = run(problem)
    on_cluster = run(problem, executor=DaskExecutor(client))
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

def test_a_worker_killed_mid_iteration_loses_no_evaluation(tmp_path):
    problem = skills_problem()
    serial = run(problem)
    victim = evaluations(serial)[3]["example_id"]  # met in iteration 0's exploration
    marker = tmp_path / "worker-died"
    dying = replace(problem, evaluator=DieOnce(SkillEvaluator(), victim, str(marker)))
    before = worker_processes()
    cluster = start_cluster()
    dask_client = Client(cluster)
    try:
        setup = WorkerSetup(env={"POLCA_WORKER_SETUP_TEST": "replaced"})
        result = run(dying, executor=DaskExecutor(dask_client, setup=setup))
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
    attempt = DaskExecutor._result(executor, call, ("job", 0), [LostFuture()], 0)
    assert isinstance(attempt, Attempt) and attempt.raised and attempt.error_type == "KilledWorker"


# -- what ships, what stays --------------------------------------------------------------------------------

def test_calls_that_cannot_ship_run_in_the_parent(client):
    seen = []

    def closure(i):  # a closure over this process's state, like the proposal calls
        seen.append(os.getpid())
        return i * 2

    assert list(DaskExecutor(client).map(closure, [1, 2, 3])) == [2, 4, 6]
    assert set(seen) == {os.getpid()}


def test_evaluations_run_on_the_workers_in_input_order(client):
    candidate = Candidate(0, {"instructions": "answer carefully"})
    examples = skills_problem().trainset[:8]
    seeds = list(np.random.default_rng(3).integers(0, 1000, size=len(examples)))
    evaluator = SleepEvaluator(0.0)

    def rollouts(executor):
        return evaluate_examples(candidate, examples, seeds, evaluator=evaluator, step=0, source="explore",
                                 log_=RunLog(), executor=executor)

    assert rollouts(DaskExecutor(client)) == rollouts(SerialExecutor())
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
