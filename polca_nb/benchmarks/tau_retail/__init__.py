"""τ-bench retail environment, re-implemented from shared/specs/tau_retail.md (no upstream code).

Plain data plus small functions: `load_retail` -> `RetailData`; `reset(data, task, user)` ->
`EnvState`; `step(state, action)` -> `StepResult`; the reward is `compute_reward` (DB-hash match
with the gold replay, plus expected outputs). See README.md in this folder for the agent loop.

On top of the env: `TauAgent` (tool use or a JSON text protocol), `LLMUser` (the LLM customer),
`run_episode(s)` and the POLCA problem in the benchmark shape (polca_nb/benchmarks/README.md):
`data` (`load_retail`, `download`), `evaluator` (`TauEvaluator`), `presets` (`PRESETS`, `setup`),
`experiment` (`run`), `reference`, `plots`; beside them `metrics` (Pass@1, the table) and `cost`.
"""

from .agent import AgentStep, TauAgent, choose_mode, parse_text_action, tool_catalog
from .data import Action, Db, RetailData, Task, deep_copy_db, download, fresh_db, load_retail, writable_record
from .env import MAX_STEPS, EnvState, StepResult, Turn, as_action, reset, step
from .episode import Episode, render_html, run_episode, run_episodes, transcript_text
from .hashing import canonical_form, canonical_text, db_hash
from .llm_user import LLMUser
from .cost import CostModel
from .evaluator import PARAM, SEED_PARAMS, TauEvaluator, episode_feedback, evaluate_program, task_examples
from .experiment import run
from .metrics import comparison_table, pass_at_1
from .plots import plot_comparison
from .presets import PRESETS, TauPreset, make_evaluator, make_optimizer_roles, setup, tau_problem
from .reference import paper_reference
from .reward import (
    RESPOND,
    RewardInfo,
    changed_paths,
    compute_reward,
    gold_hash,
    gold_replay_check,
    outputs_found,
    replay_actions,
    replay_gold,
)
from .tools import TERMINATE_TOOLS, TOOLS, ToolSpec, execute_tool, tool_schemas
from .user import STOP_TOKEN, ScriptedUser, UserSimulator

__all__ = [
    "AgentStep", "CostModel", "Episode", "LLMUser", "PARAM", "PRESETS", "TauAgent", "TauEvaluator", "TauPreset",
    "choose_mode", "comparison_table", "episode_feedback", "evaluate_program", "make_evaluator", "make_optimizer_roles",
    "paper_reference", "parse_text_action", "pass_at_1", "plot_comparison", "render_html", "run_episode",
    "run_episodes", "task_examples",
    "tau_problem", "tool_catalog", "transcript_text", "SEED_PARAMS", "download", "run", "setup",
    "Action", "Db", "EnvState", "MAX_STEPS", "RESPOND", "RetailData", "RewardInfo", "STOP_TOKEN",
    "ScriptedUser", "StepResult", "TERMINATE_TOOLS", "TOOLS", "Task", "ToolSpec", "Turn", "UserSimulator",
    "as_action", "canonical_form", "canonical_text", "changed_paths", "compute_reward", "db_hash",
    "deep_copy_db", "execute_tool", "fresh_db", "gold_hash", "gold_replay_check", "load_retail", "outputs_found",
    "replay_actions", "replay_gold", "reset", "step", "tool_schemas", "writable_record",
]
