"""Helpers for the local-runtime tests (no test functions here)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from iamguard_cli.local import moto_ext
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.trail import CloudTrailMiddleware, Trail


def reset_moto(url: str) -> None:
    """Empty every moto backend of this process (they are shared by all servers in it) and root's state."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    moto_ext.reset()


@contextmanager
def trail_server() -> Iterator[tuple[MotoServer, Trail]]:
    """A moto server wrapped in the local CloudTrail, on a fresh account."""
    trail = Trail()
    server = MotoServer(wrap=lambda app: CloudTrailMiddleware(app, trail)).start()
    try:
        reset_moto(server.url)
        yield server, trail
    finally:
        server.stop()
        moto_ext.reset()


def client(service: str, url: str, key: str = "testing", secret: str = "testing", token: str | None = None) -> Any:
    """A plain boto3 client against the local endpoint (root's credentials by default)."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def queue_events(sqs: Any, queue_url: str, *, expect: int, attempts: int = 20) -> list[dict[str, Any]]:
    """Drain `expect` EventBridge events from an SQS queue (or whatever arrived after `attempts` polls)."""
    events: list[dict[str, Any]] = []
    for _ in range(attempts):
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(events) >= expect:
            break
    return events


def wait_for_line(lines: list[str], pattern: str, timeout: float = 60.0) -> str:
    """The first group (or the match) of `pattern` in the lines a process printed, waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            match = re.search(pattern, line)
            if match:
                return match.group(1) if match.groups() else match.group(0)
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never appeared in:\n{''.join(lines)[-3000:]}")
