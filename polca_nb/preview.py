"""Cost preview before a run: projected LLM calls, tokens and USD from the config and measured prompts.

As DSPy's MIPROv2 does before it optimizes, `preview_run` says what a run will cost before it
spends anything: it runs the first iteration *dry* (`LLMClient.dry_run`: every request is recorded,
none is sent, cached or billed), so the prompt sizes are the real prompts of this problem and these
roles, then scales the per-iteration and per-metric-call counts by the config's budget.

    preview = preview_run(problem, proposer, config, llm=llm, summarizer=summarizer, embedder=embedder)
    print(preview)                      # calls, tokens, USD without and with prompt caching
    polca(..., llm=llm, confirm=confirm_below(50.0))   # refuse to start above $50

The projection is an upper bound of the search's LLM use: every proposal admitted and validated,
every reply as long as its max_tokens allows (thinking allowance included). Evaluation roles are
scaled per metric call from the dry iteration; multi-turn roles (tau-bench) run to max_steps on dry
replies, so their calls per evaluation are an upper bound too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from .budget import Budget
from .errors import FatalError
from .llm.config import Price, model_spec

LOOP_ROLES = ("proposer", "summarizer")
"""Roles called per iteration by the loop; every other role is called by evaluations."""


@dataclass(frozen=True)
class RoleProjection:
    """Projected use of one role over the whole run."""

    role: str
    requests: int
    prompt_tokens: float          # all prompt tokens, summed over requests
    prefix_tokens: float          # of which system prompt + tools (what prompt caching can serve)
    max_output_tokens: float      # summed max_tokens as sent (the worst case)
    prefix_writes: float = 0.0    # requests whose prefix is written to the cache rather than read

    def usd(self, price: Price, *, caching: bool, min_cache_tokens: int = 0) -> float:
        """Worst-case USD; with caching, a prefix long enough to cache is billed as a cache write on
        `prefix_writes` requests and as a cache read on the others."""
        if not self.requests:
            return 0.0
        per_request_prefix = self.prefix_tokens / self.requests
        cached = caching and per_request_prefix >= min_cache_tokens and per_request_prefix > 0
        if not cached:
            return price.cost(round(self.prompt_tokens), round(self.max_output_tokens))
        writes = min(self.prefix_writes, self.requests) * per_request_prefix
        return price.cost(round(self.prompt_tokens - self.prefix_tokens), round(self.max_output_tokens),
                          cache_write_tokens=round(writes), cache_read_tokens=round(self.prefix_tokens - writes))


@dataclass(frozen=True)
class RunPreview:
    """The projection of a run: per-role calls and tokens, and USD without and with prompt caching."""

    model: str
    price: Price
    min_cache_tokens: int
    iterations: int
    metric_calls: int
    roles: Mapping[str, RoleProjection]
    prompt_caching: bool

    def usd(self, caching: bool | None = None) -> float:
        """Projected USD (worst case); `caching` None = as the client is configured."""
        on = self.prompt_caching if caching is None else caching
        return sum(r.usd(self.price, caching=on, min_cache_tokens=self.min_cache_tokens) for r in self.roles.values())

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.roles.values())

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.roles.values():
            rows.append({"role": r.role, "calls": r.requests, "prompt Mtok": round(r.prompt_tokens / 1e6, 3),
                         "output Mtok (max)": round(r.max_output_tokens / 1e6, 3),
                         "USD": round(r.usd(self.price, caching=False), 2),
                         "USD cached": round(r.usd(self.price, caching=True,
                                                    min_cache_tokens=self.min_cache_tokens), 2)})
        return rows

    def __str__(self) -> str:
        lines = [f"projected run on {self.model}: {self.iterations} iterations, {self.metric_calls:,} metric calls, "
                 f"{self.requests:,} LLM calls (upper bound)"]
        for row in self.rows():
            lines.append(f"  {row['role']:<11} {row['calls']:>8,} calls  {row['prompt Mtok']:>8.3f} Mtok in  "
                         f"{row['output Mtok (max)']:>7.3f} Mtok out (max)  ${row['USD']:>9,.2f}  "
                         f"(${row['USD cached']:,.2f} with prompt caching)")
        lines.append(f"  total ${self.usd(False):,.2f} without prompt caching, ${self.usd(True):,.2f} with it "
                     f"(prompt caching is {'on' if self.prompt_caching else 'off'} for this client)")
        return "\n".join(lines)


class RunRefused(FatalError):
    """The `confirm` hook refused to start the run; `preview` is what it was shown."""

    def __init__(self, message: str, preview: RunPreview) -> None:
        super().__init__(message)
        self.preview = preview


def confirm_below(max_usd: float, *, show: Callable[[str], None] = print) -> Callable[[RunPreview], bool]:
    """A `confirm=` hook for `polca`: show the preview; start only if its projected USD <= max_usd."""
    if not (isinstance(max_usd, (int, float)) and max_usd >= 0 and math.isfinite(max_usd)):
        raise ValueError(f"max_usd must be a finite number >= 0, got {max_usd!r}")

    def confirm(preview: RunPreview) -> bool:
        show(str(preview))
        return preview.usd() <= max_usd

    return confirm


def projected_iterations(budget: Budget, per_iteration_calls: int) -> int:
    """Iterations the budget pays for when each iteration uses `per_iteration_calls` metric calls."""
    by_calls = math.inf if budget.max_metric_calls is None else budget.max_metric_calls // per_iteration_calls
    by_iterations = math.inf if budget.max_iterations is None else budget.max_iterations
    n = min(by_calls, by_iterations)
    if n == math.inf:
        raise ValueError("the budget has no metric-call or iteration limit, so the run's length cannot be "
                         "projected: set Budget.max_metric_calls or max_iterations")
    return max(1, int(n))


def preview_run(problem: Any, proposer: Any, config: Any, *, llm: Any, summarizer: Any = None,
                embedder: Any = None, seed: int = 0) -> RunPreview:
    """Project the LLM use of `polca(problem, proposer, config, ...)` from one dry iteration.

    `llm` is the LLMClient every role and the evaluator use (its dry_run() records their requests).
    Nothing is sent, cached or billed; evaluators run on dry replies.
    """
    from .runner import polca  # noqa: PLC0415 - runner imports this module lazily too
    from .search import exploration_batches  # noqa: PLC0415

    if not hasattr(llm, "dry_run"):
        raise TypeError(f"llm must be an LLMClient (with dry_run()), got {type(llm).__name__}")
    dry_config = replace(config, budget=Budget(max_iterations=1), test_every=None, final_reevaluation=None)
    with llm.dry_run() as requests:
        dry = polca(problem, proposer, dry_config, embedder=embedder, summarizer=summarizer, seed=seed,
                    run_dir=None, progress=False)
    dry_metric_calls = max(1, dry.spent.metric_calls)

    k, b, p = config.num_candidates, config.batch_size, config.num_proposals
    m = exploration_batches(config.num_batches, k, k)
    explore = k * m * b
    validate = k * m * p * config.validation_batch(m)
    iterations = projected_iterations(config.budget, explore + validate)
    search_calls = iterations * (explore + validate)
    if config.budget.max_metric_calls is not None:
        search_calls = min(search_calls, config.budget.max_metric_calls)
    extra_calls = 0
    if config.test_every and problem.testset:
        extra_calls += (iterations // config.test_every) * len(problem.testset) * config.test_repeats
    if config.final_reevaluation:
        from .problem import reevaluation_examples  # noqa: PLC0415

        extra_calls += (config.final_reevaluation * len(reevaluation_examples(problem, config.final_reevaluation_set))
                        * config.final_reevaluation_repeats)
    metric_calls = search_calls + extra_calls
    per_iteration = {"proposer": k * m * p, "summarizer": 1 if config.use_summarizer and summarizer else 0}

    by_role: dict[str, list[Any]] = {}
    for request in requests:
        by_role.setdefault(request.role, []).append(request)
    roles = {}
    # Cache writes, conservatively: a loop role's static system prompt once per iteration (the
    # 5-minute TTL may lapse between iterations); an evaluation role's prefix (it holds the
    # candidate's parameters) once per candidate evaluated in each iteration.
    candidates_per_iteration = k + k * m * p
    for role, seen in sorted(by_role.items()):
        distinct = len({r.prefix_key for r in seen})
        if role in LOOP_ROLES:
            count = iterations * per_iteration[role]
            writes = iterations * distinct
        else:
            count = round(len(seen) / dry_metric_calls * metric_calls)
            writes = iterations * candidates_per_iteration * distinct
        n = len(seen)
        roles[role] = RoleProjection(
            role, int(count),
            prompt_tokens=count * sum(r.prompt_tokens for r in seen) / n,
            prefix_tokens=count * sum(r.prefix_tokens for r in seen) / n,
            max_output_tokens=count * sum(r.max_tokens for r in seen) / n,
            prefix_writes=float(min(count, writes)))
    spec = model_spec(llm.model) if getattr(llm, "server", None) is None else None
    return RunPreview(llm.model, llm.price, spec.min_cache_tokens if spec is not None else 0, iterations,
                      metric_calls, roles, bool(getattr(llm.options, "prompt_caching", False)))
