"""The single entry point: `optimize(problem, budget=...)` builds the default roles around one LLM
client and runs POLCA; every part can be replaced by passing it in.

    from polca_nb import Budget, Problem, optimize
    result = optimize(problem, budget=Budget(max_metric_calls=100), run_dir="runs/mine")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .budget import Budget
from .events import Listener
from .problem import PolcaConfig, Problem
from .progress import ProgressMode
from .protocols import Embedder, Executor, Proposer, Summarizer
from .state import RunResult
from .stoppers import Stopper

PROPOSER_MAX_TOKENS = 2048
PROPOSER_TEMPERATURE = 0.7
"""The default proposer's reply budget and (where the backend takes one) sampling temperature."""


def optimize(
    problem: Problem,
    *,
    budget: Budget | None = None,
    config: PolcaConfig | None = None,
    llm: Any = None,
    proposer: Proposer | None = None,
    summarizer: Summarizer | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    executor: Executor | int | str | None = None,
    confirm: Callable[[Any], bool] | None = None,
    listeners: Sequence[Listener] = (),
    stoppers: Sequence[Stopper] = (),
    progress: ProgressMode = True,
) -> RunResult:
    """Run POLCA on `problem` and return its RunResult.

    Give `budget` (the paper's other knobs keep PolcaConfig's defaults) or a whole `config`. `llm`
    defaults to `polca_nb.llm.default_client()` (Claude with $ANTHROPIC_API_KEY, else the embedded
    local model); the proposer, the summarizer (when the config uses one) and the embedder default to
    the package's LLM roles and `default_embedder()`. The client's ledger enforces `Budget.max_usd`;
    `confirm` (e.g. `preview.confirm_below(20)`) sees the projected cost before anything runs;
    `listeners` follow the events live, `stoppers` end the run early (see `polca_nb.runner.polca`).
    `executor`: N local threads, a `distributed.Client` or "dask://host:port" (`polca_nb.executors`).
    """
    if (budget is None) == (config is None):
        raise ValueError("give budget= (the other knobs keep PolcaConfig's defaults) or config=, not both or neither; "
                         f"got budget={budget!r}, config={config!r}")
    if config is None:
        assert budget is not None
        config = PolcaConfig(budget)
    from . import embedders, llm as llm_module  # noqa: PLC0415 - looked up at call time (tests patch them)
    from .roles import LLMProposer, LLMSummarizer  # noqa: PLC0415
    from .runner import polca  # noqa: PLC0415

    if llm is None and (proposer is None or (config.use_summarizer and summarizer is None)):
        llm = llm_module.default_client()
    if proposer is None:
        proposer = LLMProposer(llm, max_tokens=PROPOSER_MAX_TOKENS, temperature=PROPOSER_TEMPERATURE)
    if summarizer is None and config.use_summarizer:
        summarizer = LLMSummarizer(llm)
    if embedder is None:
        embedder = embedders.default_embedder()  # with eps = 0 it only measures proposal distances
    return polca(problem, proposer, config, embedder=embedder, summarizer=summarizer if config.use_summarizer else None,
                 seed=seed, run_dir=run_dir, executor=executor, progress=progress, llm=llm, confirm=confirm,
                 listeners=listeners, stoppers=stoppers)
