"""MODE=enforce on moto: the guardrail and required policies really get attached — never to exempt users or root."""

from __future__ import annotations

import pytest
from iamguard.aws import AwsContext

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import (
    CHANGE_PASSWORD,
    GUARDRAIL,
    READ_ONLY,
    BotFactory,
    sample,
)


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
