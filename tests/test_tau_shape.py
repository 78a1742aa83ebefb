"""τ-bench retail in the benchmark shape: `presets.setup` for every preset, and the data download CLI
(network monkeypatched: the fake upstream serves the shared files, the task and rule lists as Python)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error

import pytest

from polca_nb.benchmarks.common import BenchmarkSetup
from polca_nb.benchmarks.tau_retail import data as tau_data
from polca_nb.benchmarks.tau_retail import load_retail
from polca_nb.benchmarks.tau_retail.evaluator import SEED_PARAMS, TauEvaluator
from polca_nb.benchmarks.tau_retail.presets import (PRESETS, get_preset, make_evaluator, make_optimizer_roles,
                                                    setup, tau_problem)
from polca_nb.data import data_dir
from polca_nb.llm.base import ScriptedLLM

SHARED = data_dir() / tau_data.BENCHMARK_FOLDER


@pytest.fixture(scope="module")
def data():
    return load_retail()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_setup_builds_the_parts_the_notebook_builds(data, name):
    llm = ScriptedLLM()
    preset = PRESETS[name]
    parts = setup(name, llm, data=data)
    assert isinstance(parts, BenchmarkSetup)
    assert parts.config == preset.config()
    expected = tau_problem(data, make_evaluator(data, llm, preset), preset)
    for field in ("name", "seed_params", "trainset", "valset", "testset", "score_range", "objective"):
        assert getattr(parts.problem, field) == getattr(expected, field), field
    assert parts.problem.seed_params == SEED_PARAMS
    evaluator = parts.problem.evaluator
    assert isinstance(evaluator, TauEvaluator)
    assert (evaluator.max_steps, evaluator.conversation_chars) == (preset.max_steps, preset.conversation_chars)
    assert evaluator.agent.max_tokens == preset.agent_max_tokens
    proposer, summarizer = make_optimizer_roles(llm, preset)
    assert parts.proposer == proposer
    assert parts.summarizer == summarizer
    assert llm.calls == []  # no LLM call


def test_setup_overrides_config_fields_and_drops_an_unused_summarizer(data):
    llm, user = ScriptedLLM(), ScriptedLLM()
    parts = setup(PRESETS["smoke"], llm, data=data, user_llm=user, eps=0.0, use_summarizer=False)
    assert parts.config.eps == 0.0 and not parts.config.use_summarizer
    assert parts.summarizer is None
    assert parts.problem.evaluator.user_llm is user
    with pytest.raises(ValueError, match="unknown τ-bench preset"):
        get_preset("huge")


def _python_tasks(rows: list[dict], name: str) -> str:
    """An upstream-style tasks_<split>.py: keyword calls of Task and Action."""
    lines = ["from tau_bench.types import Task, Action", "", f"{name} = ["]
    for row in rows:
        actions = ", ".join(f"Action(name={a['name']!r}, kwargs={a['kwargs']!r})" for a in row["actions"])
        lines.append(f"    Task(annotator={row['annotator']!r}, user_id={row['user_id']!r}, "
                     f"instruction={row['instruction']!r}, actions=[{actions}], outputs={row['outputs']!r}),")
    return "\n".join(lines + ["]", ""])


class _Reply(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def upstream(monkeypatch):
    if not (SHARED / "orders.json").exists():
        pytest.skip("shared τ-bench data not present")
    served: dict[str, bytes] = {}
    for ours, theirs in tau_data.COPIED_FILES.items():
        served[tau_data.UPSTREAM_BASE + theirs] = (SHARED / ours).read_bytes()
    rules = json.loads((SHARED / "rules.json").read_text(encoding="utf-8"))
    served[tau_data.UPSTREAM_BASE + "rules.py"] = f"RULES = {rules!r}\n".encode()
    for split in ("test", "dev"):
        rows = json.loads((SHARED / f"tasks_{split}.json").read_text(encoding="utf-8"))
        served[tau_data.UPSTREAM_BASE + f"tasks_{split}.py"] = _python_tasks(rows, f"TASKS_{split.upper()}").encode()
    asked: list[str] = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url not in served:
            raise urllib.error.URLError("404")
        return _Reply(served[url])

    monkeypatch.setattr(tau_data.urllib.request, "urlopen", urlopen)
    return asked


def test_download_reproduces_the_shared_files_byte_for_byte(tmp_path, upstream):
    folder = tau_data.download(tmp_path)
    assert folder == tmp_path / "tau_retail"
    for name in (*tau_data.COPIED_FILES, *tau_data.CONVERTED_FILES):
        assert (folder / name).read_bytes() == (SHARED / name).read_bytes(), name
    assert all(url.startswith("https://raw.githubusercontent.com/sierra-research/tau-bench/59a200c") for url in upstream)
    loaded = load_retail(tmp_path, cache=False)
    assert len(loaded.tasks["test"]) == 115 and len(loaded.tasks["dev"]) == 20


def test_data_cli_download(tmp_path, upstream, capsys):
    assert tau_data.main(["download", "--dest", str(tmp_path)]) == 0
    assert str(tmp_path / "tau_retail") in capsys.readouterr().out
    assert (tmp_path / "tau_retail" / "tasks_test.json").exists()


def test_data_cli_names_the_url_when_offline(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tau_data.urllib.request, "urlopen", offline)
    assert tau_data.main(["download", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert tau_data.UPSTREAM_BASE + "data/orders.json" in err and "no network" in err
    assert not (tmp_path / "tau_retail").exists()  # nothing half-written


def test_task_list_conversion_refuses_unexpected_shapes():
    with pytest.raises(ValueError, match="keyword arguments only"):
        tau_data.python_list_to_json("TASKS = [Task('0', 'u', 'i', [], [])]")
    with pytest.raises(ValueError, match="exactly one"):
        tau_data.python_list_to_json("A = [1]\nB = [2]\n")
    assert tau_data.python_list_to_json("X = [Action(name='a', kwargs={'k': 1})]") == [{"name": "a", "kwargs": {"k": 1}}]


def test_the_cli_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "polca_nb.benchmarks.tau_retail.data", "download", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--dest" in done.stdout
