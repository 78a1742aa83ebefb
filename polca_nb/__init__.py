"""polca_nb: POLCA (stochastic generative optimization with LLMs) as composable, notebook-first parts.

The names a user needs are here:

    from polca_nb import Budget, Evaluation, Example, Problem, default_client, optimize
"""

from .api import optimize
from .budget import Budget
from .errors import BudgetExhausted, FatalError, StopRun
from .llm import LLMCache, LLMClient, Ledger, default_client
from .preview import RunRefused, confirm_below, preview_run
from .problem import PolcaConfig, Problem
from .roles import LLMProposer, LLMSummarizer
from .state import RunResult
from .types import Candidate, Evaluation, Example, Params, Rollout, render_params

__all__ = [
    "Budget",
    "BudgetExhausted",
    "Candidate",
    "Evaluation",
    "Example",
    "FatalError",
    "LLMCache",
    "LLMClient",
    "LLMProposer",
    "LLMSummarizer",
    "Ledger",
    "Params",
    "PolcaConfig",
    "Problem",
    "Rollout",
    "RunRefused",
    "RunResult",
    "StopRun",
    "confirm_below",
    "default_client",
    "optimize",
    "preview_run",
    "render_params",
]
__version__ = "0.1.0"
