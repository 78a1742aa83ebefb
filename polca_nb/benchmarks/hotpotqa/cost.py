"""What a HotpotQA preset costs: request bounds per role, tokens per request measured on a ledger
tracker, and the USD estimate (with Claude's prompt caching as the client applies it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...llm.config import Price
from ...llm.usage import UsageTracker
from ...types import Example
from .evaluator import INITIAL_INSTRUCTIONS, TASK_ROLE, build_prompt
from .presets import HotpotPreset


def max_calls_per_seed(preset: HotpotPreset) -> dict[str, int]:
    """Upper bound on LLM requests per seed and role (every proposal admitted and validated).

    Per iteration: K*b exploration rollouts, K proposals, <= K*b validation rollouts, one summary;
    plus the seed program's test and one test every `test_every` iterations, n_examples x repeats each.
    """
    explore = preset.num_candidates * preset.batch_size
    validate = preset.num_candidates * preset.batch_size
    tests = (preset.iterations // preset.test_every + 1) * preset.n_examples * preset.test_repeats
    return {
        TASK_ROLE: preset.iterations * (explore + validate) + tests,
        "proposer": preset.iterations * preset.num_candidates,
        "summarizer": preset.iterations if preset.use_summarizer else 0,
    }


@dataclass(frozen=True)
class CostEstimate:
    """Estimated USD of a preset: per role, requests x (tokens per request) x price, all seeds."""

    requests: Mapping[str, int]
    input_tokens: Mapping[str, float]
    output_tokens: Mapping[str, float]
    usd: Mapping[str, float]

    @property
    def total_usd(self) -> float:
        return float(sum(self.usd.values()))

    def table(self):
        import pandas as pd

        rows = {role: {"requests": self.requests[role], "input Mtok": self.input_tokens[role] / 1e6,
                       "output Mtok": self.output_tokens[role] / 1e6, "USD": self.usd[role]}
                for role in self.requests}
        rows["total"] = {"requests": sum(self.requests.values()),
                         "input Mtok": sum(self.input_tokens.values()) / 1e6,
                         "output Mtok": sum(self.output_tokens.values()) / 1e6, "USD": self.total_usd}
        return pd.DataFrame(rows).T.round(3)


def estimate_cost(preset: HotpotPreset, tokens_per_request: Mapping[str, tuple[float, float]],
                  price: Price, *, caching: bool = False) -> CostEstimate:
    """Cost of running `preset` (all seeds) when each request of a role uses the given
    (input, output) tokens; roles missing from `tokens_per_request` raise ValueError.

    `caching`: Claude's prompt caching as the client applies it. The task prompt is one user
    message that starts with the candidate's instructions, so only a prompt sent again can be read
    from the cache: the test repeats (each program x question `test_repeats` times) pay the first
    send in full, write the second and read the rest. Exploration and validation prompts are
    one-offs, and the proposer's and summarizer's system prompts are under the 512-token minimum.
    """
    calls = {role: n * len(preset.seeds) for role, n in max_calls_per_seed(preset).items()}
    missing = [role for role, n in calls.items() if n and role not in tokens_per_request]
    if missing:
        raise ValueError(f"tokens_per_request lacks roles {missing}; it has {sorted(tokens_per_request)}")
    test_calls = ((preset.iterations // preset.test_every + 1) * preset.n_examples * preset.test_repeats
                  * len(preset.seeds))
    inputs, outputs, usd = {}, {}, {}
    for role, n in calls.items():
        tin, tout = tokens_per_request.get(role, (0.0, 0.0))
        if not (tin >= 0 and tout >= 0):
            raise ValueError(f"tokens_per_request[{role!r}] must be two numbers >= 0, got {(tin, tout)!r}")
        inputs[role], outputs[role] = n * tin, n * tout
        usd[role] = (inputs[role] * price.input_per_mtok + outputs[role] * price.output_per_mtok) / 1e6
        if caching and role == TASK_ROLE and preset.test_repeats >= 2:
            groups = test_calls / preset.test_repeats
            full_price = test_calls * tin * price.input_per_mtok
            cached = groups * tin * (price.input_per_mtok + price.cache_write
                                     + (preset.test_repeats - 2) * price.cache_read)
            usd[role] -= (full_price - cached) / 1e6
    return CostEstimate(calls, inputs, outputs, usd)


def mean_prompt_chars(examples: Sequence[Example], instructions: str = INITIAL_INSTRUCTIONS,
                      max_paragraphs: int | None = None) -> float:
    """Mean length in characters of the task prompt over `examples` (for scaling measured tokens/char)."""
    return float(np.mean([len(build_prompt(instructions, ex.data.context(max_paragraphs), ex.data.question))
                          for ex in examples]))


def tokens_per_char(llm: Any, texts: Sequence[str], usage: UsageTracker | None = None) -> tuple[float, str]:
    """Measured input tokens per prompt character, and how it was measured.

    On the embedded llama-server the replies' input_tokens leave out the server's prompt-cache reads,
    so the texts are counted with its /tokenize endpoint instead (SmolLM2's tokenizer). On any other
    backend the task requests `usage` (a tracker of the search: `llm.ledger.track()`) saw give the
    ratio (those counts are complete).
    """
    if not texts:
        raise ValueError("texts must not be empty")
    server = getattr(llm, "server", None)
    if server is not None:
        import urllib.request

        url = server.ensure_running()
        total = 0
        for text in texts:
            body = json.dumps({"content": text}).encode()
            request = urllib.request.Request(f"{url}/tokenize", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                total += len(json.loads(response.read())["tokens"])
        return total / sum(len(t) for t in texts), f"/tokenize of {len(texts)} prompts (local model's tokenizer)"
    task = usage.usage(TASK_ROLE) if usage is not None else None
    if task is None or not task.prompt_chars:
        raise ValueError("no task requests measured yet: track the search with usage = llm.ledger.track() "
                         "and pass usage=")
    return task.tokens_per_char(), f"{task.requests} task requests (provider's token counts)"


def paper_tokens_per_request(usage: UsageTracker, ratio: float, paper_examples: Sequence[Example],
                             preset: HotpotPreset, worst_case: bool = False) -> dict[str, tuple[float, float]]:
    """(input, output) tokens per request and role for `preset`, from this session's measurements
    (`usage`: a tracker of the search, `llm.ledger.track()`, cached replies included).

    Task input = `ratio` x the mean full prompt of `paper_examples` (the preset's context length);
    proposer and summarizer input = `ratio` x their measured characters per request. Outputs are the
    measured means, or every reply at the preset's max_tokens when `worst_case`.
    """
    if not ratio > 0:
        raise ValueError(f"ratio (tokens per char) must be > 0, got {ratio!r}")
    caps = {TASK_ROLE: preset.task_max_tokens, "proposer": preset.proposer_max_tokens,
            "summarizer": preset.summarizer_max_tokens}
    profile = {}
    for role, cap in caps.items():
        measured = usage.usage(role)
        if measured.requests == 0:
            raise ValueError(f"no {role!r} requests measured yet: track the search with usage = llm.ledger.track()")
        chars = (mean_prompt_chars(paper_examples, max_paragraphs=preset.max_paragraphs) if role == TASK_ROLE
                 else measured.prompt_chars / measured.requests)
        output = float(cap) if worst_case else min(float(cap), measured.output_tokens / measured.requests)
        profile[role] = (ratio * chars, output)
    return profile
