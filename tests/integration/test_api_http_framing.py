"""The local status API answers requests whose body cannot be framed, instead of dropping the connection."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from iamguard.aws import AwsContext
from iamguard_cli.local.api_server import MAX_BODY_BYTES, ApiServer, serve_in_thread
from iamguard_cli.local.server import MotoServer


@pytest.fixture(scope="module")
def api(_moto_server: MotoServer) -> Iterator[ApiServer]:
    aws = AwsContext(region="us-east-1", endpoint_url=_moto_server.url, retry_mode="standard", max_attempts=2)
    server = serve_in_thread(aws, "framing-findings", create_table=True)
    yield server
    server.stop()


def raw_request(api: ApiServer, head: str, body: bytes = b"") -> tuple[int, dict[str, str], dict[str, object]]:
    """Send bytes as written; the status, headers and JSON body of the answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    header_text, _, payload = received.partition(b"\r\n\r\n")
    status_line, *header_lines = header_text.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(payload)


@pytest.mark.parametrize(
    ("content_length", "status", "error"),
    [
        ("Content-Length: abc", 400, "bad_request"),
        ("Content-Length: -1", 400, "bad_request"),
        ("Content-Length: 1.5", 400, "bad_request"),
        ("Content-Length: ٣", 400, "bad_request"),  # a digit to str.isdigit(), not to HTTP
        ("Content-Length: 4\nContent-Length: 5", 400, "bad_request"),
        (f"Content-Length: {MAX_BODY_BYTES + 1}", 413, "payload_too_large"),
        ("Content-Length: " + "9" * 400, 413, "payload_too_large"),
        ("Transfer-Encoding: chunked", 411, "length_required"),
        ("Transfer-Encoding: chunked\nContent-Length: 2", 411, "length_required"),
    ],
    ids=[
        "letters",
        "negative",
        "fraction",
        "arabic-digit",
        "conflicting",
        "over-10-MB",
        "400-digits",
        "chunked",
        "chunked-and-length",
    ],
)
def test_a_content_length_that_cannot_be_honoured_gets_an_answer(
    api: ApiServer, content_length: str, status: int, error: str
) -> None:
    head = f"POST /audit HTTP/1.1\nHost: 127.0.0.1\n{content_length}\nContent-Type: application/json\n"
    got, headers, body = raw_request(api, head, b"{}")
    assert got == status
    assert body["error"] == error and body["message"]
    assert headers["connection"] == "close"


def test_the_server_keeps_answering_afterwards(api: ApiServer) -> None:
    raw_request(api, "POST /audit HTTP/1.1\nHost: 127.0.0.1\nContent-Length: abc\n")
    status, _, body = raw_request(api, "GET /status HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n")
    assert status == 200 and "account_id" in body
