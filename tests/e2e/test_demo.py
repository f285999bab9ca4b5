"""`iamguard demo` end to end: what iamguard said in Slack, what it enforced, and the final /status."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.demo import ADMIN, ALIAS, Demo, DemoResult, message_ids
from iamguard_cli.local.runtime import LocalOptions, LocalRuntime

from tests.integration.local_support import client

pytestmark = pytest.mark.e2e
GUARDRAIL = "arn:aws:iam::123456789012:policy/iamguard-mfa-guardrail"


@pytest.fixture(scope="module")
def enforced() -> Iterator[tuple[LocalRuntime, DemoResult, str]]:
    """The walkthrough in enforce mode, in English, run once for the tests of this module."""
    out = io.StringIO()
    with LocalRuntime(LocalOptions(mode="enforce", run_schedules_on_time=False)) as runtime:
        result = Demo(runtime, out, language="en").run()
        yield runtime, result, out.getvalue()


def test_enforce_mode_attaches_the_guardrail_and_the_account_ends_where_the_walkthrough_says(
    enforced: tuple[LocalRuntime, DemoResult, str],
) -> None:
    runtime, result, _ = enforced
    iam = client("iam", runtime.endpoint_url)
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=ADMIN)["AttachedPolicies"]}
    # the guardrail did its job: wonjun_admin has MFA now, so iamguard took it off again
    assert attached == {"arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/IAMUserChangePassword"}
    # the guardrail was attached, then detached, by the event function's role, and the trail shows both
    calls = [
        (e["detail"]["eventName"], e["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"])
        for e in runtime.trail.recent
        if e["detail"]["eventName"] in {"AttachUserPolicy", "DetachUserPolicy"}
        and e["detail"]["requestParameters"]["policyArn"] == GUARDRAIL
    ]
    assert calls == [
        ("AttachUserPolicy", "iamguard-OnIamEventFunctionRole"),
        ("DetachUserPolicy", "iamguard-OnIamEventFunctionRole"),
    ]
    assert iam.list_account_aliases()["AccountAliases"] == [ALIAS]
    assert len(iam.list_mfa_devices(UserName=ADMIN)["MFADevices"]) == 1

    store = FindingsStore(client("dynamodb", runtime.endpoint_url), runtime.findings_table)
    status = {(f.check_id, f.resource_type, f.resource_name): f.status.value for f in store.findings()}
    assert status[("root_mfa_enabled", "root", "root")] == "PASS"
    assert status[("user_console_mfa", "user", ADMIN)] == "PASS"
    assert status[("user_admin_without_mfa", "user", ADMIN)] == "PASS"
    assert status[("user_admin_access", "user", ADMIN)] == "FAIL"  # still an admin: reported, not undone
    assert status[("account_alias_set", "account", ALIAS)] == "PASS"  # the account goes by its alias now

    # the final /status, fetched over HTTP by the demo
    assert result.status["verdict"] in {"compliant", "non_compliant"}
    root_checks = {c["check_id"]: c["status"] for c in result.status["root"]}
    assert root_checks["root_mfa_enabled"] == "PASS"
    assert root_checks["root_not_used_recently"] == "FAIL"  # root signed in minutes ago
    assert {c["check_id"]: c["status"] for c in result.status["account"]}["account_alias_set"] == "PASS"
    assert result.status["users"]["total"] == 1
    assert result.seconds < 60


def test_every_step_is_told(enforced: tuple[LocalRuntime, DemoResult, str]) -> None:
    _, _, text = enforced
    steps = re.findall(r"^\[(\d)/9\] ", text, flags=re.MULTILINE)
    assert steps == [str(n) for n in range(1, 10)]
    assert "ConsoleLogin as wonjun_admin (MFAUsed=No)" in text
    assert "ConsoleLogin as wonjun_admin (MFAUsed=Yes)" in text
    assert "iamguard attached iamguard-mfa-guardrail to wonjun_admin" in text
    assert "iamguard took iamguard-mfa-guardrail off wonjun_admin again (the user has MFA now)" in text
    assert "enforcement actions: 2" in text
    assert "Demo-Walkthrough-Password-1!" not in text


def test_slack_heard_each_step(enforced: tuple[LocalRuntime, DemoResult, str]) -> None:
    _, result, _ = enforced
    said = {key: step.ids for key, step in result.steps.items()}
    assert "root_mfa_enabled" in said["audit"]
    assert "root_console_sign_in" in said["root_signin"]
    assert "root_not_used_recently" in said["root_signin"]  # root was used: the event says so, at once
    assert "root_mfa_enabled" in said["root_mfa"]  # resolved
    assert {"user_console_mfa", "user_admin_without_mfa", "user_no_direct_policies"} <= said["create_admin"]
    assert "console_sign_in_without_mfa" in said["admin_signin"]
    assert "account_alias_set" in said["alias"]  # resolved
    assert {"user_console_mfa", "user_admin_without_mfa"} <= said["admin_mfa"]  # resolved
    assert "console_sign_in_without_mfa" not in said["admin_signin_mfa"]
    assert result.ok, result.expectations


def test_make_demo_in_korean_exits_0() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "iamguard_cli", "demo", "--language", "ko"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "루트 사용자가 가상 MFA 디바이스를 설정합니다" in demo.stdout
    assert "iamguard가 모든 단계를 알아챘습니다." in demo.stdout
    assert "해결됨" in demo.stdout  # the bot's own words, from its Korean catalog


def test_message_ids_come_from_the_context_line() -> None:
    payload = {
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "x"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "iamguard · account 1 · root_mfa_enabled"}]},
        ]
    }
    assert message_ids(payload) == {"root_mfa_enabled"}
