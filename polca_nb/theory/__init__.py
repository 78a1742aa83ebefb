"""The paper's theoretical model of POLCA (polca-method.md §4), simulated exactly and vectorized over seeds.

Everything here is a simulation of the model behind Theorems 1 and 2, not the engine
(`polca_nb.runner`): programs are points in a d-ball, the proposal oracle is a random draw, and
observations are Gaussian. Modules, in import order:

* `oracle`: the simulated program space and proposal oracle (`Oracle`, `theorem2_oracle`);
* `simulator`: POLCA and sequential updating simulated on it (`simulate_polca`, `simulate_sequential`);
* `bounds`: the theorems' reference curves (`theorem1_slope`, `theorem2_*_rate`, `packing_bound`, ...);
* `stats`: the a ln n + b fit and mean +- SEM over seeds;
* `sweeps`: the parameter sweeps behind the theory notebook's figures;
* `plots`: figures and tables (needs matplotlib, seaborn and pandas; import `polca_nb.theory.plots`).

The names below are importable from `polca_nb.theory`; `plots` is not imported here. The names say what is
simulated where the engine has a counterpart: `SimConfig` (not the engine's `PolcaConfig`), `SimulatedPolcaRun`
and `SimulatedSequentialRun` (not `RunResult`).
"""

from .bounds import (
    expected_steps_polca,
    expected_steps_sequential_reset,
    packing_bound,
    successes_needed,
    theorem1_slope,
    theorem2_polca_rate,
    theorem2_sequential_rate,
)
from .oracle import Oracle, theorem2_oracle
from .simulator import (
    SimConfig,
    SimulatedPolcaRun,
    SimulatedSequentialRun,
    simulate_polca,
    simulate_sequential,
    ucb_priority,
)
from .stats import LogFit, fit_log_curve, mean_and_sem
from .sweeps import (
    PRIORITY_VARIANTS,
    PriorityNoiseSweep,
    Theorem1Sweep,
    Theorem2Sweep,
    UCB_WIDTH_OPTIONS,
    quick_run,
    sweep_priority_noise,
    sweep_theorem1,
    sweep_theorem2,
)

__all__ = [
    "Oracle",
    "SimConfig",
    "SimulatedPolcaRun",
    "SimulatedSequentialRun",
    "LogFit",
    "Theorem1Sweep",
    "Theorem2Sweep",
    "PriorityNoiseSweep",
    "PRIORITY_VARIANTS",
    "ucb_priority",
    "simulate_polca",
    "simulate_sequential",
    "packing_bound",
    "fit_log_curve",
    "mean_and_sem",
    "theorem1_slope",
    "theorem2_sequential_rate",
    "theorem2_polca_rate",
    "successes_needed",
    "expected_steps_sequential_reset",
    "expected_steps_polca",
    "theorem2_oracle",
    "sweep_theorem1",
    "sweep_theorem2",
    "sweep_priority_noise",
    "UCB_WIDTH_OPTIONS",
    "quick_run",
]
