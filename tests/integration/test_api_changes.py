"""The status API when things change: new activity, POST /audit, a failing table."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from iamguard.api.service import StatusService
from iamguard.aws import AwsContext
from iamguard.domain.alerts import Action, Alert, Detection
from iamguard.domain.findings import Severity
from iamguard.persistence.findings import FindingsStore
from iamguard.settings.api import ApiSettings
from iamguard_cli.local.api_server import ApiServer, serve_in_thread
from iamguard_cli.local.server import MotoServer

from tests.integration.api_support import audit, call, seed_account

TABLE = "api-findings-changes"


@pytest.fixture
def api(server_aws: AwsContext, moto_server: MotoServer) -> Iterator[ApiServer]:
    seed_account(server_aws)
    audit(moto_server.url, TABLE)
    server = serve_in_thread(server_aws, TABLE)
    yield server
    server.stop()


def test_events_are_the_latest_detections_and_actions(api: ApiServer, server_aws: AwsContext) -> None:
    store = FindingsStore(server_aws.dynamodb(), TABLE)
    now = datetime.now(UTC).replace(microsecond=0)
    alert = Alert(
        detection=Detection.MFA_REMOVED,
        severity=Severity.CRITICAL,
        resource_name="wonjun_admin",
        summary="MFA was removed from admin wonjun_admin.",
        event_id="e-1",
        event_name="DeactivateMFADevice",
        event_time=now,
        account_id="123456789012",
    )
    action = Action(
        action="attach_guardrail_policy",
        user_name="wonjun_admin",
        policy_arn="arn:aws:iam::123456789012:policy/iamguard-mfa-guardrail",
        performed=False,
        reason="console access without MFA (monitor mode)",
        at=now + timedelta(seconds=1),
    )
    assert store.record_activity("detection", alert.event_time, alert.dedup_key, alert.model_dump(mode="json"))
    assert store.record_activity("action", action.at, "a-1", {**action.model_dump(mode="json"), "attempts": 2})

    reply = call(api.url, "/events")
    assert reply.status == 200
    events = reply.body["events"]
    assert [e["kind"] for e in events] == ["action", "detection"]  # newest first
    by_kind = {e["kind"]: e for e in events}
    assert by_kind["detection"]["severity"] == "critical"
    assert by_kind["detection"]["summary"] == "MFA was removed from admin wonjun_admin."
    assert by_kind["detection"]["resource_name"] == "wonjun_admin"
    assert by_kind["detection"]["id"] == alert.dedup_key
    assert by_kind["action"]["data"]["attempts"] == 2  # a DynamoDB number comes back as a JSON number
    assert by_kind["action"]["summary"] == "console access without MFA (monitor mode)"
    times = [e["at"] for e in events]
    assert times == sorted(times, reverse=True)

    only_actions = call(api.url, "/events?kind=action").body["events"]
    assert [e["kind"] for e in only_actions] == ["action"]


def test_trend_shows_open_findings_after_each_audit(server_aws: AwsContext, moto_server: MotoServer) -> None:
    seed_account(server_aws)
    first = audit(moto_server.url, TABLE)
    iam = server_aws.iam()  # a new console user without MFA: the next audit finds more open
    iam.create_user(UserName="frank_new")
    iam.create_login_profile(UserName="frank_new", Password="Initial-Passw0rd!x", PasswordResetRequired=False)
    second = audit(moto_server.url, TABLE)
    server = serve_in_thread(server_aws, TABLE)
    try:
        reply = call(server.url, "/trend?days=1")
    finally:
        server.stop()

    assert reply.status == 200, reply.text
    assert reply.body["days"] == 1 and reply.body["complete"] is True
    points = reply.body["points"]
    assert [p["failed_by_severity"] for p in points] == [
        first["summary"]["failed_by_severity"],
        second["summary"]["failed_by_severity"],
    ]
    assert [p["open"] for p in points] == [
        first["summary"]["by_status"]["FAIL"],
        second["summary"]["by_status"]["FAIL"],
    ]
    assert points[1]["open"] > points[0]["open"] and points[0]["at"] < points[1]["at"]
    assert [p["errors"] for p in points] == [0, 0]


def test_post_audit_starts_an_audit_that_status_then_shows(api: ApiServer, server_aws: AwsContext) -> None:
    before = call(api.url, "/status").body["last_audit"]["started_at"]
    server_aws.iam().create_user(UserName="frank_new")

    reply = call(api.url, "/audit", method="POST")
    assert reply.status == 202
    assert reply.headers["Location"] == "status"  # relative: /audit → /status, /v1/audit → /v1/status
    started = reply.body
    assert re.fullmatch(r"[0-9a-f]{32}", started["run_id"])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        last = call(api.url, "/status").body["last_audit"]
        if last["started_at"] > before and last["started_at"] >= started["requested_at"][:19]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the audit never showed up in GET /status")
    frank = call(api.url, "/users/frank_new")
    assert frank.status == 200
    assert frank.body["status"] == "non_compliant"  # a programmatic user without MFA fails user_mfa


def test_an_unexpected_failure_is_a_plain_500(server_aws: AwsContext, moto_server: MotoServer) -> None:
    # No table at all: DynamoDB fails inside the service.
    service = StatusService(FindingsStore(server_aws.dynamodb(), "missing-table"), ApiSettings())
    with ApiServer(service) as server:
        reply = call(server.url, "/status")
    assert reply.status == 500
    assert reply.body == {"error": "internal_error", "message": "Internal error.", "details": []}
    assert "Traceback" not in reply.text and "missing-table" not in reply.text
