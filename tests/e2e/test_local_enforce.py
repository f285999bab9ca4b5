"""Enforce mode on the local runtime, driven as a person would drive it: the guardrail never locks anyone out.

A console user with an active access key never gets the guardrail (Slack says why and what to do);
a console-only user gets it and loses it when MFA is enabled; an administrator who detaches it by
hand is left alone, and the user can then be deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from iamguard_cli.local.runtime import LocalOptions, LocalRuntime
from iamguard_cli.mfa import Enrollment, authenticator_codes

from tests.integration.local_support import client

pytestmark = pytest.mark.e2e
ACCOUNT = "123456789012"
PASSWORD = "Enforce-Mode-Password-1!"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(LocalOptions(mode="enforce", run_schedules_on_time=False)) as running:
        yield running


def guardrail(runtime: LocalRuntime) -> str:
    return runtime.provisioned.refs["GuardrailPolicy"]


def attached(runtime: LocalRuntime, user: str) -> set[str]:
    iam = client("iam", runtime.endpoint_url)
    return {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]}


def said_about(runtime: LocalRuntime, user: str) -> list[str]:
    """The headlines and text of the Slack messages about `user`'s guardrail."""
    return [
        json.dumps(message, ensure_ascii=False)
        for message in runtime.slack.messages
        if "guardrail" in json.dumps(message) and f"{user}" in json.dumps(message)
    ]


def guardrail_calls(runtime: LocalRuntime, user: str) -> list[tuple[str, str]]:
    """(event name, who) of every attach/detach of the guardrail on `user` in the local CloudTrail."""
    calls = []
    for event in runtime.trail.recent:
        detail: dict[str, Any] = event["detail"]
        params = detail.get("requestParameters") or {}
        if detail["eventName"] in {"AttachUserPolicy", "DetachUserPolicy"} and params == {
            "userName": user,
            "policyArn": guardrail(runtime),
        }:
            identity = detail["userIdentity"]
            who = (
                identity["sessionContext"]["sessionIssuer"]["userName"] if identity["type"] == "AssumedRole" else "root"
            )
            calls.append((detail["eventName"], who))
    return calls


def test_a_console_user_with_an_active_key_never_gets_the_guardrail(runtime: LocalRuntime) -> None:
    # Given root creates a user with an access key for a script, and then a console password
    iam = client("iam", runtime.endpoint_url)
    iam.create_user(UserName="ci_admin")
    iam.create_access_key(UserName="ci_admin")
    iam.create_login_profile(UserName="ci_admin", Password=PASSWORD, PasswordResetRequired=True)

    # When the user signs in without MFA, and the scheduled audit runs
    runtime.sign_in("ci_admin")
    assert runtime.wait_idle()
    runtime.run_audit()
    assert runtime.wait_idle()

    # Then the guardrail was never attached (it would deny every call made with the key)...
    assert guardrail(runtime) not in attached(runtime, "ci_admin")
    assert guardrail_calls(runtime, "ci_admin") == []
    # ...and Slack was told once why, and what to do instead
    [told] = said_about(runtime, "ci_admin")
    assert "Not enforced: MFA guardrail policy on ci_admin" in told
    assert "the user has an active access key" in told
    # (Slack escapes < and > in message text)
    assert f"aws sts get-session-token --serial-number arn:aws:iam::{ACCOUNT}:mfa/&lt;device-name&gt;" in told


def test_a_console_only_user_gets_the_guardrail_and_loses_it_when_mfa_is_enabled(runtime: LocalRuntime) -> None:
    # Given root creates a console user without MFA (and without keys), as the walkthrough does: a password
    # to reset at first sign-in, and IAMUserChangePassword to allow it
    iam = client("iam", runtime.endpoint_url)
    iam.create_user(UserName="console_only")
    iam.create_login_profile(UserName="console_only", Password=PASSWORD, PasswordResetRequired=True)
    iam.attach_user_policy(UserName="console_only", PolicyArn="arn:aws:iam::aws:policy/IAMUserChangePassword")
    assert runtime.wait_idle()

    # Then the event function attached the guardrail
    assert guardrail(runtime) in attached(runtime, "console_only")

    # When the user enrols a virtual MFA device (two consecutive codes from the authenticator app)
    enrollment = Enrollment(iam, ACCOUNT)
    device = enrollment.create("console_only")
    enrollment.enable(device, *authenticator_codes(device.seed))
    assert runtime.wait_idle()

    # Then the EnableMFADevice event took the guardrail off again - by iamguard's role, which it ignores
    assert guardrail(runtime) not in attached(runtime, "console_only")
    assert guardrail_calls(runtime, "console_only") == [
        ("AttachUserPolicy", "iamguard-OnIamEventFunctionRole"),
        ("DetachUserPolicy", "iamguard-OnIamEventFunctionRole"),
    ]
    told = said_about(runtime, "console_only")
    assert [("Enforced: MFA guardrail policy on" in t, "Enforced: MFA guardrail policy off" in t) for t in told] == [
        (True, False),
        (False, True),
    ]
    # and the audit finds nothing to do
    runtime.run_audit()
    assert runtime.wait_idle()
    assert len(said_about(runtime, "console_only")) == 2


def test_an_administrators_detach_is_respected_and_the_user_can_be_deleted(runtime: LocalRuntime) -> None:
    # Given a console user who got the guardrail
    iam = client("iam", runtime.endpoint_url)
    iam.create_user(UserName="leaver")
    iam.create_login_profile(UserName="leaver", Password=PASSWORD)
    assert runtime.wait_idle()
    assert guardrail(runtime) in attached(runtime, "leaver")

    # When root detaches it by hand, and later the audit runs
    iam.detach_user_policy(UserName="leaver", PolicyArn=guardrail(runtime))
    assert runtime.wait_idle()
    runtime.run_audit()
    assert runtime.wait_idle()

    # Then iamguard never put it back, and said whose decision it respects
    assert guardrail(runtime) not in attached(runtime, "leaver")
    assert guardrail_calls(runtime, "leaver") == [
        ("AttachUserPolicy", "iamguard-OnIamEventFunctionRole"),
        ("DetachUserPolicy", "root"),
    ]
    assert any("root detached the MFA guardrail policy from user leaver" in t for t in said_about(runtime, "leaver"))
    # and root can delete the user (no DeleteConflict from a re-attached guardrail)
    iam.delete_login_profile(UserName="leaver")
    iam.delete_user(UserName="leaver")
