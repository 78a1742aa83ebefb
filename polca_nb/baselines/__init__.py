"""Peer optimizers (GEPA, OpenEvolve, DSPy's MIPROv2 and dspy.GEPA) and POLCA's loop baselines in one
harness, one budget unit.

    from polca_nb.baselines import run_baseline, program_curve
    result = run_baseline("gepa", problem, llm, budget=200, seed=0)
    curve = program_curve(result, score=lambda params: ...)

`gepa`, `openevolve` and `dspy` are optional dependencies (the `baselines` extra); they are imported only
when those methods run. `estimates.budget_warnings` says before a run which methods a budget leaves with
fewer than a handful of search steps.
"""

from .accounting import (
    OPTIMIZER_ROLES,
    BudgetExhausted,
    MeteredEvaluator,
    MethodResult,
    ProgramPoint,
    from_run_result,
    held_out_score,
    program_curve,
)
from .registry import ALL_METHODS, PEERS, default_config, run_baseline

__all__ = [
    "ALL_METHODS",
    "BudgetExhausted",
    "MeteredEvaluator",
    "MethodResult",
    "OPTIMIZER_ROLES",
    "PEERS",
    "ProgramPoint",
    "default_config",
    "from_run_result",
    "held_out_score",
    "program_curve",
    "run_baseline",
]
