"""KernelBench in the benchmark shape: `presets.setup` for every preset (stub evaluator, no LLM call),
`experiment.run` over seeds, and the data download CLI (network monkeypatched)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error

import pytest

from polca_nb.benchmarks.common import BenchmarkSetup, ExperimentResult
from polca_nb.benchmarks.kernelbench import data as kb_data
from polca_nb.benchmarks.kernelbench import feedback as fb
from polca_nb.benchmarks.kernelbench.evaluator import PARAM, SEED_PARAMS, ScreenedKernelEvaluator
from polca_nb.benchmarks.kernelbench.experiment import run, run_task
from polca_nb.benchmarks.kernelbench.presets import PRESETS, KernelBenchSetup, get_preset, kernel_problem, setup
from polca_nb.benchmarks.kernelbench.prompts import build_prompt
from polca_nb.data import data_dir
from polca_nb.llm.base import ScriptedLLM
from polca_nb.types import Evaluation

SHARED = data_dir() / "kernelbench"

try:
    TASKS = kb_data.load_tasks()
except FileNotFoundError:  # pragma: no cover - the data folder is part of the project setup
    TASKS = []

needs_data = pytest.mark.skipif(not TASKS, reason="KernelBench tasks not present")

KERNEL = "import torch\nimport torch.nn as nn\n\nclass ModelNew(nn.Module):\n    def forward(self, A, B):\n" \
         "        return torch.matmul(A, B)\n"


def stub(params, example, seed):
    """Every kernel that defines ModelNew is a 1.25x success."""
    return Evaluation(1.25, fb.success(1.25, [0.8], [1.0]), json.dumps({"status": "success", "speedup": 1.25}))


@needs_data
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_setup_builds_the_parts_run_task_uses(name):
    llm = ScriptedLLM()
    preset = PRESETS[name]
    evaluator = ScreenedKernelEvaluator(stub)
    parts = setup(name, llm, evaluator=evaluator)
    assert isinstance(parts, BenchmarkSetup)
    task = TASKS[preset.task_indices[0]]
    expected = kernel_problem(task, evaluator, preset.backend, replicas=preset.num_candidates)
    for field in ("name", "seed_params", "trainset", "valset", "score_range", "objective"):
        assert getattr(parts.problem, field) == getattr(expected, field), field
    assert parts.problem.seed_params == SEED_PARAMS and PARAM == "kernel"
    assert parts.problem.evaluator is evaluator
    assert parts.problem.objective == build_prompt(task, preset.backend)
    assert parts.config == preset.polca_config()
    assert parts.proposer.objective == parts.problem.objective
    assert (parts.proposer.max_tokens, parts.proposer.feedback_chars) == (preset.proposer_max_tokens,
                                                                        preset.feedback_chars)
    assert (parts.summarizer is not None) == preset.use_summarizer
    assert parts.summarizer.max_tokens == preset.summarizer_max_tokens
    assert llm.calls == []


@needs_data
def test_setup_takes_a_task_by_idx_and_config_overrides():
    parts = setup(PRESETS["paper"], ScriptedLLM(), task=3, evaluator=stub, eps=0.0, use_summarizer=False)
    assert parts.problem.name == "kernelbench-3-cuda"
    assert parts.config.eps == 0.0 and parts.summarizer is None
    with pytest.raises(ValueError, match="not among the given tasks"):
        setup("smoke", ScriptedLLM(), task=99, tasks=TASKS, evaluator=stub)
    with pytest.raises(ValueError, match="unknown KernelBench preset"):
        get_preset("huge")


@needs_data
def test_run_over_seeds_wraps_run_kernelbench(tmp_path):
    preset = KernelBenchSetup(backend="cpu", task_indices=(9,), num_candidates=1, iterations=1, eps=0.0,
                              use_summarizer=False)
    llm = ScriptedLLM(lambda request: f"```python\n{KERNEL}```")
    result = run(preset, llm, seeds=(0, 1), run_root=tmp_path, embedder=None, tasks=TASKS,
                 evaluator=ScreenedKernelEvaluator(stub))
    assert isinstance(result, ExperimentResult)
    assert result.seeds == (0, 1) and len(result.runs) == 2 and len(result.per_seed) == 2
    for seed, row in zip((0, 1), result.per_seed):
        assert row["seed"] == seed and row["best_speedups"] == {9: 1.25}
        assert row["fast_p"][1.0][-1] == 1.0
        assert (tmp_path / f"kernelbench-{preset.label()}-seed{seed}" / "task9").is_dir()
    alone = run_task(TASKS[9], preset, ScriptedLLM(lambda request: f"```python\n{KERNEL}```"), embedder=None,
                     seed=9, evaluator=ScreenedKernelEvaluator(stub))
    assert alone.step_scores == result.per_seed[0]["run"].tasks[0].step_scores


class _Reply(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def upstream(monkeypatch):
    if not (SHARED / "level1_matmul.json").exists():
        pytest.skip("shared KernelBench data not present")
    served = {}
    for row in json.loads((SHARED / "level1_matmul.json").read_text(encoding="utf-8")):
        served[f"{kb_data.UPSTREAM_BASE}KernelBench/level1/{row['name']}.py"] = row["ref_arch_src"].encode()
    for name in kb_data.PROMPT_EXAMPLE_FILES:
        served[f"{kb_data.UPSTREAM_BASE}src/prompts/{name}"] = (SHARED / "prompt_examples" / name).read_bytes()

    def urlopen(url, timeout=None):
        if url not in served:
            raise urllib.error.URLError("404")
        return _Reply(served[url])

    monkeypatch.setattr(kb_data.urllib.request, "urlopen", urlopen)


def test_download_reproduces_the_shared_files_byte_for_byte(tmp_path, upstream):
    folder = kb_data.download(tmp_path)
    assert folder == tmp_path / "kernelbench"
    assert (folder / "level1_matmul.json").read_bytes() == (SHARED / "level1_matmul.json").read_bytes()
    for name in kb_data.PROMPT_EXAMPLE_FILES:
        assert (folder / "prompt_examples" / name).read_bytes() == (SHARED / "prompt_examples" / name).read_bytes()
    assert kb_data.load_tasks(tmp_path) == kb_data.load_tasks(SHARED.parent)
    assert kb_data.load_prompt_examples(tmp_path) == kb_data.load_prompt_examples(SHARED.parent)


def test_data_cli_download(tmp_path, upstream, capsys):
    assert kb_data.main(["download", "--dest", str(tmp_path)]) == 0
    assert str(tmp_path / "kernelbench") in capsys.readouterr().out


def test_data_cli_names_the_url_when_offline(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(kb_data.urllib.request, "urlopen", offline)
    assert kb_data.main(["download", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{kb_data.UPSTREAM_BASE}KernelBench/level1/{kb_data.MATMUL_FILES[0]}" in err and "no network" in err
    assert not (tmp_path / "kernelbench").exists()


def test_the_cli_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "polca_nb.benchmarks.kernelbench.data", "download", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--dest" in done.stdout
