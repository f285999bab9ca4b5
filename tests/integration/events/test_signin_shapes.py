"""Every sign-in shape in events/, through both event functions as Lambda runs them, judged as AWS means it.

The shapes come from the CloudTrail User Guide ("AWS Management Console sign-in
events", the userIdentity element), the IAM User Guide (sign-in events, the hidden
user name), the IAM Identity Center User Guide (sign-in events) and the peers'
rule tests (Panther's AWS.Console.LoginWithoutMFA / LoginWithoutSAML /
RootLogin / Unsuccessful.MFA.attempt). Only root and IAM users signing in with
their own password are judged; federated sign-ins are not "without MFA",
whatever their userIdentity.type says.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from iamguard.aws import AwsContext

from tests.conftest import EVENTS_DIR
from tests.integration.events.support import GUARDRAIL, BotFactory, detections, sample

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
SAML = "console sign-in through SAML federation (arn:aws:iam::123456789012:saml-provider/Okta)"
NOT_JUDGED = "not a root or IAM user password sign-in"

# sample → (outcome, alerts as (detection, severity, resource), a phrase of the reason)
SHAPES: dict[str, tuple[str, list[tuple[str, str, str]], str]] = {
    # IAM users and root signing in with their own password
    "console_login_user_no_mfa": (
        "evaluated",
        [("console_sign_in_without_mfa", "high", "wonjun_admin")],
        "re-evaluated user wonjun_admin",
    ),
    "console_login_signin_spelling": (
        "evaluated",
        [("console_sign_in_without_mfa", "high", "mina_dev")],
        "re-evaluated user mina_dev",
    ),
    "console_login_user_mfa": ("evaluated", [], "re-evaluated user alice"),
    "console_login_user_security_key": ("evaluated", [], "re-evaluated user alice"),
    "console_login_root_mfa": ("evaluated", [("root_console_sign_in", "high", "root")], "re-evaluated the root user"),
    "console_login_root_no_mfa": (
        "evaluated",
        [("root_console_sign_in", "critical", "root")],
        "re-evaluated the root user",
    ),
    # failed sign-ins, counted per principal (threshold 1 here: each one opens a burst)
    "console_login_failure": (
        "evaluated",
        [("console_sign_in_failures", "medium", "dave_new")],
        "failed sign-in for dave_new",
    ),
    "console_login_failure_mfa": (
        "evaluated",
        [("console_sign_in_failures", "medium", "alice")],
        "failed sign-in for alice",
    ),
    "console_login_failure_hidden_user": (
        "evaluated",
        [("console_sign_in_failures", "medium", HIDDEN)],
        f"failed sign-in for {HIDDEN}",
    ),
    "console_login_failure_root": (
        "evaluated",
        [("console_sign_in_failures", "high", "root")],
        "failed sign-in for root",
    ),
    # federated sign-ins in all their forms: MFA is the identity provider's
    "console_login_saml": ("ignored", [], SAML),
    "console_login_saml_iam_user_type": ("ignored", [], SAML),
    "console_login_sso": ("ignored", [], "console sign-in through IAM Identity Center"),
    "console_login_web_identity": (
        "ignored",
        [],
        "console sign-in through web identity (OIDC) federation (accounts.google.com)",
    ),
    "console_login_federated_user": (
        "ignored",
        [],
        "console sign-in through a federation broker's GetFederationToken session",
    ),
    "console_login_assumed_role": ("ignored", [], "console sign-in through an assumed-role session"),
    # steps of sign-in flows, not sign-ins
    "check_mfa": ("ignored", [], "CheckMfa is a step of the console sign-in"),
    "identity_center_user_authentication": ("ignored", [], "UserAuthentication is an IAM Identity Center sign-in"),
    "identity_center_credential_verification_failure": (
        "ignored",
        [],
        "CredentialVerification is a step of an IAM Identity Center sign-in",
    ),
}


def test_every_sign_in_sample_has_its_expected_result() -> None:
    signin = {
        path.stem for path in EVENTS_DIR.glob("*.json") if json.loads(path.read_text()).get("source") == "aws.signin"
    }
    assert signin == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_sign_in_shape_is_judged_right(account: AwsContext, make_bot: BotFactory, name: str) -> None:
    # Given the sample account and the deployed functions
    bot = make_bot(SIGNIN_FAILURE_THRESHOLD="1")
    outcome, alerts, reason = SHAPES[name]

    # When the sample arrives
    result = bot(sample(name))

    # Then it is judged as AWS means it: outcome, alerts and the reason
    assert result["outcome"] == outcome
    assert detections(result) == alerts
    assert reason in result["reason"]
    assert [(a.detection.value, a.severity.value, a.resource_name) for a in bot.announcer.alerts] == alerts
    stored = [
        (i["data"]["detection"], i["data"]["severity"], i["data"]["resource_name"]) for i in bot.activity("alert")
    ]
    assert stored == alerts
    if outcome == "ignored":
        # nothing read, stored or announced for what iamguard does not judge
        assert result["findings"] == [] and result["api_calls"] == 0
        assert bot.store.findings() == []
        assert bot.announcer.calls == []


def saml_sign_in_of(user: str, *, saml: bool) -> dict[str, Any]:
    event = sample("console_login_saml_iam_user_type", new_id=True)
    identity = event["detail"]["userIdentity"]
    identity.update({"userName": user, "arn": f"arn:aws:iam::123456789012:user/{user}"})
    if not saml:
        del event["detail"]["additionalEventData"]["SamlProviderArn"]
    return event


def test_a_federated_sign_in_is_not_without_mfa_even_in_enforce_mode(account: AwsContext, make_bot: BotFactory) -> None:
    # Given enforce mode and a SAML sign-in whose record names an IAM user with a password and no MFA
    bot = make_bot(MODE="enforce")

    # When it arrives
    result = bot(saml_sign_in_of("wonjun_admin", saml=True))

    # Then nobody is alerted on or enforced against
    assert (result["outcome"], result["alerts"], result["actions"]) == ("ignored", [], [])
    assert GUARDRAIL not in bot.attached("wonjun_admin")

    # While the same record without the SAML provider is that user's own password sign-in
    own = bot(saml_sign_in_of("wonjun_admin", saml=False))
    assert detections(own) == [("console_sign_in_without_mfa", "high", "wonjun_admin")]
    assert GUARDRAIL in bot.attached("wonjun_admin")


def test_one_sign_in_delivered_under_both_spellings_alerts_once(account: AwsContext, make_bot: BotFactory) -> None:
    bot = make_bot()
    first = bot(sample("console_login_signin_spelling"))
    again = sample("console_login_signin_spelling")
    again["detail-type"] = "AWS Console Sign In via CloudTrail"
    second = bot(again)
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert [alert.detection.value for alert in bot.announcer.alerts] == ["console_sign_in_without_mfa"]
