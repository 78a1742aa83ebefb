"""Synthetic evaluators with a known cost, importable on workers: for `bench/executors.py` and tests.

`SleepEvaluator` waits (an LLM call or a subprocess: I/O-bound, the GIL released), `SpinEvaluator`
burns the CPU in pure Python (CPU-bound: only processes run it in parallel), `DieOnce` kills the
worker process it runs in the first time it meets one example (a worker dying mid-iteration).
`LLMTaskEvaluator` makes one short "task" LLM call per evaluation: on a priced fake
(`fake_llm_evaluator`, for tests of worker spend) or on a llama-server endpoint
(`local_llm_evaluator`, the bench's local-LLM row); both factories build on the worker with
`worker_ledger()`, so the call's spend comes back with its result.
Each scores deterministically in (params, example, seed), so a run's event log does not depend on
where its calls ran (the fake's replies are deterministic too).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..llm.base import LLM, LLMReply
from ..llm.config import FREE, LOCAL_MODEL_NAME, Price
from ..llm.ledger import Ledger
from ..llm.usage import prompt_chars
from ..types import Evaluation, Example, Params
from .worker import worker_ledger


def pseudo_score(params: Params, example: Example, seed: int) -> float:
    """A score in [0, 1) fixed by the inputs (crc32; the same in every process, unlike hash())."""
    text = f"{sorted(params.items())}|{example.id}|{seed}".encode()
    return (zlib.crc32(text) % 1000) / 1000.0


@dataclass(frozen=True)
class SleepEvaluator:
    """Waits `seconds` per call, then scores `pseudo_score`: an I/O-bound metric call."""

    seconds: float = 0.05

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        time.sleep(self.seconds)
        score = pseudo_score(params, example, seed)
        return Evaluation(score, f"slept {self.seconds:g} s; score {score:.3f}")


@dataclass(frozen=True)
class SpinEvaluator:
    """Runs `iterations` of a pure-Python loop per call (GIL held): a CPU-bound metric call."""

    iterations: int = 200_000

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        acc = seed
        for i in range(self.iterations):
            acc = (acc * 1103515245 + i) % 2147483648
        score = pseudo_score(params, example, seed + acc % 7)
        return Evaluation(score, f"spun {self.iterations} iterations; score {score:.3f}")


@dataclass(frozen=True)
class DieOnce:
    """Runs `inner`, except that the first call on `example_id` (machine-wide, marked by creating
    `marker`) kills the process it runs in: with a Dask nanny, the worker dies mid-task."""

    inner: Any
    example_id: str
    marker: str

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        if example.id == self.example_id:
            try:
                Path(self.marker).open("x").close()
            except FileExistsError:
                pass
            else:
                os._exit(17)  # no cleanup, no exception: as a crash or the OOM killer would
        return self.inner(params, example, seed)


FAKE_PRICE = Price(3.0, 15.0)
"""The fake task model's price (USD per million tokens): a Sonnet-like one, so spend is nonzero."""


@dataclass
class FakeTaskLLM:
    """A deterministic priced task model that books each reply on `ledger` as `LLMClient` books a
    live call: spend checked against the ledger's limits first, then tokens and USD recorded.

    Reply: "ok <n>" for a prompt of n characters; input tokens = 1 + n // 4, output tokens = 2.
    """

    ledger: Ledger
    price: Price = FAKE_PRICE

    def complete(self, *, system: str, messages: Sequence[dict[str, Any]], role: str, max_tokens: int = 1024,
                 temperature: float = 0.0, sample_id: int = 0, tools: Any = None, stop: Any = None) -> LLMReply:
        chars = prompt_chars(system, messages)
        input_tokens, output_tokens = 1 + chars // 4, min(2, max_tokens)
        worst = self.price.cost(input_tokens, max_tokens)
        self.ledger.check_spend(role, worst)
        try:
            self.ledger.record_call(role, input_tokens=input_tokens, output_tokens=output_tokens,
                                    usd=self.price.cost(input_tokens, output_tokens), latency_s=0.0)
        finally:
            self.ledger.release_spend(role, worst)
        text = f"ok {chars}"
        reply = LLMReply(text, ({"type": "text", "text": text},), input_tokens, output_tokens, model="fake")
        self.ledger.record_request(role, prompt_chars=chars, reply=reply)
        return reply


@dataclass
class LLMTaskEvaluator:
    """One "task" call of at most `max_tokens` per evaluation (an I/O-bound metric call on an LLM),
    scored by `pseudo_score`; the reply is the evaluation's output."""

    llm: LLM
    max_tokens: int = 8

    def __call__(self, params: Params, example: Example, seed: int) -> Evaluation:
        prompt = f"Example {example.id}. Reply with one word."
        reply = self.llm.complete(system=str(params.get("instructions", "")), role="task",
                                  messages=[{"role": "user", "content": prompt}], max_tokens=self.max_tokens)
        score = pseudo_score(params, example, seed)
        return Evaluation(score, f"the model replied; score {score:.3f}", output=reply.text)


def fake_llm_evaluator(max_tokens: int = 8) -> LLMTaskEvaluator:
    """`LLMTaskEvaluator` on a `FakeTaskLLM` booking on this process's `worker_ledger()` (for `OnWorker`)."""
    return LLMTaskEvaluator(FakeTaskLLM(worker_ledger()), max_tokens)


def local_llm_evaluator(base_url: str, max_tokens: int = 8) -> LLMTaskEvaluator:
    """`LLMTaskEvaluator` on the llama-server at `base_url` (one server every worker shares, as
    `ANTHROPIC_BASE_URL` would name it), uncached, booking on this process's `worker_ledger()`."""
    from ..llm.backends import default_client  # noqa: PLC0415 - the client stack only where it is used

    client = default_client(base_url=base_url, model=LOCAL_MODEL_NAME, price=FREE, cache=False,
                            ledger=worker_ledger())
    return LLMTaskEvaluator(client, max_tokens)
