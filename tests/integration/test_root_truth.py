"""What AWS says about root and about time, where moto says something else.

- GetAccountSummary carries AccountPasswordPresent (moto: absent) and the credential report a
  GeneratedTime up to 4 hours old (moto: a constant of 2015): a botocore Stubber gives the real shapes;
- moto_ext gives moto root state (several devices, FIDO keys, no password) and deletion rules as AWS has them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.account import Credentials
from iamguard.domain.findings import Status, Transition
from iamguard.iam.inventory import Inventory
from iamguard.persistence.findings import FindingsStore
from iamguard.realtime.processor import EventProcessor
from iamguard.settings import Settings
from iamguard_cli.local import moto_ext
from iamguard_cli.local.seed import DEMO_PASSWORD

from tests.conftest import ACCOUNT_ID, load_event

NO_WAIT: dict[str, Any] = {"sleep": lambda _s: None}
GENERATED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


# -- the real shapes, stubbed -------------------------------------------------------------------
def test_the_reports_generated_time_is_the_time_of_its_facts() -> None:
    client = AwsContext().iam()
    stubber = Stubber(client)
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    content = (
        "user,arn,user_creation_time,password_enabled,mfa_active\n"
        f"alice,arn:aws:iam::{ACCOUNT_ID}:user/alice,2026-01-05T10:00:00+00:00,true,false\n"
    )
    stubber.add_response(
        "get_credential_report", {"Content": content.encode(), "ReportFormat": "text/csv", "GeneratedTime": GENERATED}
    )
    with stubber:
        report = Inventory(AwsContext(), iam_client=client, **NO_WAIT).credential_report()
    assert report["alice"].observed_at == GENERATED
    assert report["alice"].principal_created == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("summary", "no_credentials"),
    [
        # A member account after "Delete root user credentials" (centralized root access)
        (
            {
                "AccountMFAEnabled": 0,
                "AccountAccessKeysPresent": 0,
                "AccountPasswordPresent": 0,
                "AccountSigningCertificatesPresent": 0,
            },
            True,
        ),
        ({"AccountMFAEnabled": 0, "AccountAccessKeysPresent": 0, "AccountPasswordPresent": 1}, False),
        ({"AccountMFAEnabled": 0, "AccountAccessKeysPresent": 0}, False),  # no AccountPasswordPresent: unknown
    ],
)
def test_root_credentials_come_from_the_account_summary(summary: dict[str, int], no_credentials: bool) -> None:
    client = AwsContext().iam()
    stubber = Stubber(client)
    stubber.add_response("get_account_summary", {"SummaryMap": summary})
    stubber.add_response("list_virtual_mfa_devices", {"VirtualMFADevices": []})
    with stubber:
        root = Inventory(AwsContext(), iam_client=client).read_root(ACCOUNT_ID)
    assert root.has_no_credentials is no_credentials
    expected = summary.get("AccountPasswordPresent")
    assert root.password_present is (None if expected is None else bool(expected))


# -- moto_ext: root as AWS keeps it ---------------------------------------------------------------
def _root_findings(aws: AwsContext) -> dict[str, tuple[str, str]]:
    result = run_audit(Inventory(aws, **NO_WAIT), Settings())
    return {f.check_id: (f.status.value, f.detail) for f in result.findings if f.resource_type == "root"}


def test_a_member_account_whose_root_has_no_credentials_is_compliant(aws: AwsContext) -> None:
    moto_ext.root(ACCOUNT_ID).password = False
    assert aws.iam().get_account_summary()["SummaryMap"]["AccountPasswordPresent"] == 0
    root = _root_findings(aws)
    assert root["root_mfa_enabled"][0] == "PASS" and "no credentials" in root["root_mfa_enabled"][1]
    assert root["root_hardware_mfa"][0] == "PASS"
    assert root["root_no_access_keys"][0] == "PASS"
    # And a root password recovered later (IAMCreateRootUserPassword) without MFA fails again
    moto_ext.root(ACCOUNT_ID).password = True
    assert _root_findings(aws)["root_mfa_enabled"][0] == "FAIL"


def test_security_keys_and_several_devices_of_root(aws: AwsContext) -> None:
    iam = aws.iam()
    state = moto_ext.root(ACCOUNT_ID)
    state.add_mfa_device("u2f")  # a FIDO security key or passkey: arn:aws:iam::…:u2f/root/…
    assert iam.list_mfa_devices()["MFADevices"][0]["SerialNumber"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:u2f/root/")
    root = _root_findings(aws)
    assert root["root_mfa_enabled"][0] == "PASS"
    assert root["root_hardware_mfa"][0] == "PASS"

    # A virtual device under any name, next to the key: listed with root as its user, and not hardware-only
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="my-phone")["VirtualMFADevice"]
    from iamguard_cli.mfa import authenticator_codes

    seed = device["Base32StringSeed"].decode()
    iam.enable_mfa_device(
        UserName=moto_ext.ROOT_USER_NAME, SerialNumber=device["SerialNumber"], **_codes(authenticator_codes(seed))
    )
    listed = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    assert [(d["SerialNumber"], d["User"]["Arn"]) for d in listed] == [
        (f"arn:aws:iam::{ACCOUNT_ID}:mfa/my-phone", f"arn:aws:iam::{ACCOUNT_ID}:root")
    ]
    root = _root_findings(aws)
    assert root["root_hardware_mfa"] == (
        "FAIL",
        "The root user can sign in with 1 virtual MFA device, not only hardware.",
    )

    # Up to 8 devices in all
    for _ in range(6):
        state.add_mfa_device("hardware")
    with pytest.raises(ValueError, match="8 MFA devices"):
        state.add_mfa_device("hardware")


def _codes(codes: tuple[str, str]) -> dict[str, str]:
    return {"AuthenticationCode1": codes[0], "AuthenticationCode2": codes[1]}


def test_an_assigned_virtual_device_cannot_be_deleted(aws: AwsContext) -> None:
    # AWS: DeleteConflict until the device is deactivated (moto alone would delete it and leave the user's MFA)
    iam = aws.iam()
    iam.create_user(UserName="mina")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="mina")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName="mina", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    with pytest.raises(ClientError) as refused:
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert refused.value.response["Error"]["Code"] == "DeleteConflict"
    iam.deactivate_mfa_device(UserName="mina", SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []


def test_the_local_credential_report_says_when_it_was_made(aws: AwsContext) -> None:
    iam = aws.iam()
    iam.generate_credential_report()
    generated = iam.get_credential_report()["GeneratedTime"]
    assert abs(datetime.now(UTC) - generated) < timedelta(minutes=1)  # moto alone: 2015-02-02


# -- facts carried by an event beat an older report -------------------------------------------------
def _with_report_generated(inventory: Inventory, at: datetime, drop: tuple[str, ...] = ()) -> Inventory:
    """The inventory, as if GetCredentialReport had answered a report generated at `at` (minus `drop`)."""
    real = inventory.credential_report

    def older() -> dict[str, Credentials]:
        return {name: replace(c, observed_at=at) for name, c in real().items() if name not in drop}

    inventory.credential_report = older  # type: ignore[method-assign]
    return inventory


def _root_sign_in_at(aws: AwsContext, store: FindingsStore, at: datetime) -> None:
    event = load_event("console_login_root_no_mfa.json")
    event["detail"]["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    processor = EventProcessor(aws, Settings(), account_id=ACCOUNT_ID, store=store, clock=lambda: at)
    result = processor.process(event)
    usage = [f for f in result.findings if f.check_id == "root_not_used_recently"]
    assert [(f.status, f.transition) for f in usage] == [("FAIL", "opened")]
    assert usage[0].detail.startswith("The root user signed in to the console at ")


def test_an_older_report_never_resolves_what_an_event_opened(aws: AwsContext, store: FindingsStore) -> None:
    now = datetime.now(UTC)
    # Given root signed in ten minutes ago: the event opened root_not_used_recently
    _root_sign_in_at(aws, store, now - timedelta(minutes=10))

    # When the hourly audit reads a credential report generated two hours ago (root's row: not used)
    stale = _with_report_generated(Inventory(aws, **NO_WAIT), now - timedelta(hours=2))
    changes = store_audit(run_audit(stale, Settings()), store)

    # Then the finding stays open: no resolve now, no reopen when the next report arrives
    assert not [c for c in changes if c.finding.check_id == "root_not_used_recently" and not c.recovered]
    (stored,) = [f for f in store.findings() if f.check_id == "root_not_used_recently"]
    assert stored.status is Status.FAIL and "signed in to the console" in stored.detail

    # And a report generated after the sign-in decides again (it is newer than the event)
    fresh = _with_report_generated(Inventory(aws, **NO_WAIT), now - timedelta(minutes=1))
    changes = store_audit(run_audit(fresh, Settings()), store)
    resolved = [c for c in changes if c.finding.check_id == "root_not_used_recently"]
    assert [c.transition for c in resolved] == [Transition.RESOLVED]


def test_a_root_call_on_a_user_also_counts_as_root_use(aws: AwsContext, store: FindingsStore) -> None:
    # Root (no console sign-in event seen) creates an access key for an IAM user
    aws.iam().create_user(UserName="bob_ci")
    event = load_event("create_access_key_root_for_user.json")
    now = datetime.now(UTC)
    event["detail"]["eventTime"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = EventProcessor(aws, Settings(), account_id=ACCOUNT_ID, store=store).process(event)
    usage = [f for f in result.findings if f.check_id == "root_not_used_recently"]
    assert [(f.resource_name, f.status) for f in usage] == [("root", "FAIL")]
    assert "called iam:CreateAccessKey" in usage[0].detail
    # An old event (a replay) says nothing about recent use
    event["detail"]["eventTime"] = "2026-01-01T00:00:00Z"
    event["detail"]["eventID"] = "a-replayed-event"
    replayed = EventProcessor(aws, Settings(), account_id=ACCOUNT_ID, store=store).process(event)
    assert not [f for f in replayed.findings if f.check_id == "root_not_used_recently"]


def test_users_the_report_does_not_describe_yet_are_read_live(aws: AwsContext) -> None:
    iam = aws.iam()
    iam.create_user(UserName="newbie")  # created after the report was generated
    iam.create_login_profile(UserName="newbie", Password=DEMO_PASSWORD)
    iam.create_user(UserName="reborn")  # a deleted user's name, reused after the report
    inventory = _with_report_generated(Inventory(aws, **NO_WAIT), datetime.now(UTC) - timedelta(hours=3), ("newbie",))
    real = inventory.credential_report

    def with_old_reborn_row() -> dict[str, Credentials]:
        report = real()
        old = datetime(2020, 1, 1, tzinfo=UTC)
        report["reborn"] = replace(report["reborn"], principal_created=old, password_enabled=True)
        return report

    inventory.credential_report = with_old_reborn_row  # type: ignore[method-assign]
    before = datetime.now(UTC)
    result = run_audit(inventory, Settings())

    findings = {(f.check_id, f.resource_name): f for f in result.findings}
    newbie = findings[("user_console_mfa", "newbie")]
    assert newbie.status is Status.FAIL  # not ERROR: read live
    assert newbie.observed_at >= before
    reborn = findings[("user_console_mfa", "reborn")]
    assert reborn.status is Status.PASS  # the live read: no password (the old row said there was one)
    assert result.api_calls_by_operation["GetUser"] == 2


def test_a_deleted_users_findings_resolve_even_when_the_report_is_older(store: FindingsStore) -> None:
    from tests.factories import NOW
    from tests.integration.test_store import finding

    # Given bob's findings stored by the last audit, an hour ago
    store.record([finding(user="bob", at=NOW - timedelta(hours=1))], full_audit_account=ACCOUNT_ID)
    # When this audit reads the account at NOW with a report generated three hours ago, and bob is gone
    alice = [
        finding(status=Status.PASS, user="alice", at=NOW - timedelta(hours=3)),  # from the report
        finding(status=Status.PASS, user="alice", check="user_admin_access", at=NOW),  # read live
    ]
    changes = store.record(alice, full_audit_account=ACCOUNT_ID)
    # Then bob's finding resolves now: the audit read the account after it was stored
    gone = [c for c in changes if c.finding.resource_name == "bob"]
    assert [(c.transition, c.finding.observed_at) for c in gone] == [(Transition.RESOLVED, NOW)]
