"""Contract test: every request the package sends to Claude, through the real anthropic SDK, is one the
Messages API accepts.

Each role and benchmark agent runs on `LLMClient(model=<a Claude model>, base_url=<stand-in>)` against
`messages_api_server.MessagesAPIServer`, which enforces the documented rules of the API version the SDK
sends (2026-10-21: no temperature/top_p/top_k; roles, tool_use/tool_result pairing, thinking blocks passed
back unchanged, no empty text, known model ids, cache_control shape). Every test asserts that no request
was rejected, that no reply spent its whole max_tokens on thinking and that the client's ledger counts
the tokens the API reported (cache writes and reads included), and records the request shapes.

Set $POLCA_CONTRACT_SHAPES to a file path to get the shapes of every request as JSON (role -> shape ->
count) after a run.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from typing import Any, Callable

import pytest

from messages_api_server import (
    MODELS,
    MessagesAPIServer,
    ScriptRequest,
    ToolUse,
)
from polca_nb.budget import Budget
from polca_nb.llm import DEFAULT_CLAUDE_MODEL, LLMClient, RetryPolicy
from polca_nb.roles import LLMProposer, LLMSummarizer
from polca_nb.roles.summarizer import CONTEXT_PREFIX
from polca_nb.runner import PolcaConfig, polca
from polca_nb.types import Candidate, Evaluation, Example, Rollout

MODELS_UNDER_TEST = list(dict.fromkeys([DEFAULT_CLAUDE_MODEL, "claude-sonnet-5", "claude-haiku-4-5"]))
"""The package's default, a legacy model that thinks by default, and one that thinks only when asked."""
THINKING_MODELS_UNDER_TEST = list(dict.fromkeys(
    [m for m in (DEFAULT_CLAUDE_MODEL, "claude-sonnet-5", "claude-opus-5-5", "claude-fable-5-2") if m in MODELS
     and MODELS[m].thinking != "off"]))

PROPOSER_SYSTEM = LLMProposer(None, max_tokens=1, temperature=0.0).system_prompt
SUMMARIZER_SYSTEM = LLMSummarizer(None).system_prompt


# -- plumbing -----------------------------------------------------------------------------------------

def claude_client(api: MessagesAPIServer, model: str, **options: Any) -> LLMClient:
    """The package's client for a Claude model at the stand-in's address: what it sends follows from the
    model id (a claude-* id gets Claude's rules), exactly as for api.anthropic.com."""
    return LLMClient(model=model, base_url=api.url, api_key=api.api_key, retry=RetryPolicy(max_attempts=1),
                     **options)


SHAPES: dict[str, Counter] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def _write_shapes():
    yield
    path = os.environ.get("POLCA_CONTRACT_SHAPES")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({role: dict(shapes) for role, shapes in sorted(SHAPES.items())}, f, indent=1)


def system_text(body: dict[str, Any]) -> str:
    system = body.get("system") or ""
    return system if isinstance(system, str) else "".join(b.get("text", "") for b in system)


def role_of(body: dict[str, Any], label: Any) -> str:
    """Which role sent a request: `label(body)` when callable; else recognised by its system prompt (or
    tools), named under the label's "run:" prefix, with `label` itself for the rest."""
    if callable(label):
        return label(body)
    run = label.split(":")[0] + ": " if ":" in label else ""
    system = system_text(body)
    if body.get("tools"):
        return "tau agent (tools mode)"
    if system == PROPOSER_SYSTEM:
        return run + "proposer"
    if system == SUMMARIZER_SYSTEM:
        return run + "summarizer"
    if system.startswith("You are a user talking to a customer service agent"):
        return "tau user simulator"
    return label


def _blocks(content: Any) -> str:
    if isinstance(content, str):
        return "str"
    return "[" + ",".join(b.get("type", "?") + ("+cc" if b.get("cache_control") else "") for b in content) + "]"


def shape(body: dict[str, Any]) -> str:
    """A one-line description of a request: max_tokens, system, tools, turns, other fields."""
    parts = [f"max_tokens={body.get('max_tokens')}"]
    system = body.get("system")
    parts.append("system=none" if system is None else f"system={_blocks(system)}")
    tools = body.get("tools") or []
    if tools:
        marked = [i for i, t in enumerate(tools) if t.get("cache_control")]
        parts.append(f"tools={len(tools)}" + (f"(cc on #{','.join(map(str, marked))})" if marked else ""))
    turns = [f"{m['role']}:{_blocks(m['content'])}" for m in body.get("messages", [])]
    if len(turns) > 5:
        turns = turns[:3] + [f"...({len(turns) - 5} more)"] + turns[-2:]
    parts.append("messages=" + " ".join(turns))
    for key in sorted(set(body) - {"model", "max_tokens", "system", "tools", "messages"}):
        parts.append(f"{key}={json.dumps(body[key], sort_keys=True)}")
    return "; ".join(parts)


def assert_contract(api: MessagesAPIServer, label: Any, *, min_requests: int = 1,
                    client: LLMClient | None = None) -> list[dict[str, Any]]:
    """No request was rejected, none spent its whole budget thinking; with `client`, its ledger counts the
    tokens the API reported (uncached input, cache writes, cache reads, output). Records the shapes and
    returns the bodies."""
    logged = api.messages_requests()
    for entry in logged:
        if isinstance(entry.body, dict):
            SHAPES[role_of(entry.body, label)][shape(entry.body)] += 1
    assert api.rejected() == []
    assert len(logged) >= min_requests, f"expected at least {min_requests} requests, got {len(logged)}"
    thought_only = [f"max_tokens={e.body['max_tokens']}: {role_of(e.body, label)}" for e in logged
                    if e.reply and e.reply["stop_reason"] == "max_tokens"
                    and all(b["type"] == "thinking" for b in e.reply["content"])]
    assert thought_only == [], f"replies that spent max_tokens on thinking alone (no text): {thought_only}"
    if client is not None:
        usage = [e.reply["usage"] for e in logged if e.reply]
        total = client.ledger.snapshot()["usage"]["total"]
        reported = {"input_tokens": sum(u["input_tokens"] for u in usage),
                    "cache_write_tokens": sum(u["cache_creation_input_tokens"] for u in usage),
                    "cache_read_tokens": sum(u["cache_read_input_tokens"] for u in usage),
                    "output_tokens": sum(u["output_tokens"] for u in usage)}
        assert {k: total[k] for k in reported} == reported
    return [e.body for e in logged]


# -- the roles one at a time ----------------------------------------------------------------------------

CANDIDATE = Candidate(1, {"instructions": "Answer the question."}, rollouts=(
    Rollout("q1", 1.0, "Correct.", step=1, source="explore", output="Paris"),
    Rollout("q2", 0.0, "Incorrect. Expected: 'blue'.", step=1, source="explore", output="The sky is blue today."),
))
EXAMPLES = {"q1": Example("q1", {"question": "What is the capital of France?"}),
            "q2": Example("q2", {"question": "What color is the sky on a clear day?"})}
BATCH = [(EXAMPLES[r.example_id], r) for r in CANDIDATE.rollouts]


@pytest.mark.parametrize("max_tokens", [192, 8192, 24_000])  # 24,000: long enough to be streamed
@pytest.mark.parametrize("model", MODELS_UNDER_TEST)
def test_proposer(model, max_tokens):
    reply = 'The failures add words.\n<param name="instructions">\nReply with only the answer.\n</param>'
    with MessagesAPIServer(script=[reply]) as api:
        client = claude_client(api, model)
        proposer = LLMProposer(client, max_tokens=max_tokens, temperature=0.7, objective="Make replies exactly the answer.")
        proposals = proposer.propose(CANDIDATE, BATCH, context="Be terse.", seed=3)
        (body,) = assert_contract(api, "proposer", client=client)
    assert proposals == [{"instructions": "Reply with only the answer."}]
    assert system_text(body) == PROPOSER_SYSTEM and body["max_tokens"] >= max_tokens


@pytest.mark.parametrize("max_tokens", [160, 4096])
@pytest.mark.parametrize("model", MODELS_UNDER_TEST)
def test_summarizer(model, max_tokens):
    with MessagesAPIServer(script=["<summary>Answer with one word.</summary>"]) as api:
        client = claude_client(api, model)
        context = LLMSummarizer(client, max_tokens=max_tokens).summarize([CANDIDATE], "", EXAMPLES, seed=2)
        assert_contract(api, "summarizer", client=client)
    assert context == CONTEXT_PREFIX + "Answer with one word."


@pytest.mark.parametrize("preset", ["smoke", "paper"])
@pytest.mark.parametrize("model", MODELS_UNDER_TEST)
def test_hotpotqa_task_model(model, preset):
    from polca_nb.benchmarks import hotpotqa as hq

    try:
        examples = hq.load_examples(2)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    answers = {hq.build_prompt(hq.INITIAL_INSTRUCTIONS, e.data.context(hq.PRESETS[preset].max_paragraphs),
                               e.data.question): e.data.answer for e in examples}
    with MessagesAPIServer(script=lambda r: answers[r.last_user_text]) as api:
        client = claude_client(api, model)
        roles = hq.make_roles(client, hq.PRESETS[preset])
        scores = [roles.evaluator({hq.PARAM_NAME: hq.INITIAL_INSTRUCTIONS}, e, seed=5).score for e in examples]
        bodies = assert_contract(api, f"hotpotqa {preset}: task", client=client)
    assert scores == [1.0, 1.0]
    assert all("system" not in b for b in bodies)  # the harness sends no system prompt


@pytest.mark.parametrize("model", MODELS_UNDER_TEST)
def test_short_answer_task_model(model):
    from polca_nb.benchmarks.short_answer import QUESTIONS, SEED_INSTRUCTIONS, ShortAnswerEvaluator, examples

    answers = dict(QUESTIONS)
    with MessagesAPIServer(script=lambda r: answers[r.last_user_text]) as api:
        client = claude_client(api, model)
        evaluator = ShortAnswerEvaluator(client)  # max_tokens 24
        results = [evaluator({"instructions": SEED_INSTRUCTIONS}, e, seed=1) for e in examples()[:3]]
        # Empty instructions (a seed program or a baseline may have them) send no system prompt.
        results.append(evaluator({"instructions": ""}, examples()[0], seed=2))
        bodies = assert_contract(api, "short answer: task", client=client)
    assert [r.score for r in results] == [1.0] * 4
    assert "system" not in bodies[-1]


@pytest.mark.parametrize("model", MODELS_UNDER_TEST[:1])
def test_blank_instructions_send_no_blank_system_block(model):
    from polca_nb.benchmarks.short_answer import QUESTIONS, ShortAnswerEvaluator, examples

    with MessagesAPIServer(script=lambda r: dict(QUESTIONS)[r.last_user_text]) as api:
        evaluator = ShortAnswerEvaluator(claude_client(api, model))
        result = evaluator({"instructions": " \n"}, examples()[0], seed=3)
        assert_contract(api, "short answer: task")
    assert result.score == 1.0


# -- tau-bench: a multi-step tool-use episode ----------------------------------------------------------

def tau_agent_script(plan: list[Any], *, extra_call: bool = True) -> Callable[[ScriptRequest], Any]:
    """The agent follows `plan` (one step per assistant turn so far): (name, input) -> a preamble, that
    tool call and (with `extra_call`) a second, parallel `think` call; text -> a reply to the customer.
    The customer (no tools) opens with a request and stops once the agent has spoken."""

    def script(request: ScriptRequest) -> Any:
        if not request.tools:
            spoke = sum(1 for t in request.turns if t["role"] == "user") > 1
            return "###STOP###" if spoke else "I want to return an item from my last order."
        step = sum(1 for t in request.turns if t["role"] == "assistant")
        item = plan[min(step, len(plan) - 1)]
        if isinstance(item, str):
            return item
        name, arguments = item
        blocks = [f"Step {step}: calling {name}.", ToolUse(name, arguments)]
        if extra_call:
            blocks.append(ToolUse("think", {"thought": f"after {name}, check the policy"}))
        return blocks

    return script


@pytest.mark.parametrize("model", list(dict.fromkeys(THINKING_MODELS_UNDER_TEST + ["claude-haiku-4-5"])))
def test_tau_agent_multi_step_episode_with_parallel_calls(model):
    from polca_nb.benchmarks.tau_retail import load_retail
    from polca_nb.benchmarks.tau_retail.agent import NOT_EXECUTED, TauAgent
    from polca_nb.benchmarks.tau_retail.episode import run_episode
    from polca_nb.benchmarks.tau_retail.llm_user import LLMUser
    from polca_nb.benchmarks.tau_retail.presets import PRESETS

    data = load_retail()
    task = data.task("test", 5)  # five tool calls, four reads then a return
    plan = [(a.name, dict(a.kwargs)) for a in task.actions] + ["Your return is set up; the refund is on its way."]
    smoke = PRESETS["smoke"]
    with MessagesAPIServer(script=tau_agent_script(plan)) as api:
        client = claude_client(api, model)
        agent = TauAgent(client, data.wiki, mode="tools", max_tokens=smoke.agent_max_tokens)
        user = LLMUser(client, seed=4, max_tokens=smoke.user_max_tokens)
        episode = run_episode(data, task, agent, user, instructions="Confirm before writes.", seed=4)
        assert episode.error is None, episode.error
        bodies = assert_contract(api, "tau agent (tools mode)", min_requests=len(plan) + 2, client=client)
        agent_usage = [e.reply["usage"] for e in api.messages_requests() if e.body.get("tools")]
        replies = {b["id"]: e.reply["content"] for e in api.messages_requests() if e.reply
                   for b in e.reply["content"] if b["type"] == "tool_use"}
    assert episode.reward == 1.0 and [t.action.name for t in episode.turns] == [a.name for a in task.actions] + [
        "respond"]
    agent_bodies = [b for b in bodies if b.get("tools")]
    last = agent_bodies[-1]["messages"]
    assistant_turns = [m for m in last if m["role"] == "assistant" and isinstance(m["content"], list)]
    assert len(assistant_turns) == len(task.actions)
    for turn, answer in zip(assistant_turns, [last[i + 1] for i, m in enumerate(last) if m in assistant_turns]):
        calls = [b for b in turn["content"] if b["type"] == "tool_use"]
        sent_back = [{k: v for k, v in b.items() if k != "cache_control"} for b in turn["content"]]
        assert sent_back == replies[calls[0]["id"]]  # the reply's blocks unchanged, thinking included
        if MODELS[model].thinking != "off":
            assert turn["content"][0]["type"] == "thinking"
        results = [b for b in answer["content"] if b["type"] == "tool_result"]
        assert [r["tool_use_id"] for r in results] == [c["id"] for c in calls]
        assert results[1]["content"] == NOT_EXECUTED
    user_bodies = [b for b in bodies if not b.get("tools")]
    assert all(b["messages"][0]["role"] == "user" for b in user_bodies)
    # Prompt caching: the wiki and the 16 tool schemas (~3,900 tokens) are written once they reach the
    # model's minimum cacheable length, and every later step reads the conversation so far.
    assert agent_usage[-1]["cache_read_input_tokens"] > 3800
    assert sum(u["cache_read_input_tokens"] for u in agent_usage) > sum(u["input_tokens"] for u in agent_usage)


@pytest.mark.parametrize("model", THINKING_MODELS_UNDER_TEST[:1])
def test_tau_agent_blank_replies_and_a_lone_call(model):
    """A blank opening line, a blank text reply and a reply holding only a tool call (no text, no parallel
    call) still make well-formed turns."""
    from polca_nb.benchmarks.tau_retail import ScriptedUser, load_retail
    from polca_nb.benchmarks.tau_retail.agent import TauAgent
    from polca_nb.benchmarks.tau_retail.episode import run_episode

    data = load_retail()
    task = data.task("test", 5)
    first = task.actions[0]

    def script(request):
        step = sum(1 for t in request.turns if t["role"] == "assistant")
        return [ToolUse(first.name, dict(first.kwargs))] if step == 0 else (" " if step == 1 else "Done.")

    with MessagesAPIServer(script=script) as api:
        agent = TauAgent(claude_client(api, model), data.wiki, mode="tools")
        user = ScriptedUser([" \n", "Hello?", "###STOP###"])
        episode = run_episode(data, task, agent, user, instructions="", seed=1)
        assert episode.error is None, episode.error
        assert_contract(api, "tau agent (tools mode)", min_requests=3)


# -- KernelBench: proposer and summarizer of a short POLCA run ----------------------------------------

KERNEL = """import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, A, B):
        return torch.matmul(A, B)
"""


@pytest.mark.parametrize("model", MODELS_UNDER_TEST[:2])
def test_kernelbench_proposer_and_summarizer_in_a_short_run(model):
    from polca_nb.benchmarks.kernelbench import load_tasks
    from polca_nb.benchmarks.kernelbench.experiment import run_task
    from polca_nb.benchmarks.kernelbench.presets import PRESETS

    try:
        tasks = load_tasks()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    square = next(t for t in tasks if t.problem_id == 1)
    calls = []

    def evaluator(params, example, seed):
        calls.append(params["kernel"])
        speed = 1.5 if "ModelNew" in params["kernel"] else 0.0
        return Evaluation(speed, f"SUCCESS - speedup {speed}" if speed else "COMPILATION FAILURE - no ModelNew",
                          json.dumps({"status": "success" if speed else "compilation_failure", "speedup": speed}))

    def script(request):
        if system_text(request.body) == SUMMARIZER_SYSTEM:
            return "<summary>Keep the matmul in torch; it is already fast.</summary>"
        return f"A plain torch matmul is the fastest start.\n```python\n{KERNEL}```"

    setup = PRESETS["smoke"]
    from dataclasses import replace

    setup = replace(setup, iterations=2, eps=0.0)
    with MessagesAPIServer(script=script) as api:
        client = claude_client(api, model)
        run = run_task(square, setup, client, embedder=None, evaluator=evaluator)
        bodies = assert_contract(api, "kernelbench: proposer", min_requests=2, client=client)
    assert any(system_text(b) == SUMMARIZER_SYSTEM for b in bodies)
    assert run.best_candidate.params["kernel"].strip() == KERNEL.strip()


# -- the baselines' LLM adapters -------------------------------------------------------------------------

def short_answer_script(reflection_reply: str) -> Callable[[ScriptRequest], str]:
    """Task calls (a question of the short-answer set) get the bare answer when the instructions ask for
    "only the answer", else a sentence around it (score 0.5); everything else gets the reflection reply."""
    from polca_nb.benchmarks.short_answer import QUESTIONS

    answers = dict(QUESTIONS)

    def script(request):
        answer = answers.get(request.last_user_text)
        if answer is None:
            return reflection_reply
        return answer if "only the answer" in request.system_text else f"I think it is {answer}, probably."

    return script


@pytest.mark.parametrize("model", MODELS_UNDER_TEST[:2])
def test_gepa_reflection_lm_and_task_model(model):
    pytest.importorskip("gepa")
    from polca_nb.baselines.gepa_adapter import GepaSettings, run_gepa
    from polca_nb.benchmarks.short_answer import short_answer_problem

    with MessagesAPIServer(script=short_answer_script("```\nReply with only the answer, one word.\n```")) as api:
        client = claude_client(api, model)
        problem = short_answer_problem(client, n_train=4, n_test=2)
        result = run_gepa(problem, client, budget=14, seed=0, settings=GepaSettings(max_tokens=1024))
        label = lambda b: "gepa: reflection LM" if "system" not in b else "gepa: task model (short answer)"  # noqa: E731
        bodies = assert_contract(api, label, min_requests=5, client=client)
    assert result.details["reflection_calls"] >= 1
    assert [b for b in bodies if "system" not in b], "GEPA's reflection LM sends no system prompt"


@pytest.mark.parametrize("model", MODELS_UNDER_TEST[:2])
def test_openevolve_llm_adapter_and_task_model(model):
    pytest.importorskip("openevolve")
    from polca_nb.baselines.openevolve_adapter import OpenEvolveSettings, run_openevolve
    from polca_nb.benchmarks.short_answer import short_answer_problem

    with MessagesAPIServer(script=short_answer_script("```text\nReply with only the answer.\n```")) as api:
        client = claude_client(api, model)
        problem = short_answer_problem(client, n_train=4, n_test=2)
        result = run_openevolve(problem, client, budget=8, seed=0,
                                settings=OpenEvolveSettings(minibatch_size=4, max_iterations=1))
        label = lambda b: ("openevolve: LLM adapter" if system_text(b).startswith("You improve a text program")  # noqa: E731
                           else "openevolve: task model (short answer)")
        bodies = assert_contract(api, label, min_requests=5, client=client)
    assert result.details["llm_calls"].get("proposer", 0) >= 1
    assert [b for b in bodies if system_text(b).startswith("You improve a text program")]


def dspy_script() -> Callable[[ScriptRequest], str]:
    """Short-answer task calls as in `short_answer_script`; DSPy's requests get their output fields filled
    (ChatAdapter markers, or the JSON object dspy.GEPA's proposer asks for)."""
    fallback = short_answer_script("")

    def script(request):
        system = request.system_text
        if "Your output fields are:" not in system:
            return fallback(request)
        listed = system.split("Your output fields are:", 1)[1].split("All interactions", 1)[0]
        fields = re.findall(r"`(\w+)`", listed)
        values = {f: ("Reply with only the answer." if "instruction" in f else "Short factual questions.")
                  for f in fields}
        if "Outputs will be a JSON object" in system:
            return json.dumps(values)
        return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]"

    return script


@pytest.mark.parametrize("method", ["dspy-mipro", "dspy-gepa"])
@pytest.mark.parametrize("model", MODELS_UNDER_TEST[:2])
def test_dspy_prompt_and_reflection_lms_and_task_model(model, method):
    pytest.importorskip("dspy")
    from polca_nb.baselines.dspy_adapter import MiproSettings, run_dspy
    from polca_nb.benchmarks.short_answer import short_answer_problem

    with MessagesAPIServer(script=dspy_script()) as api:
        client = claude_client(api, model)
        problem = short_answer_problem(client, n_train=4, n_test=2)
        settings = MiproSettings(num_candidates=3, max_tokens=1024) if method == "dspy-mipro" else None
        result = run_dspy(method, problem, client, budget=16, seed=0, settings=settings)
        label = lambda b: (f"{method}: DSPy LM" if "Your output fields are:" in system_text(b)  # noqa: E731
                           else f"{method}: task model (short answer)")
        bodies = assert_contract(api, label, min_requests=5, client=client)
    assert "failed" not in result.stop_reason and result.metric_calls <= 16
    assert result.final_params == {"instructions": "Reply with only the answer."}
    dspy_bodies = [b for b in bodies if "Your output fields are:" in system_text(b)]
    assert len(dspy_bodies) == result.details["lm_calls"] >= 1


# -- short real POLCA loops ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS_UNDER_TEST)
def test_polca_loop_on_short_answer(model):
    from polca_nb.benchmarks.short_answer import OBJECTIVE, short_answer_problem

    def script(request):
        if system_text(request.body) == SUMMARIZER_SYSTEM:
            return "<summary>Ask for the bare answer.</summary>"
        if system_text(request.body) == PROPOSER_SYSTEM:
            return f'<param name="instructions">\nReply with only the answer (take {request.index}).\n</param>'
        return short_answer_script("")(request)

    with MessagesAPIServer(script=script) as api:
        client = claude_client(api, model)
        problem = short_answer_problem(client, n_train=4, n_test=2)
        proposer = LLMProposer(client, max_tokens=256, temperature=0.7, objective=OBJECTIVE)
        summarizer = LLMSummarizer(client, max_tokens=256)
        config = PolcaConfig(Budget(max_iterations=2), num_candidates=2, batch_size=2, eps=0.0, use_summarizer=True)
        result = polca(problem, proposer, config, summarizer=summarizer, seed=0, progress=False)
        bodies = assert_contract(api, "polca short answer: task", min_requests=6, client=client)
    systems = Counter("proposer" if system_text(b) == PROPOSER_SYSTEM else "summarizer"
                      if system_text(b) == SUMMARIZER_SYSTEM else "task" for b in bodies)
    assert systems["proposer"] >= 2 and systems["summarizer"] >= 1 and systems["task"] >= 4
    assert result is not None


@pytest.mark.parametrize("model", THINKING_MODELS_UNDER_TEST[:1])
def test_polca_loop_on_tau_bench_smoke(model):
    from polca_nb.benchmarks.tau_retail import load_retail
    from polca_nb.benchmarks.tau_retail.evaluator import PARAM
    from polca_nb.benchmarks.tau_retail.presets import PRESETS, make_evaluator, make_optimizer_roles, tau_problem

    data = load_retail()
    preset = PRESETS["smoke"]
    agent = tau_agent_script([("find_user_id_by_name_zip", {"first_name": "Yusuf", "last_name": "Rossi",
                                                             "zip": "19122"}),
                              ("get_user_details", {"user_id": "yusuf_rossi_9620"}), "All done for today."])

    def script(request):
        if system_text(request.body) == SUMMARIZER_SYSTEM:
            return "<summary>Look the customer up first.</summary>"
        if system_text(request.body) == PROPOSER_SYSTEM:
            return f'<param name="{PARAM}">\nAuthenticate the customer before anything else.\n</param>'
        return agent(request)

    with MessagesAPIServer(script=script) as api:
        client = claude_client(api, model)
        evaluator = make_evaluator(data, client, preset, mode="tools")
        proposer, summarizer = make_optimizer_roles(client, preset)
        problem = tau_problem(data, evaluator, preset)
        config = preset.config(eps=0.0)
        polca(problem, proposer, config, summarizer=summarizer, seed=0, progress=False, executor=1)
        bodies = assert_contract(api, "tau polca: agent", min_requests=10, client=client)
    assert any(system_text(b) == PROPOSER_SYSTEM for b in bodies)
    assert all(e.error is None for e in evaluator.episodes), [e.error for e in evaluator.episodes]


# -- the package's model table and the server's ----------------------------------------------------------

def test_the_package_model_table_agrees_with_the_documented_one():
    """polca_nb.llm.config's models (when it has a table) are the ones the stand-in knows, with the same
    thinking behaviour and output limit; retired ones are not known."""
    from polca_nb.llm import config

    table = getattr(config, "CLAUDE_MODELS", None)
    if table is None:
        pytest.skip("polca_nb.llm.config has no CLAUDE_MODELS table")
    thinking = {"off": "off", "default_on": "on", "always_on": "always"}
    problems = []
    for name, spec in table.items():
        ours = MODELS.get(name)
        if getattr(spec, "retired", None):
            if ours is not None:
                problems.append(f"{name}: retired in config, current in the documented table")
            continue
        if ours is None:
            problems.append(f"{name}: not a documented current model id")
            continue
        if thinking.get(spec.thinking, spec.thinking) != ours.thinking:
            problems.append(f"{name}: thinking {spec.thinking!r} in config, {ours.thinking!r} documented")
        if spec.max_output_tokens != ours.max_output:
            problems.append(f"{name}: max output {spec.max_output_tokens} in config, {ours.max_output} documented")
        if getattr(spec, "sampling", False) == ours.fixed_sampling:
            problems.append(f"{name}: sampling={spec.sampling} in config, fixed_sampling={ours.fixed_sampling} "
                            "documented")
    assert problems == []
    assert re.fullmatch(r"claude-[a-z0-9-]+", DEFAULT_CLAUDE_MODEL) and DEFAULT_CLAUDE_MODEL in MODELS
