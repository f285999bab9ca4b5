"""Helpers for the status API tests: a seeded, audited account and a tiny HTTP client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from iamguard.aws import AwsContext
from iamguard_cli.local import moto_ext
from iamguard_cli.local.seed import seed_designed_account, seed_walkthrough
from iamguard_cli.local.server import MotoServer


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    text: str


def call(base_url: str, path: str, method: str = "GET") -> Reply:
    request = urllib.request.Request(base_url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    text = raw.decode()
    return Reply(status, headers, json.loads(text) if text else None, text)


def audit(endpoint_url: str, table: str, *extra: str) -> dict[str, Any]:
    """`iamguard audit --store` as a user runs it (with `extra` arguments); returns its JSON report."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "iamguard_cli",
            "audit",
            "--store",
            "--endpoint-url",
            endpoint_url,
            "--table",
            table,
            "--format",
            "json",
            "--fail-on",
            "none",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def reset_moto(server: MotoServer) -> None:
    """An empty account on the shared moto server (what the moto_server fixture does per test)."""
    request = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=120):  # after a big test, on a loaded machine: tens of seconds
        pass
    moto_ext.reset()


def seed_account(aws: AwsContext) -> None:
    """The designed account (one case per check) plus the walkthrough's wonjun_admin."""
    seed_designed_account(aws.iam())
    seed_walkthrough(aws.iam())


# What the API must say about the seeded account.
def seeded_and_audited(server: MotoServer, table: str, *extra: str) -> tuple[AwsContext, dict[str, Any]]:
    """An empty account on `server`, seeded (seed_account) and audited into `table`; the audit's JSON report."""
    reset_moto(server)
    aws = AwsContext(region="us-east-1", endpoint_url=server.url, retry_mode="standard", max_attempts=2)
    seed_account(aws)
    return aws, audit(server.url, table, *extra)


USER_STATUS = {
    "alice": "compliant",
    "bob_ci": "non_compliant",
    "carol_ops": "non_compliant",
    "dave_new": "non_compliant",
    "erin_contractor": "exempt",
    "wonjun_admin": "non_compliant",
}
HIGHEST_SEVERITY = {"bob_ci": "low", "carol_ops": "critical", "dave_new": "high", "wonjun_admin": "critical"}
