"""A fault-injecting HTTP proxy for end-to-end fault tests of the LLM client (issue 12).

    with FaultProxy("http://127.0.0.1:PORT", rate=0.3, seed=0) as proxy:
        client = LLMClient(model=..., base_url=proxy.url, timeout_s=...)
        ...
    print(proxy.stats.summary())

It listens on 127.0.0.1 (port 0: the OS picks a free one) in front of an Anthropic-compatible endpoint
(the embedded llama-server's /v1/messages) and, for each POST, decides with a seeded numpy Generator
whether to inject a fault (probability `rate`) or to forward the request unchanged. Fault kinds:

    rate_limited  429 rate_limit_error with `Retry-After: <retry_after_s>`
    overloaded    529 overloaded_error
    server_error  500 api_error
    reset         the connection is closed without a reply, with SO_LINGER 0 (a real TCP RST)
    stall         no reply until the client gives up (its timeout) or `stall_s` passed
    truncated     200 application/json whose body is a Message cut in half (JSON decode error)
    not_message   200 application/json that is valid JSON but not a Message: {"ok": true}

Error bodies have the Anthropic shape {"type": "error", "error": {"type": ..., "message": ...}}.

Which kind: drawn from a "bag" that holds every enabled kind once in a Generator-shuffled order and is
refilled when empty, so every kind is injected about equally often even in a short run (a plain
`rng.choice` leaves some kinds out of a 30-request run). Both draws (fault or not, and the bag order)
come from the one Generator in request-arrival order, so a serial client sees the same fault sequence
on every run with the same seed.

`max_consecutive` (None: no limit) forwards a request after that many faults in a row; with a client
that makes max_consecutive + 1 attempts, every *retryable* fault can then be absorbed, so any call that
still fails was failed by the client's classification, not by bad luck.

Every response carries `Connection: close` (one request per connection): a stale pooled connection can
never produce a failure the proxy did not inject.

`stats` counts faults injected per kind, requests forwarded, forwarded requests whose client had
already hung up (a real client-side timeout: a failed attempt the proxy did not inject), upstream
replies that were not 200, and per request body (sha256) whether it was faulted and whether it was
finally answered with a real 200: a fault is *survived* when the same request body was later forwarded
and its 200 reply delivered to a client that was still listening. `delivered_texts` holds the text of
every real reply delivered, so a cache entry can be traced back to a forwarded request.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable
from urllib.parse import urlsplit

import numpy as np

KINDS: tuple[str, ...] = ("rate_limited", "overloaded", "server_error", "reset", "stall", "truncated", "not_message")
"""Every fault kind, in the order the summary prints them."""

RETRYABLE_KINDS = frozenset(KINDS)
"""All of them should be retried by a correct client (issue 12: a truncated 200 and a 200 that is not a
Message are retryable errors too)."""

_STATUS_ERRORS = {
    "rate_limited": (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit (injected)."),
    "overloaded": (529, "overloaded_error", "Overloaded (injected)."),
    "server_error": (500, "api_error", "Internal server error (injected)."),
}

TRUNCATED_BODY = json.dumps({
    "id": "msg_fault_truncated", "type": "message", "role": "assistant",
    "content": [{"type": "text", "text": "INJECTED-TRUNCATED-REPLY this text must never reach a cache entry"}],
    "model": "fault-proxy", "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 11, "output_tokens": 7},
}).encode()
TRUNCATED_BODY = TRUNCATED_BODY[: len(TRUNCATED_BODY) // 2]
NOT_MESSAGE_BODY = b'{"ok": true}'


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _reply_text(body: bytes) -> str | None:
    """Concatenated text blocks of a Messages-API reply body, or None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    blocks = data.get("content") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        return None
    return "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")


@dataclass
class FaultStats:
    """What the proxy did (read it under `FaultProxy.lock`, or after the proxy stopped)."""

    requests: int = 0
    injected: Counter = field(default_factory=Counter)
    forwarded: int = 0
    delivered: int = 0                 # forwarded 200 replies written to a client that was still there
    client_gone: int = 0               # forwarded, but the client had hung up before the reply came back
    upstream_not_ok: Counter = field(default_factory=Counter)   # upstream status -> count (not 200)
    stall_abandoned: int = 0           # stalls the client gave up on (vs. stall_s reached first)
    faulted_bodies: dict[str, list[str]] = field(default_factory=dict)   # sha256 -> kinds injected on it
    delivered_bodies: set[str] = field(default_factory=set)
    delivered_texts: list[str] = field(default_factory=list)

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def survived(self) -> Counter:
        """Per kind: faults whose request body was later answered with a delivered real reply."""
        out: Counter = Counter()
        for digest, kinds in self.faulted_bodies.items():
            if digest in self.delivered_bodies:
                out.update(kinds)
        return out

    def summary(self) -> str:
        """One line: requests, forwarded, and per kind injected/survived."""
        survived = self.survived()
        per_kind = ", ".join(f"{kind} {self.injected[kind]}/{survived[kind]}" for kind in KINDS)
        return (f"fault proxy: {self.requests} requests, {self.forwarded} forwarded, {self.total_injected} faults "
                f"injected/survived: {per_kind}; total {self.total_injected}/{sum(survived.values())}; "
                f"client timeouts on forwarded requests {self.client_gone}, upstream non-200 "
                f"{dict(self.upstream_not_ok)}")


def _client_hung_up(sock: socket.socket) -> bool:
    """True when the client closed its side (EOF or reset) of a connection whose request was read."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests print the summary instead
        pass

    def do_GET(self):  # /health and friends pass straight through, never faulted
        self._forward(b"", faultable=False)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._forward(body, faultable=True)

    # -- replies ----------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def _reset(self) -> None:
        """Close with SO_LINGER {on, 0 s}: the kernel drops unsent data and sends RST, not FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _inject(self, kind: str) -> None:
        proxy = self.server.proxy
        if kind in _STATUS_ERRORS:
            status, error_type, message = _STATUS_ERRORS[kind]
            body = json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()
            headers = [("Content-Type", "application/json")]
            if kind == "rate_limited":
                headers.append(("Retry-After", f"{proxy.retry_after_s:g}"))
            self._send(status, body, headers)
        elif kind == "reset":
            self._reset()
        elif kind == "stall":
            deadline = time.monotonic() + proxy.stall_s
            while time.monotonic() < deadline and not proxy.stopping.is_set():
                if _client_hung_up(self.connection):
                    with proxy.lock:
                        proxy.stats.stall_abandoned += 1
                    break
                proxy.stopping.wait(0.02)
            self._reset()
        elif kind == "truncated":
            self._send(200, TRUNCATED_BODY, [("Content-Type", "application/json")])
        elif kind == "not_message":
            self._send(200, NOT_MESSAGE_BODY, [("Content-Type", "application/json")])
        else:  # pragma: no cover - guarded by FaultProxy.__init__
            raise ValueError(kind)

    def _forward(self, body: bytes, *, faultable: bool) -> None:
        proxy = self.server.proxy
        digest = body_digest(body)
        kind = proxy._draw() if faultable else None
        with proxy.lock:
            if faultable:
                proxy.stats.requests += 1
            if kind is not None:
                proxy.stats.injected[kind] += 1
                proxy.stats.faulted_bodies.setdefault(digest, []).append(kind)
        if kind is not None:
            self._inject(kind)
            return
        status, headers, reply = proxy._upstream(self.command, self.path, body, self.headers)
        gone = _client_hung_up(self.connection)
        with proxy.lock:
            if faultable:
                proxy.stats.forwarded += 1
                if gone:
                    proxy.stats.client_gone += 1
                elif status != 200:
                    proxy.stats.upstream_not_ok[status] += 1
        if gone:
            self._reset()
            return
        self._send(status, reply, headers)
        if faultable and status == 200:
            with proxy.lock:
                proxy.stats.delivered += 1
                proxy.stats.delivered_bodies.add(digest)
                text = _reply_text(reply)
                if text is not None:
                    proxy.stats.delivered_texts.append(text)


class _Server(ThreadingHTTPServer):
    daemon_threads = False   # handler threads are tracked, so server_close() joins every one
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, proxy: "FaultProxy") -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address):  # a client that went away mid-reply: not an error here
        pass


class FaultProxy:
    """Context manager: a fault-injecting proxy thread; `url` is its base URL. See the module docstring.

    `rate` may be changed while it runs (e.g. 0.0 for a clean warm rerun); `reset_stats()` starts a new
    count. Leaving the `with` block (or `stop()`) shuts the listener down, wakes stalled handlers and
    joins every handler thread.
    """

    def __init__(self, upstream: str, *, rate: float = 0.3, seed: int = 0, kinds: Iterable[str] = KINDS,
                 retry_after_s: float = 0.05, stall_s: float = 60.0, max_consecutive: int | None = None,
                 upstream_timeout_s: float = 600.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.kinds = tuple(kinds)
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        if max_consecutive is not None and max_consecutive < 0:
            raise ValueError(f"max_consecutive must be >= 0 or None, got {max_consecutive!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.rate = float(rate)
        self.retry_after_s = float(retry_after_s)
        self.stall_s = float(stall_s)
        self.max_consecutive = max_consecutive
        self.upstream_timeout_s = float(upstream_timeout_s)
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stats = FaultStats()
        self._bag: list[str] = []
        self._consecutive = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> "FaultProxy":
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self.stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping.set()           # wakes stalled handlers
        server.shutdown()             # stops serve_forever
        server.server_close()         # closes the listening socket and joins handler threads
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = FaultStats()

    # -- internals ----------------------------------------------------------------------------------
    def _draw(self) -> str | None:
        """The fault for the next request, or None to forward it (arrival order, one lock)."""
        with self.lock:
            u = float(self.rng.random())
            if not self._bag:
                self._bag = [self.kinds[i] for i in self.rng.permutation(len(self.kinds))]
            if u >= self.rate or (self.max_consecutive is not None and self._consecutive >= self.max_consecutive):
                self._consecutive = 0
                return None
            self._consecutive += 1
            return self._bag.pop()

    def _upstream(self, method: str, path: str, body: bytes, headers) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.upstream_timeout_s)
        try:
            forward = {k: v for k, v in headers.items()
                       if k.lower() not in ("host", "connection", "content-length", "accept-encoding")}
            conn.request(method, path, body=body if method == "POST" else None, headers=forward)
            response = conn.getresponse()
            reply = response.read()
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() in ("content-type", "retry-after", "request-id")]
            return response.status, kept, reply
        except OSError as exc:
            body = json.dumps({"type": "error", "error": {"type": "api_error",
                                                          "message": f"fault proxy: upstream failed: {exc}"}}).encode()
            return 502, [("Content-Type", "application/json")], body
        finally:
            conn.close()
