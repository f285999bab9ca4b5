"""The status API on 127.0.0.1: each HTTP request becomes an API Gateway REST proxy event.

The event goes through the same resolver as in Lambda (iamguard.api.app.create_app),
so the local API is the deployed API minus API Gateway's own authorization and
throttling. It binds to the loopback interface only: there is no authorization here.
One route is the local server's own: GET /report, the HTML report (iamguard_cli.report)
over the same findings table.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from iamguard.api.app import create_app
from iamguard.api.launch import AuditLauncher
from iamguard.api.models import ErrorResponse
from iamguard.api.service import StatusService
from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.iam.inventory import Inventory
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import HISTORY_DAYS, FindingsStore
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.settings import Settings

from iamguard_cli.local.bootstrap import ensure_findings_table
from iamguard_cli.local.lambda_context import LambdaContext
from iamguard_cli.report import REPORT_CSP, render_html, view_from_store

HOST = "127.0.0.1"
LOCAL_ACCOUNT_ID = "123456789012"
log = logging.getLogger(__name__)

# Powertools keeps the current event on the router class: one request at a time per process.
_RESOLVE_LOCK = threading.Lock()
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")
REPORT_PATH = "/report"
REPORT_DAYS = (1, HISTORY_DAYS)  # the trend's window, as GET /trend allows it: audit runs are kept 90 days


class ThreadAuditLauncher:
    """Runs the audit in a daemon thread of this process, one at a time (the local runtime)."""

    def __init__(self, aws: AwsContext, store: FindingsStore, settings: Settings) -> None:
        self._aws = aws
        self._store = store
        self._settings = settings
        self._lock = threading.Lock()
        self._running: tuple[str, threading.Thread] | None = None

    def start(self, run_id: str) -> str:
        with self._lock:
            if self._running is not None and self._running[1].is_alive():
                return self._running[0]  # an audit is already under way: follow that one
            thread = threading.Thread(target=self._run, args=(run_id,), name=f"audit-{run_id}", daemon=True)
            self._running = (run_id, thread)
            thread.start()
            return run_id

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running audit (if any) is done; for tests and shutdown."""
        running = self._running
        if running is not None:
            running[1].join(timeout)

    def _run(self, run_id: str) -> None:
        try:
            memory = LoginProfileStore(self._store.client, self._store.table)
            exemptions = ExemptionStore.of(self._store).all()
            result = run_audit(Inventory(self._aws, login_profiles=memory), self._settings, exemptions=exemptions)
            store_audit(result, self._store)
            log.info("local audit finished", extra={"run_id": run_id, "summary": result.summary()})
        except Exception:  # a background failure must not vanish silently
            log.exception("local audit failed", extra={"run_id": run_id})


def proxy_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str = HOST
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event for one HTTP request, as a `/{proxy+}` resource receives it."""
    parsed = urllib.parse.urlsplit(target)
    path = urllib.parse.unquote(parsed.path) or "/"
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    is_text = not body or any(content_type.startswith(t) for t in _TEXT_TYPES)
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": HOST,
            "httpMethod": method,
            "identity": {"sourceIp": source_ip, "userAgent": multi_headers.get("User-Agent", [""])[-1]},
            "path": path,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "resourceId": "local",
            "resourcePath": "/{proxy+}",
            "stage": "local",
        },
        "body": (body.decode("utf-8", "replace") if is_text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": bool(body) and not is_text,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _ApiHttpServer
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = self._content_length()
        if length is None:
            return
        body = self.rfile.read(length) if length > 0 else b""
        if urllib.parse.urlsplit(self.path).path == REPORT_PATH and self.command in {"GET", "HEAD"}:
            self._report()
            return
        event = proxy_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        with _RESOLVE_LOCK:
            result = self.server.app.resolve(
                event, LambdaContext.for_function("iamguard-status-api-local", LOCAL_ACCOUNT_ID, timeout_seconds=30)
            )
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
        self.send_response(int(result["statusCode"]))
        headers: dict[str, Any] = {**result.get("headers", {})}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = values
        for name, value in headers.items():
            for single in value if isinstance(value, list) else [value]:
                self.send_header(name, str(single))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _report(self) -> None:
        """GET /report: the HTML report from the stored findings and audit runs (?days=1..90, default 30)."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        raw = (query.get("days") or ["30"])[-1]
        low, high = REPORT_DAYS
        if not (raw.isascii() and raw.isdigit() and low <= int(raw) <= high):
            self._answer(HTTPStatus.BAD_REQUEST, "bad_request", f"days must be a whole number from {low} to {high}")
            return
        page = render_html(view_from_store(self.server.service, days=int(raw))).encode()
        self.send_response(HTTPStatus.OK.value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Security-Policy", REPORT_CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page)

    def _content_length(self) -> int | None:
        """The body's length, or None after answering a request whose Content-Length cannot be honoured."""
        raw = self.headers.get_all("Content-Length") or []
        value = raw[0].strip() if raw else "0"
        if self.headers.get("Transfer-Encoding"):
            message = "Transfer-Encoding is not supported here: send the body with a Content-Length"
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "length_required", message)
        elif len(set(raw)) > 1:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", "conflicting Content-Length headers")
        elif not (value.isascii() and value.isdigit()):
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", "Content-Length must be a whole number")
        elif len(value) > 20 or int(value) > MAX_BODY_BYTES:
            limit = MAX_BODY_BYTES // (1024 * 1024)
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"the body may be at most {limit} MB"
            )
        else:
            return int(value)
        return None

    def _refuse(self, status: HTTPStatus, code: str, message: str) -> None:
        """Answer without reading the body, and close: what follows on the connection cannot be framed."""
        self.close_connection = True
        self._answer(status, code, message)

    def _answer(self, status: HTTPStatus, code: str, message: str) -> None:
        """An error in the API's shape (ErrorResponse)."""
        data = json.dumps(ErrorResponse(error=code, message=message).model_dump(mode="json")).encode()
        self.send_response(status.value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def __getattr__(self, name: str) -> Any:
        """Every HTTP method goes to the resolver (do_GET, do_TRACE, ...): it answers 404 or 405 itself."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _ApiHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, app: Any, verbose: bool, service: StatusService) -> None:
        self.app = app
        self.verbose = verbose
        self.service = service
        super().__init__((HOST, port), _Handler)


def local_service(
    aws: AwsContext,
    table: str,
    *,
    settings: Settings | None = None,
    create_table: bool = False,
) -> StatusService:
    """A service over the findings table at `aws`, auditing in a background thread on POST /audit."""
    settings = settings or Settings.from_env()
    store = FindingsStore(aws.dynamodb(), table, home_account=settings.organization.home_account)
    if create_table:
        ensure_findings_table(store)
    launcher: AuditLauncher = ThreadAuditLauncher(aws, store, settings)
    return StatusService(store, settings.api, launcher, organization_id=settings.organization.organization_id)


class ApiServer:
    """The status API served in a daemon thread; a context manager."""

    def __init__(self, service: StatusService, port: int = 0, *, verbose: bool = False) -> None:
        self.service = service
        self._httpd = _ApiHttpServer(port, create_app(lambda: service), verbose, service)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="iamguard-api", daemon=True)

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving; a local audit that POST /audit started is given a moment to finish first."""
        if isinstance(self.service.launcher, ThreadAuditLauncher):
            self.service.launcher.wait(timeout=30)
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def serve_in_thread(
    aws: AwsContext,
    table: str,
    *,
    port: int = 0,
    settings: Settings | None = None,
    create_table: bool = False,
    verbose: bool = False,
) -> ApiServer:
    """Start the status API on 127.0.0.1:`port` (0 = any free port) over the table at `aws`; stop() it after."""
    service = local_service(aws, table, settings=settings, create_table=create_table)
    return ApiServer(service, port, verbose=verbose).start()
