"""A stand-in for Slack on 127.0.0.1: incoming webhooks and chat.postMessage, with outages on demand.

    with SlackReceiver(echo=sys.stdout) as slack:
        run(["audit", "--slack-webhook", slack.url, ...])
        slack.messages          # the Block Kit payloads Slack would have shown
        slack.fail(500, times=2)        # the next two requests get HTTP 500
        slack.fail(429, retry_after=1)  # rate limited until cleared
        slack.hang(5)                   # requests time out, nothing is posted
        slack.slow(5)                   # posted at once, answered 5 s later (after the client gave up)
        slack.go_down(); slack.come_up()  # nothing listening, then back on the same port

`python -m iamguard_cli.local.slack_receiver --port 3000` runs one in the terminal
and prints every message readably.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO

_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_CODE = re.compile(r"```(.*?)```", re.DOTALL)


@dataclass
class Fault:
    """What the next requests get instead of a 200."""

    status: int = 500
    retry_after: int | None = None
    hang_seconds: float = 0.0  # wait this long, then answer 504 without posting
    answer_after: float = 0.0  # post at once, then wait this long before answering 200
    times: int | None = None  # None: until cleared


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    payload: dict[str, Any]
    status: int
    at: float = field(default_factory=time.time)


def render(payload: dict[str, Any]) -> str:
    """A Block Kit payload as terminal text."""
    lines: list[str] = []
    for block in payload.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            lines += [block["text"]["text"], "=" * min(72, len(block["text"]["text"]) + 2)]
        elif kind == "section":
            if "text" in block:
                lines += [_plain(block["text"]["text"]), ""]
            for cell in block.get("fields", []):
                label, _, value = _plain(cell["text"]).partition("\n")
                lines.append(f"  {label}: {value}")
            if "fields" in block:
                lines.append("")
        elif kind == "context":
            lines += [_plain(element.get("text", "")) for element in block.get("elements", [])]
        elif kind == "divider":
            lines.append("-" * 40)
    if not lines:
        lines.append(str(payload.get("text", "")))
    return "\n".join(lines).rstrip() + "\n"


def _headline(payload: dict[str, Any]) -> str:
    for block in payload.get("blocks", []):
        if block.get("type") == "header":
            return str(block["text"]["text"])
    return str(payload.get("text", ""))


def _plain(mrkdwn: str) -> str:
    """Slack mrkdwn as a terminal shows it: *bold* and ```code``` markers dropped, entities decoded."""
    text = _CODE.sub(lambda m: "  $ " + m.group(1), _BOLD.sub(r"\1", mrkdwn))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class SlackReceiver:
    """A real HTTP server in a thread that records what iamguard posts to Slack."""

    def __init__(self, port: int = 0, *, echo: TextIO | None = None, token: str | None = None) -> None:
        self._port = port
        self._echo = echo
        self.token = token or f"xoxb-local-{secrets.token_hex(8)}"
        # A webhook path shaped like Slack's, with a random part that must stay secret like the real one.
        self.path = f"/services/T0LOCAL00/B0LOCAL00/{secrets.token_urlsafe(18)}"
        self.requests: list[Received] = []
        self.messages: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> SlackReceiver:
        handler = _handler_for(self)
        server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="slack-receiver", daemon=True)
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
        """Listen again, on the same port and webhook path."""
        if self._server is None:
            self.start()

    def __enter__(self) -> SlackReceiver:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The incoming-webhook URL (treat it like a secret, as iamguard does)."""
        return f"http://127.0.0.1:{self._port}{self.path}"

    @property
    def api_url(self) -> str:
        """Base URL for slack_sdk's WebClient (chat.postMessage with the bot token)."""
        return f"http://127.0.0.1:{self._port}/api/"

    # -- behaviour ---------------------------------------------------------------------
    def fail(self, status: int = 500, *, times: int | None = None, retry_after: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(status=status, retry_after=retry_after, times=times))

    def hang(self, seconds: float, *, times: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(status=200, hang_seconds=seconds, times=times))

    def slow(self, seconds: float, *, times: int | None = None) -> None:
        """Accept and post each message at once, but answer only `seconds` later (a slow Slack)."""
        with self._lock:
            self._faults.append(Fault(status=200, answer_after=seconds, times=times))

    @property
    def posts(self) -> list[str]:
        """The header line of every message posted, in order (a duplicate shows up twice)."""
        with self._lock:
            return [_headline(payload) for payload in self.messages]

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

    def _record(self, path: str, payload: dict[str, Any], status: int) -> None:
        with self._lock:
            self.requests.append(Received(path, payload, status))
            if status == 200:
                self.messages.append(payload)
                if self._echo is not None:
                    self._echo.write(render(payload) + "\n")
                    self._echo.flush()
            self._lock.notify_all()


def _handler_for(receiver: SlackReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the request line contains the secret webhook path."""

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
                payload: dict[str, Any] = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                payload = {}
            api = self.path.startswith("/api/")
            fault = receiver._next_fault()
            try:
                if fault is not None and fault.hang_seconds:
                    time.sleep(fault.hang_seconds)  # the client times out first; nothing is delivered
                    receiver._record(self.path, payload, 504)
                    self._reply(504, "timeout")
                    return
                if fault is not None and fault.status != 200:
                    receiver._record(self.path, payload, fault.status)
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    error = "ratelimited" if fault.status == 429 else "internal_error"
                    self._reply(fault.status, {"ok": False, "error": error} if api else error, headers)
                    return
                delay = fault.answer_after if fault is not None else 0.0
                if api:
                    self._api(payload, delay)
                    return
                if self.path != receiver.path:
                    receiver._record(self.path, payload, 404)
                    self._reply(404, "no_service")
                    return
                if not payload.get("text") and not payload.get("blocks"):
                    receiver._record(self.path, payload, 400)
                    self._reply(400, "invalid_payload")
                    return
                receiver._record(self.path, payload, 200)
                time.sleep(delay)  # posted; the answer comes late (the client may have given up)
                self._reply(200, "ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

        def _api(self, payload: dict[str, Any], delay: float) -> None:
            if self.path.rstrip("/") != "/api/chat.postMessage":
                self._reply(404, {"ok": False, "error": "unknown_method"})
                return
            if self.headers.get("Authorization") != f"Bearer {receiver.token}":
                receiver._record(self.path, payload, 401)
                self._reply(200, {"ok": False, "error": "invalid_auth"})
                return
            if not payload.get("channel"):
                receiver._record(self.path, payload, 400)
                self._reply(200, {"ok": False, "error": "channel_not_found"})
                return
            receiver._record(self.path, payload, 200)
            time.sleep(delay)
            self._reply(200, {"ok": True, "channel": payload["channel"], "ts": f"{time.time():.6f}"})

    return Handler


def main(argv: list[str] | None = None, *, wait: Callable[[], None] | None = None) -> int:
    """Run a receiver in the foreground and print what arrives."""
    parser = argparse.ArgumentParser(
        prog="python -m iamguard_cli.local.slack_receiver", description="A local stand-in for a Slack incoming webhook."
    )
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    receiver = SlackReceiver(args.port, echo=sys.stdout).start()
    sys.stdout.write(f"Slack receiver listening. Use: --slack-webhook {receiver.url}\n")
    sys.stdout.flush()
    try:
        (wait or threading.Event().wait)()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
