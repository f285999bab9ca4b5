"""A moto server for the benchmarks, in a process of its own (its CPU does not share the GIL of the tool measured).

It is iamguard's own `iamguard_cli.local.server.MotoServer` (AWS managed policies loaded, the
root-user extension installed) wrapped in a small WSGI middleware that

* counts every request by service and operation, whoever sends it (iamguard, Prowler,
  Cloud Custodian), so every tool's API calls are counted the same way, on the server;
* can hold every AWS request for a fixed delay before moto answers it (the network model
  "moto + 30 ms": a real region's IAM round trip). The delay is a sleep in the request's
  own server thread (werkzeug serves each connection in a thread), so concurrent requests
  wait concurrently, as on a network, and it costs no CPU; every tool sends every AWS call
  here (``AWS_ENDPOINT_URL``), so each of them pays it on every call. Control requests
  are never delayed;
* answers a few benchmark-only control requests under ``/__bench__/``:

  - ``GET  /__bench__/calls``        the counts so far, as JSON ``{"iam:GetUser": 12, ...}``;
  - ``POST /__bench__/calls/reset``  the counts so far, then start again from zero;
  - ``POST /__bench__/waits/reset``  how the AWS requests since the last reset fell in time, then start
    again: ``{"requests": 13, "rounds": 7, "busy_ms": 250.1}`` - requests that overlapped (sent
    together, waited for together) form one round; ``busy_ms`` is how long at least one was open;
  - ``POST /__bench__/delay``        body ``{"seconds": 0.03}``: the delay of every later AWS request;
  - ``POST /__bench__/sign-in``      body ``{"account_id": "...", "users": {"alice": 3}}``: record
    that each user last signed in to the console that many days ago. No IAM API sets
    ``PasswordLastUsed`` (only a real sign-in does), and an account where no console user
    ever signed in would not be realistic;
  - ``POST /__bench__/organization-access-role`` body ``{"account_id": "...", "management_account_id": "..."}``:
    the OrganizationAccountAccessRole that Organizations' CreateAccount creates in a new account
    (moto creates none; iamguard's moto extension adds it, in this process's backend).

Listens on 127.0.0.1 only. Run it directly (``python bench/moto_server.py --port 5055
[--delay-ms 30]``) or let ``bench/audit_users.py`` start it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

WsgiApp = Callable[..., Any]
CONTROL_PREFIX = "/__bench__/"


def _service(environ: dict[str, Any]) -> str:
    """The service a SigV4-signed request is for (from the credential scope of its Authorization header)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    marker = "Credential="
    if marker in auth:
        scope = auth.split(marker, 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            return scope[3]
    return "unsigned"


def _operation(environ: dict[str, Any]) -> str:
    """The operation of a request: X-Amz-Target (JSON protocols), else the Action of a query-protocol request."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("REQUEST_METHOD") == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '/')}"


class CallCounting:
    """WSGI middleware: count requests by ``service:Operation`` and serve the ``/__bench__/`` control paths."""

    def __init__(self, app: WsgiApp, delay_seconds: float = 0.0) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.spans: list[tuple[float, float]] = []  # each AWS request's (start, end), monotonic seconds
        self.delay_seconds = delay_seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(path[len(CONTROL_PREFIX) :], environ, start_response)
        key = f"{_service(environ)}:{_operation(environ)}"
        with self.lock:
            self.calls[key] += 1
            delay = self.delay_seconds
        started = time.monotonic()
        if delay:
            time.sleep(delay)
        try:
            return self.app(environ, start_response)
        finally:
            with self.lock:
                self.spans.append((started, time.monotonic()))

    def control(self, action: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if action == "calls" and method == "GET":
            with self.lock:
                payload: Any = dict(self.calls)
        elif action == "calls/reset" and method == "POST":
            with self.lock:
                payload = dict(self.calls)
                self.calls.clear()
        elif action == "waits/reset" and method == "POST":
            with self.lock:
                spans, self.spans = self.spans, []
            payload = {"requests": len(spans), **rounds(spans)}
        elif action == "delay" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            seconds = float(json.loads(environ["wsgi.input"].read(length) or b"{}")["seconds"])
            if not 0 <= seconds <= 10:
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"error": "delay seconds must be between 0 and 10"}']
            with self.lock:
                self.delay_seconds = seconds
            payload = {"delay_seconds": seconds}
        elif action == "sign-in" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            payload = {"signed_in": sign_in(request["account_id"], request["users"])}
        elif action == "organization-access-role" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            from iamguard_cli.local import moto_ext

            payload = {
                "role_arn": moto_ext.organization_access_role(
                    str(request["account_id"]), str(request["management_account_id"])
                )
            }
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "unknown benchmark control request"}']
        body = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def rounds(spans: list[tuple[float, float]]) -> dict[str, Any]:
    """Requests whose times overlap are one round (a client waited for them together); the rounds and their union."""
    count, busy, start, end = 0, 0.0, 0.0, float("-inf")
    for begun, ended in sorted(spans):
        if begun > end:  # nothing was open: a new round
            busy += max(0.0, end - start)
            count, start, end = count + 1, begun, ended
        else:
            end = max(end, ended)
    busy += max(0.0, end - start) if count else 0.0
    return {"rounds": count, "busy_ms": round(busy * 1000, 1)}


def sign_in(account_id: str, users: dict[str, float]) -> int:
    """Set PasswordLastUsed of each named user to `days` ago, in the moto backend of this process."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    now = datetime.now(UTC).replace(microsecond=0)  # AWS timestamps have whole seconds
    for name, days in users.items():
        backend.get_user(name).password_last_used = now - timedelta(days=int(days), hours=round(days % 1 * 24))
    return len(users)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5055, help="port on 127.0.0.1 (default: 5055)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay of every AWS request (default: 0)")
    args = parser.parse_args(argv)

    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    from iamguard_cli.local.server import MotoServer

    server = MotoServer(args.port, wrap=lambda app: CallCounting(app, args.delay_ms / 1000)).start()
    print(f"moto server listening on {server.url} (pid {os.getpid()})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
