"""A local stand-in for a chat or paging service on 127.0.0.1: real HTTP, outages on demand.

`HttpReceiver` is the server every local channel receiver shares (Slack, Teams,
PagerDuty, the signed webhook: iamguard_cli.local.slack_receiver and
iamguard_cli.local.channel_receivers); each subclass only says what a
request must look like (`accept`) and how a delivered one reads (`render`).

    receiver.messages                  # what was delivered, in order
    receiver.fail(500, times=2)        # the next two requests get HTTP 500
    receiver.fail(429, retry_after=1)  # rate limited until cleared
    receiver.hang(5)                   # requests time out, nothing is delivered
    receiver.slow(5)                   # delivered at once, answered 5 s later
    receiver.go_down(); receiver.come_up()  # nothing listening, then back on the same port
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TextIO


@dataclass
class Fault:
    """What the next requests get instead of being delivered."""

    status: int = 500
    retry_after: int | None = None
    hang_seconds: float = 0.0  # wait this long, then answer 504 without delivering
    answer_after: float = 0.0  # deliver at once, then wait this long before answering
    times: int | None = None  # None: until cleared


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    payload: dict[str, Any]
    status: int
    at: float = field(default_factory=time.time)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A receiver's answer to one request; `delivered` = the service would have shown or acted on it."""

    status: int
    body: str | dict[str, Any]
    delivered: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class HttpReceiver:
    """A real HTTP server in a thread that records what iamguard posts to one service."""

    name = "receiver"

    def __init__(self, port: int = 0, *, echo: TextIO | None = None) -> None:
        self._port = port
        self._echo = echo
        self.requests: list[Received] = []
        self.messages: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what a subclass says -----------------------------------------------------------
    def accept(self, path: str, headers: dict[str, str], raw: bytes, payload: dict[str, Any]) -> Reply:
        """Judge one request (no fault in the way)."""
        raise NotImplementedError

    def fault_body(self, path: str, status: int) -> str | dict[str, Any]:
        """What the service says when it fails with `status`."""
        return {"error": "rate limited" if status == 429 else "internal error"}

    def render(self, payload: dict[str, Any]) -> str:
        """A delivered payload as terminal text."""
        return json.dumps(payload, ensure_ascii=False, indent=2)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name=f"{self.name}-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def go_down(self) -> None:
        """Stop listening: connections are refused until come_up()."""
        self.stop()

    def come_up(self) -> None:
        """Listen again, on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- behaviour ---------------------------------------------------------------------
    def fail(self, status: int = 500, *, times: int | None = None, retry_after: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(status=status, retry_after=retry_after, times=times))

    def hang(self, seconds: float, *, times: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(status=200, hang_seconds=seconds, times=times))

    def slow(self, seconds: float, *, times: int | None = None) -> None:
        """Deliver each request at once, but answer only `seconds` later."""
        with self._lock:
            self._faults.append(Fault(status=200, answer_after=seconds, times=times))

    def heal(self) -> None:
        """Forget all faults."""
        with self._lock:
            self._faults.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least `count` messages arrived (or the timeout passed); return them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count and time.monotonic() < deadline:
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))
            return list(self.messages)

    # -- used by the handler ------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(0)
            return fault

    def _record(
        self, path: str, payload: dict[str, Any], status: int, headers: dict[str, str], delivered: bool
    ) -> None:
        with self._lock:
            self.requests.append(Received(path, payload, status, headers=headers))
            if delivered:
                self.messages.append(payload)
                if self._echo is not None:
                    self._echo.write(self.render(payload) + "\n")
                    self._echo.flush()
            self._lock.notify_all()


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the request line can contain a secret webhook path."""

        def _reply(self, status: int, body: str | dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            content_type = "application/json" if isinstance(body, dict) else "text/plain"
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                loaded = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                loaded = {}
            payload: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
            headers = {name.lower(): value for name, value in self.headers.items()}
            fault = receiver._next_fault()
            try:
                if fault is not None and fault.hang_seconds:
                    time.sleep(fault.hang_seconds)  # the client times out first; nothing is delivered
                    receiver._record(self.path, payload, 504, headers, False)
                    self._reply(504, "timeout")
                    return
                if fault is not None and fault.status != 200:
                    receiver._record(self.path, payload, fault.status, headers, False)
                    extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    self._reply(fault.status, receiver.fault_body(self.path, fault.status), extra)
                    return
                reply = receiver.accept(self.path, headers, raw, payload)
                receiver._record(self.path, payload, reply.status, headers, reply.delivered)
                if reply.delivered and fault is not None:
                    time.sleep(fault.answer_after)  # delivered; the answer comes late (the client may have given up)
                self._reply(reply.status, reply.body, reply.headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

    return Handler
