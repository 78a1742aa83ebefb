"""KernelBench tasks, CPU shape scaling, prompts, fast_p and result/feedback logic (no subprocesses)."""

from __future__ import annotations

import ast
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from polca_nb.benchmarks.kernelbench import (  # noqa: E402
    CPU_SHAPES,
    build_prompt,
    fast_p,
    fast_p_curves,
    load_prompt_examples,
    load_tasks,
    reference_as_candidate,
    sample_source,
    shape_table,
    status_of,
    substitute_constants,
    task_examples,
)
from polca_nb.benchmarks.kernelbench import evaluate as ev  # noqa: E402
from polca_nb.benchmarks.kernelbench import feedback as fb  # noqa: E402
from polca_nb.benchmarks.kernelbench.evaluator import KernelBenchEvaluator  # noqa: E402
from polca_nb.benchmarks.kernelbench.presets import PRESETS, KernelBenchSetup, with_overrides  # noqa: E402
from polca_nb.benchmarks.kernelbench.shapes import module_constants  # noqa: E402
from polca_nb.data import require  # noqa: E402

try:
    require("kernelbench/level1_matmul.json", "see docs")
except FileNotFoundError:
    pytest.skip("KernelBench data not available", allow_module_level=True)


@pytest.fixture(scope="module")
def tasks():
    return load_tasks()


def test_sixteen_tasks_in_paper_index_order(tasks):
    assert [t.idx for t in tasks] == list(range(16))
    # Paper order is lexicographic by upstream file name; problems 4 and 5 are not matmuls here.
    assert [t.name for t in tasks] == sorted(t.name for t in tasks)
    assert {t.problem_id for t in tasks} == set(range(1, 19)) - {4, 5}
    assert all(t.level == 1 and "class Model" in t.ref_arch_src for t in tasks)
    assert [e.id for e in task_examples(tasks)] == [f"kernelbench/{i}" for i in range(16)]


def test_shape_table_paper_values_match_the_reference_sources(tasks):
    for task in tasks:
        scaling = CPU_SHAPES[task.problem_id]
        assert scaling.name == task.name
        assert module_constants(task.ref_arch_src, list(scaling.paper)) == dict(scaling.paper)


def test_cpu_source_assigns_scaled_constants_and_nothing_else_changes(tasks):
    for task in tasks:
        cpu = task.source("cpu")
        assert module_constants(cpu, list(task.scaling.cpu)) == dict(task.scaling.cpu)
        assert task.source("cuda") == task.ref_arch_src
        changed = [(a, b) for a, b in zip(task.ref_arch_src.splitlines(), cpu.splitlines()) if a != b]
        assert len(cpu.splitlines()) == len(task.ref_arch_src.splitlines())
        changed_names = {b.split(" = ")[0] for _, b in changed}
        differing = {k for k in task.scaling.cpu if task.scaling.cpu[k] != task.scaling.paper[k]}
        assert differing <= changed_names <= set(task.scaling.cpu)


def test_substitute_constants_rejects_missing_or_non_constant_names():
    src = "N = 4\nM = foo()\n"
    assert substitute_constants(src, {"N": 2}) == "N = 2\nM = foo()\n"
    with pytest.raises(ValueError, match="'K'"):
        substitute_constants(src, {"K": 2})
    with pytest.raises(ValueError, match="integer constant"):
        substitute_constants(src, {"M": 2})
    with pytest.raises(ValueError, match="exactly once"):
        substitute_constants("N = 1\nN = 2\n", {"N": 3})


def test_shape_table_scales_inputs_down_and_shapes_follow_the_constants(tasks):
    rows = shape_table(tasks)
    assert len(rows) == 16
    for row in rows:
        assert row.cpu_input_mb < row.paper_input_mb or row.paper_input_mb <= 16
        assert row.cpu_input_mb <= 16  # 64 x 32768 float32 x 2 (problem 6) is the largest
    square = next(r for r in rows if r.problem_id == 1)
    assert square.paper_input_shapes == [(4096, 4096)] * 2 and square.cpu_input_shapes == [(512, 512)] * 2
    tall = next(r for r in rows if r.problem_id == 9)
    assert tall.paper_output_shape == (32768, 32768) and tall.cpu_output_shape == (2048, 2048)


def test_every_cpu_reference_is_small_enough_to_time_on_two_cores(tasks):
    # A work bound, not a wall-clock one (a loaded CI box must not fail it): at most 1 GFLOP per
    # forward pass, well under a second on two cores; bench/kernel_eval.py measures the time.
    from torch.utils.flop_counter import FlopCounterMode

    for task in tasks:
        namespace: dict = {}
        exec(task.source("cpu"), namespace)
        torch.manual_seed(0)
        inputs = namespace["get_inputs"]()
        model = namespace["Model"](*namespace["get_init_inputs"]())
        with FlopCounterMode(display=False) as counter:
            model(*inputs)
        flops = counter.get_total_flops()
        assert 0 < flops <= 1e9, (task.name, flops)
        assert sum(t.numel() for t in inputs if isinstance(t, torch.Tensor)) <= 16 * 2**20, task.name


def test_cpu_prompt_has_statement_example_scaled_arch_and_instruction(tasks):
    task = next(t for t in tasks if t.problem_id == 1)
    prompt = build_prompt(task, "cpu")
    assert task.source("cpu").strip() in prompt
    assert "N = 512" in prompt and "2048 * 2" not in prompt
    assert sample_source("cpu_example_new_add").strip() in prompt
    assert ".cuda()" not in prompt and "ModelNew" in prompt and "load_inline" in prompt
    assert not any(p in prompt for p in ("$example_arch", "$example_new_arch", "$arch"))


def test_cuda_prompt_uses_paper_source_and_kernelbench_example(tasks):
    task = next(t for t in tasks if t.problem_id == 1)
    prompt = build_prompt(task, "cuda")
    example_arch, example_new = load_prompt_examples()
    assert task.ref_arch_src.strip() in prompt
    assert example_arch.strip() in prompt and example_new.strip() in prompt
    assert "__global__" in prompt and "ModelNew" in prompt
    with pytest.raises(ValueError, match="backend"):
        build_prompt(task, "tpu")


def test_bundled_sources_are_valid_python_defining_modelnew(tasks):
    for name in ("cpu_example_new_add", "cpp_square_matmul"):
        tree = ast.parse(sample_source(name))
        assert any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body)
    tree = ast.parse(reference_as_candidate(tasks[0]))
    assert any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body)


# --- fast_p -------------------------------------------------------------------------------------

POLCA_BEST = [1.803, 1.072, 10.034, 1.008, 1.000, 1.003, 0.943, 0.035, 1.008, 3.055, 1.007, 0.994,
              1.005, 1.004, 1.010, 4.012]  # polca-method.md 5.4: reported fast_1.0 = 12/16, fast_0.5 = 15/16


def test_fast_p_matches_the_paper_counts():
    assert fast_p(POLCA_BEST, 1.0) == 12 / 16
    assert fast_p(POLCA_BEST, 0.5) == 15 / 16


def test_fast_p_is_strict_and_rejects_bad_input():
    assert fast_p([1.0, 1.0001, 0.0], 1.0) == pytest.approx(1 / 3)
    assert fast_p([0.0, float("nan")], 0.0) == 0.0
    with pytest.raises(ValueError, match="p must be"):
        fast_p([1.0], -0.1)
    with pytest.raises(ValueError, match="best_speedups"):
        fast_p([], 1.0)


def test_fast_p_curves_use_running_best_with_nan_and_ragged_steps():
    curves = fast_p_curves([[0.0, 1.5, 0.2], [0.6, math.nan, 2.0], [2.0]], ps=(0.5, 1.0))
    # running best: [0, 1.5, 1.5], [0.6, 0.6, 2.0], [2.0, 2.0, 2.0]
    np.testing.assert_allclose(curves[1.0], [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(curves[0.5], [2 / 3, 1.0, 1.0])


# --- result assembly and feedback (parent side, synthetic worker payloads) ----------------------

BASE = {"task_idx": 9, "backend": "cpu"}


def success_payload(reference, custom):
    return {"compiled": True, "correct": True, "error": None, "runtimes_ms": {"reference": reference, "custom": custom}}


def test_success_payload_gives_mean_ratio_speedup_and_success_feedback():
    result = ev._result_from_payload(success_payload([2.0, 1.5, 100.0], [1.0, 1.0, 0.5]), BASE, {}, cache_hit=False)
    # upstream: mean runtimes rounded to 3 significant figures, 34.5 / 0.833
    assert result.runtime_statistic == "mean" and result.speedup == 34.5 / 0.833
    assert (result.reference_ms, result.custom_ms) == (34.5, 0.833)
    assert result.feedback.startswith("SUCCESS - Score (Speedup): 41.4166x\n")
    assert status_of(result.feedback) == "success" and result.correct and result.compiled


def test_one_outlier_in_five_trials_mean_is_upstreams_speedup_median_the_old_one():
    """The issue's example: a 4 ms outlier among four 1 ms trials gives 1.25 by the mean, 2.00 by the median."""
    payload = success_payload([2.0] * 5, [1.0, 1.0, 4.0, 1.0, 1.0])
    mean = ev._result_from_payload(payload, BASE, {}, cache_hit=False)
    median = ev._result_from_payload(payload, {**BASE, "runtime_statistic": "median"}, {}, cache_hit=False)
    assert mean.speedup == 1.25 and mean.custom_ms == 1.6 and mean.reference_ms == 2.0
    assert mean.feedback.startswith("SUCCESS - Score (Speedup): 1.2500x\n")
    assert median.speedup == 2.0 and median.custom_ms == 1.0 and median.runtime_statistic == "median"
    assert median.feedback.startswith("SUCCESS - Score (Speedup): 2.0000x\n")
    assert mean.summary()["runtime_statistic"] == "mean" and median.summary()["custom_ms"] == 1.0


def test_runtimes_are_rounded_to_three_significant_figures_like_get_timing_stats():
    assert fb.timing_stats([1.0, 1.0, 4.0, 1.0, 1.0]) == {"mean": 1.6, "std": 1.2, "min": 1.0, "max": 4.0,
                                                         "num_trials": 5}
    trials = [0.123456, 0.2345678, 0.1987654, 0.3012345, 0.15]
    numpy_stats = {"mean": float(f"{np.mean(trials):.3g}"), "std": float(f"{np.std(trials):.3g}"),
                   "min": float(f"{np.min(trials):.3g}"), "max": float(f"{np.max(trials):.3g}"),
                   "num_trials": 5}  # upstream KernelBench src/eval.py get_timing_stats
    assert fb.timing_stats(trials) == numpy_stats
    assert fb.runtime_ms([3.14159] * 3) == 3.14 and fb.runtime_ms([3.14159] * 3, "median") == 3.14159
    assert fb.speedup_of([3.14159] * 3, [1.0] * 3) == 3.14
    assert fb.round_significant(12345.678) == 12300.0 and fb.round_significant(0.00123456) == 0.00123
    with pytest.raises(ValueError, match="runtime_statistic must be one of"):
        fb.runtime_ms([1.0], "min")
    with pytest.raises(ValueError, match="at least one timing trial"):
        fb.timing_stats([])


def test_setups_default_to_upstreams_mean_and_name_the_median_option():
    assert PRESETS["paper"].runtime_statistic == "mean" and KernelBenchSetup().runtime_statistic == "mean"
    median = with_overrides(PRESETS["smoke"], runtime_statistic="median")
    assert median.label() == PRESETS["smoke"].label() + "-rtmedian"
    assert median.evaluator().inner.runtime_statistic == "median"
    assert PRESETS["smoke"].evaluator().inner.runtime_statistic == "mean"
    with pytest.raises(ValueError, match="KernelBenchSetup.runtime_statistic"):
        KernelBenchSetup(runtime_statistic="min")
    with pytest.raises(ValueError, match="runtime_statistic"):
        KernelBenchEvaluator(runtime_statistic="max")


def test_feedback_forms_are_the_paper_guides():
    """Headers, blank line and field names of Trace-Bench KernelBench/guide/evaluate.py (benchmarks.md §4)."""
    assert fb.compilation_failure("SyntaxError", "bad (candidate line 1)") == (
        "COMPILATION FAILURE - Score: 0.0\n\nError Type: SyntaxError\nError Message: bad (candidate line 1)")
    assert fb.correctness_failure("IncorrectOutput", "1/1 correctness trials failed") == (
        "CORRECTNESS FAILURE - Score: 0.0\n\nThe kernel compiled but failed correctness tests.\n"
        "Error Type: IncorrectOutput\nError Details: 1/1 correctness trials failed")
    assert fb.performance_failure("RuntimeError", "boom") == (
        "PERFORMANCE FAILURE - Score: 0.0\n\nThe kernel compiled and passed correctness tests, but failed "
        "during performance measurement.\nError Type: RuntimeError\nError: boom")
    assert fb.success(1.25, [1.0, 1.0, 4.0, 1.0, 1.0], [2.0] * 5) == (
        "SUCCESS - Score (Speedup): 1.2500x\n\n"
        "Custom Kernel Runtime: 1.6000 ms\n"
        "Reference Runtime: 2.0000 ms\n"
        "Speedup: 1.2500x\n"
        "Runtime Stats: {'mean': 1.6, 'std': 1.2, 'min': 1.0, 'max': 4.0, 'num_trials': 5}")
    # the former statistic shows the medians it used
    assert "Custom Kernel Runtime: 1.0000 ms\n" in fb.success(2.0, [1.0, 1.0, 4.0, 1.0, 1.0], [2.0] * 5, "median")
    for text, status in ((fb.compilation_failure("E", "m"), "compilation_failure"),
                         (fb.correctness_failure("E", "d"), "correctness_failure"),
                         (fb.performance_failure("E", "m"), "performance_failure"),
                         (fb.success(1.0, [1.0], [1.0]), "success")):
        assert status_of(text) == status
    with pytest.raises(ValueError, match="KernelBench header"):
        status_of("SUCCESS but speedup not available - Score: 0")


@pytest.mark.parametrize("phase,header,fields", [
    ("build", "COMPILATION FAILURE - Score: 0.0", ["Error Type: RuntimeError", "Error Message: boom"]),
    ("correctness", "CORRECTNESS FAILURE - Score: 0.0",
     ["The kernel compiled but failed correctness tests.", "Error Type: RuntimeError", "Error Details: boom"]),
    ("timing", "PERFORMANCE FAILURE - Score: 0.0",
     ["The kernel compiled and passed correctness tests, but failed during performance measurement.",
      "Error Type: RuntimeError", "Error: boom"]),
])
def test_error_payload_maps_phase_to_feedback_form(phase, header, fields):
    payload = {"compiled": phase != "build", "correct": False, "runtimes_ms": {"reference": [], "custom": []},
               "error": {"phase": phase, "type": "RuntimeError", "message": "boom", "oom": False}}
    result = ev._result_from_payload(payload, BASE, {}, cache_hit=False)
    assert result.feedback.split("\n") == [header, ""] + fields and result.speedup == 0.0


def test_error_before_candidate_code_is_a_harness_error():
    payload = {"compiled": False, "error": {"phase": "import_torch", "type": "ImportError", "message": "no torch"}}
    with pytest.raises(ev.KernelEvalError, match="no torch"):
        ev._result_from_payload(payload, BASE, {}, cache_hit=False)


def test_mismatch_payload_reports_trial_counts():
    trials = [{"passed": True, "reason": ""}, {"passed": False, "reason": "output shape mismatch: x"}]
    payload = {"compiled": True, "correct": False, "error": None, "correctness": {"trials": trials},
               "runtimes_ms": {"reference": [], "custom": []}}
    result = ev._result_from_payload(payload, BASE, {}, cache_hit=False)
    assert status_of(result.feedback) == "correctness_failure"
    assert result.feedback.splitlines()[3:] == [
        "Error Type: IncorrectOutput",
        "Error Details: 1/2 correctness trials failed; first failure: output shape mismatch: x"]


# --- correctness check (the worker's function, called in-process) -----------------------------

def load_worker():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_kernelbench_worker_under_test", ev.WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allclose_takes_upstreams_argument_order_rtol_scales_with_the_candidate():
    """torch.allclose(a, b): |a - b| <= atol + rtol * |b|. Upstream calls allclose(reference, candidate)."""
    worker = load_worker()
    reference = torch.tensor([100.0])
    # |diff| 1.015: within 0.01 + 0.01 * 101.015 = 1.020 (rtol on the candidate), not 0.01 + 0.01 * 100 = 1.01
    above = torch.tensor([101.015])
    # |diff| 1.005: within 1.01 (rtol on the reference), not 0.01 + 0.01 * 98.995 = 0.99995 (on the candidate)
    below = torch.tensor([98.995])
    check = worker._check_output
    assert check(torch, reference, above, 1e-2, 1e-2)[0] is True  # the default is upstream's order
    assert check(torch, reference, above, 1e-2, 1e-2, "reference_first")[0] is True
    assert check(torch, reference, above, 1e-2, 1e-2, "candidate_first")[0] is False
    assert check(torch, reference, below, 1e-2, 1e-2, "reference_first")[0] is False
    assert check(torch, reference, below, 1e-2, 1e-2, "candidate_first")[0] is True
    assert torch.allclose(reference, above, atol=1e-2, rtol=1e-2)  # what upstream's eval computes
    with pytest.raises(ValueError, match="allclose_order"):
        check(torch, reference, above, 1e-2, 1e-2, "either")


def test_allclose_order_option_is_validated_and_named_in_the_setup():
    assert ev.ALLCLOSE_ORDERS == ("reference_first", "candidate_first")
    assert PRESETS["paper"].allclose_order == "reference_first" == KernelBenchSetup().allclose_order
    old = with_overrides(PRESETS["smoke"], allclose_order="candidate_first")
    assert old.label() == PRESETS["smoke"].label() + "-accandidate_first"
    assert old.evaluator().inner.allclose_order == "candidate_first"
    with pytest.raises(ValueError, match="KernelBenchSetup.allclose_order"):
        KernelBenchSetup(allclose_order="reference_last")
    with pytest.raises(ValueError, match="allclose_order"):
        ev.evaluate_kernel(load_tasks()[0], "x", "cpu", allclose_order="both")


# --- build cache --------------------------------------------------------------------------------

def test_build_cache_keeps_only_successful_builds_and_clears_stale_locks(tmp_path):
    cache = ev._BuildCache(tmp_path)
    with cache.entry("cpu", "source A") as (directory, hit):
        assert not hit
        (directory / "ext" / "lock").parent.mkdir()
        (directory / "ext" / "lock").touch()
        cache.commit(directory, built=False)
    assert not directory.exists()
    with cache.entry("cpu", "source A") as (directory, hit):
        assert not hit
        (directory / "ext").mkdir()
        (directory / "ext" / "lock").touch()  # as left by a build killed while holding torch's baton
        cache.commit(directory, built=True)
    with cache.entry("cpu", "source A") as (again, hit):
        assert hit and again == directory and not (directory / "ext" / "lock").exists()
    assert cache.key("cpu", "source A") != cache.key("cpu", "source B") != cache.key("cuda", "source B")
    with cache.entry("cpu", "pure torch") as (empty, hit):
        cache.commit(empty, built=True)  # loaded fine but built nothing: not worth an entry
    assert not empty.exists()


def test_evaluate_kernel_rejects_bad_arguments(tasks):
    with pytest.raises(ValueError, match="timeout_s"):
        ev.evaluate_kernel(tasks[0], "x", "cpu", timeout_s=0)
    with pytest.raises(ValueError, match="backend"):
        ev.evaluate_kernel(tasks[0], "x", "gpu")
    with pytest.raises(ValueError, match="memory_mb"):
        ev.evaluate_kernel(tasks[0], "x", "cpu", memory_mb=10)
    with pytest.raises(ValueError, match="num_perf_trials"):
        ev.evaluate_kernel(tasks[0], "x", "cpu", num_perf_trials=0)


def test_syntax_error_is_a_compilation_failure_without_a_process(tasks):
    result = ev.evaluate_kernel(tasks[0], "def f(:\n    pass\n", "cpu", cache=False)
    assert status_of(result.feedback) == "compilation_failure" and result.speedup == 0.0
    assert "SyntaxError" in result.feedback and "line 1" in result.feedback
