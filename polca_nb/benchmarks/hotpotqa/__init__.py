"""HotpotQA prompt optimization, the paper's setup (benchmarks.md §2, polca-method.md §3 and §5.2).

The program is one parameter, `meta_instructions`, put in front of a question and its ten distractor
paragraphs; the task model (ledger role "task") answers, and the answer is scored 1 if, after
lower-casing, stripping and dropping trailing `.,!?;:`, it equals the gold answer or contains it.
Feedback is "Correct." or "Incorrect. Expected: ..., Got: ..." followed by the context, the question and
the harness's closing sentence (`feedback_text`). Train = test = the first `n` tasks; validation = the
first `PAPER_NUM_VALIDATION` (10) of them, as in the harness (`make_problem`).

    examples = load_examples()                       # the paper's 100 tasks
    evaluator = HotpotQAEvaluator(llm)               # llm: polca_nb.llm.default_client()
    run = run_seed(PRESETS["smoke"], llm, seed=0, embedder=default_embedder())

Data: `hotpotqa/hotpot_dev_distractor_first100.json` under `polca_nb.data.data_dir()`, or
`python -m polca_nb.benchmarks.hotpotqa download` (needs `datasets` and internet).

The benchmark shape (polca_nb/benchmarks/README.md): `data` (loader, downloader), `evaluator` (scoring),
`presets` (`PRESETS`, `setup`), `experiment` (`run_seed`, `run`), `reference`, `plots`, and `cost` (the
paper preset's cost estimate). Every name is re-exported here, so `hotpotqa.<name>` keeps working.
"""

from .cost import (CostEstimate, estimate_cost, max_calls_per_seed, mean_prompt_chars, paper_tokens_per_request,
                   tokens_per_char)
from .data import (DATA_FILE, DATA_SHA256, DOWNLOAD_COMMAND, HF_CONFIG, HF_DATASET, HF_SPLIT, HF_URL,
                   PAPER_NUM_EXAMPLES, PAPER_NUM_VALIDATION, RECORD_KEYS, TRAILING_PUNCTUATION, HotpotQuestion,
                   data_file, download, format_context, load_examples, main, parse_record, sha256_of)
from .evaluator import (FEEDBACK_CLOSING, INITIAL_INSTRUCTIONS, OBJECTIVE, PARAM, PARAM_NAME, SEED_PARAMS, TASK_ROLE,
                        UPSTREAM_TASK_MAX_TOKENS, HotpotQAEvaluator, build_prompt, feedback_text, is_correct,
                        normalize_answer, render_input, score_output)
from .experiment import EVAL_STEPS_PER_ITERATION, HotpotRun, measure_accuracy, run, run_seed
from .plots import plot_runs
from .presets import (PRESETS, SMOKE_TASK_MAX_TOKENS, HotpotPreset, HotpotRoles, get_preset, make_config,
                      make_problem, make_roles, num_validation_tasks, setup)
from .reference import REFERENCE_FILE, paper_reference

__all__ = [
    "CostEstimate", "estimate_cost", "max_calls_per_seed", "mean_prompt_chars", "paper_tokens_per_request",
    "tokens_per_char",
    "DATA_FILE", "DATA_SHA256", "DOWNLOAD_COMMAND", "HF_CONFIG", "HF_DATASET", "HF_SPLIT", "HF_URL",
    "PAPER_NUM_EXAMPLES",
    "PAPER_NUM_VALIDATION", "RECORD_KEYS", "TRAILING_PUNCTUATION", "HotpotQuestion", "data_file", "download",
    "format_context", "load_examples", "main", "parse_record", "sha256_of",
    "FEEDBACK_CLOSING", "INITIAL_INSTRUCTIONS", "OBJECTIVE", "PARAM", "PARAM_NAME", "SEED_PARAMS", "TASK_ROLE",
    "UPSTREAM_TASK_MAX_TOKENS", "HotpotQAEvaluator", "build_prompt", "feedback_text", "is_correct",
    "normalize_answer", "render_input", "score_output",
    "EVAL_STEPS_PER_ITERATION", "HotpotRun", "measure_accuracy", "run", "run_seed",
    "plot_runs",
    "PRESETS", "SMOKE_TASK_MAX_TOKENS", "HotpotPreset", "HotpotRoles", "get_preset", "make_config", "make_problem",
    "make_roles", "num_validation_tasks", "setup",
    "REFERENCE_FILE", "paper_reference",
]
