"""GET /compliance/{framework} over real HTTP, from what `iamguard audit --store` stored; and the same from the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from iamguard.api.service import StatusService
from iamguard.aws import AwsContext
from iamguard.domain.findings import Finding, Status
from iamguard.persistence.findings import FindingsStore
from iamguard.settings.api import ApiSettings
from iamguard_cli.local.api_server import ApiServer, serve_in_thread
from iamguard_cli.local.bootstrap import ensure_findings_table
from iamguard_cli.local.server import MotoServer

from tests.factories import ACCOUNT, NOW, finding
from tests.integration.api_support import call, seeded_and_audited

TABLE = "api-compliance-findings"
ROOT_CHECKS = ("root_mfa_enabled", "root_hardware_mfa", "root_no_access_keys", "root_not_used_recently")


@pytest.fixture(scope="module")
def audited(_moto_server: MotoServer) -> tuple[AwsContext, dict[str, Any]]:
    """The seeded account, audited and stored once; the CLI's own CIS v5.0 view of that audit."""
    return seeded_and_audited(_moto_server, TABLE, "--compliance", "cis-5.0")


@pytest.fixture(scope="module")
def api(audited: tuple[AwsContext, dict[str, Any]]) -> Iterator[ApiServer]:
    server = serve_in_thread(audited[0], TABLE)
    yield server
    server.stop()


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {control["id"]: control["status"] for control in report["controls"]}


def test_the_api_answers_what_the_cli_printed(api: ApiServer, audited: tuple[AwsContext, dict[str, Any]]) -> None:
    printed = audited[1]
    reply = call(api.url, "/compliance/cis-5.0")
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == printed
    assert reply.body["framework"]["id"] == "cis-5.0" and reply.body["framework"]["version"] == "5.0.0"
    assert reply.body["accounts"] == ["123456789012"]
    assert statuses(reply.body) == {
        **{cid: "MANUAL" for cid in ("1.1", "1.2", "1.10", "1.16", "1.17", "1.18", "1.19", "1.20", "1.21")},
        "1.3": "PASS",  # no root access key
        "1.4": "FAIL",  # root MFA
        "1.5": "FAIL",  # root hardware MFA
        "1.6": "FAIL",  # root used within the day (the walkthrough signs in as root)
        "1.7": "FAIL",  # minimum length 8
        "1.8": "FAIL",  # no reuse prevention
        "1.9": "FAIL",  # dave_new and wonjun_admin sign in without MFA
        "1.11": "PASS",
        "1.12": "FAIL",  # bob_ci has two active keys
        "1.13": "PASS",
        "1.14": "FAIL",  # dave_new has ReadOnlyAccess attached directly
        "1.15": "FAIL",  # carol_ops (and wonjun_admin) are administrators
    }
    totals = reply.body["totals"]
    assert (totals["controls"], totals["passed"], totals["failed"], totals["manual"]) == (21, 3, 9, 9)
    one_key = next(c for c in reply.body["controls"] if c["id"] == "1.12")
    assert [(r["resource_name"], r["check_id"], r["status"]) for r in one_key["resources"]] == [
        ("bob_ci", "user_single_active_key", "FAIL")
    ]
    assert one_key["resources"][0]["resource_arn"] == "arn:aws:iam::123456789012:user/bob_ci"


def test_isms_p_keeps_korean_titles_and_follows_the_language_for_notes(api: ApiServer) -> None:
    english = call(api.url, "/compliance/isms-p").body
    korean = call(api.url, "/compliance/isms-p?language=ko").body
    assert [c["title"] for c in english["controls"]] == [c["title"] for c in korean["controls"]]
    assert english["controls"][0]["title"] == "사용자 계정 관리"
    assert english["controls"][0]["title_en"] == "User Account Management"
    assert english["controls"][0]["note"].startswith("iamguard checks the technical settings")
    assert korean["controls"][0]["note"].startswith("iamguard는 IAM 사용자와 루트의 기술적 설정만")
    assert statuses(korean) == {
        "2.5.1": "FAIL",
        "2.5.2": "MANUAL",
        "2.5.3": "FAIL",
        "2.5.4": "FAIL",
        "2.5.5": "FAIL",
        "2.5.6": "PASS",
    }


def test_unknown_frameworks_and_wrong_methods_are_refused(api: ApiServer) -> None:
    unknown = call(api.url, "/compliance/cis-9.9")
    assert unknown.status == 404
    assert unknown.body["error"] == "not_found"
    assert "cis-3.0, cis-5.0, cis-7.0, fsbp, isms-p" in unknown.body["message"]
    bad = call(api.url, "/compliance/CIS_5")
    assert bad.status == 400 and bad.body["details"][0]["location"] == "path.framework"
    assert call(api.url, "/compliance/fsbp?language=fr").status == 400
    posted = call(api.url, "/compliance/fsbp", method="POST")
    assert posted.status == 405 and posted.headers["Allow"] == "GET"


def test_before_any_audit_every_covered_control_has_no_data(_moto_server: MotoServer) -> None:
    aws = AwsContext(region="us-east-1", endpoint_url=_moto_server.url, retry_mode="standard", max_attempts=2)
    ensure_findings_table(FindingsStore(aws.dynamodb(), "api-compliance-empty"))
    server = serve_in_thread(aws, "api-compliance-empty")
    try:
        reply = call(server.url, "/compliance/fsbp")
    finally:
        server.stop()
    assert reply.status == 200
    assert set(statuses(reply.body).values()) == {"NO_DATA", "MANUAL"}
    assert reply.body["accounts"] == [] and reply.body["totals"]["no_data"] == 8


def test_deleted_users_leave_the_view_and_user_passes_are_counted_not_read(store: FindingsStore) -> None:
    def audit_of(*users: str, at: datetime) -> list[Finding]:
        root = [finding(check, user=None, status=Status.PASS, at=at) for check in ROOT_CHECKS]
        bob = [finding("user_console_mfa", user="bob", at=at, detail="User bob has a console password but no MFA.")]
        alice = [finding("user_console_mfa", user="alice", status=Status.PASS, at=at)]
        return root + (bob if "bob" in users else []) + (alice if "alice" in users else [])

    store.record(audit_of("alice", "bob", at=NOW), full_audit_account=ACCOUNT)
    before = StatusService(store, ApiSettings()).compliance("cis-5.0")
    console = next(c for c in before.controls if c.id == "1.9")
    assert (console.status, console.passed, [r.resource_name for r in console.resources]) == ("FAIL", 1, ["bob"])

    store.record(audit_of("alice", at=NOW + timedelta(hours=1)), full_audit_account=ACCOUNT)  # bob was deleted
    after = StatusService(store, ApiSettings()).compliance("cis-5.0")
    console = next(c for c in after.controls if c.id == "1.9")
    assert (console.status, console.passed, console.resources) == ("PASS", 1, ())
    assert store.count_findings("user_console_mfa", Status.PASS) == 1  # bob's resolved finding is not a pass
    assert {c.id: c.status for c in after.controls}["1.4"] == "PASS"  # root: read, not counted
