"""Every method on the testbed through its own code, scored by the exact true reward.

    cell = Cell("binary", NOISE_LEVELS["binary"], "weak", QUALITIES["weak"])
    comparison = run_cell(cell, seeds=range(20), budget=400)
    print(format_cell(summarize_cell(comparison)))

POLCA's loop configurations, GEPA and OpenEvolve all go through `baselines.run_baseline` with the
simulated optimizer (`optimizer.SimulatedOptimizerLLM`) as their LLM, one `MeteredEvaluator` budget and
the same test protocol: the true score mu(theta) of the program each method would return after c
metric calls, read on a grid of c.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..baselines.compare import default_grid, program_at
from ..baselines.registry import default_config, run_baseline
from ..curves import Comparison, CurvePoint, calls_to_reach, memoized, run_comparison
from ..llm.base import LLM
from ..problem import PolcaConfig
from ..protocols import Embedder
from .embedder import DEFAULT_EPS, TestbedEmbedder
from .optimizer import LABEL, OptimizerModel, SimulatedOptimizerLLM
from .problem import NoiseSpec, RewardSpec, TestbedProblem, testbed_problem

POLCA_METHODS = ("polca", "polca-vanilla", "polca+epsnet", "polca+summarizer", "polca-ucb")
BASELINES = ("sequential", "best-of-n", "gepa", "openevolve")
TESTBED_METHODS = POLCA_METHODS + BASELINES
DSPY_BASELINES = ("dspy-mipro", "dspy-gepa")
"""DSPy's optimizers (the `dspy` package): accepted by `run_cell` and the bench, not in the notebook's
default grid (MIPROv2 needs a budget of at least 5 x 40 + 40 = 240 calls here to bootstrap)."""

NOISE_LEVELS: dict[str, NoiseSpec] = {
    "deterministic": NoiseSpec("continuous", sigma=0.0),
    "binary": NoiseSpec("binary"),
    "binary+judge": NoiseSpec("binary", judge_flip=0.1, misleading_rate=0.3),
}
"""Noise regimes: none (sigma = 0), binary Bernoulli outcomes (tau-bench-like), and binary with a
noisy judge (10% flipped verdicts, 30% misleading feedback on failures)."""

QUALITIES: dict[str, OptimizerModel] = {
    "weak": OptimizerModel(delta0=0.1),
    "medium": OptimizerModel(delta0=0.3),
    "strong": OptimizerModel(delta0=0.7),
}
"""Simulated optimizer qualities: delta_0 per piece of feedback (regression 0.1, duplicates 0.3,
overfitting 0.1, summary use 0.5: `OptimizerModel`'s defaults)."""

PAPER_TAU_CELL = ("binary", "weak")
"""The cell closest to the paper's tau-bench setting: K=5, b=2, binary rewards with execution noise
(no judge noise: tau's reward is a database check), and a weak proposer (the paper certifies only
delta_0 >= 0.04 on HotpotQA, polca-method.md section 4)."""


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a noise regime and a simulated optimizer."""

    noise_name: str
    noise: NoiseSpec
    quality_name: str
    model: OptimizerModel

    @property
    def label(self) -> str:
        return f"{self.noise_name} x {self.quality_name}"


def grid_cells(noise_levels: Sequence[str] = tuple(NOISE_LEVELS),
               qualities: Sequence[str] = tuple(QUALITIES)) -> list[Cell]:
    """The grid's cells (noise-major order); names must be keys of NOISE_LEVELS / QUALITIES."""
    bad = [n for n in noise_levels if n not in NOISE_LEVELS] + [q for q in qualities if q not in QUALITIES]
    if bad:
        raise ValueError(f"unknown noise level or quality {bad}: choose from {list(NOISE_LEVELS)} / "
                         f"{list(QUALITIES)}")
    return [Cell(n, NOISE_LEVELS[n], q, QUALITIES[q]) for n in noise_levels for q in qualities]


def testbed_config(budget: int, **overrides: Any) -> PolcaConfig:
    """The paper's tau-bench / HotpotQA loop (K=5, b=2, m=1, P=1) with eps for the testbed embedder."""
    return default_config(budget, **{"eps": DEFAULT_EPS, **overrides})


def run_testbed(method: str, tb: TestbedProblem, model: OptimizerModel, *, budget: int, seed: int,
                config: PolcaConfig | None = None, llm: LLM | None = None, embedder: Embedder | None = None):
    """One run of `method` (any of TESTBED_METHODS) with the simulated optimizer; a MethodResult.
    `llm` / `embedder` replace the default SimulatedOptimizerLLM(model) / TestbedEmbedder (e.g. timed)."""
    return run_baseline(method, tb.problem, llm or SimulatedOptimizerLLM(model), budget=budget, seed=seed,
                        base_config=config or testbed_config(budget), embedder=embedder or TestbedEmbedder())


def run_cell(cell: Cell, *, seeds: Sequence[int], budget: int, methods: Sequence[str] = TESTBED_METHODS,
             config: PolcaConfig | None = None, reward: RewardSpec | None = None, grid_points: int = 20,
             problem_seed: int = 0, on_run: Callable[..., None] | None = None) -> Comparison:
    """Every method x seed in one cell, read on a grid by the exact true score (not a noisy test)."""
    unknown = [m for m in methods if m not in TESTBED_METHODS + DSPY_BASELINES]
    if unknown:
        raise ValueError(f"methods must be among {list(TESTBED_METHODS + DSPY_BASELINES)}, got {unknown}")
    tb = testbed_problem(cell.noise, reward, seed=problem_seed)
    grid = default_grid(budget, grid_points)
    seed_params = dict(tb.problem.seed_params)
    score = memoized(tb.true_score)

    def run(method: str, seed: int):
        return run_testbed(method, tb, cell.model, budget=budget, seed=seed, config=config)

    def read(method: str, result) -> tuple[list[CurvePoint], float]:
        curve = [CurvePoint(i, c, score(program_at(result, c, seed_params))) for i, c in enumerate(grid)]
        return curve, score(result.final_params)

    return run_comparison(list(methods), list(seeds), run, read, initial=score(seed_params), budget=budget,
                          grid=grid, on_run=on_run)


@dataclass(frozen=True)
class CellSummary:
    """One cell's numbers: final true score (mean, s.e.) per method, the best baseline, POLCA's
    calls to reach that baseline's final mean, the ratio, and the regime (win / tie / lose)."""

    label: str
    means: Mapping[str, float]
    errors: Mapping[str, float]
    best_baseline: str
    calls_polca: int | None
    calls_baseline: int | None
    regime: str
    optimum: float | None = None
    memory_sizes: Mapping[str, float] | None = None

    @property
    def calls_ratio(self) -> float | None:
        """POLCA's metric calls / the best baseline's to reach the baseline's final mean (< 1: POLCA faster)."""
        if self.calls_polca is None or not self.calls_baseline:
            return None
        return self.calls_polca / self.calls_baseline

    @property
    def score_ratio(self) -> float:
        return self.means["polca"] / self.means[self.best_baseline] if self.means[self.best_baseline] else float("nan")


def summarize_cell(comparison: Comparison, label: str = "", *, method: str = "polca",
                   baselines: Sequence[str] = BASELINES, optimum: float | None = None) -> CellSummary:
    """The cell's summary for `method` against the best of `baselines` (by final mean true score).

    Regime: "win" if method's mean exceeds the best baseline's by more than 1 s.e. of the difference,
    "lose" if it trails by more, "tie" otherwise."""
    finals = comparison.finals
    present = [b for b in baselines if b in finals]
    if method not in finals or not present:
        raise ValueError(f"the comparison needs {method!r} and at least one of {list(baselines)}; "
                         f"it has {list(finals)}")
    means = {m: float(np.mean(v)) for m, v in finals.items()}
    errors = {m: float(np.std(v) / np.sqrt(len(v))) for m, v in finals.items()}
    best = max(present, key=lambda b: (means[b], b))
    target = means[best]
    diff = means[method] - target
    se = float(np.hypot(errors[method], errors[best]))
    regime = "win" if diff > se else "lose" if diff < -se else "tie"
    memory = {m: float(np.mean([r.details.get("memory_size", np.nan) for r in rs]))
              for m, rs in comparison.results.items() if m in POLCA_METHODS}
    return CellSummary(label, means, errors, best, calls_to_reach(comparison, method, target),
                       calls_to_reach(comparison, best, target), regime, optimum, memory)


testbed_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def cell_optimum(cell: Cell, reward: RewardSpec | None = None, problem_seed: int = 0) -> float:
    """The best true score reachable in this cell's problem (by enumeration)."""
    return testbed_problem(cell.noise, reward, seed=problem_seed).optimum[0]


def summary_rows(summaries: Sequence[CellSummary], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per cell: every method's final true score, the best baseline and the ratios."""
    rows = []
    for s in summaries:
        row: dict[str, Any] = {"cell": s.label}
        row.update({m: f"{s.means[m]:.3f}±{s.errors[m]:.3f}" for m in methods if m in s.means})
        row["best baseline"] = s.best_baseline
        row["calls polca/baseline"] = "n/a" if s.calls_ratio is None else f"{s.calls_ratio:.2f}"
        row["polca reach"] = "never" if s.calls_polca is None else str(s.calls_polca)
        row["regime"] = s.regime
        rows.append(row)
    return rows


def with_model(cell: Cell, **changes: Any) -> Cell:
    """`cell` with its simulated optimizer's knobs changed (e.g. duplicate_rate=0.6)."""
    return replace(cell, model=replace(cell.model, **changes))


__all__ = ["BASELINES", "DSPY_BASELINES", "LABEL", "NOISE_LEVELS", "PAPER_TAU_CELL", "POLCA_METHODS", "QUALITIES",
           "TESTBED_METHODS",
           "Cell", "CellSummary", "cell_optimum", "grid_cells", "run_cell", "run_testbed", "summarize_cell",
           "summary_rows", "testbed_config", "with_model"]
