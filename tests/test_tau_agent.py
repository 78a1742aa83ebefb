"""τ-bench retail agent, LLM customer, episodes and the POLCA evaluator, with scripted LLMs (no model)."""

from __future__ import annotations

import copy
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pytest

from polca_nb.benchmarks.tau_retail import (
    STOP_TOKEN,
    TOOLS,
    Action,
    ScriptedUser,
    compute_reward,
    db_hash,
    fresh_db,
    load_retail,
    replay_gold,
    reset,
    step,
)
from polca_nb.benchmarks.tau_retail.agent import (
    EMPTY_MESSAGE,
    INSTRUCTIONS_HEADING,
    NOT_EXECUTED,
    OBSERVATION_PREFIX,
    TauAgent,
    choose_mode,
    parse_text_action,
    tool_catalog,
)
from polca_nb.benchmarks.tau_retail.episode import render_html, run_episode, run_episodes, transcript_text
from polca_nb.benchmarks.tau_retail.llm_user import GREETING, LLMUser
from polca_nb.benchmarks.tau_retail.cost import CostModel
from polca_nb.benchmarks.tau_retail.evaluator import PARAM, TauEvaluator, action_trace, evaluate_program, task_example
from polca_nb.benchmarks.tau_retail.metrics import comparison_table, pass_at_1
from polca_nb.benchmarks.tau_retail.presets import PRESETS, make_optimizer_roles, tau_problem
from polca_nb.benchmarks.tau_retail.reference import paper_reference
from polca_nb.llm import DEFAULT_CLAUDE_MODEL, LLMClient
from polca_nb.llm.base import LLMReply, ScriptedLLM
from polca_nb.llm.config import Price
from polca_nb.budget import Budget
from polca_nb.runner import PolcaConfig, polca

Reply = str | tuple[str, dict[str, Any]]
"""A scripted agent reply: text, or (tool name, input) for a tool_use block."""


@dataclass
class ToolScriptedLLM:
    """A fake Messages-API model whose replies can hold tool_use blocks; records every request."""

    replies: Sequence[Reply] | Callable[[dict[str, Any]], Reply]
    preamble: str = ""  # text sent alongside every tool call (the agent must drop it)
    calls: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self, *, system, messages, role, max_tokens=1024, temperature=0.0, sample_id=0, tools=None,
                 stop=None) -> LLMReply:
        request = {"system": system, "messages": copy.deepcopy(list(messages)), "role": role,
                   "temperature": temperature, "sample_id": sample_id, "tools": tools}
        with self._lock:
            index = len(self.calls)
            self.calls.append(request)
        item = self.replies(request) if callable(self.replies) else self.replies[index]
        if isinstance(item, str):
            return LLMReply(text=item, content=({"type": "text", "text": item},))
        name, arguments = item
        blocks = []
        if self.preamble:
            blocks.append({"type": "text", "text": self.preamble})
        blocks.append({"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": arguments})
        blocks.append({"type": "tool_use", "id": f"toolu_{index}b", "name": "think", "input": {"thought": "x"}})
        return LLMReply(text=self.preamble, content=tuple(blocks))


@pytest.fixture(scope="module")
def data():
    return load_retail()


def gold_tool_replies(task) -> list[Reply]:
    return [(a.name, dict(a.kwargs)) for a in task.actions]


# -- text protocol parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, expected", [
    ('{"name": "get_order_details", "arguments": {"order_id": "#W1"}}',
     Action("get_order_details", {"order_id": "#W1"})),
    ('Action:\n```json\n{"name": "find_user_id_by_email", "arguments": {"email": "a@b.c"}}\n```',
     Action("find_user_id_by_email", {"email": "a@b.c"})),
    ("Sure! {'name': 'cancel_pending_order', 'arguments': {'order_id': '#W2', 'reason': 'ordered by mistake'}}",
     Action("cancel_pending_order", {"order_id": "#W2", "reason": "ordered by mistake"})),
    ('{"name": "get_user_details", "arguments": "{\\"user_id\\": \\"u_1\\"}"}',
     Action("get_user_details", {"user_id": "u_1"})),
    ('{"name": "list_all_product_types"}', Action("list_all_product_types", {})),
    ('{"name": "respond", "arguments": {"content": "Hello there"}}', Action("respond", {"content": "Hello there"})),
    ('I see {"price": 3} first, then {"name": "think", "arguments": {"thought": "{nested}"}}',
     Action("think", {"thought": "{nested}"})),
])
def test_text_protocol_reads_the_first_json_action(reply, expected):
    action, source = parse_text_action(reply)
    assert action == expected
    assert source == "json"


@pytest.mark.parametrize("reply", [
    "Hello! Could you give me your email address?",
    '{"name": "get_order_details", "arguments": {"order_id": ',   # cut off mid-object
    '{"order_id": "#W1"}',                                           # no action name
    '{"name": "bad name with spaces", "arguments": {}}',
    "{'name': 'x', 'arguments': [1, 2]}",                            # arguments not a mapping
    "",
])
def test_unparseable_text_becomes_a_respond_with_the_raw_text(reply):
    action, source = parse_text_action(reply)
    assert (action.name, source) == ("respond", "text")
    assert action.kwargs["content"] == reply.strip()


def test_mode_is_text_for_the_local_server_and_tools_otherwise(data):
    class LocalLike(ScriptedLLM):
        server = object()

    assert choose_mode(ScriptedLLM()) == "tools"
    assert choose_mode(LocalLike()) == "text"
    assert choose_mode(LocalLike(), "tools") == "tools"
    assert TauAgent(LocalLike(), data.wiki).mode == "text"
    with pytest.raises(ValueError, match="mode"):
        choose_mode(ScriptedLLM(), "json")


def test_system_prompt_is_wiki_plus_instructions_and_protocol_only_in_text_mode(data):
    tools_agent = TauAgent(ScriptedLLM(), data.wiki, mode="tools")
    text_agent = TauAgent(ScriptedLLM(), data.wiki, mode="text")
    assert tools_agent.system_prompt("") == data.wiki.rstrip()
    prompt = tools_agent.system_prompt("Always double-check item ids.")
    assert prompt.startswith(data.wiki.rstrip())
    assert prompt.endswith(f"{INSTRUCTIONS_HEADING}\nAlways double-check item ids.")
    text_prompt = text_agent.system_prompt("Always double-check item ids.")
    assert '"arguments"' in text_prompt and OBSERVATION_PREFIX in text_prompt
    assert all(f"- {name}(" in text_prompt for name in TOOLS)
    assert text_prompt.index("Always double-check") < text_prompt.index("- calculate(")
    assert len(tool_catalog(detail=False)) < len(tool_catalog(detail=True))


# -- the agent's two modes -------------------------------------------------------------------------------

def test_tool_mode_acts_on_the_first_tool_use_block_and_drops_the_rest(data):
    task = data.task("test", 88)
    llm = ToolScriptedLLM(gold_tool_replies(task) + ["Your order is cancelled."], preamble="Let me check.")
    agent = TauAgent(llm, data.wiki, mode="tools")
    user = ScriptedUser(["I want to cancel an order.", STOP_TOKEN])
    episode = run_episode(data, task, agent, user, instructions="", seed=7)

    assert [t.action.name for t in episode.turns] == [a.name for a in task.actions] + ["respond"]
    assert "think" not in [t.action.name for t in episode.turns]           # the second call was dropped
    first = llm.calls[0]
    assert first["tools"] is not None and {t["name"] for t in first["tools"]} == set(TOOLS)
    assert first["temperature"] == 0.0 and first["sample_id"] == 7 and first["role"] == "task"
    # History: the reply's blocks as received (preamble text and both calls); the first call's tool_result
    # holds the observation, the second call is answered too, as not executed (the API wants every call answered).
    assistant, result = llm.calls[1]["messages"][1:3]
    assert assistant == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_0", "name": task.actions[0].name, "input": dict(task.actions[0].kwargs)},
        {"type": "tool_use", "id": "toolu_0b", "name": "think", "input": {"thought": "x"}}]}
    assert [b["type"] for b in result["content"]] == ["tool_result", "tool_result"]
    assert [b["tool_use_id"] for b in result["content"]] == ["toolu_0", "toolu_0b"]
    assert result["content"][0]["content"] == episode.turns[0].observation
    assert result["content"][1]["content"] == NOT_EXECUTED and result["content"][1]["is_error"] is True
    assert user.heard == ["Your order is cancelled."]


def test_text_mode_reads_json_actions_and_feeds_back_api_output(data):
    task = data.task("test", 88)
    replies = [json.dumps({"name": a.name, "arguments": dict(a.kwargs)}) for a in task.actions] + ["All done."]
    llm = ScriptedLLM(replies)
    agent = TauAgent(llm, data.wiki, mode="text", observation_chars=40)
    episode = run_episode(data, task, agent, ScriptedUser(["Cancel please.", STOP_TOKEN]), instructions="",
                          seed=1)
    assert episode.reward == 1.0
    assert [s.source for s in episode.steps] == ["json"] * len(task.actions) + ["text"]
    assert llm.calls[0]["tools"] is None
    tool_result = llm.calls[1]["messages"][2]["content"]
    assert tool_result.startswith(OBSERVATION_PREFIX)
    assert "chars cut]" in tool_result and len(tool_result) < len(episode.turns[0].observation) + 40


def test_an_empty_reply_is_kept_as_an_empty_respond_but_never_sent_empty(data):
    llm = ScriptedLLM(["", "bye"])
    agent = TauAgent(llm, data.wiki, mode="tools")
    episode = run_episode(data, data.task("test", 88), agent, ScriptedUser(["hi", "hello?", STOP_TOKEN]),
                          instructions="", seed=0)
    assert episode.turns[0].action == Action("respond", {"content": ""})
    assert llm.calls[1]["messages"][1] == {"role": "assistant", "content": EMPTY_MESSAGE}


# -- whole episodes ---------------------------------------------------------------------------------------

def test_scripted_episode_with_outputs_reaches_reward_1_and_matches_the_env_reward(data):
    task = data.task("test", 76)  # two cancellations, and the agent must say the refund total
    assert task.outputs
    said = f"Both orders are cancelled; the total refund is {', '.join(task.outputs)}."
    llm = ToolScriptedLLM(gold_tool_replies(task) + [said])
    episode = run_episode(data, task, TauAgent(llm, data.wiki, mode="tools"),
                          ScriptedUser(["Please cancel two orders.", STOP_TOKEN]), instructions="", seed=3)
    assert episode.reward == 1.0 and episode.ended == "stop" and episode.db_mismatch == ()
    # The same actions replayed on a fresh env give the same reward: the episode runner adds nothing.
    state = reset(data, task, ScriptedUser(["x", STOP_TOKEN]))
    for turn in episode.turns:
        step(state, turn.action)
    assert state.reward == 1.0
    assert episode.reward_info.data_hash == db_hash(replay_gold(task, data), data)


def test_missing_output_fails_and_the_feedback_says_which(data):
    task = data.task("test", 76)
    llm = ToolScriptedLLM(gold_tool_replies(task) + ["Both orders are cancelled."])
    evaluator = TauEvaluator(data, TauAgent(llm, data.wiki, mode="tools"),
                             user_llm=ScriptedLLM(["Please cancel two orders.", STOP_TOKEN]))
    evaluation = evaluator({PARAM: ""}, task_example(task), seed=5)
    assert evaluation.score == 0.0
    assert "Reward: 0" in evaluation.feedback
    assert f'"{task.outputs[0]}"' in evaluation.feedback
    assert "The database ended in the expected state." in evaluation.feedback
    assert "cancel_pending_order(order_id='#W8367380'" in evaluation.feedback   # the agent's writes
    assert "Customer: Please cancel two orders." in evaluation.feedback       # the conversation
    assert evaluation.output == "cancel_pending_order x2 -> respond"


def test_wrong_write_feedback_names_the_differing_db_fields(data):
    task = data.task("test", 88)  # gold: cancel #W8835847 'ordered by mistake'
    gold = task.actions[0]
    wrong = {**gold.kwargs, "reason": "no longer needed"}
    llm = ToolScriptedLLM([("cancel_pending_order", wrong), "Done."])
    evaluator = TauEvaluator(data, TauAgent(llm, data.wiki, mode="tools"),
                             user_llm=ScriptedLLM(["Cancel my order.", STOP_TOKEN]))
    evaluation = evaluator({PARAM: ""}, task_example(task), seed=0)
    assert evaluation.score == 0.0
    order = gold.kwargs["order_id"]
    assert f"orders/{order}/cancel_reason" in evaluation.feedback
    assert f"orders/{order}/status" not in evaluation.feedback   # both cancels set status: it matches
    assert "reason='no longer needed'" in evaluation.feedback


def test_truncated_episode_scores_0_and_says_it_was_cut_off(data):
    task = data.task("test", 88)
    llm = ToolScriptedLLM(lambda request: ("think", {"thought": "hmm"}))
    evaluator = TauEvaluator(data, TauAgent(llm, data.wiki, mode="tools"), user_llm=ScriptedLLM(["Hi."]),
                             max_steps=3)
    evaluation = evaluator({PARAM: ""}, task_example(task), seed=0)
    episode = evaluator.episodes[-1]
    assert (evaluation.score, episode.truncated, len(episode.turns)) == (0.0, True, 3)
    assert "cut off after 3 agent steps" in evaluation.feedback
    assert f"orders/{task.actions[0].kwargs['order_id']}/status" in evaluation.feedback   # left undone
    assert "none" in evaluation.feedback   # no successful writes
    assert "think x3" == action_trace(episode)


def test_an_llm_failure_scores_0_with_the_error_in_the_feedback(data):
    def broken(request):
        raise RuntimeError("endpoint down")

    evaluator = TauEvaluator(data, TauAgent(ToolScriptedLLM(broken), data.wiki, mode="tools"),
                             user_llm=ScriptedLLM(["Hi."]))
    evaluation = evaluator({PARAM: ""}, task_example(data.task("test", 0)), seed=0)
    assert evaluation.score == 0.0
    assert "crashed: RuntimeError: endpoint down" in evaluation.feedback
    assert evaluator.episodes[-1].ended == "error"


def test_examples_never_carry_the_gold_actions(data):
    task = data.task("test", 88)
    example = task_example(task)
    assert example.id == "test/88"
    assert set(example.data) == {"task", "instruction"}
    assert task.actions[0].kwargs["order_id"] not in json.dumps(example.data)


def test_concurrent_episodes_each_get_their_own_database(data):
    task = data.task("test", 88)

    def act(request):  # episodes with an odd seed cancel the order, even ones only talk
        done = any(m["role"] == "assistant" for m in request["messages"])
        if request["sample_id"] % 2 and not done:
            return (task.actions[0].name, dict(task.actions[0].kwargs))
        return "Anything else?"

    agent = TauAgent(ToolScriptedLLM(act), data.wiki, mode="tools")
    pristine = db_hash(data.pristine, data)
    episodes = run_episodes(data, [task] * 6, list(range(6)), agent,
                            lambda seed: ScriptedUser(["Hi.", STOP_TOKEN]), instructions="", max_workers=4)
    assert [e.reward for e in episodes] == [0.0, 1.0] * 3
    assert [e.seed for e in episodes] == list(range(6))
    assert db_hash(data.pristine, data) == pristine


# -- the LLM customer ---------------------------------------------------------------------------------------

def test_llm_user_keeps_its_own_history_and_passes_the_seed(data):
    task = data.task("test", 0)
    llm = ScriptedLLM(["Hi, I want to exchange a keyboard.", "  ", f"Thanks! {STOP_TOKEN}"])
    user = LLMUser(llm, seed=42, max_tokens=50, temperature=0.5)
    opening = user.reset(task.instruction)
    assert opening == "Hi, I want to exchange a keyboard."
    first = llm.calls[0]
    assert first["messages"] == [{"role": "user", "content": GREETING}]
    assert task.instruction in first["system"] and STOP_TOKEN in first["system"]
    assert (first["role"], first["sample_id"], first["max_tokens"], first["temperature"]) == ("user_sim", 42, 50, 0.5)
    assert user.reply("What is your name?") == "(no reply)"    # a blank reply is never sent back blank
    assert user.reply("") == f"Thanks! {STOP_TOKEN}"
    assert llm.calls[2]["messages"] == [
        {"role": "user", "content": GREETING},
        {"role": "assistant", "content": "Hi, I want to exchange a keyboard."},
        {"role": "user", "content": "What is your name?"},
        {"role": "assistant", "content": "(no reply)"},
        {"role": "user", "content": "(no message)"},
    ]
    with pytest.raises(ValueError, match="instruction"):
        user.reset("  ")


def test_llm_user_stop_ends_the_episode_and_triggers_the_reward(data):
    task = data.task("test", 88)
    user = LLMUser(ScriptedLLM(["I need to cancel.", f"Bye {STOP_TOKEN}"]), seed=1)
    agent = TauAgent(ToolScriptedLLM(["Sorry, I cannot help with that."]), data.wiki, mode="tools")
    episode = run_episode(data, task, agent, user, instructions="", seed=1)
    assert episode.ended == "stop" and not episode.truncated and len(episode.turns) == 1
    assert episode.reward_info is not None and episode.reward == 0.0   # nothing was cancelled
    assert episode.reward_info == compute_reward(fresh_db(data), task, ["Sorry, I cannot help with that."], data)


# -- evaluation helpers and the POLCA problem ------------------------------------------------------------

def opening_from_instruction(request):
    """A scripted customer: opens with the first 40 characters of its instruction, then stops."""
    if len(request["messages"]) > 1:
        return STOP_TOKEN
    return request["system"].split("Instruction: ", 1)[1][:40]


def test_evaluate_program_is_reproducible_and_pass_at_1_groups_by_task(data):
    indices = (88, 90, 11)
    tasks = [data.task("test", i) for i in indices]

    def act(request):  # solves 88 and 90 (single cancellations), only talks on 11 (two returns)
        if any(m["role"] == "assistant" for m in request["messages"]):
            return "Done."
        opening = request["messages"][0]["content"]
        task = next(t for t in tasks if t.instruction.startswith(opening))
        if task.index == 11:
            return "I cannot help."
        return (task.actions[0].name, dict(task.actions[0].kwargs))

    evaluator = TauEvaluator(data, TauAgent(ToolScriptedLLM(act), data.wiki, mode="tools"),
                             user_llm=ScriptedLLM(opening_from_instruction))
    first = evaluate_program(evaluator, {PARAM: ""}, tasks, seed=11, max_workers=3)
    again = evaluate_program(evaluator, {PARAM: ""}, tasks, seed=11, max_workers=1)
    other = evaluate_program(evaluator, {PARAM: ""}, tasks, seed=12, max_workers=1)
    assert [e.seed for e in first] == [e.seed for e in again] != [e.seed for e in other]
    assert len({e.seed for e in first}) == 3
    assert [e.task.index for e in first] == list(indices)
    assert [e.reward for e in first] == [1.0, 1.0, 0.0]
    table = pass_at_1(first, {"cancels": (88, 90), "other": (11,), "all": (11, 88, 90), "none": (5,)})
    assert table["cancels"] == (1.0, 2) and table["other"] == (0.0, 1)
    assert table["all"][0] == pytest.approx(2 / 3) and table["none"][1] == 0


def test_polca_finds_instructions_that_make_the_scripted_agent_succeed(data):
    """End to end through the runner: the agent solves its task only when its instructions say MAGIC."""
    tasks = [data.task("test", i) for i in (88, 90)]

    def act(request):
        if "MAGIC" in request["system"] and not any(m["role"] == "assistant" for m in request["messages"]):
            task = next(t for t in tasks if t.instruction.startswith(request["messages"][0]["content"]))
            return (task.actions[0].name, dict(task.actions[0].kwargs))
        return "Goodbye."

    evaluator = TauEvaluator(data, TauAgent(ToolScriptedLLM(act), data.wiki, mode="tools"),
                             user_llm=ScriptedLLM(opening_from_instruction))
    preset = PRESETS["smoke"].with_(train=(88, 90), val=(88, 90), groups={"all": (88, 90)})
    problem = tau_problem(data, evaluator, preset)
    proposer_llm = ScriptedLLM(lambda r: f'<param name="{PARAM}">\nSay MAGIC words.\n</param>')
    proposer, _ = make_optimizer_roles(proposer_llm, preset)
    config = PolcaConfig(Budget(max_iterations=2), num_candidates=2, batch_size=1, eps=0.0, use_summarizer=False)
    result = polca(problem, proposer, config, seed=0, progress=False)
    assert result.memory.candidates[0].mean == 0.0
    assert result.best.params[PARAM] == "Say MAGIC words." and result.best.mean == 1.0
    # The proposer saw the seed program's failure feedback and the customer instruction, never the gold actions.
    prompt = proposer_llm.calls[0]["messages"][0]["content"]
    assert "Reward: 0" in prompt and "/status" in prompt and "cut off" not in prompt
    assert any(t.instruction in prompt for t in tasks)
    assert "cancel_pending_order" not in prompt


def test_presets_match_the_paper_setting():
    paper = PRESETS["paper"]
    config = paper.config()
    assert (config.num_candidates, config.batch_size, config.num_batches, config.eps) == (5, 2, 1, 0.1)
    assert config.use_summarizer and config.budget.max_iterations == 101
    assert paper.train == paper.val == tuple(range(10)) and paper.test == tuple(range(115))
    assert paper.max_steps == 30
    assert PRESETS["smoke"].max_steps < paper.max_steps
    assert PRESETS["smoke"].config(eps=0.3).eps == 0.3


def test_rendered_conversation_shows_tool_calls_and_escapes_text(data):
    task = data.task("test", 88)
    llm = ToolScriptedLLM(gold_tool_replies(task) + ["<b>Done</b> & dusted"])
    episode = run_episode(data, task, TauAgent(llm, data.wiki, mode="tools"),
                          ScriptedUser(["Cancel it.", STOP_TOKEN]), instructions="", seed=0)
    page = render_html(episode)
    assert "cancel_pending_order(" in page and "&lt;b&gt;Done&lt;/b&gt; &amp; dusted" in page
    assert "reward 1" in page
    text = transcript_text(episode, max_chars=200)
    assert len(text) < 260 and "characters omitted" in text and text.startswith("Customer: Cancel it.")


def test_comparison_table_puts_ours_beside_the_papers_rows(data):
    task = data.task("test", 88)
    solved = run_episode(data, task, TauAgent(ToolScriptedLLM(gold_tool_replies(task) + ["Done."]), data.wiki,
                                              mode="tools"), ScriptedUser(["Hi.", STOP_TOKEN]), instructions="",
                         seed=0)
    failed = run_episode(data, task, TauAgent(ToolScriptedLLM(["No."]), data.wiki, mode="tools"),
                         ScriptedUser(["Hi.", STOP_TOKEN]), instructions="", seed=0)
    reference = paper_reference()
    table = comparison_table({"base": [failed], "tuned": [solved, failed]}, {"a": (88,), "b": (1,)}, reference)
    assert list(table.index) == ["ours: base", "ours: tuned", "paper: Base prompt", "paper: POLCA"]
    assert table.loc["ours: tuned", "a"] == 0.5 and table.loc["ours: base", "a"] == 0.0
    assert math.isnan(table.loc["ours: base", "b"])              # no episode of task 1
    rows = reference["table"]["rows"]
    # The paper's "all 115" is the task-weighted mean of its two other columns (polca-method.md §5.1).
    for name in ("Base prompt", "POLCA"):
        weighted = (10 * rows[name]["first 10"] + 105 * rows[name]["last 105"]) / 115
        assert abs(weighted - rows[name]["all 115"]) < 0.0015
    full = comparison_table({"x": [solved]}, PRESETS["paper"].groups, reference)
    assert full.loc["paper: POLCA", "all 115"] == rows["POLCA"]["all 115"]


def test_cost_model_counts_the_most_episodes_a_preset_can_run():
    paper = PRESETS["paper"]
    model = CostModel()
    # Per iteration: K*b exploration episodes plus one validation batch of b for each of K proposals;
    # iteration 0 explores the seed on K*b examples and validates its K proposals on K*b each.
    assert model.episodes(paper) == (1 * 10 + 5 * 10) + 100 * (5 * 2 + 5 * 2) + 2 * 115
    price = Price(3.0, 15.0)
    cost = model.usd(paper, price)
    agent_calls = model.episodes(paper) * model.agent_calls_per_episode
    assert cost["task"] == pytest.approx(agent_calls * (6500 * 3 + 80 * 15) / 1e6)
    assert cost["total"] == pytest.approx(sum(v for k, v in cost.items() if k != "total"))
    assert model.usd(paper.with_(use_summarizer=False), price)["summarizer"] == 0.0
    # With prompt caching each agent call writes its ~550 new tokens and reads the rest; each
    # episode's first call also writes the wiki and instructions.
    cached = model.usd(paper, price, caching=True)
    per_call = (550 * 3.75 + (6500 - 550) * 0.3 + 80 * 15) / 1e6
    first = 1400 * (3.75 - 0.3) / 1e6
    assert cached["task"] == pytest.approx(model.episodes(paper) * (12 * per_call + first))
    assert cached["proposer"] == cost["proposer"] and cached["total"] < cost["total"] / 2


def test_tool_mode_through_the_real_client_sends_well_formed_messages_api_requests(data):
    """LLMClient with a stand-in for `messages.create`: tools, tool_use and tool_result blocks round-trip."""
    task = data.task("test", 88)
    gold = task.actions[0]
    bodies = []

    def create(**body):
        bodies.append(copy.deepcopy(body))
        if len(bodies) == 1:
            content = [{"type": "text", "text": "Cancelling."},
                       {"type": "tool_use", "id": "toolu_a", "name": gold.name, "input": dict(gold.kwargs)}]
        else:
            content = [{"type": "text", "text": "Your order is cancelled."}]
        return {"content": content, "usage": {"input_tokens": 10, "output_tokens": 3}, "stop_reason": "end_turn",
                "model": DEFAULT_CLAUDE_MODEL}

    llm = LLMClient(model=DEFAULT_CLAUDE_MODEL, api_key="test", create=create)
    assert choose_mode(llm) == "tools"
    episode = run_episode(data, task, TauAgent(llm, data.wiki), ScriptedUser(["Cancel it.", STOP_TOKEN]),
                          instructions="Be brief.", seed=4)
    assert episode.reward == 1.0
    first, second = bodies
    # What the backend adds (temperature, cache breakpoints) is test_contract_api.py's business.
    assert [t["name"] for t in first["tools"]] == list(TOOLS) and "seed" not in first.get("extra_body", {})
    system = first["system"] if isinstance(first["system"], str) else "".join(b["text"] for b in first["system"])
    assert system.endswith("Be brief.")
    assert second["messages"][1]["content"] == [{"type": "text", "text": "Cancelling."},
                                                {"type": "tool_use", "id": "toolu_a", "name": gold.name,
                                                 "input": dict(gold.kwargs)}]
    assert second["messages"][2]["content"][0]["tool_use_id"] == "toolu_a"
    assert llm.ledger.snapshot()["usage"]["task"]["calls"] == 2
