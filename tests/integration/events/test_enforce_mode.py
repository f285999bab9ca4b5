"""MODE=enforce on moto: the guardrail and required policies really get attached — never to exempt users or root.

And enforcement cannot lock anyone out: no guardrail for a user with an active access key, the
guardrail taken off again once the user has MFA (event and audit), an administrator's manual
detach respected from then on, and the optional grace period deferring the attach to the audit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from iamguard.aws import AwsContext
from iamguard.enforcement.enforcer import UNSEEN_DETACHER, Enforcer
from iamguard.iam.inventory import Inventory
from iamguard.notify.render import MessageBuilder
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings
from iamguard_cli.local.bootstrap import ensure_guardrail_policy
from iamguard_cli.mfa import authenticator_codes

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import (
    ADMINISTRATOR,
    CHANGE_PASSWORD,
    GUARDRAIL,
    READ_ONLY,
    Bot,
    BotFactory,
    sample,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


def test_enforce_attaches_the_guardrail_to_a_console_user_without_mfa(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given enforce mode and wonjun_admin (console password, no MFA)
    bot = make_bot(MODE="enforce")
    assert GUARDRAIL not in bot.attached("wonjun_admin")

    # When wonjun_admin signs in without MFA
    event = sample("console_login_user_no_mfa")
    result = bot(event)

    # Then the guardrail is attached in IAM, the action names the event, and it is recorded and announced
    assert GUARDRAIL in bot.attached("wonjun_admin")
    assert [(a["action"], a["user_name"], a["policy_arn"], a["performed"]) for a in result["actions"]] == [
        ("attach_guardrail_policy", "wonjun_admin", GUARDRAIL, True)
    ]
    assert result["actions"][0]["event_id"] == event["detail"]["eventID"]
    recorded = bot.activity("action")
    assert [(item["data"]["action"], item["data"]["event_id"]) for item in recorded] == [
        ("attach_guardrail_policy", event["detail"]["eventID"])
    ]
    assert [(a.action, a.user_name, a.performed) for a in bot.announcer.actions] == [
        ("attach_guardrail_policy", "wonjun_admin", True)
    ]
    # And the stored findings describe the state after enforcement: still no MFA; the guardrail iamguard
    # attached is not itself reported as a direct-policy lapse (the user's own direct policies still are).
    findings = {f["check_id"]: f for f in result["findings"]}
    assert findings["user_console_mfa"]["status"] == "FAIL"
    assert findings["user_no_direct_policies"]["detail"] == (
        "User wonjun_admin has policies attached directly: AdministratorAccess, IAMUserChangePassword."
    )


def test_enforcement_does_not_repeat_itself(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(MODE="enforce")
    bot(sample("console_login_user_no_mfa"))
    again = bot(sample("console_login_user_no_mfa", new_id=True))
    assert again["actions"] == []
    assert len(bot.activity("action")) == 1


def test_enforce_attaches_missing_required_policies_only_from_the_configured_list(
    account: AwsContext, make_bot: BotFactory
) -> None:
    bot = make_bot(MODE="enforce", REQUIRED_POLICY_ARNS=CHANGE_PASSWORD)
    result = bot(sample("detach_user_policy_required"))
    attached = bot.attached("dave_new")
    assert CHANGE_PASSWORD in attached and GUARDRAIL in attached
    assert attached == {READ_ONLY, CHANGE_PASSWORD, GUARDRAIL}  # nothing else was attached
    assert sorted(a["action"] for a in result["actions"]) == ["attach_guardrail_policy", "attach_required_policy"]
    # The removal is still announced although iamguard put the policy back
    assert [a["detection"] for a in result["alerts"]] == ["required_policy_removed"]
    assert "iamguard attached it again" in result["alerts"][0]["summary"]
    # and the required-policies finding, read after enforcement, passes
    findings = {f["check_id"]: f["status"] for f in result["findings"]}
    assert findings["user_required_policies"] == "PASS"


@pytest.mark.parametrize(
    ("user", "exempt_setting"),
    [("erin_contractor", ""), ("wonjun_admin", "wonjun_admin")],
    ids=["tagged-iamguard-exempt", "listed-in-EXEMPT_USERS"],
)
def test_exempt_users_are_never_touched(
    account: AwsContext, make_bot: BotFactory, user: str, exempt_setting: str
) -> None:
    bot = make_bot(MODE="enforce", EXEMPT_USERS=exempt_setting, REQUIRED_POLICY_ARNS=CHANGE_PASSWORD)
    before = bot.attached(user)
    event = sample("console_login_user_no_mfa", new_id=True)
    event["detail"]["userIdentity"]["userName"] = user
    result = bot(event)
    assert bot.attached(user) == before
    assert result["actions"] == []
    assert {f["status"] for f in result["findings"] if f["check_id"] == "user_console_mfa"} == {"EXEMPT"}
    # The sign-in itself is still a detection worth telling
    assert [a["detection"] for a in result["alerts"]] == ["console_sign_in_without_mfa"]


def test_root_is_never_touched(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(MODE="enforce", REQUIRED_POLICY_ARNS=CHANGE_PASSWORD)
    policies_before = account.iam().list_policies(Scope="Local", OnlyAttached=True)["Policies"]
    result = bot(sample("console_login_root_no_mfa"))
    assert result["actions"] == []
    assert account.iam().list_policies(Scope="Local", OnlyAttached=True)["Policies"] == policies_before


def test_a_user_with_mfa_or_without_a_console_password_gets_no_guardrail(
    account: AwsContext, make_bot: BotFactory
) -> None:
    bot = make_bot(MODE="enforce")
    # alice: console password and MFA; carol_ops: no console password
    assert bot(sample("console_login_user_mfa"))["actions"] == []
    assert bot(sample("add_user_to_group_admin"))["actions"] == []
    assert GUARDRAIL not in bot.attached("alice") | bot.attached("carol_ops")


def test_monitor_mode_reports_what_it_would_do_and_attaches_nothing(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(MODE="monitor", REQUIRED_POLICY_ARNS=CHANGE_PASSWORD)
    result = bot(sample("console_login_user_no_mfa"))
    assert bot.attached("wonjun_admin") == {
        "arn:aws:iam::aws:policy/AdministratorAccess",
        CHANGE_PASSWORD,
    }
    assert [(a["action"], a["performed"]) for a in result["actions"]] == [("attach_guardrail_policy", False)]
    assert "monitor mode" in result["actions"][0]["reason"]
    # Would-be actions are reported, not recorded or announced as actions
    assert bot.activity("action") == []
    assert bot.announcer.actions == []


def test_a_failed_attach_is_recorded_and_announced_not_raised(account: AwsContext, make_bot: BotFactory) -> None:
    # Given a guardrail ARN that does not exist (a misconfigured deployment)
    missing = f"arn:aws:iam::{ACCOUNT_ID}:policy/not-there"
    bot = make_bot(MODE="enforce", GUARDRAIL_POLICY_ARN=missing)
    result = bot(sample("console_login_user_no_mfa"))
    assert result["outcome"] == "evaluated"
    [action] = result["actions"]
    assert action["performed"] is False and action["error"].startswith("NoSuchEntity")
    assert [a.error is not None for a in bot.announcer.actions] == [True]
    assert len(bot.activity("action")) == 1


def test_iamguards_own_attach_event_does_not_loop(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(MODE="enforce")
    bot(sample("console_login_user_no_mfa"))
    # The AttachUserPolicy that enforcement caused comes back through CloudTrail
    echo = bot(sample("attach_user_policy_by_iamguard"))
    assert echo["outcome"] == "ignored"
    assert len(bot.activity("action")) == 1


# ---------------------------------------------------------------- enforcement that cannot lock anyone out
def enable_mfa(iam: IAMClient, user: str) -> str:
    """What the user does with an authenticator app (the moto extension checks the codes, as AWS does)."""
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]
    seed = device["Base32StringSeed"]
    code1, code2 = authenticator_codes(seed.decode() if isinstance(seed, bytes) else seed)
    iam.enable_mfa_device(
        UserName=user, SerialNumber=device["SerialNumber"], AuthenticationCode1=code1, AuthenticationCode2=code2
    )
    return device["SerialNumber"]


def sign_in(user: str) -> dict[str, Any]:
    """A successful console sign-in of `user` without MFA (the walkthrough sample, renamed)."""
    event = sample("console_login_user_no_mfa", new_id=True)
    identity = event["detail"]["userIdentity"]
    identity.update(userName=user, arn=f"arn:aws:iam::{ACCOUNT_ID}:user/{user}")
    return event


def enable_mfa_event(user: str, serial: str) -> dict[str, Any]:
    return sample("enable_mfa_device", new_id=True, requestParameters={"userName": user, "serialNumber": serial})


def detach_event(user: str, policy_arn: str, *, at: datetime | None = None) -> dict[str, Any]:
    """IAM user alice (an administrator) detaches a policy from `user` by hand."""
    event = sample(
        "detach_user_policy_required", new_id=True, requestParameters={"userName": user, "policyArn": policy_arn}
    )
    if at is not None:
        event["detail"]["eventTime"] = event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def by_iamguard(event: dict[str, Any]) -> dict[str, Any]:
    """The same call made by iamguard's own role (how CloudTrail shows the bot's own detach)."""
    own = sample("attach_user_policy_by_iamguard")
    event["detail"]["userIdentity"] = own["detail"]["userIdentity"]
    return event


def outcomes(actions: list[dict[str, Any]]) -> list[tuple[str, str, bool, str | None]]:
    return [(a["action"], a["user_name"], a["performed"], a.get("withheld")) for a in actions]


def of(result: dict[str, Any], user: str) -> list[dict[str, Any]]:
    """The actions of a handler result about one user (an audit acts on every user of the sample account)."""
    return [a for a in result["actions"] if a["user_name"] == user]


def told(bot: Bot, user: str = "wonjun_admin") -> list[tuple[str, str, str]]:
    """(action, user, outcome) of every action about `user` people were told about, in order."""
    return [(a.action, a.user_name, a.outcome) for a in bot.announcer.actions if a.user_name == user]


def test_a_console_user_with_an_active_access_key_never_gets_the_guardrail(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given enforce mode and wonjun_admin (console password, no MFA) with an active access key for a script
    bot = make_bot(MODE="enforce")
    account.iam().create_access_key(UserName="wonjun_admin")

    # When wonjun_admin signs in without MFA
    event = sign_in("wonjun_admin")
    result = bot(event)

    # Then the guardrail is not attached (it would cut the key off, MFA or not) and the finding is raised
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert {f["check_id"]: f["status"] for f in result["findings"]}["user_console_mfa"] == "FAIL"
    assert outcomes(result["actions"]) == [("attach_guardrail_policy", "wonjun_admin", False, "access_key")]
    reason = result["actions"][0]["reason"]
    assert "1 active access key" in reason and "aws sts get-session-token" in reason and "IAM role" in reason
    # and people are told why iamguard did not enforce, and what to do, in words and as a command
    assert told(bot) == [("attach_guardrail_policy", "wonjun_admin", "withheld")]
    message = MessageBuilder("en").action_message(bot.announcer.actions[0], ACCOUNT_ID)
    assert message.headline == "✋ Not enforced: MFA guardrail policy on wonjun_admin"
    assert "the guardrail would deny every call made with it" in message.summary
    text = message.plain_text()
    assert f"aws sts get-session-token --serial-number arn:aws:iam::{ACCOUNT_ID}:mfa/<device-name>" in text
    assert "Move that workload to an IAM role" in text
    korean = MessageBuilder("ko").action_message(bot.announcer.actions[0], ACCOUNT_ID)
    assert korean.headline == "✋ 조치 보류: 사용자 wonjun_admin에게 MFA 가드레일 정책 적용"
    assert "활성 액세스 키" in korean.summary
    assert [item["data"]["withheld"] for item in bot.activity("action")] == ["access_key"]

    # When the user signs in again, and the scheduled audit runs
    again = bot(sign_in("wonjun_admin"))
    audit = bot.audit()

    # Then still no guardrail, and nobody is told the same thing twice
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert [(a["withheld"], a["announce"]) for a in again["actions"]] == [("access_key", False)]
    assert [(a["withheld"], a["announce"]) for a in of(audit, "wonjun_admin")] == [("access_key", False)]
    assert told(bot) == [("attach_guardrail_policy", "wonjun_admin", "withheld")]
    assert len([a for a in bot.activity("action") if a["data"]["user_name"] == "wonjun_admin"]) == 1


def test_an_inactive_key_does_not_hold_the_guardrail_back(account: AwsContext, make_bot: BotFactory) -> None:
    # A deactivated key signs nothing, so the guardrail cannot cut anything off
    bot = make_bot(MODE="enforce")
    iam = account.iam()
    key = iam.create_access_key(UserName="wonjun_admin")["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName="wonjun_admin", AccessKeyId=key, Status="Inactive")
    result = bot(sign_in("wonjun_admin"))
    assert outcomes(result["actions"]) == [("attach_guardrail_policy", "wonjun_admin", True, None)]
    assert GUARDRAIL in bot.attached("wonjun_admin")


def test_monitor_mode_reports_the_withheld_guardrail_without_announcing_it(
    account: AwsContext, make_bot: BotFactory
) -> None:
    bot = make_bot(MODE="monitor")
    account.iam().create_access_key(UserName="wonjun_admin")
    result = bot(sign_in("wonjun_admin"))
    [action] = result["actions"]
    assert (action["withheld"], action["announce"], action["performed"]) == ("access_key", False, False)
    assert action["reason"].endswith("(monitor mode)")
    assert bot.announcer.actions == [] and bot.activity("action") == []
    assert bot.store.guardrail_record("wonjun_admin") is None  # monitor mode keeps no enforcement state


def test_a_console_only_user_gets_the_guardrail_and_loses_it_when_mfa_is_enabled(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given enforce mode, wonjun_admin signed in without MFA and got the guardrail
    bot = make_bot(MODE="enforce")
    before = bot.attached("wonjun_admin")
    bot(sign_in("wonjun_admin"))
    assert bot.attached("wonjun_admin") == before | {GUARDRAIL}
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None and record.attached_at is not None and record.detached_by is None

    # When wonjun_admin enables an MFA device (which the guardrail allows without MFA)
    serial = enable_mfa(account.iam(), "wonjun_admin")
    event = enable_mfa_event("wonjun_admin", serial)
    result = bot(event)

    # Then iamguard takes its guardrail off again - that policy and no other - and says so
    assert bot.attached("wonjun_admin") == before
    assert outcomes(result["actions"]) == [("detach_guardrail_policy", "wonjun_admin", True, None)]
    assert result["actions"][0]["policy_arn"] == GUARDRAIL
    assert result["actions"][0]["event_id"] == event["detail"]["eventID"]
    assert "has an MFA device now" in result["actions"][0]["reason"]
    assert told(bot) == [
        ("attach_guardrail_policy", "wonjun_admin", "performed"),
        ("detach_guardrail_policy", "wonjun_admin", "performed"),
    ]
    assert [item["data"]["action"] for item in bot.activity("action")] == [
        "detach_guardrail_policy",  # newest first
        "attach_guardrail_policy",
    ]
    message = MessageBuilder("en").action_message(bot.announcer.actions[-1], ACCOUNT_ID)
    assert message.headline == "🛡️ Enforced: MFA guardrail policy off wonjun_admin"
    assert f"aws iam attach-user-policy --user-name wonjun_admin --policy-arn {GUARDRAIL}" in message.plain_text()
    # The findings read after the detach pass, and nothing is left to remember about the guardrail
    assert {f["check_id"]: f["status"] for f in result["findings"]}["user_console_mfa"] == "PASS"
    assert bot.store.guardrail_record("wonjun_admin") is None

    # And iamguard's own DetachUserPolicy, coming back through CloudTrail, is no administrator's decision
    echo = bot(by_iamguard(detach_event("wonjun_admin", GUARDRAIL)))
    assert echo["outcome"] == "ignored" and "iamguard's own role" in echo["reason"]
    assert bot.store.guardrail_record("wonjun_admin") is None


def test_the_guardrail_stays_while_it_is_all_that_lets_the_user_set_a_first_password(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given dave_new: must reset the password at first sign-in, and only the guardrail allows iam:ChangePassword
    bot = make_bot(MODE="enforce")
    iam = account.iam()
    bot(sign_in("dave_new"))
    assert GUARDRAIL in bot.attached("dave_new")

    # When an administrator enrols an MFA device for dave_new before the first sign-in
    result = bot(enable_mfa_event("dave_new", enable_mfa(iam, "dave_new")))
    audit = bot.audit()

    # Then the guardrail stays (taking it off would lock dave_new out at first sign-in), event and audit alike
    assert result["actions"] == [] and of(audit, "dave_new") == []
    assert GUARDRAIL in bot.attached("dave_new")
    assert {f["check_id"]: f["status"] for f in result["findings"]}["user_password_reset_possible"] == "PASS"

    # When dave_new has set a new password and signs in with MFA
    iam.update_login_profile(UserName="dave_new", PasswordResetRequired=False)
    with_mfa = sample("console_login_user_mfa", new_id=True)
    with_mfa["detail"]["userIdentity"].update(userName="dave_new", arn=f"arn:aws:iam::{ACCOUNT_ID}:user/dave_new")
    done = bot(with_mfa)

    # Then the guardrail has done its job and comes off
    assert outcomes(done["actions"]) == [("detach_guardrail_policy", "dave_new", True, None)]
    assert GUARDRAIL not in bot.attached("dave_new")


def test_the_audit_takes_the_guardrail_off_users_who_now_have_mfa(account: AwsContext, make_bot: BotFactory) -> None:
    # Given the guardrail on wonjun_admin, who then enabled MFA - but the EnableMFADevice event never arrived
    bot = make_bot(MODE="enforce")
    bot(sign_in("wonjun_admin"))
    enable_mfa(account.iam(), "wonjun_admin")

    # When the scheduled audit runs
    result = bot.audit()

    # Then it detached the guardrail, and told people
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert outcomes(of(result, "wonjun_admin")) == [("detach_guardrail_policy", "wonjun_admin", True, None)]
    assert "event_id" not in of(result, "wonjun_admin")[0]  # the audit acted, not an event
    assert ("detach_guardrail_policy", "wonjun_admin", "performed") in told(bot)
    assert ("detach_guardrail_policy", "audit#detach_guardrail_policy#wonjun_admin") in {
        (item["data"]["action"], item["sk"].split("#action#", 1)[1]) for item in bot.activity("action")
    }
    # and the next audit has nothing left to do
    assert of(bot.audit(), "wonjun_admin") == []


def test_the_audit_never_detaches_anything_in_monitor_mode(account: AwsContext, make_bot: BotFactory) -> None:
    iam = account.iam()
    iam.attach_user_policy(UserName="alice", PolicyArn=GUARDRAIL)  # alice has MFA
    bot = make_bot(MODE="monitor")
    assert bot.audit()["actions"] == []
    assert GUARDRAIL in bot.attached("alice")


def test_an_administrators_detach_is_respected_on_that_event_and_later(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given the guardrail on wonjun_admin
    bot = make_bot(MODE="enforce")
    bot(sign_in("wonjun_admin"))
    iam = account.iam()

    # When an administrator (IAM user alice) detaches it by hand
    iam.detach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)
    event = detach_event("wonjun_admin", GUARDRAIL)
    result = bot(event)

    # Then iamguard does not attach it again; it remembers who detached it and when, and says so
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert outcomes(result["actions"]) == [("attach_guardrail_policy", "wonjun_admin", False, "admin_detached")]
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None
    assert (record.detached_by, record.detached_at, record.detach_event_id) == (
        "IAM user alice",
        datetime(2026, 6, 1, 10, 2, tzinfo=UTC),
        event["detail"]["eventID"],
    )
    # (announced alone - no alert, no finding change - it still names its account)
    assert bot.announcer.calls[-1].alerts == [] and bot.announcer.actions[-1].account_id == ACCOUNT_ID
    message = MessageBuilder("en").action_message(bot.announcer.actions[-1], ACCOUNT_ID)
    assert message.summary == (
        "IAM user alice detached the MFA guardrail policy from user wonjun_admin (2026-06-01 10:02 UTC). "
        "iamguard respects that decision and will not attach it again; the user still has no MFA device, "
        "so the finding stays open."
    )
    # The finding stays open
    assert {f["check_id"]: f["status"] for f in result["findings"]}["user_console_mfa"] == "FAIL"

    # When the user signs in without MFA again, and the audit runs
    later = bot(sign_in("wonjun_admin"))
    audit = bot.audit()

    # Then still no guardrail, no repeated announcement, and the audit keeps reporting the open finding
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    held = later["actions"] + of(audit, "wonjun_admin")
    assert [a["withheld"] for a in held] == ["admin_detached", "admin_detached"]
    assert not any(a["announce"] for a in held)
    assert told(bot) == [
        ("attach_guardrail_policy", "wonjun_admin", "performed"),
        ("attach_guardrail_policy", "wonjun_admin", "withheld"),
    ]
    stored = {(f.check_id, f.resource_name): f.status.value for f in bot.store.findings()}
    assert stored[("user_console_mfa", "wonjun_admin")] == "FAIL"

    # And the administrator can now delete the user: nothing of iamguard's is attached (DeleteConflict before)
    for arn in bot.attached("wonjun_admin"):
        iam.detach_user_policy(UserName="wonjun_admin", PolicyArn=arn)
    iam.delete_login_profile(UserName="wonjun_admin")
    iam.delete_user(UserName="wonjun_admin")


def test_a_new_user_under_an_old_name_is_not_bound_by_the_old_decision(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given an administrator detached the guardrail from wonjun_admin, then deleted the user
    bot = make_bot(MODE="enforce")
    iam = account.iam()
    bot(sign_in("wonjun_admin"))
    iam.detach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)
    bot(detach_event("wonjun_admin", GUARDRAIL))
    for arn in bot.attached("wonjun_admin"):
        iam.detach_user_policy(UserName="wonjun_admin", PolicyArn=arn)
    iam.delete_login_profile(UserName="wonjun_admin")
    iam.delete_user(UserName="wonjun_admin")

    # When someone else is created under the same name, with a console password and no MFA
    iam.create_user(UserName="wonjun_admin")
    iam.create_login_profile(UserName="wonjun_admin", Password="Another-Long-Password-1!")
    result = bot(sign_in("wonjun_admin"))

    # Then the old decision was about the old user (another user id): the new one gets the guardrail
    assert outcomes(result["actions"]) == [("attach_guardrail_policy", "wonjun_admin", True, None)]
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None and record.detached_by is None
    assert record.user_id == iam.get_user(UserName="wonjun_admin")["User"]["UserId"]


def test_attaching_the_guardrail_by_hand_lets_iamguard_enforce_again(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(MODE="enforce")
    bot(sign_in("wonjun_admin"))
    account.iam().detach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)
    bot(detach_event("wonjun_admin", GUARDRAIL))
    # The administrator changes their mind: attaches it again (a later event)
    account.iam().attach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)
    attach = sample(
        "attach_user_policy_admin",
        new_id=True,
        requestParameters={"userName": "wonjun_admin", "policyArn": GUARDRAIL},
        eventTime="2026-06-01T10:30:00Z",
    )
    bot(attach)
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None and record.detached_by is None
    # so once the user has MFA, iamguard takes it off as usual
    bot(enable_mfa_event("wonjun_admin", enable_mfa(account.iam(), "wonjun_admin")))
    assert GUARDRAIL not in bot.attached("wonjun_admin")


def test_a_guardrail_an_administrator_puts_on_a_user_with_mfa_is_left_on(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given enforce mode, root attaches the guardrail by hand to alice, who has MFA
    # (to stop her long-term keys working without an MFA session, say)
    bot = make_bot(MODE="enforce")
    account.iam().attach_user_policy(UserName="alice", PolicyArn=GUARDRAIL)
    attach = sample(
        "attach_user_policy_admin", new_id=True, requestParameters={"userName": "alice", "policyArn": GUARDRAIL}
    )

    # When that event arrives, and the audit runs
    result = bot(attach)
    audit = bot.audit()

    # Then iamguard leaves it on: it is there for its own sake, not as iamguard's MFA enforcement
    assert result["actions"] == [] and of(audit, "alice") == []
    assert GUARDRAIL in bot.attached("alice")
    record = bot.store.guardrail_record("alice")
    assert record is not None and record.attached_by == "root"


def test_a_guardrail_reattached_before_the_detach_event_arrived_is_taken_off_again(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # Given the guardrail on wonjun_admin, detached by an administrator...
    bot = make_bot(MODE="enforce")
    bot(sign_in("wonjun_admin"))
    account.iam().detach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)
    detached_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    # ...and a sign-in processed before the DetachUserPolicy event (CloudTrail delivers out of order)
    bot(sign_in("wonjun_admin"))
    assert GUARDRAIL in bot.attached("wonjun_admin")

    # When the administrator's DetachUserPolicy event arrives
    result = bot(detach_event("wonjun_admin", GUARDRAIL, at=detached_at))

    # Then iamguard undoes its own re-attach and leaves the guardrail off from then on
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert outcomes(result["actions"]) == [("detach_guardrail_policy", "wonjun_admin", True, None)]
    assert "takes it off again" in result["actions"][0]["reason"]
    assert outcomes(bot(sign_in("wonjun_admin"))["actions"]) == [
        ("attach_guardrail_policy", "wonjun_admin", False, "admin_detached")
    ]
    assert GUARDRAIL not in bot.attached("wonjun_admin")


def test_the_audit_notices_a_detach_whose_event_never_arrived(account: AwsContext, make_bot: BotFactory) -> None:
    # Given the guardrail iamguard attached an hour ago...
    bot = make_bot(MODE="enforce")
    bot(sign_in("wonjun_admin"))
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None and record.attached_at is not None
    bot.store.save_guardrail_record(replace(record, attached_at=record.attached_at - timedelta(hours=1)))
    # ...detached by someone whose DetachUserPolicy event was lost (CloudTrail to EventBridge is best effort)
    account.iam().detach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)

    # When the audit runs
    result = bot.audit()

    # Then it does not put the guardrail back: someone decided, even if iamguard does not know who
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert outcomes(of(result, "wonjun_admin")) == [
        ("attach_guardrail_policy", "wonjun_admin", False, "admin_detached")
    ]
    assert told(bot)[-1] == ("attach_guardrail_policy", "wonjun_admin", "withheld")
    noticed = bot.store.guardrail_record("wonjun_admin")
    assert noticed is not None and noticed.detached_by == UNSEEN_DETACHER and noticed.detach_event_id is None

    # And when the late event does arrive, iamguard learns who it was (without telling people twice)
    late = detach_event("wonjun_admin", GUARDRAIL)
    bot(late)
    learnt = bot.store.guardrail_record("wonjun_admin")
    assert learnt is not None and (learnt.detached_by, learnt.detach_event_id) == (
        "IAM user alice",
        late["detail"]["eventID"],
    )
    assert told(bot).count(("attach_guardrail_policy", "wonjun_admin", "withheld")) == 1


def test_a_recently_attached_guardrail_missing_from_the_audits_read_is_not_taken_for_a_detach(
    account: AwsContext, make_bot: BotFactory
) -> None:
    # iamguard attached it moments ago (after the audit's read began, or not yet visible in IAM):
    # the audit must not conclude that an administrator removed it.
    bot = make_bot(MODE="enforce")
    bot(sign_in("wonjun_admin"))
    account.iam().detach_user_policy(UserName="wonjun_admin", PolicyArn=GUARDRAIL)  # as if not yet visible
    result = bot.audit()
    assert outcomes(of(result, "wonjun_admin")) == [("attach_guardrail_policy", "wonjun_admin", True, None)]
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None and record.detached_by is None


def test_the_grace_period_defers_the_guardrail_to_the_audit(account: AwsContext, make_bot: BotFactory) -> None:
    # Given enforce mode with a 24-hour grace period
    bot = make_bot(MODE="enforce", GUARDRAIL_GRACE_HOURS="24")

    # When wonjun_admin signs in without MFA
    started = datetime.now(UTC)
    result = bot(sign_in("wonjun_admin"))

    # Then people are told at once, and the guardrail is not attached yet
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    [action] = result["actions"]
    assert (action["withheld"], action["announce"]) == ("grace_period", True)
    due = datetime.fromisoformat(action["due_at"])
    assert timedelta(hours=24) <= due - started < timedelta(hours=24, minutes=1)
    message = MessageBuilder("en").action_message(bot.announcer.actions[0], ACCOUNT_ID)
    assert f"attaches the MFA guardrail policy at {due:%Y-%m-%d %H:%M} UTC" in message.summary
    assert {f["check_id"]: f["status"] for f in result["findings"]}["user_console_mfa"] == "FAIL"

    # When more events come and the audit runs within the grace period
    bot(sign_in("wonjun_admin"))
    assert [a["withheld"] for a in of(bot.audit(), "wonjun_admin")] == ["grace_period"]
    # Then nothing is attached and nothing is told twice
    assert GUARDRAIL not in bot.attached("wonjun_admin")
    assert told(bot) == [("attach_guardrail_policy", "wonjun_admin", "withheld")]

    # When the grace period is over (the deferral began 25 hours ago) and the audit runs
    record = bot.store.guardrail_record("wonjun_admin")
    assert record is not None and record.since is not None
    bot.store.save_guardrail_record(replace(record, since=record.since - timedelta(hours=25)))
    late = bot.audit()

    # Then the audit attaches the guardrail, and says so
    assert GUARDRAIL in bot.attached("wonjun_admin")
    assert outcomes(of(late, "wonjun_admin")) == [("attach_guardrail_policy", "wonjun_admin", True, None)]
    assert told(bot)[-1] == ("attach_guardrail_policy", "wonjun_admin", "performed")


def test_enabling_mfa_within_the_grace_period_ends_it(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot(MODE="enforce", GUARDRAIL_GRACE_HOURS="24")
    bot(sign_in("wonjun_admin"))
    assert bot.store.guardrail_record("wonjun_admin") is not None
    bot(enable_mfa_event("wonjun_admin", enable_mfa(account.iam(), "wonjun_admin")))
    assert bot.store.guardrail_record("wonjun_admin") is None  # the deferral is over: nothing to remember
    assert of(bot.audit(), "wonjun_admin") == []
    assert GUARDRAIL not in bot.attached("wonjun_admin")


def test_the_audit_checks_live_before_it_attaches(account: AwsContext, store: FindingsStore) -> None:
    # Given the audit's view of wonjun_admin from a credential report generated before the user made a key
    settings = Settings(mode="enforce", guardrail_policy_arn=ensure_guardrail_policy(account.iam(), ACCOUNT_ID))
    state = Inventory(account).read_account()
    account.iam().create_access_key(UserName="wonjun_admin")

    # When the audit decides about the guardrail
    actions = Enforcer(account.iam(), settings, memory=store).enforce_account(state)

    # Then it read the user live and held the guardrail back: the key would be cut off
    assert [(a.withheld, a.performed) for a in actions if a.user_name == "wonjun_admin"] == [("access_key", False)]
    assert GUARDRAIL not in {
        p["PolicyArn"] for p in account.iam().list_attached_user_policies(UserName="wonjun_admin")["AttachedPolicies"]
    }


def test_one_audit_acts_on_a_bounded_number_of_users_and_the_next_goes_on(
    account: AwsContext, store: FindingsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three console users without MFA or keys (wonjun_admin, dave_new, mina_dev) and a budget of two
    monkeypatch.setattr("iamguard.enforcement.enforcer.AUDIT_USER_BUDGET", 2)
    settings = Settings(mode="enforce", guardrail_policy_arn=ensure_guardrail_policy(account.iam(), ACCOUNT_ID))
    enforcer = Enforcer(account.iam(), settings, memory=store)

    # When the audit runs twice
    first = enforcer.enforce_account(Inventory(account).read_account())
    left = enforcer.deferred
    second = enforcer.enforce_account(Inventory(account).read_account())

    # Then the first run attached two guardrails and left one; the second attached the last
    assert ([a.performed for a in first], left) == ([True, True], 1)
    assert ([a.performed for a in second], enforcer.deferred) == ([True], 0)
    assert {a.user_name for a in first + second} == {"wonjun_admin", "dave_new", "mina_dev"}


def test_detach_refuses_every_policy_but_the_stacks_guardrail() -> None:
    # Given an enforcer whose IAM client would fail any call (nothing is queued on the stubber)
    iam = boto3.client("iam", region_name="us-east-1")
    settings = Settings(mode="enforce", guardrail_policy_arn=GUARDRAIL, required_policy_arns=(CHANGE_PASSWORD,))
    enforcer = Enforcer(iam, settings)
    with Stubber(iam):
        # Then detaching anything else is refused before IAM is called - required policies included
        for other in (ADMINISTRATOR, CHANGE_PASSWORD, f"arn:aws:iam::{ACCOUNT_ID}:policy/iamguard-mfa-guardrail-x"):
            with pytest.raises(ValueError, match="only ever detaches its own MFA guardrail"):
                enforcer.detach_guardrail("wonjun_admin", other)
    # and with no guardrail configured, nothing at all can be detached
    with pytest.raises(ValueError):
        Enforcer(iam, Settings(mode="enforce")).detach_guardrail("wonjun_admin", GUARDRAIL)
