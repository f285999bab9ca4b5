"""Every row of DESIGN.md's detection table, positive and negative, through the real handlers on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard_cli.local import moto_ext

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import (
    ADMINISTRATOR,
    CHANGE_PASSWORD,
    IDEMPOTENCY_TABLE,
    READ_ONLY,
    BotFactory,
    detections,
    sample,
)


# ---------------------------------------------------------------- user_created
def test_user_created_is_high_when_the_new_user_already_fails_a_serious_check(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given wonjun_admin: AdministratorAccess, console password, no MFA
    bot = make_bot()

    # When the CreateUser event arrives
    result = bot(sample("create_user"))

    # Then it is evaluated, announced as high, with the failing checks named
    assert result["outcome"] == "evaluated"
    assert detections(result) == [("user_created", "high", "wonjun_admin")]
    summary = result["alerts"][0]["summary"]
    assert "created user wonjun_admin" in summary and "user_admin_without_mfa (critical)" in summary
    failing = {f["check_id"] for f in result["findings"] if f["status"] == "FAIL"}
    assert {"user_admin_without_mfa", "user_console_mfa", "user_admin_access"} <= failing


def test_user_created_is_informational_for_a_user_without_serious_failures(
    account: AwsContext, make_bot: BotFactory
) -> None:
    account.iam().create_user(UserName="plain")
    result = make_bot()(sample("create_user", new_id=True, requestParameters={"userName": "plain"}))
    assert detections(result) == [("user_created", "informational", "plain")]
    assert "user_mfa (low)" in result["alerts"][0]["summary"]


def test_a_user_deleted_before_iamguard_looked_is_ignored_with_the_reason(
    account: AwsContext, make_bot: BotFactory
) -> None:
    result = make_bot()(sample("create_user", new_id=True, requestParameters={"userName": "gone_already"}))
    assert result["outcome"] == "ignored"
    assert "gone_already no longer exists" in result["reason"]
    assert result["alerts"] == [] and result["findings"] == []


# ---------------------------------------------------------------- console_access_granted
def test_console_password_given_by_someone_else_without_forced_reset_alerts(
    account: AwsContext, make_bot: BotFactory
) -> None:
    result = make_bot()(sample("create_login_profile"))
    assert detections(result) == [("console_access_granted", "medium", "alice")]
    assert result["alerts"][0]["summary"].startswith("Root gave alice a console password")


@pytest.mark.parametrize(
    ("event_name", "identity", "reset"),
    [
        ("CreateLoginProfile", None, True),  # forced reset at next sign-in
        ("UpdateLoginProfile", "alice", False),  # the user changing its own password
    ],
)
def test_console_access_without_the_risk_does_not_alert(
    account: AwsContext, make_bot: BotFactory, event_name: str, identity: str | None, reset: bool
) -> None:
    event = sample(
        "create_login_profile",
        new_id=True,
        eventName=event_name,
        requestParameters={"userName": "alice", "passwordResetRequired": reset},
    )
    if identity:
        event["detail"]["userIdentity"] = {
            "type": "IAMUser",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/{identity}",
            "accountId": ACCOUNT_ID,
            "userName": identity,
        }
    result = make_bot()(event)
    assert result["outcome"] == "evaluated"
    assert result["alerts"] == []


# ---------------------------------------------------------------- admin_access_granted
def test_attaching_administrator_access_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("attach_user_policy_admin"))
    assert detections(result) == [("admin_access_granted", "high", "wonjun_admin")]
    assert "AdministratorAccess (attached directly)" in result["alerts"][0]["summary"]
    assert "no MFA device" in result["alerts"][0]["summary"]


def test_joining_an_admin_group_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("add_user_to_group_admin"))
    assert detections(result) == [("admin_access_granted", "high", "carol_ops")]
    assert "inline policy everything of group ops" in result["alerts"][0]["summary"]


def test_admin_attached_to_a_group_alerts_for_each_member(account: AwsContext, make_bot: BotFactory) -> None:
    account.iam().attach_group_policy(GroupName="developers", PolicyArn=ADMINISTRATOR)
    event = sample(
        "attach_user_policy_admin",
        new_id=True,
        eventName="AttachGroupPolicy",
        requestParameters={"groupName": "developers", "policyArn": ADMINISTRATOR},
    )
    result = make_bot()(event)
    assert sorted(resource for _, _, resource in detections(result)) == [
        "alice",
        "bob_ci",
        "erin_contractor",
        "mina_dev",
    ]
    assert {detection for detection, _, _ in detections(result)} == {"admin_access_granted"}


@pytest.mark.parametrize(
    ("policy", "detach_first"),
    [(READ_ONLY, False), (ADMINISTRATOR, True)],
    ids=["not-an-admin-policy", "admin-policy-already-detached"],
)
def test_no_admin_alert_when_the_grant_is_not_admin_or_no_longer_there(
    account: AwsContext, make_bot: BotFactory, policy: str, detach_first: bool
) -> None:
    if detach_first:
        account.iam().detach_user_policy(UserName="wonjun_admin", PolicyArn=ADMINISTRATOR)
    event = sample(
        "attach_user_policy_admin",
        new_id=True,
        requestParameters={"userName": "wonjun_admin", "policyArn": policy},
    )
    result = make_bot()(event)
    assert result["outcome"] == "evaluated"
    assert result["alerts"] == []


# ---------------------------------------------------------------- required_policy_removed
def test_detaching_a_required_policy_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot(REQUIRED_POLICY_ARNS=CHANGE_PASSWORD)(sample("detach_user_policy_required"))
    assert detections(result) == [("required_policy_removed", "high", "dave_new")]
    assert "IAMUserChangePassword" in result["alerts"][0]["summary"]


def test_leaving_the_group_that_carried_a_required_policy_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    account.iam().remove_user_from_group(GroupName="developers", UserName="alice")
    event = sample(
        "detach_user_policy_required",
        new_id=True,
        eventName="RemoveUserFromGroup",
        requestParameters={"groupName": "developers", "userName": "alice"},
    )
    result = make_bot(REQUIRED_POLICY_ARNS=CHANGE_PASSWORD)(event)
    assert detections(result) == [("required_policy_removed", "high", "alice")]


@pytest.mark.parametrize(
    ("user", "required"),
    [("bob_ci", CHANGE_PASSWORD), ("dave_new", "")],
    ids=["still-has-it-through-a-group", "nothing-is-required"],
)
def test_no_required_policy_alert_when_still_covered_or_not_required(
    account: AwsContext, make_bot: BotFactory, user: str, required: str
) -> None:
    event = sample(
        "detach_user_policy_required",
        new_id=True,
        requestParameters={"userName": user, "policyArn": CHANGE_PASSWORD},
    )
    result = make_bot(REQUIRED_POLICY_ARNS=required)(event)
    assert result["outcome"] == "evaluated"
    assert result["alerts"] == []


# ---------------------------------------------------------------- mfa_removed
def test_deactivating_the_last_mfa_device_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("deactivate_mfa_device"))
    assert detections(result) == [("mfa_removed", "high", "mina_dev")]


def test_an_admin_losing_mfa_is_critical(account: AwsContext, make_bot: BotFactory) -> None:
    event = sample(
        "deactivate_mfa_device",
        new_id=True,
        requestParameters={"userName": "wonjun_admin", "serialNumber": f"arn:aws:iam::{ACCOUNT_ID}:mfa/wonjun_admin"},
    )
    assert detections(make_bot()(event)) == [("mfa_removed", "critical", "wonjun_admin")]


def test_root_losing_mfa_is_critical(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("deactivate_mfa_device_root"))
    assert detections(result) == [("mfa_removed", "critical", "root")]
    assert {f["check_id"] for f in result["findings"]} == {
        "root_mfa_enabled",
        "root_hardware_mfa",
        "root_no_access_keys",
    }


def test_removing_one_of_several_devices_is_not_losing_mfa(account: AwsContext, make_bot: BotFactory) -> None:
    # alice still has her enabled device
    event = sample(
        "deactivate_mfa_device",
        new_id=True,
        requestParameters={"userName": "alice", "serialNumber": f"arn:aws:iam::{ACCOUNT_ID}:mfa/alice-old-phone"},
    )
    result = make_bot()(event)
    assert result["outcome"] == "evaluated"
    assert result["alerts"] == []


def test_a_deleted_device_is_judged_by_its_owner_never_by_its_name(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot()
    iam = account.iam()
    # Given alice evaluated with MFA, then her device deactivated and deleted in IAM (AWS allows no other order)
    assert bot(sample("enable_mfa_device"))["alerts"] == []
    serial = f"arn:aws:iam::{ACCOUNT_ID}:mfa/alice"
    iam.deactivate_mfa_device(UserName="alice", SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    delete = sample(
        "deactivate_mfa_device",
        new_id=True,
        eventName="DeleteVirtualMFADevice",
        requestParameters={"serialNumber": serial},
    )

    # When only the deletion arrives: the device is nobody's any more, and its name proves nothing
    result = bot(delete)

    # Then no user is guessed from the name (the deactivation, or the next audit, tells alice's loss)
    assert result["outcome"] == "ignored" and result["alerts"] == []
    assert "names no IAM user, group or root" in result["reason"]
    assert not [f for f in bot.store.findings() if f.resource_name == "alice" and f.status.value == "FAIL"]


def test_root_removing_its_custom_named_device_is_critical(account: AwsContext, make_bot: BotFactory) -> None:
    # Given root's one MFA device, a virtual device root named "my-phone", and iamguard's stored PASS
    iam = account.iam()
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="my-phone")["VirtualMFADevice"]["SerialNumber"]
    moto_ext.enable_root_mfa(_iam_backend(), serial)
    bot = make_bot()
    assert detections(bot(sample("console_login_root_mfa", new_id=True))) == [("root_console_sign_in", "high", "root")]
    # When root deactivates it (no userName: root's own call) and deletes it
    moto_ext.deactivate_root_mfa(_iam_backend(), serial)
    deactivated = bot(sample("deactivate_mfa_device_root_custom_name"))
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    deleted = bot(
        sample(
            "deactivate_mfa_device_root_custom_name",
            new_id=True,
            eventName="DeleteVirtualMFADevice",
        )
    )
    # Then root (not a user called my-phone) lost MFA: critical, once
    assert detections(deactivated) == [("mfa_removed", "critical", "root")]
    assert "arn:aws:iam::123456789012:mfa/my-phone" in deactivated["alerts"][0]["summary"]
    assert deleted["outcome"] == "evaluated" and deleted["alerts"] == []


def test_root_keeping_another_device_has_not_lost_mfa(account: AwsContext, make_bot: BotFactory) -> None:
    # Root has a FIDO security key and a virtual device; removing the virtual one leaves the key
    state = moto_ext.root(ACCOUNT_ID)
    state.add_mfa_device("u2f")
    state.add_mfa_device("virtual", f"arn:aws:iam::{ACCOUNT_ID}:mfa/my-phone")
    bot = make_bot()
    bot(sample("console_login_root_mfa", new_id=True))
    state.mfa_devices = state.mfa_devices[:1]
    result = bot(sample("deactivate_mfa_device_root_custom_name", new_id=True))
    assert result["alerts"] == []
    statuses = {f["check_id"]: f["status"] for f in result["findings"]}
    assert statuses["root_mfa_enabled"] == "PASS" and statuses["root_hardware_mfa"] == "PASS"


def _iam_backend() -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["aws"]


# ---------------------------------------------------------------- root_access_key_created
def test_root_creating_its_own_access_key_is_critical(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("create_access_key_root"))
    assert detections(result) == [("root_access_key_created", "critical", "root")]
    assert "AKIAROOTKEYEXAMPLE01" in result["alerts"][0]["summary"]


def test_root_creating_a_key_for_a_user_is_not_that_alert(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("create_access_key_root_for_user"))
    assert result["outcome"] == "evaluated"
    assert result["alerts"] == []
    assert {f["resource_name"] for f in result["findings"]} == {"bob_ci"}


def test_an_iam_user_creating_its_own_key_is_not_that_alert(account: AwsContext, make_bot: BotFactory) -> None:
    event = sample("create_access_key_root", new_id=True)
    event["detail"]["userIdentity"] = {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/bob_ci",
        "accountId": ACCOUNT_ID,
        "userName": "bob_ci",
    }
    result = make_bot()(event)
    assert result["alerts"] == []
    assert {f["resource_name"] for f in result["findings"]} == {"bob_ci"}


# ---------------------------------------------------------------- password_policy_weakened
def test_a_password_policy_below_the_baseline_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(sample("update_account_password_policy"))
    assert detections(result) == [("password_policy_weakened", "medium", ACCOUNT_ID)]
    assert "minimum length is 8, needs at least 14" in result["alerts"][0]["summary"]
    assert [f["check_id"] for f in result["findings"]] == ["password_policy"]


def test_deleting_the_password_policy_alerts(account: AwsContext, make_bot: BotFactory) -> None:
    account.iam().delete_account_password_policy()
    result = make_bot()(sample("delete_account_password_policy"))
    assert detections(result) == [("password_policy_weakened", "medium", ACCOUNT_ID)]
    assert "deleted the account password policy" in result["alerts"][0]["summary"]


def test_a_strong_password_policy_does_not_alert(account: AwsContext, make_bot: BotFactory) -> None:
    account.iam().update_account_password_policy(
        MinimumPasswordLength=16, PasswordReusePrevention=24, AllowUsersToChangePassword=True
    )
    result = make_bot()(sample("update_account_password_policy", new_id=True))
    assert result["alerts"] == []
    assert [(f["check_id"], f["status"]) for f in result["findings"]] == [("password_policy", "PASS")]


# ---------------------------------------------------------------- root_console_sign_in
@pytest.mark.parametrize(
    ("name", "severity"),
    [("console_login_root_no_mfa", "critical"), ("console_login_root_mfa", "high")],
)
def test_root_sign_in_alerts_critical_without_mfa(
    account: AwsContext, make_bot: BotFactory, name: str, severity: str
) -> None:
    result = make_bot()(sample(name))
    assert detections(result) == [("root_console_sign_in", severity, "root")]


def test_a_failed_root_sign_in_is_not_a_root_sign_in(account: AwsContext, make_bot: BotFactory) -> None:
    event = sample("console_login_root_no_mfa", new_id=True, responseElements={"ConsoleLogin": "Failure"})
    result = make_bot()(event)
    assert "root_console_sign_in" not in {a["detection"] for a in result["alerts"]}


def test_a_root_sign_in_fails_root_usage_at_once(account: AwsContext, make_bot: BotFactory) -> None:
    # Given root signing in now (the credential report, hours old, would still say "not used")
    now = datetime.now(UTC)
    event = sample("console_login_root_no_mfa", new_id=True, eventTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = make_bot()(event)
    # Then root_not_used_recently fails on the event's own fact, without reading the report
    usage = [f for f in result["findings"] if f["check_id"] == "root_not_used_recently"]
    assert [(f["status"], f["transition"]) for f in usage] == [("FAIL", "opened")]
    assert usage[0]["detail"].startswith(f"The root user signed in to the console at {now:%Y-%m-%d %H:%M} UTC")
    assert result["api_calls"] == 2  # GetAccountSummary, ListVirtualMFADevices: no credential report


# ---------------------------------------------------------------- root_session_assumed
def test_assume_root_raises_root_session_assumed(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot()
    result = bot(sample("assume_root"))
    assert detections(result) == [("root_session_assumed", "high", "111122223333")]
    summary = result["alerts"][0]["summary"]
    assert "IAMDeleteRootUserCredentials" in summary and "Role OrgRootAccessAdmin" in summary
    assert result["findings"] == [] and result["api_calls"] == 0  # nothing of this account to re-read
    assert "EXAMPLE-SESSION-TOKEN" not in str(bot.announcer.calls)
    assert [a["data"]["detection"] for a in bot.activity("alert")] == ["root_session_assumed"]
    # CloudTrail may file an STS session as read-only: it is still a root session
    read_only = bot(sample("assume_root", new_id=True, readOnly=True))
    assert detections(read_only) == [("root_session_assumed", "high", "111122223333")]
    # A failed AssumeRoot opened no session
    failed = bot(sample("assume_root", new_id=True, errorCode="AccessDenied"))
    assert failed["outcome"] == "ignored" and failed["alerts"] == []


# ---------------------------------------------------------------- console_sign_in_without_mfa
def test_an_iam_user_signing_in_without_mfa_alerts_from_any_region(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot()
    result = bot(sample("console_login_user_no_mfa"))
    assert detections(result) == [("console_sign_in_without_mfa", "high", "wonjun_admin")]
    assert "(eu-north-1)" in result["alerts"][0]["summary"]
    # Kept for the status API, and announced
    stored = bot.activity("alert")
    assert [(item["data"]["detection"], item["data"]["region"]) for item in stored] == [
        ("console_sign_in_without_mfa", "eu-north-1")
    ]
    assert [alert.detection.value for alert in bot.announcer.alerts] == ["console_sign_in_without_mfa"]


@pytest.mark.parametrize(
    ("name", "outcome"),
    [("console_login_user_mfa", "evaluated"), ("console_login_sso", "ignored")],
    ids=["with-mfa", "sso-session"],
)
def test_sign_ins_with_mfa_or_through_federation_do_not_alert(
    account: AwsContext, make_bot: BotFactory, name: str, outcome: str
) -> None:
    result = make_bot()(sample(name))
    assert result["outcome"] == outcome
    assert result["alerts"] == []


def test_mfa_used_is_read_in_any_case(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot()
    for value, expected in (("YES", []), ("yes", []), ("No", ["console_sign_in_without_mfa"])):
        event = sample("console_login_user_no_mfa", new_id=True)
        event["detail"]["additionalEventData"]["MFAUsed"] = value
        assert [a["detection"] for a in bot(event)["alerts"]] == expected, value


# ---------------------------------------------------------------- console_sign_in_failures
def failure(user: str | None = "dave_new", *, at: str) -> dict[str, object]:
    event = sample("console_login_failure", new_id=True, eventTime=at)
    if user is None:
        event = sample("console_login_failure_hidden_user", new_id=True, eventTime=at)
    elif user == "root":
        event["detail"]["userIdentity"] = {"type": "Root", "principalId": ACCOUNT_ID, "accountId": ACCOUNT_ID}
    else:
        event["detail"]["userIdentity"]["userName"] = user
    return event


def test_a_burst_of_failed_sign_ins_alerts_once(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(SIGNIN_FAILURE_THRESHOLD="3", SIGNIN_FAILURE_WINDOW_MINUTES="5")
    first, second = bot(failure(at="2026-06-01T10:00:00Z")), bot(failure(at="2026-06-01T10:01:00Z"))
    assert first["alerts"] == [] and second["alerts"] == []
    assert "2 within 5 minutes" in second["reason"]

    # The third failure within 5 minutes opens the burst — in another execution environment
    third = bot.restart()(failure(at="2026-06-01T10:02:00Z"))
    assert detections(third) == [("console_sign_in_failures", "medium", "dave_new")]
    assert third["alerts"][0]["summary"].startswith("3 failed console sign-ins for IAM user dave_new within 5 minutes")

    # More failures in the same burst say nothing more
    for minute in (3, 6, 9):
        assert bot(failure(at=f"2026-06-01T10:0{minute}:00Z"))["alerts"] == []

    # After a quiet window, a new burst is a new alert
    for minute in (30, 31):
        assert bot(failure(at=f"2026-06-01T10:{minute}:00Z"))["alerts"] == []
    assert detections(bot(failure(at="2026-06-01T10:32:00Z"))) == [("console_sign_in_failures", "medium", "dave_new")]


def test_failures_spread_wider_than_the_window_are_not_a_burst(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(SIGNIN_FAILURE_THRESHOLD="3", SIGNIN_FAILURE_WINDOW_MINUTES="5")
    for minute in ("00", "04", "08", "12"):
        assert bot(failure(at=f"2026-06-01T10:{minute}:00Z"))["alerts"] == []


def test_root_and_hidden_user_names_burst_separately(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(SIGNIN_FAILURE_THRESHOLD="2")
    results = [bot(failure(user, at=f"2026-06-01T10:0{i}:00Z")) for i, user in enumerate(["root", None, "root", None])]
    assert [detections(r) for r in results] == [
        [],
        [],
        [("console_sign_in_failures", "high", "root")],
        [("console_sign_in_failures", "medium", "HIDDEN_DUE_TO_SECURITY_REASONS")],
    ]
    assert "user names that do not exist" in results[3]["alerts"][0]["summary"]


def test_a_redelivered_failure_is_counted_once(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(SIGNIN_FAILURE_THRESHOLD="2")
    event = failure(at="2026-06-01T10:00:00Z")
    bot(event)
    again = bot(event)
    assert again["duplicate"] is True and again["alerts"] == []
    # A second instance without the idempotency record still counts it once (the failure item is keyed by eventID)
    records = bot.idempotency_records()
    bot.aws.dynamodb().delete_item(TableName=IDEMPOTENCY_TABLE, Key={"id": records[0]["id"]})
    assert bot.restart()(event)["alerts"] == []
    assert detections(bot(failure(at="2026-06-01T10:01:00Z")))[0][0] == "console_sign_in_failures"


# ---------------------------------------------------------------- state is read live
def test_root_mfa_state_is_read_live_not_taken_from_the_event(account: AwsContext, make_bot: BotFactory) -> None:
    moto_ext.root(ACCOUNT_ID).mfa = "virtual"
    moto_ext.root(ACCOUNT_ID).mfa_enabled_at = datetime(2026, 1, 1, tzinfo=UTC)
    result = make_bot()(sample("console_login_root_mfa"))
    statuses = {f["check_id"]: f["status"] for f in result["findings"]}
    assert statuses["root_mfa_enabled"] == "PASS"
    assert statuses["root_hardware_mfa"] == "FAIL"  # virtual, not hardware
