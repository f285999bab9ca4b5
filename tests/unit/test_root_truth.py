"""Root as AWS has it: centralized root access, several and FIDO devices, and facts as old as their source."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from iamguard.checks import run_checks
from iamguard.domain.account import RootUse, is_virtual_mfa_serial
from iamguard.domain.findings import Finding, Status
from iamguard.iam.inventory import parse_credential_report
from iamguard.settings import Settings

from tests.factories import ACCOUNT, NOW, creds, days_ago, key, root, state, user

SETTINGS = Settings()


def verdict(findings: list[Finding], check_id: str, resource: str = "root") -> Finding:
    (found,) = [f for f in findings if f.check_id == check_id and f.resource_name == resource]
    return found


def run(**fields: object) -> list[Finding]:
    return run_checks(state(**fields), SETTINGS, NOW)  # type: ignore[arg-type]


# -- centralized root access ----------------------------------------------------------------
# GetAccountSummary of a member account whose root credentials were deleted: AccountPasswordPresent,
# AccountAccessKeysPresent, AccountSigningCertificatesPresent and AccountMFAEnabled all 0.
NO_CREDENTIALS = root(
    mfa_enabled=False,
    password_present=False,
    access_keys_present=False,
    signing_certificates_present=False,
    credentials=creds(password=True, mfa=False),  # the report's root row cannot say "no password"
)


def test_a_root_without_any_credential_passes_the_mfa_checks() -> None:
    findings = run(root=NO_CREDENTIALS)
    for check_id in ("root_mfa_enabled", "root_hardware_mfa"):
        finding = verdict(findings, check_id)
        assert finding.status is Status.PASS, check_id
        assert finding.detail.startswith("The root user has no credentials"), check_id
    assert verdict(findings, "root_no_access_keys").status is Status.PASS


@pytest.mark.parametrize(
    "credential",
    [
        {"password_present": True},
        {"password_present": None},  # the summary does not say: root is assumed to have its password
        {"access_keys_present": True},
        {"signing_certificates_present": True},
    ],
)
def test_any_root_credential_without_mfa_still_fails(credential: dict[str, object]) -> None:
    findings = run(root=replace(NO_CREDENTIALS, **credential))  # type: ignore[arg-type]
    assert verdict(findings, "root_mfa_enabled").status is Status.FAIL
    assert verdict(findings, "root_hardware_mfa").status is Status.FAIL


# -- MFA devices: several, FIDO, and the summary over a stale report --------------------------
def test_a_fido_key_or_passkey_is_hardware_mfa() -> None:
    # AccountMFAEnabled=1, and ListVirtualMFADevices lists no device of root: a security key or passkey
    findings = run(root=root(mfa_enabled=True, has_virtual_mfa=False, virtual_mfa_devices=0))
    assert verdict(findings, "root_mfa_enabled").status is Status.PASS
    hardware = verdict(findings, "root_hardware_mfa")
    assert hardware.status is Status.PASS and "FIDO" in hardware.detail


def test_a_virtual_device_next_to_a_security_key_still_fails_hardware_mfa() -> None:
    findings = run(root=root(mfa_enabled=True, has_virtual_mfa=True, virtual_mfa_devices=2))
    hardware = verdict(findings, "root_hardware_mfa")
    assert hardware.status is Status.FAIL
    assert hardware.detail == "The root user can sign in with 2 virtual MFA devices, not only hardware."


def test_roots_mfa_and_keys_come_from_the_live_summary_not_an_older_report() -> None:
    # The report (hours old) still says MFA and an active key; the summary says both are gone.
    stale = creds(password=True, mfa=True, keys=(key(),))
    findings = run(root=root(mfa_enabled=False, access_keys_present=False, credentials=stale))
    assert verdict(findings, "root_mfa_enabled").status is Status.FAIL
    assert verdict(findings, "root_no_access_keys").status is Status.PASS


@pytest.mark.parametrize(
    ("serial", "virtual"),
    [
        (f"arn:aws:iam::{ACCOUNT}:mfa/my-phone", True),
        (f"arn:aws:iam::{ACCOUNT}:u2f/root/key-R1234", False),
        (f"arn:aws:iam::{ACCOUNT}:u2f/user/alice/fidokeyname-EXAMPLE", False),
        ("GAHT12345678", False),
    ],
)
def test_device_kinds_by_serial_number(serial: str, virtual: bool) -> None:
    assert is_virtual_mfa_serial(serial) is virtual


# -- root usage -------------------------------------------------------------------------------
def test_an_events_root_use_fails_whatever_the_report_says() -> None:
    # The report says root was not used for a month; the event says root signed in an hour ago
    used = RootUse(NOW - timedelta(hours=1), "signed in to the console")
    findings = run(root=root(used=used))
    finding = verdict(findings, "root_not_used_recently")
    assert finding.status is Status.FAIL
    assert finding.detail == "The root user signed in to the console at 2026-06-01 11:00 UTC, within the last 1 day."


def test_without_a_root_row_root_usage_is_an_error_not_a_failure() -> None:
    # An emulator whose credential report was read but has no <root_account> row
    finding = verdict(run(root=root(credentials=None)), "root_not_used_recently")
    assert finding.status is Status.ERROR
    assert "no root row" in finding.detail


# -- observation time -------------------------------------------------------------------------
REPORT = (
    "user,arn,user_creation_time,password_enabled,password_last_used,mfa_active,access_key_1_active\n"
    f"<root_account>,arn:aws:iam::{ACCOUNT}:root,2020-01-01T00:00:00+00:00,not_supported,"
    "2026-05-01T00:00:00+00:00,true,false\n"
    f"alice,arn:aws:iam::{ACCOUNT}:user/alice,2026-05-02T00:00:00+00:00,true,N/A,false,false\n"
)


def test_report_facts_carry_the_reports_generated_time() -> None:
    generated = NOW - timedelta(hours=3)
    report = parse_credential_report(REPORT, generated)
    assert {name: c.observed_at for name, c in report.items()} == {"<root_account>": generated, "alice": generated}
    assert report["alice"].principal_created == days_ago(30).replace(hour=0)


def test_verdicts_from_the_report_are_as_old_as_the_report() -> None:
    # Given a report generated three hours before the audit read the account
    generated = NOW - timedelta(hours=3)
    report = parse_credential_report(REPORT, generated)
    alice = user("alice", credentials=report["alice"])
    findings = run_checks(state(alice, root=root(credentials=report["<root_account>"])), SETTINGS, NOW)
    # Then checks that read it are observed when it was generated, the others when the account was read
    assert verdict(findings, "user_console_mfa", "alice").observed_at == generated
    assert verdict(findings, "root_not_used_recently").observed_at == generated
    assert verdict(findings, "user_admin_access", "alice").observed_at == NOW
    assert verdict(findings, "root_mfa_enabled").observed_at == NOW  # GetAccountSummary, read live
    # And a report stamped later than the read (clocks) is never newer than the read itself
    ahead = parse_credential_report(REPORT, NOW + timedelta(minutes=2))
    later = run_checks(state(user("alice", credentials=ahead["alice"])), SETTINGS, NOW)
    assert verdict(later, "user_console_mfa", "alice").observed_at == NOW


# -- sts:AssumeRoot ---------------------------------------------------------------------------
def _assume_root(**request: object) -> list[object]:
    from iamguard.realtime.cloudtrail import parse_event
    from iamguard.realtime.detections import Observed, root_session_assumed

    from tests.conftest import load_event

    raw = load_event("assume_root.json")
    raw["detail"]["requestParameters"] = {**raw["detail"]["requestParameters"], **request}
    return root_session_assumed(parse_event(raw), Observed(), SETTINGS)  # type: ignore[return-value]


def test_assume_root_names_the_member_account_the_task_and_never_the_session_token() -> None:
    (alert,) = _assume_root()
    assert alert.resource_arn == "arn:aws:iam::111122223333:root"  # type: ignore[attr-defined]
    assert alert.extra == {  # type: ignore[attr-defined]
        "target_account": "111122223333",
        "task_policy_arn": "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials",
    }
    assert "EXAMPLE-SESSION-TOKEN" not in alert.model_dump_json()  # type: ignore[attr-defined]


def test_a_hostile_assume_root_costs_no_more_than_a_bounded_alert() -> None:
    (alert,) = _assume_root(taskPolicyArn={"arn": "arn:aws:iam::aws:policy/root-task/" + "A" * 100_000})
    assert len(alert.summary) < 400  # type: ignore[attr-defined]
    assert _assume_root(targetPrincipal="not-an-account") == []
