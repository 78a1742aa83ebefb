"""LLMClient against fake `messages.create` callables: retries, backoff, errors, request shape,
concurrency, recovery hook and backend selection. No network."""

from __future__ import annotations

import threading

import anthropic
import pytest

from polca_nb.errors import FatalError

from polca_nb.llm import LLM, LLMClient, LLMError, LLMFatalError, LLMReply, RetryPolicy, default_client, resolve_backend
from polca_nb.llm import config
from polca_nb.llm.client import sample_seed

try:  # anthropic>=2 ships its own httpx fork; 0.x/1.x use httpx
    import httpx2 as httpx
except ImportError:
    import httpx

USER = [{"role": "user", "content": "Say hi."}]
REQUEST = httpx.Request("POST", "http://test.invalid/v1/messages")
OK = {"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 3, "output_tokens": 1},
      "stop_reason": "end_turn", "model": "fake"}


def status_error(code: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    response = httpx.Response(code, request=REQUEST, headers=headers or {})
    error_type = {400: anthropic.BadRequestError, 401: anthropic.AuthenticationError,
                  429: anthropic.RateLimitError}.get(code, anthropic.InternalServerError)
    return error_type(f"status {code}", response=response, body=None)


class Script:
    """A fake `messages.create` that raises the queued exceptions, then answers OK."""

    def __init__(self, *failures: BaseException):
        self.failures = list(failures)
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.failures:
            raise self.failures.pop(0)
        return OK


def make_client(create, *, attempts=4, jitter_seed=None, **options):
    sleeps: list[float] = []
    client = LLMClient(model="claude-haiku-4-5", create=create, cache=None, sleep=sleeps.append,
                       retry=RetryPolicy(max_attempts=attempts, initial_s=1.0, multiplier=2.0, max_s=3.0, jitter=0.5),
                       jitter_seed=jitter_seed, **options)
    return client, sleeps


def ask(client, **kwargs):
    return client.complete(system="sys", messages=USER, role="proposer", **kwargs)


@pytest.mark.parametrize("failure", [
    status_error(429), status_error(500), status_error(529), status_error(503),
    anthropic.APITimeoutError(request=REQUEST), anthropic.APIConnectionError(request=REQUEST),
], ids=["429", "500", "529-overloaded", "503", "timeout", "connection"])
def test_transient_failures_are_retried_then_succeed(failure):
    fake = Script(failure, failure)
    client, sleeps = make_client(fake)
    reply = ask(client)
    assert reply.text == "hi" and len(fake.calls) == 3
    assert sleeps == [1.0, 2.0]  # initial_s * multiplier**k without jitter
    usage = client.ledger.usage("proposer")
    assert (usage.calls, usage.retries, usage.errors) == (1, 2, 0)


def test_exhausted_retries_raise_llm_error_with_the_cause():
    fake = Script(*[status_error(500)] * 10)
    client, sleeps = make_client(fake, attempts=4)
    with pytest.raises(LLMError, match="after 4 attempt") as info:
        ask(client)
    assert len(fake.calls) == 4
    assert sleeps == [1.0, 2.0, 3.0]  # capped at max_s
    assert isinstance(info.value.cause, anthropic.InternalServerError) and info.value.attempts == 4
    usage = client.ledger.usage("proposer")
    assert (usage.calls, usage.errors, usage.retries) == (0, 1, 3)


@pytest.mark.parametrize("failure", [status_error(400), status_error(401), status_error(403), status_error(404),
                                     ValueError("bad reply")], ids=["400", "401", "403", "404", "other"])
def test_non_retryable_failures_are_fatal_at_once(failure):
    fake = Script(failure)
    client, sleeps = make_client(fake)
    with pytest.raises(LLMFatalError, match="rejected the request|cannot be retried") as info:
        ask(client)
    assert isinstance(info.value, FatalError) and isinstance(info.value, LLMError)
    assert len(fake.calls) == 1 and sleeps == []


def test_retry_after_header_stretches_the_backoff():
    fake = Script(status_error(429, {"retry-after": "2.5"}))
    client, sleeps = make_client(fake)
    ask(client)
    assert sleeps == [2.5]


def test_jitter_is_seeded_and_bounded():
    def delays(seed):
        fake = Script(*[status_error(429)] * 3)
        client, sleeps = make_client(fake, jitter_seed=seed)
        ask(client)
        return sleeps

    first, same, other = delays(7), delays(7), delays(8)
    assert first == same and first != other
    for k, delay in enumerate(first):
        base = min(3.0, 2.0 ** k)
        assert base * 0.5 <= delay <= base * 1.5


def test_request_shape_sampling_in_extra_body_and_tools_pass_through():
    tool = {"name": "lookup", "description": "find an order", "input_schema": {"type": "object"}}
    tool_reply = {"content": [{"type": "text", "text": "Checking."},
                              {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"id": 7}}],
                  "usage": {"input_tokens": 9, "output_tokens": 4}, "stop_reason": "tool_use"}
    calls = []

    def create(**kwargs):
        calls.append(kwargs)
        return tool_reply

    client = LLMClient(model="claude-haiku-4-5", create=create, cache=None)
    assert isinstance(client, LLM)
    reply = client.complete(system="", messages=USER, role="task", max_tokens=50, temperature=0.7, sample_id=3,
                            tools=[tool], stop=["END"])
    sent = calls[0]
    # API 2026-10-21 rejects any sampling parameter: nothing of the kind, and no seed, goes to Claude.
    assert "temperature" not in sent and "extra_body" not in sent
    assert "system" not in sent  # empty system is omitted
    assert sent["tools"][0]["cache_control"] == {"type": "ephemeral"}  # prompt caching on the tool prefix
    assert {k: v for k, v in sent["tools"][0].items() if k != "cache_control"} == tool
    assert sent["stop_sequences"] == ["END"] and sent["max_tokens"] == 50
    assert reply.text == "Checking." and reply.stop_reason == "tool_use"
    assert reply.tool_uses == [tool_reply["content"][1]]

    local = LLMClient(model=config.LOCAL_MODEL_NAME, create=create, cache=None, send_seed=True)
    local.complete(system="s", messages=USER, role="task", temperature=0.7, sample_id=3)
    local.complete(system="s", messages=USER, role="task", temperature=0.7, sample_id=4)
    assert calls[1]["extra_body"] == {"temperature": 0.7, "seed": sample_seed(3)}
    assert sample_seed(3) != sample_seed(4) and calls[2]["extra_body"]["seed"] == sample_seed(4)


@pytest.mark.parametrize("message", [
    {"content": []}, {"content": [{"type": "tool_use", "id": "x", "name": "n", "input": {}}]},
])
def test_reply_without_text_comes_back_as_empty_text(message):
    client = LLMClient(model="claude-haiku-4-5", create=lambda **kw: message, cache=None)
    reply = ask(client)
    assert isinstance(reply, LLMReply) and reply.text == "" and reply.input_tokens == 0


def test_sdk_message_objects_are_accepted():
    message = anthropic.types.Message(id="m1", type="message", role="assistant", model="claude-haiku-4-5",
                                      content=[{"type": "text", "text": "Paris."}], stop_reason="end_turn",
                                      stop_sequence=None, usage={"input_tokens": 12, "output_tokens": 3})
    client = LLMClient(model="claude-haiku-4-5", create=lambda **kw: message, cache=None)
    reply = ask(client)
    assert (reply.text, reply.input_tokens, reply.output_tokens, reply.model) == ("Paris.", 12, 3, "claude-haiku-4-5")
    assert reply.content[0]["type"] == "text"


def test_concurrency_is_bounded():
    in_flight, peak, lock = [0], [0], threading.Lock()
    # Calls leave in pairs: each waits (bounded) for a second call to be inside `create` too, so the
    # bound is reached on any machine, however slowly the threads start, instead of relying on two
    # calls overlapping during a short sleep.
    pair = threading.Barrier(2, timeout=10)

    def create(**kwargs):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            pair.wait()
        finally:
            with lock:
                in_flight[0] -= 1
        return OK

    client = LLMClient(model="claude-haiku-4-5", create=create, cache=None, max_concurrency=2)
    threads = [threading.Thread(target=ask, args=(client,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert peak[0] == 2 and client.ledger.usage("proposer").calls == 6


def test_waiting_for_a_slot_has_a_deadline():
    entered, release = threading.Event(), threading.Event()

    def create(**kwargs):
        entered.set()
        release.wait(timeout=10)
        return OK

    client = LLMClient(model="claude-haiku-4-5", create=create, cache=None, max_concurrency=1, queue_timeout_s=0.1)
    holder = threading.Thread(target=ask, args=(client,))
    holder.start()
    try:
        assert entered.wait(timeout=10), "the first call never reached create"  # it holds the only slot now
        with pytest.raises(LLMError, match="no free LLM slot"):
            ask(client)
    finally:
        release.set()
        holder.join(timeout=10)


class FakeServer:
    """Stands in for LocalServer: URL changes on every recovery."""

    def __init__(self):
        self.generation = 0
        self.recovered_from: list[str | None] = []

    def ensure_running(self):
        return f"http://127.0.0.1:{9000 + self.generation}"

    def recover(self, failed_url):
        self.recovered_from.append(failed_url)
        self.generation += 1
        return self.ensure_running()


def test_connection_failure_on_the_local_server_triggers_recovery_but_timeouts_do_not():
    server = FakeServer()
    fake = Script(anthropic.APIConnectionError(request=REQUEST), anthropic.APITimeoutError(request=REQUEST))
    client = LLMClient(model=config.LOCAL_MODEL_NAME, server=server, create=fake, cache=None, sleep=lambda s: None)
    assert ask(client).text == "hi"
    assert server.recovered_from == ["http://127.0.0.1:9000"]
    assert client.price == config.FREE


def test_missing_local_install_is_reported_not_retried(monkeypatch):
    from polca_nb.llm import LocalServer, LocalServerError

    monkeypatch.setenv(config.ENV_LLAMA_SERVER, "/nonexistent/llama-server")
    fake = Script()
    client = LLMClient(model=config.LOCAL_MODEL_NAME, server=LocalServer(), create=fake, cache=None)
    with pytest.raises(LocalServerError, match=config.ENV_LLAMA_SERVER):
        ask(client)
    assert fake.calls == []


def test_backend_selection_follows_the_environment(monkeypatch):
    for var in (config.ENV_API_KEY, config.ENV_BASE_URL, config.ENV_MODEL):
        monkeypatch.delenv(var, raising=False)
    assert resolve_backend() == "local"
    local = default_client(cache=False)
    assert local.server is not None and local.server.pid is None  # started lazily, on the first live call
    assert local.model == config.LOCAL_MODEL_NAME and local.price == config.FREE
    assert local.max_concurrency == config.LOCAL_CONCURRENCY

    monkeypatch.setenv(config.ENV_API_KEY, "sk-test")
    assert resolve_backend() == "claude"
    claude = default_client(cache=False)
    assert (claude.model, claude.base_url, claude.send_seed) == (config.DEFAULT_CLAUDE_MODEL, None, False)
    assert claude.price == config.CLAUDE_PRICES[config.DEFAULT_CLAUDE_MODEL]

    monkeypatch.setenv(config.ENV_BASE_URL, "http://127.0.0.1:8092/")
    endpoint = default_client(cache=False, model="claude-haiku-4-5")
    assert resolve_backend() == "endpoint" and endpoint.base_url == "http://127.0.0.1:8092/"
    assert endpoint.cache_namespace == "http://127.0.0.1:8092"
    assert resolve_backend("local") == "local"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("openai")  # type: ignore[arg-type]


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_concurrency"):
        LLMClient(model="claude-haiku-4-5", max_concurrency=0)
    with pytest.raises(ValueError, match="timeout_s"):
        LLMClient(model="claude-haiku-4-5", timeout_s=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="role"):
        LLMClient(model="claude-haiku-4-5", create=lambda **kw: OK).complete(system="", messages=USER, role="")
