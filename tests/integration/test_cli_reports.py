"""`iamguard audit --format ocsf|html` as a user runs them, and `iamguard serve`'s GET /report over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

from iamguard.api.service import StatusService
from iamguard.audit.run import AuditResult, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.findings import Severity, Status
from iamguard.persistence.findings import FindingsStore
from iamguard.settings.api import ApiSettings
from iamguard_cli.local.api_server import serve_in_thread
from iamguard_cli.local.seed import seed_designed_account
from iamguard_cli.local.server import MotoServer
from iamguard_cli.report import view_from_store

from tests.factories import ACCOUNT as ACCOUNT_ID
from tests.factories import NOW, finding
from tests.integration.test_cli_audit import EXPECTED_EXEMPT, EXPECTED_FAILURES, iamguard
from tests.support.ocsf import ocsf_errors

ACCOUNT = "123456789012"


def test_ocsf_lines_are_valid_compliance_findings_of_the_audit(server_aws: AwsContext, moto_server: MotoServer) -> None:
    # Given the designed account
    seed_designed_account(server_aws.iam())
    # When the audit writes OCSF, twice
    first = iamguard("audit", "--endpoint-url", moto_server.url, "--format", "ocsf")
    second = iamguard("audit", "--endpoint-url", moto_server.url, "--format", "ocsf", "--fail-on", "none")
    assert (first.returncode, second.returncode) == (3, 0), first.stderr
    events = [json.loads(line) for line in first.stdout.splitlines()]
    # Then every line the CLI wrote is an OCSF 1.5.0 Compliance Finding the published schema accepts
    assert events and all(ocsf_errors(event) == [] for event in events)
    assert {(e["metadata"]["version"], e["class_uid"]) for e in events} == {("1.5.0", 2003)}
    failed = {
        (e["finding_info"]["analytic"]["uid"], e["resources"][0]["name"]) for e in events if e["status_code"] == "FAIL"
    }
    assert failed == EXPECTED_FAILURES
    assert {
        (e["finding_info"]["analytic"]["uid"], e["resources"][0]["name"])
        for e in events
        if (e["status_id"], e["compliance"]["status_id"]) == (3, 3)
    } == EXPECTED_EXEMPT
    assert {e["cloud"]["account"]["uid"] for e in events} == {ACCOUNT}
    carol = next(
        e
        for e in events
        if e["finding_info"]["analytic"]["uid"] == "user_admin_access" and e["resources"][0]["name"] == "carol_ops"
    )
    assert carol["resources"][0]["uid"] == f"arn:aws:iam::{ACCOUNT}:user/carol_ops"
    assert carol["resources"][0]["type"] == "AwsIamUser"
    # and each finding keeps its uid from one run to the next
    uids = [e["finding_info"]["uid"] for e in events]
    assert len(set(uids)) == len(uids)
    assert sorted(uids) == sorted(json.loads(line)["finding_info"]["uid"] for line in second.stdout.splitlines())


def test_ocsf_only_failed_to_a_file(server_aws: AwsContext, moto_server: MotoServer, tmp_path: Path) -> None:
    seed_designed_account(server_aws.iam())
    out = tmp_path / "findings.ocsf.jsonl"
    result = iamguard(
        "audit", "--endpoint-url", moto_server.url, "--format", "ocsf", "--only-failed", "--output", str(out)
    )
    assert result.returncode == 3 and result.stdout == ""
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(EXPECTED_FAILURES)
    assert all(ocsf_errors(json.loads(line)) == [] for line in lines)


def test_html_without_a_table_draws_this_run_alone(
    server_aws: AwsContext, moto_server: MotoServer, tmp_path: Path
) -> None:
    seed_designed_account(server_aws.iam())
    out = tmp_path / "report.html"
    result = iamguard("audit", "--endpoint-url", moto_server.url, "--format", "html", "--output", str(out))
    assert result.returncode == 3, result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert page.count('class="point"') == 1 and "this run only" in page
    assert f'data-open="{len(EXPECTED_FAILURES)}"' in page
    assert 'data-status="FAIL">12</span>' in page and 'data-status="EXEMPT">2</span>' in page


def test_trend_days_is_checked_before_the_audit() -> None:
    for bad in ("0", "91", "x", "-1"):
        result = iamguard("audit", "--format", "html", "--trend-days", bad, "--endpoint-url", "http://127.0.0.1:9")
        assert result.returncode == 2 and "--trend-days" in result.stderr, bad


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_serve_report(server_aws: AwsContext, moto_server: MotoServer) -> None:
    # Given two stored audits
    seed_designed_account(server_aws.iam())
    for _ in range(2):
        stored = iamguard(
            "audit", "--endpoint-url", moto_server.url, "--store", "--table", "served", "--fail-on", "none"
        )
        assert stored.returncode == 0, stored.stderr
    server = serve_in_thread(server_aws, "served")
    try:
        # When the report is asked for
        status, headers, page = get(f"{server.url}/report")
        # Then it is the HTML page of the stored findings, with both runs in its trend
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert int(headers["Content-Length"]) == len(page.encode())
        assert page.count('class="point"') == 2 and "2 audit runs of the last 30 days" in page
        assert f'<code id="account-id">{ACCOUNT}</code>' in page
        assert 'data-status="FAIL">12</span>' in page
        # HEAD answers the same headers without a body; a bad window is a 400 in the API's error shape
        head_status, head_headers, body = get(f"{server.url}/report", method="HEAD")
        assert (head_status, body, head_headers["Content-Length"]) == (200, "", headers["Content-Length"])
        for bad in ("0", "91", "abc", "%EF%BC%91"):
            status, headers, text = get(f"{server.url}/report?days={bad}")
            assert status == 400, bad
            assert json.loads(text) == {
                "error": "bad_request",
                "message": "days must be a whole number from 1 to 90",
                "details": [],
            }
        # the API around it is unchanged
        assert get(f"{server.url}/status")[0] == 200
        assert get(f"{server.url}/report", method="POST")[0] in {404, 405}
    finally:
        server.stop()


def test_view_from_store_reads_current_findings_latest_audit_and_trend(store: FindingsStore) -> None:
    # Given an empty table: no audit is no verdict
    service = StatusService(store, ApiSettings())
    empty = view_from_store(service)
    assert (empty.verdict.level, empty.account_id, empty.trend) == ("error", "unknown", [])
    # Given two stored audits, the second after bob's console MFA was fixed and carol was deleted
    first = [
        finding("user_console_mfa", user="bob", at=NOW - timedelta(days=2)),
        finding("user_mfa", user="carol", severity=Severity.LOW, at=NOW - timedelta(days=2)),
    ]
    store_audit(AuditResult(ACCOUNT_ID, NOW - timedelta(days=2), first, {}, 3), store)
    second = [finding("user_console_mfa", user="bob", status=Status.PASS, at=NOW - timedelta(days=1))]
    store_audit(AuditResult(ACCOUNT_ID, NOW - timedelta(days=1), second, {"credential_report": "Throttled"}, 4), store)
    # When the report is built from the table
    view = view_from_store(StatusService(store, ApiSettings(), clock=lambda: NOW), days=7)
    # Then it has the latest audit's account, time and errors, the current findings (not carol's: gone) and both runs
    assert (view.account_id, view.generated_at, view.errors) == (
        ACCOUNT_ID,
        NOW - timedelta(days=1),
        {"credential_report": "Throttled"},
    )
    assert [u.name for u in view.users] == ["bob"]
    assert view.summary["by_status"] == {"PASS": 1, "FAIL": 0, "EXEMPT": 0, "ERROR": 0}
    assert [p.open for p in view.trend] == [2, 0]
    assert view.history == "2 audit runs of the last 7 days, from the findings table"
