"""The status service and the Lambda handler on in-process moto: verdicts, staleness, deleted users, paging."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from iamguard.api.errors import AuditUnavailable, BadRequest, UserNotFound
from iamguard.api.launch import LambdaAuditLauncher
from iamguard.api.models import UserStatus, Verdict
from iamguard.api.service import StatusService
from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.iam.inventory import Inventory
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings
from iamguard.settings.api import ApiSettings
from iamguard_cli.local.seed import seed_walkthrough

from tests.conftest import load_event
from tests.factories import NOW, finding
from tests.support.template import load_handler

ACCOUNT = "123456789012"


def record_audit(store: FindingsStore, findings: list[Finding], at: datetime = NOW) -> None:
    store.record(findings, full_audit_account=ACCOUNT)
    store.record_audit_run(started_at=at, finished_at=at + timedelta(seconds=2), account_id=ACCOUNT,
                           summary={}, errors={}, api_calls=7)  # fmt: skip


def service(store: FindingsStore, now: datetime = NOW + timedelta(minutes=5), **settings: Any) -> StatusService:
    return StatusService(store, ApiSettings(**settings), clock=lambda: now)


def test_no_audit_yet_is_unknown_and_stale(store: FindingsStore) -> None:
    report = service(store).status()
    assert report.verdict is Verdict.UNKNOWN
    assert report.stale is True and report.last_audit is None and report.account_id is None
    assert report.users.total == 0


def test_all_passing_and_fresh_is_compliant_informational_failures_do_not_count(store: FindingsStore) -> None:
    record_audit(store, [
        finding("root_mfa_enabled", user=None, status=Status.PASS),
        finding("account_alias_set", user=None, status=Status.FAIL, severity=Severity.INFORMATIONAL),
        finding("user_mfa", user="ann", status=Status.PASS),
    ])  # fmt: skip
    report = service(store).status()
    assert report.verdict is Verdict.COMPLIANT
    assert report.failed_by_severity.informational == 1
    assert report.users.compliant == 1 and report.users.total == 1
    assert report.last_audit is not None and report.last_audit.age_seconds == 298 and not report.last_audit.stale


def test_an_old_audit_is_stale_and_makes_a_clean_account_unknown(store: FindingsStore) -> None:
    record_audit(
        store,
        [
            finding("root_mfa_enabled", user=None, status=Status.PASS),
            finding("user_mfa", user="ann", status=Status.PASS),
        ],
    )
    later = NOW + timedelta(hours=2, seconds=3)  # > 2 x the 1-hour interval after the audit finished
    report = service(store, now=later, audit_interval=timedelta(hours=1)).status()
    assert report.stale is True and report.verdict is Verdict.UNKNOWN
    assert service(store, now=later, audit_interval=timedelta(hours=2)).status().stale is False


def test_a_failure_is_non_compliant_even_when_stale(store: FindingsStore) -> None:
    record_audit(store, [finding("root_mfa_enabled", user=None, status=Status.FAIL, severity=Severity.CRITICAL)])
    report = service(store, now=NOW + timedelta(days=3)).status()
    assert report.verdict is Verdict.NON_COMPLIANT and report.stale is True
    assert report.failed_by_severity.critical == 1


def test_an_error_finding_makes_the_verdict_unknown(store: FindingsStore) -> None:
    record_audit(
        store,
        [
            finding("user_unused_credentials", user="ann", status=Status.ERROR),
            finding("user_mfa", user="ann", status=Status.PASS),
        ],
    )
    report = service(store).status()
    assert report.verdict is Verdict.UNKNOWN
    assert report.users.unknown == 1
    assert service(store).user("ann").status is UserStatus.UNKNOWN


def test_deleted_users_disappear_from_counts_lists_and_details(store: FindingsStore) -> None:
    record_audit(store, [
        finding("user_mfa", user="gone", status=Status.FAIL),
        finding("user_admin_access", user="gone", status=Status.PASS),
        finding("user_mfa", user="stays", status=Status.PASS),
    ])  # fmt: skip
    later = NOW + timedelta(hours=1)
    record_audit(store, [finding("user_mfa", user="stays", status=Status.PASS, at=later)], at=later)
    svc = service(store, now=later)
    assert [u.name for u in svc.users().users] == ["stays"]
    assert svc.status().users.total == 1
    with pytest.raises(UserNotFound):
        svc.user("gone")


def test_user_pages_cover_many_users_exactly_once(store: FindingsStore) -> None:
    names = [f"user{i:02d}" for i in range(23)]
    findings = []
    for i, name in enumerate(names):
        findings.append(
            finding("user_mfa", user=name, status=Status.FAIL if i % 3 == 0 else Status.PASS, severity=Severity.LOW)
        )
        findings.append(finding("user_console_mfa", user=name, status=Status.PASS))
        findings.append(finding("user_admin_access", user=name, status=Status.FAIL if i % 5 == 0 else Status.PASS))
    record_audit(store, findings)
    svc = service(store)

    def walk(**filters: Any) -> list[list[str]]:
        out, token = [], None
        while True:
            page = svc.users(limit=4, next_token=token, **filters)
            out.append([u.name for u in page.users])
            token = page.next_token
            if token is None:
                return out

    every = walk()
    assert [len(p) for p in every] == [4, 4, 4, 4, 4, 3]
    assert sorted(n for p in every for n in p) == names
    failing = walk(status=UserStatus.NON_COMPLIANT)
    assert sorted(n for p in failing for n in p) == sorted(n for i, n in enumerate(names) if i % 3 == 0 or i % 5 == 0)
    high = walk(min_severity=Severity.HIGH)
    assert sorted(n for p in high for n in p) == [n for i, n in enumerate(names) if i % 5 == 0]


def test_finding_pages_with_a_check_filter_follow_the_index(store: FindingsStore) -> None:
    record_audit(
        store, [finding("user_mfa", user=f"u{i}", status=Status.FAIL if i % 2 else Status.PASS) for i in range(9)]
    )
    svc = service(store)
    seen, token = [], None
    while True:
        page = svc.findings(check_id="user_mfa", limit=2, next_token=token)
        seen.extend((f.status.value, f.resource_name) for f in page.findings)
        token = page.next_token
        if token is None:
            break
    assert seen == sorted(seen)  # gsi1 order: status, then name
    assert len(seen) == 9 == len(set(seen))
    only_failed = svc.findings(check_id="user_mfa", status=Status.FAIL, limit=50)
    assert {f.resource_name for f in only_failed.findings} == {f"u{i}" for i in range(1, 9, 2)}
    assert only_failed.next_token is None


def test_forged_tokens_are_bad_requests(store: FindingsStore) -> None:
    record_audit(store, [finding("user_mfa", user=f"u{i}", status=Status.PASS) for i in range(3)])
    svc = service(store)
    token = svc.findings(check_id="user_mfa", limit=1).next_token
    assert token is not None
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    del data["k"]["gsi1sk"]  # an index query cannot resume from a table key alone
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(BadRequest):
        svc.findings(check_id="user_mfa", limit=1, next_token=forged)


def test_post_audit_without_an_audit_function_is_unavailable(store: FindingsStore) -> None:
    with pytest.raises(AuditUnavailable):
        service(store).start_audit()


def test_lambda_launcher_invokes_the_audit_function_asynchronously(store: FindingsStore, aws: AwsContext) -> None:
    launcher = LambdaAuditLauncher(aws, "iamguard-AuditAccountFunction")
    launcher._client = client = aws.client("lambda")
    with Stubber(client) as stub:
        stub.add_response("invoke", {"StatusCode": 202}, {
            "FunctionName": "iamguard-AuditAccountFunction",
            "InvocationType": "Event",
            "Payload": json.dumps({"source": "iamguard.status_api", "run_id": "r1"}).encode(),
        })  # fmt: skip
        assert launcher.start("r1") == "r1"
        stub.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
        with pytest.raises(AuditUnavailable):
            launcher.start("r2")
        stub.assert_no_pending_responses()


def test_lambda_handler_answers_a_real_api_gateway_event(
    aws: AwsContext, store: FindingsStore, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_walkthrough(aws.iam())
    store_audit(run_audit(Inventory(aws), Settings()), store)
    monkeypatch.setenv("FINDINGS_TABLE", store.table)
    monkeypatch.delenv("AUDIT_FUNCTION_NAME", raising=False)
    handler = load_handler("status_api")

    response = handler.lambda_handler(load_event("status_api_get_user.json"), lambda_context)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["name"] == "wonjun_admin" and body["highest_severity"] == "critical"
    assert body["findings"][0]["remediation"]["cli"]

    post = {**load_event("status_api_get_user.json"), "path": "/audit", "httpMethod": "POST",
            "resource": "/audit", "pathParameters": None}  # fmt: skip
    unavailable = handler.lambda_handler(post, lambda_context)
    assert unavailable["statusCode"] == 503
    assert json.loads(unavailable["body"])["error"] == "audit_unavailable"


def run_summary(**failed: int) -> dict[str, Any]:
    """An audit run's summary as `AuditResult.summary()` stores it."""
    return {"total": 40, "by_status": {"FAIL": sum(failed.values())}, "failed_by_severity": failed, "users": 5}


def test_trend_is_open_findings_after_each_audit_in_the_window_oldest_first(store: FindingsStore) -> None:
    runs = [
        (NOW - timedelta(days=40), {"critical": 9}, {}),  # outside a 30-day window
        (NOW - timedelta(days=2), {"critical": 2, "high": 3}, {"credential_report": "AccessDenied"}),
        (NOW - timedelta(days=1), {"critical": 1, "high": 3, "low": 1}, {}),
        (NOW, {"high": 1}, {}),
    ]
    for at, failed, errors in reversed(runs):  # stored out of order: the table sorts them
        store.record_audit_run(started_at=at, finished_at=at + timedelta(seconds=30), account_id=ACCOUNT,
                               summary=run_summary(**failed), errors=errors, api_calls=9)  # fmt: skip

    trend = service(store).trend(days=30)

    assert trend.days == 30 and trend.complete
    assert [(p.at, p.open, p.errors) for p in trend.points] == [
        (NOW - timedelta(days=2), 5, 1),
        (NOW - timedelta(days=1), 5, 0),
        (NOW, 1, 0),
    ]
    assert trend.points[1].failed_by_severity.model_dump() == {
        "critical": 1, "high": 3, "medium": 0, "low": 1, "informational": 0,
    }  # fmt: skip
    assert [p.open for p in service(store).trend(days=90).points] == [9, 5, 5, 1]
    assert service(store).trend(days=1).points[-1].at == NOW


def test_trend_reads_at_most_its_bound_with_one_query_newest_runs_kept(
    store: FindingsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for hour in range(7):
        at = NOW - timedelta(hours=hour)
        store.record_audit_run(started_at=at, finished_at=at, account_id=ACCOUNT,
                               summary=run_summary(high=hour), errors={}, api_calls=1)  # fmt: skip
    monkeypatch.setattr("iamguard.api.service.TREND_POINTS", 3)
    calls: list[str] = []
    store.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

    trend = service(store).trend(days=7)

    assert [p.open for p in trend.points] == [2, 1, 0]  # the three newest, oldest first
    assert trend.complete is False
    assert calls == ["Query"]  # one request: a page of bound + 1 tells whether more exist


def test_no_audit_yet_is_an_empty_trend(store: FindingsStore) -> None:
    assert service(store).trend(days=7).model_dump() == {"days": 7, "points": [], "complete": True}
