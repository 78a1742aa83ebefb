"""Benchmark the embedded local LLM and the client around it.

Prints: server start-up time; prefill and generation tokens/s from llama-server's native /completion
`timings`; end-to-end tokens/s through the anthropic SDK; and LLMClient's own overhead per call
(everything except the SDK call itself) for a live call with a cold disk cache and for a cache hit,
each as a ratio to the live call's latency.

    .venv/bin/python bench/llm_local.py [--repeats 5] [--prompt-words 400] [--gen-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request

from polca_nb.llm import LLMCache, LLMClient, LocalServer, ServerSettings
from polca_nb.llm import config

WORDS = ("the optimizer proposes a new prompt from the feedback of a noisy evaluation and keeps the best "
         "candidates in a priority queue while an epsilon net removes near duplicates").split()


def _prompt(words: int, variant: int) -> str:
    body = " ".join(WORDS[(i + variant) % len(WORDS)] for i in range(words))
    return f"Summarise in one sentence (variant {variant}):\n{body}"


def native_timings(url: str, prompt: str, gen_tokens: int) -> dict:
    """One /completion call with prompt caching off, so every run pays the full prefill."""
    body = json.dumps({"prompt": prompt, "n_predict": gen_tokens, "temperature": 0, "cache_prompt": False,
                       "ignore_eos": True}).encode()
    request = urllib.request.Request(f"{url}/completion", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())["timings"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt-words", type=int, default=400)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="llama-server -t (default: config / env)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]  # numbers below are only comparable at similar load
    with tempfile.TemporaryDirectory() as scratch:
        settings = ServerSettings() if args.threads is None else ServerSettings(threads=args.threads)
        server = LocalServer(settings)
        t0 = time.perf_counter()
        url = server.start()
        startup = time.perf_counter() - t0
        try:
            print(f"llama-server: {config.LOCAL_MODEL_FILE}, -c {settings.context} -t {settings.threads}, "
                  f"start-up (spawn -> /health ok) {startup:.2f} s; load average before {load_before:.1f}, "
                  f"{os.cpu_count()} CPUs; log {server.log_path}")

            native_timings(url, _prompt(20, 0), 8)  # warm-up: page the weights in
            runs = [native_timings(url, _prompt(args.prompt_words, i), args.gen_tokens) for i in range(args.repeats)]
            print(f"native /completion ({args.repeats} runs, prompt {runs[0]['prompt_n']} tok, "
                  f"gen {runs[0]['predicted_n']} tok): prefill {median([r['prompt_per_second'] for r in runs]):.1f} "
                  f"tok/s, generation {median([r['predicted_per_second'] for r in runs]):.1f} tok/s (medians)")

            sdk_seconds: list[float] = []

            def timed_create(**kwargs):
                started = time.perf_counter()
                try:
                    return inner(**kwargs)
                finally:
                    sdk_seconds.append(time.perf_counter() - started)

            plain = LLMClient(model=config.LOCAL_MODEL_NAME, server=server, cache=None)
            inner = plain._create_fn(url)  # the real SDK `messages.create`, timed from outside
            client = LLMClient(model=config.LOCAL_MODEL_NAME, server=server, cache=LLMCache(scratch),
                               create=timed_create)
            live, live_overhead, hit, tokens_out = [], [], [], []
            for i in range(args.repeats):
                request = dict(system="Be terse.", role="bench", max_tokens=args.gen_tokens, temperature=0.0,
                               messages=[{"role": "user", "content": _prompt(args.prompt_words, 100 + i)}])
                started = time.perf_counter()
                reply = client.complete(**request)
                live.append(time.perf_counter() - started)
                live_overhead.append(live[-1] - sdk_seconds[-1])
                tokens_out.append(reply.output_tokens)
                started = time.perf_counter()
                assert client.complete(**request).cached
                hit.append(time.perf_counter() - started)
            call = median(live)
            print(f"via anthropic SDK /v1/messages: median call {call * 1e3:.0f} ms for "
                  f"{median(tokens_out):.0f} output tok -> {median(tokens_out) / call:.1f} tok/s end to end")
            print(f"client overhead, live call + cold disk cache write: {median(live_overhead) * 1e3:.2f} ms "
                  f"= {median(live_overhead) / call:.2e} of the call")
            print(f"client overhead, cache hit (whole call): {median(hit) * 1e3:.3f} ms "
                  f"= {median(hit) / call:.2e} of a live call")
            print(client.ledger)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
