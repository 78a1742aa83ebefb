"""polca_nb: POLCA (stochastic generative optimization with LLMs) as composable, notebook-first parts."""

from .types import Candidate, Evaluation, Example, Params, Rollout, render_params

__all__ = ["Candidate", "Evaluation", "Example", "Params", "Rollout", "render_params"]
__version__ = "0.1.0"
