"""The status API over real HTTP: `iamguard serve`'s server, backed by moto, after `iamguard audit --store`.

These tests only read: they share one audited account (module scope). Tests that change
the account or the table are in test_api_changes.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard_cli.local.api_server import ApiServer, serve_in_thread
from iamguard_cli.local.server import MotoServer

from tests.integration.api_support import HIGHEST_SEVERITY, USER_STATUS, audit, call, reset_moto, seed_account

TABLE = "api-findings"


@pytest.fixture(scope="module")
def audited(_moto_server: MotoServer) -> tuple[AwsContext, dict[str, Any]]:
    """The seeded account, audited and stored by the CLI once for this module's read-only tests."""
    reset_moto(_moto_server)
    aws = AwsContext(region="us-east-1", endpoint_url=_moto_server.url, retry_mode="standard", max_attempts=2)
    seed_account(aws)
    return aws, audit(_moto_server.url, TABLE)


@pytest.fixture(scope="module")
def report(audited: tuple[AwsContext, dict[str, Any]]) -> dict[str, Any]:
    return audited[1]


@pytest.fixture(scope="module")
def api(audited: tuple[AwsContext, dict[str, Any]]) -> Iterator[ApiServer]:
    server = serve_in_thread(audited[0], TABLE)
    yield server
    server.stop()


def pages(api: ApiServer, path: str, key: str) -> list[list[dict[str, Any]]]:
    """Follow next_token to the end; every page's items."""
    out: list[list[dict[str, Any]]] = []
    separator = "&" if "?" in path else "?"
    token: str | None = None
    while True:
        reply = call(api.url, path + (f"{separator}next_token={token}" if token else ""))
        assert reply.status == 200, reply.text
        out.append(reply.body[key])
        token = reply.body["next_token"]
        if token is None:
            return out
        assert len(out) < 100, "pagination does not end"


def test_status_is_the_accounts_posture(api: ApiServer, report: dict[str, Any]) -> None:
    reply = call(api.url, "/status")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    status = reply.body
    assert status["verdict"] == "non_compliant"
    assert status["account_id"] == "123456789012"
    assert status["stale"] is False and status["last_audit"]["stale"] is False
    assert status["last_audit"]["errors"] == {}
    assert {c["check_id"]: c["status"] for c in status["root"]} == {
        "root_mfa_enabled": "FAIL",
        "root_hardware_mfa": "FAIL",
        "root_no_access_keys": "PASS",
        "root_not_used_recently": "FAIL",
    }
    assert {c["check_id"]: c["status"] for c in status["account"]} == {
        "password_policy": "FAIL",
        "account_alias_set": "PASS",
    }
    assert status["users"] == {"total": 6, "compliant": 1, "non_compliant": 4, "exempt": 1, "unknown": 0}
    # The same numbers the audit itself reported.
    assert status["failed_by_severity"] == report["summary"]["failed_by_severity"]
    assert status["findings"] == report["summary"]["by_status"]


def test_users_are_paginated_without_gaps_or_repeats(api: ApiServer) -> None:
    all_pages = pages(api, "/users?limit=2", "users")
    assert [len(page) for page in all_pages] == [2, 2, 2]
    users = [user for page in all_pages for user in page]
    assert sorted(u["name"] for u in users) == sorted(USER_STATUS)
    assert {u["name"]: u["status"] for u in users} == USER_STATUS
    assert {u["name"]: u["highest_severity"] for u in users if u["highest_severity"]} == HIGHEST_SEVERITY
    erin = next(u for u in users if u["name"] == "erin_contractor")
    assert erin["exempt_checks"] == ["user_console_mfa", "user_mfa"] and erin["failed_checks"] == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=non_compliant", {"bob_ci", "carol_ops", "dave_new", "wonjun_admin"}),
        ("status=exempt", {"erin_contractor"}),
        ("status=compliant", {"alice"}),
        ("min_severity=critical", {"carol_ops", "wonjun_admin"}),
        ("min_severity=high", {"carol_ops", "dave_new", "wonjun_admin"}),
        ("status=non_compliant&min_severity=high&limit=1", {"carol_ops", "dave_new", "wonjun_admin"}),
    ],
)
def test_users_filters(api: ApiServer, query: str, expected: set[str]) -> None:
    names = [user["name"] for page in pages(api, f"/users?{query}", "users") for user in page]
    assert len(names) == len(set(names))
    assert set(names) == expected


def test_user_detail_lists_every_finding_with_fix_steps(api: ApiServer, report: dict[str, Any]) -> None:
    reply = call(api.url, "/users/wonjun_admin")
    assert reply.status == 200
    user = reply.body
    assert user["status"] == "non_compliant" and user["highest_severity"] == "critical"
    assert user["arn"] == "arn:aws:iam::123456789012:user/wonjun_admin"
    expected = {f["check_id"]: f["status"] for f in report["findings"] if f["resource_name"] == "wonjun_admin"}
    assert {f["check_id"]: f["status"] for f in user["findings"]} == expected
    first = user["findings"][0]
    assert first["check_id"] == "user_admin_without_mfa" and first["status"] == "FAIL"
    assert first["detail"] == "User wonjun_admin has full administrator access but no MFA device."
    assert first["title"] and first["risk"] and first["remediation"]["console"]
    assert "wonjun_admin" in first["remediation"]["cli"]
    statuses = [f["status"] for f in user["findings"]]
    assert statuses == sorted(statuses, key=["FAIL", "ERROR", "EXEMPT", "PASS"].index)  # failures first


def test_findings_filters_and_pages_match_the_audit(api: ApiServer, report: dict[str, Any]) -> None:
    failed = {(f["check_id"], f["resource_name"]) for f in report["findings"] if f["status"] == "FAIL"}
    all_pages = pages(api, "/findings?status=FAIL&limit=4", "findings")
    assert len(all_pages) == -(-len(failed) // 4)
    listed = [(f["check_id"], f["resource_name"]) for page in all_pages for f in page]
    assert sorted(listed) == sorted(failed)

    user_mfa = [f for page in pages(api, "/findings?check_id=user_mfa&limit=2", "findings") for f in page]
    assert len(user_mfa) == len(USER_STATUS)
    assert [f["status"] for f in user_mfa] == sorted(f["status"] for f in user_mfa)  # index order: status, name

    critical = [f for page in pages(api, "/findings?severity=critical&status=FAIL", "findings") for f in page]
    assert {(f["check_id"], f["resource_name"]) for f in critical} == {
        ("root_mfa_enabled", "root"),
        ("user_admin_without_mfa", "carol_ops"),
        ("user_admin_without_mfa", "wonjun_admin"),
    }
    assert all(f["title"] and f["remediation"]["cli"] for f in critical)


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [
        ("/users?limit=0", 400, "query.limit"),
        ("/users?limit=101", 400, "query.limit"),
        ("/users?limit=many", 400, "query.limit"),
        ("/users?status=fine", 400, "query.status"),
        ("/users?min_severity=severe", 400, "query.min_severity"),
        ("/findings?check_id=no_such_check", 400, "query.check_id"),
        ("/findings?status=fail", 400, "query.status"),
        ("/events?days=0", 400, "query.days"),
        ("/trend?days=91", 400, "query.days"),
        ("/trend?days=week", 400, "query.days"),
        ("/users/bad%20name", 400, "path.name"),
    ],
)
def test_bad_queries_are_400_with_the_offending_parameter(
    api: ApiServer, path: str, status: int, location: str
) -> None:
    reply = call(api.url, path)
    assert reply.status == status, reply.text
    assert reply.body["error"] == "bad_request"
    assert [d["location"] for d in reply.body["details"]] == [location]


def test_tokens_are_checked(api: ApiServer) -> None:
    token = call(api.url, "/users?limit=1").body["next_token"]
    assert call(api.url, f"/users?limit=1&next_token={token}").status == 200
    other_filter = call(api.url, f"/users?status=exempt&next_token={token}")
    assert other_filter.status == 400 and "other filters" in other_filter.body["message"]
    assert call(api.url, f"/findings?next_token={token}").status == 400
    for garbage in ("abc", "e30", "eyJrIjp7InBrIjoxfSwicSI6IngifQ"):  # junk, {}, {"k":{"pk":1},"q":"x"}
        reply = call(api.url, f"/users?next_token={garbage}")
        assert reply.status == 400, garbage
        assert reply.body["message"] == "next_token is not a token this API issued"


def test_unknown_user_route_and_method(api: ApiServer) -> None:
    missing = call(api.url, "/users/nobody")
    assert missing.status == 404 and missing.body["error"] == "not_found"
    assert "nobody" in missing.body["message"]
    assert call(api.url, "/nothing-here").status == 404
    wrong_method = call(api.url, "/status", method="DELETE")
    assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "GET"
    assert call(api.url, "/audit").headers["Allow"] == "POST"
    assert call(api.url, "/trend", method="POST").headers["Allow"] == "GET"


def test_concurrent_requests_all_succeed(api: ApiServer) -> None:
    paths = ["/status", "/users", "/users/wonjun_admin", "/findings?limit=5", "/events", "/trend"] * 6
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda p: call(api.url, p), paths))
    assert [r.status for r in replies] == [200] * len(paths)
    assert all(r.body["name"] == "wonjun_admin" for p, r in zip(paths, replies, strict=True) if p.startswith("/users/"))


def test_iamguard_serve_command(api: ApiServer, _moto_server: MotoServer) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iamguard_cli",
            "serve",
            "--port",
            "0",
            "--endpoint-url",
            _moto_server.url,
            "--table",
            TABLE,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        base = match.group(0)
        status = call(base, "/status")
        assert status.status == 200 and status.body["verdict"] == "non_compliant"
        user = call(base, "/users/wonjun_admin")
        assert user.status == 200 and user.body["findings"][0]["check_id"] == "user_admin_without_mfa"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    assert code == 0
