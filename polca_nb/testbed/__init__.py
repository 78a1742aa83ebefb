"""The search-strategy testbed: problems with an exact true reward, a simulated optimizer (a stated
stochastic model, not an LLM) that reads every method's real prompts, and the harness that runs every
method through its own code at equal metric-call budgets. Results here say what a search strategy does
with a proposer of given quality; they are not LLM results."""

from .embedder import DEFAULT_EPS, TestbedEmbedder
from .experiment import (
    BASELINES,
    DSPY_BASELINES,
    NOISE_LEVELS,
    PAPER_TAU_CELL,
    POLCA_METHODS,
    QUALITIES,
    TESTBED_METHODS,
    Cell,
    CellSummary,
    cell_optimum,
    grid_cells,
    run_cell,
    run_testbed,
    summarize_cell,
    summary_rows,
    testbed_config,
    with_model,
)
from .optimizer import LABEL, OptimizerModel, SimulatedOptimizerLLM
from .problem import (
    CONFLICTS,
    PARAM,
    SEED_TEXT,
    SKILLS,
    NoiseSpec,
    RewardSpec,
    TestbedEvaluator,
    TestbedProblem,
    skills_in,
    testbed_problem,
)
from .prompts import ProposalRequest, SummaryRequest, prompt_kind, read_proposal_request, read_summary_request

__all__ = ["BASELINES", "DSPY_BASELINES", "CONFLICTS", "DEFAULT_EPS", "LABEL", "NOISE_LEVELS", "PAPER_TAU_CELL",
           "PARAM", "POLCA_METHODS", "QUALITIES", "SEED_TEXT", "SKILLS", "TESTBED_METHODS", "Cell", "CellSummary",
           "NoiseSpec",
           "OptimizerModel", "ProposalRequest", "RewardSpec", "SimulatedOptimizerLLM", "SummaryRequest",
           "TestbedEmbedder", "TestbedEvaluator", "TestbedProblem", "cell_optimum", "grid_cells", "prompt_kind",
           "read_proposal_request", "read_summary_request", "run_cell", "run_testbed", "skills_in",
           "summarize_cell", "summary_rows", "testbed_config", "testbed_problem", "with_model"]
