"""The Messages API stand-in itself (tests/messages_api_server.py): each documented rule it enforces
fires, with the API's status, error type and message, and what it accepts round-trips through the SDK."""

from __future__ import annotations

import copy
import json
import socket
import threading
import urllib.error
import urllib.request

import anthropic
import pytest

from messages_api_server import (
    MODELS,
    RETIRED_MODELS,
    SDK_API_VERSION,
    MessagesAPIServer,
    ToolUse,
)

TOOL = {"name": "lookup", "description": "Look a word up.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}
PLAIN = "claude-haiku-4-5"       # no thinking unless asked, takes sampling on old API versions
THINKER = "claude-sonnet-5-5"    # thinks by default, rejects non-default sampling, no prefill


@pytest.fixture
def api():
    with MessagesAPIServer() as server:
        yield server


def post(api, body, *, version=SDK_API_VERSION, key="test-key", path="/v1/messages"):
    """(status, JSON body, headers) of one raw request: the exact body, no SDK in between."""
    headers = {"content-type": "application/json"}
    if version is not None:
        headers["anthropic-version"] = version
    if key is not None:
        headers["x-api-key"] = key
    request = urllib.request.Request(api.url + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def body(model=PLAIN, **extra):
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}], **extra}


def sdk(api):
    return anthropic.Anthropic(base_url=api.url, api_key=api.api_key, max_retries=0)


def error_of(status_body):
    status, payload, headers = status_body
    assert payload["type"] == "error" and set(payload["error"]) == {"type", "message"}
    assert headers.get("request-id", "").startswith("req_") and payload["request_id"] == headers["request-id"]
    return status, payload["error"]["type"], payload["error"]["message"]


# -- version, auth, model, top-level fields ---------------------------------------------------------

def test_the_sdk_sends_api_version_2026_10_21_and_its_key():
    with MessagesAPIServer(script=["hi"]) as api:
        sdk(api).messages.create(model=PLAIN, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
        (logged,) = api.requests
    assert SDK_API_VERSION == "2026-10-21" and logged.headers["anthropic-version"] == SDK_API_VERSION
    assert logged.headers.get("authorization") == "Bearer test-key" or logged.headers.get("x-api-key") == "test-key"


@pytest.mark.parametrize("name, value", [("temperature", 1.0), ("temperature", 0.0), ("top_p", 0.9), ("top_k", 5)])
def test_api_2026_10_21_rejects_every_sampling_parameter_even_at_its_default(api, name, value):
    assert error_of(post(api, body(**{name: value}))) == (400, "invalid_request_error",
                                                          f"{name}: Extra inputs are not permitted")


def test_older_api_versions_take_sampling_except_on_models_that_fix_it(api):
    assert post(api, body(temperature=0.2), version="2023-06-01")[0] == 200
    status, kind, message = error_of(post(api, body(THINKER, temperature=0.2), version="2023-06-01"))
    assert (status, kind) == (400, "invalid_request_error") and message.startswith("temperature:")
    assert post(api, body(THINKER, temperature=1.0), version="2023-06-01")[0] == 200
    assert error_of(post(api, body(temperature=1.5), version="2023-06-01"))[0] == 400


def test_unknown_fields_are_extra_inputs(api):
    assert error_of(post(api, body(seed=3)))[2] == "seed: Extra inputs are not permitted"
    bad = body()
    bad["messages"][0]["name"] = "x"
    assert error_of(post(api, bad))[2] == "messages.0.name: Extra inputs are not permitted"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-nonsense", "gpt-4o"])
def test_unknown_and_retired_models_are_not_found(api, model):
    assert error_of(post(api, body(model))) == (404, "not_found_error", f"model: {model}")


def test_known_models_include_dated_aliases(api):
    assert post(api, body("claude-haiku-4-5-20251001"))[0] == 200
    assert "claude-sonnet-4-5" in RETIRED_MODELS and "claude-sonnet-4-5" not in MODELS


def test_missing_or_wrong_key_and_version(api):
    assert error_of(post(api, body(), key=None))[:2] == (401, "authentication_error")
    assert error_of(post(api, body(), key="other"))[:2] == (401, "authentication_error")
    assert error_of(post(api, body(), version=None))[2] == "anthropic-version: header is required"


@pytest.mark.parametrize("max_tokens, fragment", [(64_001, "maximum allowed number of output tokens"),
                                                  ("10", "valid integer"), (-1, "greater than or equal to 0"),
                                                  (True, "valid integer")])
def test_max_tokens_must_be_an_int_within_the_models_output(api, max_tokens, fragment):
    status, _, message = error_of(post(api, {**body(), "max_tokens": max_tokens}))
    assert status == 400 and fragment in message


# -- messages -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("messages, fragment", [
    ([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}], 'first message must use the "user"'),
    ([{"role": "user", "content": ""}], "must have non-empty content"),
    ([{"role": "user", "content": "   "}], "must have non-empty content"),
    ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "text content blocks must be non-empty"),
    ([{"role": "user", "content": [{"type": "text", "text": " \n"}]}], "must contain non-whitespace text"),
    ([{"role": "user", "content": []}], "must have non-empty content"),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "role: Input should be"),
    ([{"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": "y"}]}], "not allowed in `user`"),
    ([{"role": "user", "content": [{"type": "text", "text": "Hi", "citations": [{"type": "char_location"}]}]}],
     "citations are not allowed"),
    ([], "at least one message"),
])
def test_malformed_conversations_are_rejected(api, messages, fragment):
    status, kind, message = error_of(post(api, {**body(), "messages": messages}))
    assert (status, kind) == (400, "invalid_request_error") and fragment in message


def test_consecutive_same_role_turns_are_combined_not_rejected():
    seen = []
    with MessagesAPIServer(script=lambda r: seen.append(r.turns) or "ok") as api:
        messages = [{"role": "user", "content": "One."}, {"role": "user", "content": [{"type": "text", "text": "Two."}]}]
        assert post(api, {**body(), "messages": messages})[0] == 200
    assert [(t["role"], [b["text"] for b in t["content"]]) for t in seen[0]] == [("user", ["One.", "Two."])]


def test_system_is_a_string_or_non_empty_text_blocks(api):
    assert post(api, body(system="Be brief."))[0] == 200
    assert post(api, body(system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]))[0] == 200
    assert "must be non-empty" in error_of(post(api, body(system=[{"type": "text", "text": ""}])))[2]
    assert error_of(post(api, body(system=[{"type": "image", "source": {}}])))[0] == 400


def test_prefill_only_on_models_that_support_it(api):
    prefill = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "The answer is"}]
    assert post(api, {**body(), "messages": prefill})[0] == 200
    assert "Prefilling" in error_of(post(api, {**body(THINKER), "messages": prefill}))[2]
    assert "trailing whitespace" in error_of(post(api, {**body(), "messages": [prefill[0], {
        "role": "assistant", "content": "The answer is "}]}))[2]


# -- tools ----------------------------------------------------------------------------------------------

def _tool_turns(*uses, results=None, extra_user=()):
    assistant = {"role": "assistant", "content": [{"type": "tool_use", "id": u, "name": "lookup", "input": {"q": u}}
                                                  for u in uses]}
    results = uses if results is None else results
    user = {"role": "user", "content": [*extra_user, *({"type": "tool_result", "tool_use_id": r, "content": "found"}
                                                       for r in results)]}
    return [{"role": "user", "content": "Look up two words."}, assistant, user]


@pytest.mark.parametrize("messages, fragment", [
    (_tool_turns("toolu_1", "toolu_2", results=["toolu_1"]), "ids were found without `tool_result` blocks "
                                                              "immediately after: toolu_2"),
    (_tool_turns("toolu_1", results=["toolu_1", "toolu_9"]), "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9"),
    (_tool_turns("toolu_1", extra_user=[{"type": "text", "text": "Here:"}]), "tool_result blocks must come FIRST"),
    (_tool_turns("toolu_1", results=["toolu_1", "toolu_1"]), "duplicate `tool_result`"),
    (_tool_turns("toolu_1")[:2], "ids were found without `tool_result`"),
    (_tool_turns("toolu_1")[:1] + [_tool_turns("toolu_1")[2]], "unexpected `tool_use_id`"),
    (_tool_turns("bad id!"), "String should match pattern"),
])
def test_every_tool_use_needs_its_tool_result_first_in_the_next_user_turn(api, messages, fragment):
    status, _, message = error_of(post(api, {**body(), "tools": [TOOL], "messages": messages}))
    assert status == 400 and fragment in message


def test_answered_tool_calls_with_text_after_the_results_are_accepted(api):
    messages = _tool_turns("toolu_1", "toolu_2")
    messages[2]["content"].append({"type": "text", "text": "Thanks."})
    assert post(api, {**body(), "tools": [TOOL], "messages": messages})[0] == 200


def test_tool_blocks_need_tool_definitions_and_tools_need_a_schema(api):
    assert "must define tools" in error_of(post(api, {**body(), "messages": _tool_turns("toolu_1")}))[2]
    for tool, fragment in [({**TOOL, "name": "bad name"}, "pattern"), ({"name": "x"}, "input_schema: Field required"),
                           ({**TOOL, "input_schema": {"type": "array"}}, "Input should be 'object'"),
                           ({**TOOL, "parameters": {}}, "parameters: Extra inputs are not permitted")]:
        assert fragment in error_of(post(api, body(tools=[tool])))[2]
    assert "unique" in error_of(post(api, body(tools=[TOOL, TOOL])))[2]


# -- thinking -------------------------------------------------------------------------------------------

def _thinking_reply(api, max_tokens=2000):
    status, message, _ = post(api, {**body(THINKER, tools=[TOOL]), "max_tokens": max_tokens})
    assert status == 200
    return message


def test_thinking_models_reply_with_a_signed_thinking_block_counted_in_max_tokens():
    with MessagesAPIServer(script=lambda r: ["Looking.", ToolUse("lookup", {"q": "a"})]) as api:
        message = _thinking_reply(api)
        assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
        assert message["stop_reason"] == "tool_use"
        assert message["usage"]["output_tokens_details"]["thinking_tokens"] > 0
        assert message["content"][0]["signature"]
        # A budget that thinking uses up: only the thinking block comes back, the stop is visible.
        small = _thinking_reply(api, max_tokens=24)
        assert [b["type"] for b in small["content"]] == ["thinking"] and small["stop_reason"] == "max_tokens"
        plain = post(api, body(tools=[TOOL]))[1]  # a model that thinks only when asked
        assert [b["type"] for b in plain["content"]] == ["text", "tool_use"]


def _continue(api, assistant_content, results):
    messages = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": assistant_content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": r, "content": "x"} for r in results]}]
    return post(api, {**body(THINKER, tools=[TOOL]), "max_tokens": 2000, "messages": messages})


def test_thinking_blocks_must_come_back_unchanged_with_the_tool_calls():
    with MessagesAPIServer(script=lambda r: [ToolUse("lookup", {"q": "a"}), ToolUse("lookup", {"q": "b"})]) as api:
        content = _thinking_reply(api)["content"]
        ids = [b["id"] for b in content if b["type"] == "tool_use"]
        assert _continue(api, content, ids)[0] == 200
        dropped = [b for b in content if b["type"] != "thinking"]
        assert "must start with a thinking block" in error_of(_continue(api, dropped, ids))[2]
        edited = copy.deepcopy(content)
        edited[0]["thinking"] += " (edited)"
        assert "Invalid `signature`" in error_of(_continue(api, edited, ids))[2]
        moved = content[1:] + content[:1]
        assert "must come before" in error_of(_continue(api, moved, ids))[2]
        cached = copy.deepcopy(content)
        cached[0]["cache_control"] = {"type": "ephemeral"}
        assert "cache_control: Extra inputs are not permitted" in error_of(_continue(api, cached, ids))[2]


def test_preserved_thinking_blocks_are_bound_to_the_conversation_before_them():
    """Fable 5.1 onward: a passed-back block is valid only after the same system, tools and earlier turns."""
    with MessagesAPIServer(script=lambda r: [ToolUse("lookup", {"q": "a"})]) as api:
        def ask(model, system, content):
            messages = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": content},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": content[-1]["id"],
                                                      "content": "x"}]}]
            return post(api, {**body(model, tools=[TOOL], system=system), "max_tokens": 4000, "messages": messages})

        for model, binds in (("claude-fable-5-1", True), (THINKER, False)):
            first = post(api, {**body(model, tools=[TOOL], system="Be brief."), "max_tokens": 4000})[1]["content"]
            assert ask(model, [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                       first)[0] == 200  # the same prefix, another breakpoint
            changed = ask(model, "Be very brief.", first)
            if binds:
                assert "does not match the conversation" in error_of(changed)[2]
            else:
                assert changed[0] == 200


def test_a_prompt_longer_than_the_context_window_is_rejected(api):
    long = [{"role": "user", "content": "word " * 170_000}]
    assert "prompt is too long" in error_of(post(api, {**body(), "messages": long}))[2]
    assert post(api, {**body("claude-sonnet-4-6"), "messages": [{"role": "user", "content": "word " * 150_000}]}
                )[0] == 200


@pytest.mark.parametrize("model, thinking, fragment", [
    ("claude-opus-5-5", {"type": "disabled"}, '"thinking.type.disabled" is not supported for this model.'),
    ("claude-sonnet-5", {"type": "enabled", "budget_tokens": 2000}, '"thinking.type.enabled" is not supported'),
    (PLAIN, {"type": "adaptive"}, '"thinking.type.adaptive" is not supported'),
    (PLAIN, {"type": "enabled", "budget_tokens": 512}, "greater than or equal to 1024"),
    (PLAIN, {"type": "enabled", "budget_tokens": 4000}, "must be greater than `thinking.budget_tokens`"),
])
def test_thinking_configuration_per_model(api, model, thinking, fragment):
    assert fragment in error_of(post(api, {**body(model, thinking=thinking), "max_tokens": 3000}))[2]


def test_thinking_can_be_turned_off_where_documented_and_forced_tools_conflict_with_it(api):
    assert post(api, body("claude-haiku-5-5", thinking={"type": "disabled"}))[0] == 200
    assert post(api, {**body(PLAIN, thinking={"type": "enabled", "budget_tokens": 1024}), "max_tokens": 1100})[0] == 200
    assert "forces tool use" in error_of(post(api, body(THINKER, tools=[TOOL],
                                                        tool_choice={"type": "any"})))[2]
    assert "effort" in error_of(post(api, body(PLAIN, output_config={"effort": "low"})))[2]
    assert post(api, body(THINKER, output_config={"effort": "low"}))[0] == 200


# -- prompt caching -------------------------------------------------------------------------------------

LONG = "All the policy text that every call repeats. " * 300  # ~3,400 tokens at 4 characters a token


def _cached_body(model=THINKER, **extra):
    return body(model, system=[{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}], **extra)


def test_a_marked_prefix_is_written_then_read_when_it_reaches_the_models_minimum(api):
    first = post(api, _cached_body())[1]["usage"]
    second = post(api, _cached_body())[1]["usage"]
    assert first["cache_creation_input_tokens"] > 3000 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0 and second["input_tokens"] == first["input_tokens"]
    assert first["cache_creation"]["ephemeral_5m_input_tokens"] == first["cache_creation_input_tokens"]
    # Haiku 4.5 caches from 4,096 tokens on: this prefix is processed uncached, without an error.
    short = post(api, _cached_body(PLAIN))[1]["usage"]
    assert short["cache_creation_input_tokens"] == short["cache_read_input_tokens"] == 0
    unmarked = post(api, body(THINKER, system=LONG))[1]["usage"]
    assert unmarked["cache_read_input_tokens"] == 0 and unmarked["input_tokens"] > 3000


def test_a_growing_conversation_reads_the_previous_turns_through_the_lookback(api):
    turns = [{"role": "user", "content": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}]
    first = post(api, {**body(THINKER), "messages": turns})[1]["usage"]
    turns = [{"role": "user", "content": [{"type": "text", "text": LONG}]},
             {"role": "assistant", "content": "Noted."},
             {"role": "user", "content": [{"type": "text", "text": "And now?", "cache_control": {"type": "ephemeral"}}]}]
    second = post(api, {**body(THINKER), "messages": turns})[1]["usage"]
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"] > 0
    assert second["cache_creation_input_tokens"] > 0


@pytest.mark.parametrize("cache_control, fragment", [
    ({"type": "persistent"}, "Input should be 'ephemeral'"),
    ({"type": "ephemeral", "ttl": "10m"}, "Input should be '5m' or '1h'"),
    ({"type": "ephemeral", "scope": "x"}, "scope: Extra inputs are not permitted"),
])
def test_cache_control_shape(api, cache_control, fragment):
    bad = body(system=[{"type": "text", "text": "Be brief.", "cache_control": cache_control}])
    assert fragment in error_of(post(api, bad))[2]


def test_at_most_four_breakpoints_and_no_1h_after_5m(api):
    blocks = [{"type": "text", "text": f"Part {i}.", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    assert error_of(post(api, body(system=blocks)))[2] == ("A maximum of 4 blocks with cache_control may be provided. "
                                                           "Found 5.")
    assert post(api, body(system=blocks[:3], cache_control={"type": "ephemeral"}))[0] == 200
    assert "Found 5" in error_of(post(api, body(system=blocks[:4], cache_control={"type": "ephemeral"})))[2]
    mixed = [blocks[0], {**blocks[1], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert "ttl='1h' must not come after" in error_of(post(api, body(system=mixed)))[2]


# -- through the SDK: streaming, token counting, models, shutdown ---------------------------------------

def test_streamed_and_plain_replies_are_the_same_message():
    def script(request):
        return ["Let me look that up for you, it will take one call.", ToolUse("lookup", {"q": "a" * 90})]

    with MessagesAPIServer(script=script) as api:
        client = sdk(api)
        kwargs = dict(model=THINKER, max_tokens=3000, tools=[TOOL], messages=[{"role": "user", "content": "Hi"}])
        plain = client.messages.create(**kwargs)
        with client.messages.stream(**kwargs) as stream:
            streamed = stream.get_final_message()
        raw = list(client.messages.create(**kwargs, stream=True))
        assert api.rejected() == [] and api.requests[1].streamed
    dump = lambda m: [b.model_dump(exclude_none=True) for b in m.content]  # noqa: E731
    assert [b["type"] for b in dump(plain)] == ["thinking", "text", "tool_use"]
    assert [{k: v for k, v in b.items() if k not in ("id", "signature")} for b in dump(streamed)] == \
        [{k: v for k, v in b.items() if k not in ("id", "signature")} for b in dump(plain)]
    assert streamed.stop_reason == "tool_use" and streamed.usage.output_tokens == plain.usage.output_tokens
    assert [e.type for e in raw][:1] == ["message_start"] and [e.type for e in raw][-2:] == ["message_delta",
                                                                                         "message_stop"]


def test_count_tokens_and_models_endpoints():
    with MessagesAPIServer() as api:
        client = sdk(api)
        counted = client.messages.count_tokens(model=THINKER, messages=[{"role": "user", "content": "x" * 400}])
        assert counted.input_tokens >= 100
        assert {m.id for m in client.models.list()} >= set(MODELS)
        assert client.models.retrieve("claude-sonnet-4-5").lifecycle == "retired"
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("claude-nonsense")


def test_scripted_errors_and_a_script_that_runs_out():
    from messages_api_server import ApiError

    with MessagesAPIServer(script=[ApiError(529, "overloaded_error", "Overloaded"), "fine"]) as api:
        assert error_of(post(api, body())) == (529, "overloaded_error", "Overloaded")
        assert post(api, body())[0] == 200
        status, kind, message = error_of(post(api, body()))
        assert (status, kind) == (500, "api_error") and "ran out of replies" in message


def test_the_server_shuts_down_its_port_and_threads():
    before = set(threading.enumerate())
    with MessagesAPIServer() as api:
        client = sdk(api)
        for _ in range(3):
            client.messages.create(model=PLAIN, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
        host, port = api._httpd.server_address[:2]
    assert set(threading.enumerate()) <= before
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).close()
