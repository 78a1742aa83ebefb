"""One entry point for every method at an equal metric-call budget: the POLCA loop configurations of
`methods.METHODS` plus the peers GEPA and OpenEvolve, all returning a `MethodResult`.

    result = run_baseline("gepa", problem, llm, budget=200, seed=0)
    result = run_baseline("sequential", problem, llm, budget=200, seed=0)

Every method's evaluator is wrapped in the same `MeteredEvaluator`, so "metric calls" means the same
thing everywhere and no method can spend past `budget`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..budget import Budget
from ..llm.base import LLM, with_ledger
from ..methods import METHODS, get_method, run_method
from ..protocols import Embedder, Executor, Proposer, Summarizer
from ..problem import PolcaConfig, Problem
from .accounting import OPTIMIZER_ROLES, MeteredEvaluator, MethodResult, from_run_result

PEERS = ("gepa", "openevolve", "dspy-mipro", "dspy-gepa")
ALL_METHODS = tuple(METHODS) + PEERS
"""Every name `run_baseline` accepts."""

PROPOSER_DEFAULTS: dict[str, Any] = {"max_tokens": 1024, "temperature": 1.0}
SUMMARIZER_DEFAULTS: dict[str, Any] = {"max_tokens": 1024}


def default_config(budget: int, **overrides: Any) -> PolcaConfig:
    """The paper's HotpotQA / tau-bench loop settings (K=5, b=2, m=1, P=1, eps=0.1) at this budget."""
    return PolcaConfig(Budget(max_metric_calls=budget), **overrides)


def run_baseline(
    name: str,
    problem: Problem,
    llm: LLM,
    *,
    budget: int,
    seed: int = 0,
    base_config: PolcaConfig | None = None,
    proposer: Proposer | None = None,
    summarizer: Summarizer | None = None,
    embedder: Embedder | None = None,
    peer_settings: Any = None,
    max_tokens: int | None = None,
    run_dir: str | Path | None = None,
    executor: Executor | int | None = None,
) -> MethodResult:
    """Run method `name` (one of ALL_METHODS) with at most `budget` metric calls.

    Loop methods use `base_config` (its budget is replaced by `budget`; default `default_config`) and
    roles built on `llm` unless given: `LLMProposer`/`LLMSummarizer` with the problem's objective and
    `default_embedder()`. Peers take `peer_settings` (`GepaSettings` / `OpenEvolveSettings` /
    `MiproSettings` / `DspyGepaSettings`). `max_tokens` caps every optimizer reply alike (default roles,
    GEPA's reflection, OpenEvolve's LLM, DSPy's prompt and reflection LMs).
    """
    if name not in ALL_METHODS:
        raise ValueError(f"name must be one of {list(ALL_METHODS)}, got {name!r}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
    if name == "gepa":
        from .gepa_adapter import GepaSettings, run_gepa

        settings = peer_settings or GepaSettings()
        settings = replace(settings, max_tokens=max_tokens) if max_tokens is not None else settings
        return run_gepa(problem, llm, budget=budget, seed=seed, settings=settings, run_dir=run_dir)
    if name == "openevolve":
        from .openevolve_adapter import OpenEvolveSettings, run_openevolve

        settings = peer_settings or OpenEvolveSettings()
        settings = replace(settings, max_tokens=max_tokens) if max_tokens is not None else settings
        return run_openevolve(problem, llm, budget=budget, seed=seed, settings=settings, run_dir=run_dir)

    if name in ("dspy-mipro", "dspy-gepa"):
        from .dspy_adapter import DspyGepaSettings, MiproSettings, run_dspy

        dspy_settings = peer_settings or (MiproSettings() if name == "dspy-mipro" else DspyGepaSettings())
        dspy_settings = replace(dspy_settings, max_tokens=max_tokens) if max_tokens is not None else dspy_settings
        return run_dspy(name, problem, llm, budget=budget, seed=seed, settings=dspy_settings, run_dir=run_dir)

    llm = with_ledger(llm)  # its ledger's tracker counts the run's optimizer calls
    # Test-set scoring is the caller's (unbudgeted) business: inside the loop it would hit the meter.
    config = replace(base_config or default_config(budget), budget=Budget(max_metric_calls=budget), test_every=None,
                     final_reevaluation=None)
    configured = get_method(name).configure(config)
    meter = MeteredEvaluator(problem.evaluator, budget, np.random.default_rng(seed))
    metered = replace(problem, evaluator=meter)
    if proposer is None:
        from ..roles import LLMProposer

        proposer = LLMProposer(llm, objective=problem.objective,
                               **{**PROPOSER_DEFAULTS, **({"max_tokens": max_tokens} if max_tokens else {})})
    if summarizer is None and configured.use_summarizer:
        from ..roles import LLMSummarizer

        summarizer = LLMSummarizer(llm, **{**SUMMARIZER_DEFAULTS,
                                           **({"max_tokens": max_tokens} if max_tokens else {})})
    if embedder is None:
        # Also without the eps-Net: the embedder then only measures proposal distances, so every arm
        # reports what eps would have done (RunResult.epsnet).
        from ..embedders import default_embedder

        embedder = default_embedder()
    with llm.ledger.track(roles=OPTIMIZER_ROLES) as llm_calls:
        result = run_method(name, metered, proposer, config, embedder=embedder, summarizer=summarizer, seed=seed,
                            run_dir=run_dir, executor=executor, progress=False)
    # A resumed run_dir spent part of its calls before this call (and before this meter existed).
    if (result.spent.metric_calls != meter.calls) if run_dir is None else (meter.calls > result.spent.metric_calls):
        raise RuntimeError(f"{name}: the loop reports {result.spent.metric_calls} metric calls but the "
                           f"evaluator was called {meter.calls} times")
    details: Mapping[str, Any] = {"llm_calls": llm_calls.requests()}
    return from_run_result(name, result, budget, seed, details)
