"""The synthetic skills problem in the benchmark shape: same problem as before, setup, run, data CLI."""

from __future__ import annotations

import json

from polca_nb.benchmarks import skills
from polca_nb.benchmarks.common import BenchmarkSetup, ExperimentResult
from polca_nb.synthetic import skills_problem


def test_setup_builds_the_quickstart_problem_with_simulated_roles():
    for name in skills.PRESETS:
        parts = skills.setup(name)
        assert isinstance(parts, BenchmarkSetup) and parts.problem.name == "skills"
        assert parts.config.budget.max_metric_calls == skills.PRESETS[name].max_metric_calls
    a, b = skills.setup("smoke").problem, skills_problem()
    assert [e.data for e in a.trainset] == [e.data for e in b.trainset] and a.seed_params == b.seed_params
    assert skills.setup("smoke", eps=0.0).config.eps == 0.0


def test_run_over_seeds_returns_one_result_per_seed():
    result = skills.run("smoke", seeds=(0, 1))
    assert isinstance(result, ExperimentResult) and len(result.runs) == 2
    assert all(0.0 <= row["true_score"] <= 1.0 for row in result.per_seed)


def test_the_data_command_writes_the_generated_sets_and_fetches_nothing(tmp_path, capsys):
    assert skills.data.main(["download", "--dest", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "skills" / "examples.json").read_text())
    assert [len(written[k]) for k in ("train", "val", "test")] == [40, 20, 40]
    assert "nothing to download" in capsys.readouterr().out
