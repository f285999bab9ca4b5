"""CloudTrail event models and the declarative event map (pure: no AWS)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from iamguard.checks import CATALOG
from iamguard.domain.alerts import Detection
from iamguard.realtime.cloudtrail import parse_event
from iamguard.realtime.event_map import (
    ROOT_CHECKS,
    RULES,
    USER_CHECKS,
    Subject,
    SubjectError,
    event_patterns,
    locate_subject,
    rule_for,
    subject_of_arn,
)
from iamguard.settings import ConfigError, Settings
from pydantic import ValidationError

from tests.conftest import ACCOUNT_ID, EVENTS_DIR, load_event

SAMPLES = sorted(
    path.name
    for path in EVENTS_DIR.glob("*.json")
    if json.loads(path.read_text()).get("source") in {"aws.iam", "aws.signin", "aws.sts"}
)


def event(name: str, **detail: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load_event(name))
    raw["detail"].update(detail)
    return raw


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_parses(name: str) -> None:
    parsed = parse_event(load_event(name))
    assert parsed.account_id == ACCOUNT_ID
    assert parsed.detail.event_id == load_event(name)["detail"]["eventID"]


def test_fields_keep_their_cloudtrail_names() -> None:
    parsed = parse_event(load_event("create_access_key_root_for_user.json"))
    detail = parsed.detail
    assert detail.event_source == "iam.amazonaws.com"
    assert detail.source_ip_address == "203.0.113.10"
    assert detail.request("userName") == "bob_ci"
    assert detail.request("missing") is None
    assert detail.user_identity.type == "Root" and detail.user_identity.readable == "root"


@pytest.mark.parametrize(
    ("value", "expected"), [("Yes", True), ("YES", True), ("yes", True), ("No", False), ("NO", False), ("maybe", None)]
)
def test_mfa_used_in_every_spelling(value: str, expected: bool | None) -> None:
    raw = event("console_login_user_no_mfa.json")
    raw["detail"]["additionalEventData"]["MFAUsed"] = value
    assert parse_event(raw).detail.mfa_used is expected


def test_mfa_used_absent_is_unknown() -> None:
    assert parse_event(event("check_mfa.json")).detail.mfa_used is None


def test_readable_identities() -> None:
    assert parse_event(load_event("create_login_profile.json")).detail.user_identity.readable == "root"
    assert parse_event(load_event("add_user_to_group_admin.json")).detail.user_identity.readable == "IAM user alice"
    role = parse_event(load_event("attach_user_policy_by_iamguard.json")).detail.user_identity.readable
    assert role == ("role iamguard-OnIamEventFunctionRole-EXAMPLE (session iamguard-OnIamEventFunction-Ab12Cd34)")


@pytest.mark.parametrize(
    "broken",
    [
        {"eventName": "x" * 300},
        {"eventID": ""},
        {"eventTime": "not a time"},
        {"requestParameters": "userName=bob"},
        {"userIdentity": None},
    ],
)
def test_malformed_details_do_not_parse(broken: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_event(event("create_user.json", **broken))


@pytest.mark.parametrize("not_an_object", [None, [], "CreateUser", 42])
def test_non_objects_do_not_parse(not_an_object: Any) -> None:
    with pytest.raises(TypeError, match="an EventBridge event is a JSON object"):
        parse_event(not_an_object)


def test_unknown_detail_types_do_not_parse() -> None:
    raw = load_event("create_user.json") | {"detail-type": "Object Created"}
    with pytest.raises(ValidationError):
        parse_event(raw)


@pytest.mark.parametrize(
    "detail_type",
    ["AWS Console Sign In via CloudTrail", "AWS Console Signin via CloudTrail", "AWS Service Event via CloudTrail"],
)
def test_every_documented_sign_in_detail_type_parses(detail_type: str) -> None:
    raw = load_event("console_login_user_no_mfa.json") | {"detail-type": detail_type}
    assert parse_event(raw).detail_type == detail_type


# ---------------------------------------------------------------- federated sign-ins
SAML = "SAML federation (arn:aws:iam::123456789012:saml-provider/Okta)"


@pytest.mark.parametrize(
    ("name", "federation"),
    [
        ("console_login_user_no_mfa.json", None),
        ("console_login_user_security_key.json", None),
        ("console_login_root_no_mfa.json", None),
        ("console_login_failure_hidden_user.json", None),
        ("console_login_saml.json", SAML),
        ("console_login_saml_iam_user_type.json", SAML),  # userIdentity.type says IAMUser
        ("console_login_sso.json", "IAM Identity Center"),
        ("identity_center_user_authentication.json", "IAM Identity Center"),
        ("console_login_web_identity.json", "web identity (OIDC) federation (accounts.google.com)"),
        ("console_login_federated_user.json", "a federation broker's GetFederationToken session"),
        ("console_login_assumed_role.json", "an assumed-role session (a federation broker through"),
    ],
)
def test_federation_of_each_sign_in_shape(name: str, federation: str | None) -> None:
    found = parse_event(load_event(name)).detail.federation
    assert found == federation if federation is None else found is not None and found.startswith(federation)


@pytest.mark.parametrize(
    ("identity", "federation"),
    [
        (
            {"type": "WebIdentityUser", "userName": "u", "identityProvider": "accounts.google.com"},
            "web identity (OIDC) federation (accounts.google.com)",
        ),
        (
            {"type": "SAMLUser", "userName": "u", "identityProvider": "Okta"},
            "SAML federation (Okta)",
        ),
        ({"type": "Unknown", "accountId": "123456789012"}, "an identity of type Unknown"),
        ({"type": "AWSService", "invokedBy": "sso.amazonaws.com"}, "an identity of type AWSService"),
        (
            {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0a1b/minji"},
            "IAM Identity Center",
        ),
    ],
)
def test_federation_of_other_identity_types(identity: dict[str, Any], federation: str) -> None:
    assert parse_event(event("console_login_user_no_mfa.json", userIdentity=identity)).detail.federation == federation


def test_a_root_record_is_roots_whatever_else_it_carries() -> None:
    raw = event("console_login_root_no_mfa.json")
    raw["detail"]["additionalEventData"]["SamlProviderArn"] = "arn:aws:iam::123456789012:saml-provider/Okta"
    assert parse_event(raw).detail.federation is None


def test_a_saml_provider_is_read_only_when_it_is_a_string() -> None:
    raw = event("console_login_user_no_mfa.json")
    raw["detail"]["additionalEventData"]["SamlProviderArn"] = {"not": "a string"}
    assert parse_event(raw).detail.federation is None
    raw["detail"]["additionalEventData"]["SamlProviderArn"] = "arn:aws:iam::123456789012:saml-provider/" + "x" * 5000
    federation = parse_event(raw).detail.federation
    assert federation is not None and len(federation) < 300


# ---------------------------------------------------------------- the event map
def test_every_rule_names_real_checks_and_detections() -> None:
    for rule in RULES.values():
        assert rule.checks or rule.detections, rule.event_name
        assert set(rule.checks) <= set(CATALOG), rule.event_name
    # The one alert-only row: a root session opened on a member account names nothing here to re-read
    assert [rule.event_name for rule in RULES.values() if not rule.checks] == ["AssumeRoot"]
    raised = {detection for rule in RULES.values() for detection in rule.detections}
    assert raised == set(Detection)  # every row of the detection table has an event that raises it


def test_user_and_root_check_groups() -> None:
    assert {CATALOG[c].scope for c in USER_CHECKS} == {"user"}
    assert {CATALOG[c].scope for c in ROOT_CHECKS} == {"root"}
    # root checks that need the credential report cannot run on the event path
    assert all(not CATALOG[c].needs for c in ROOT_CHECKS)


def test_patterns_cover_exactly_the_mapped_events() -> None:
    patterns = event_patterns()
    assert set(patterns) == {"on_iam_event", "on_signin_event"}
    names = [name for pattern in patterns.values() for name in pattern["detail"]["eventName"]]
    assert sorted(names) == sorted(RULES)
    assert patterns["on_iam_event"]["source"] == ["aws.iam", "aws.sts"]
    assert patterns["on_iam_event"]["detail"]["eventSource"] == ["iam.amazonaws.com", "sts.amazonaws.com"]
    assert patterns["on_iam_event"]["detail"]["errorCode"] == [{"exists": False}]
    assert patterns["on_signin_event"] == {
        "source": ["aws.signin"],
        # Both spellings AWS documents: CloudTrail's records and the EventBridge User Guide's.
        "detail-type": ["AWS Console Sign In via CloudTrail", "AWS Console Signin via CloudTrail"],
        "detail": {"eventSource": ["signin.amazonaws.com"], "eventName": ["ConsoleLogin"]},
    }


def test_rule_for_needs_the_name_and_the_source() -> None:
    assert rule_for(parse_event(load_event("create_user.json"))) is RULES["CreateUser"]
    wrong_source = event("create_user.json", eventSource="signin.amazonaws.com")
    assert rule_for(parse_event(wrong_source)) is None


# ---------------------------------------------------------------- finding the subject
def subject(name: str, **detail: Any) -> Subject | None:
    parsed = parse_event(event(name, **detail))
    rule = RULES[parsed.detail.event_name]
    return locate_subject(parsed, rule)


def test_subjects_of_the_samples() -> None:
    assert subject("create_user.json") == Subject("user", "wonjun_admin")
    assert subject("add_user_to_group_admin.json") == Subject("user", "carol_ops")
    assert subject("deactivate_mfa_device_root.json") == Subject("root", "root")
    assert subject("create_access_key_root.json") == Subject("root", "root")
    assert subject("create_access_key_root_for_user.json") == Subject("user", "bob_ci")
    assert subject("update_account_password_policy.json") == Subject("account", ACCOUNT_ID)
    assert subject("console_login_user_no_mfa.json") == Subject("user", "wonjun_admin")
    assert subject("console_login_root_no_mfa.json") == Subject("root", "root")


def device_subject(name: str, owners: dict[str, Subject], **detail: Any) -> Subject | None:
    parsed = parse_event(event(name, **detail))
    return locate_subject(parsed, RULES[parsed.detail.event_name], device_owner=owners.get)


def test_root_acting_without_a_user_name_is_roots_own_device_whatever_its_name() -> None:
    # Given root's virtual device named "my-phone", and root's FIDO key (u2f serial)
    for serial in (f"arn:aws:iam::{ACCOUNT_ID}:mfa/my-phone", f"arn:aws:iam::{ACCOUNT_ID}:u2f/root/key-ABC123"):
        for name in ("DeactivateMFADevice", "DeleteVirtualMFADevice", "EnableMFADevice", "ResyncMFADevice"):
            # Then the subject is root, never a user named after the device
            found = subject(
                "deactivate_mfa_device_root.json", eventName=name, requestParameters={"serialNumber": serial}
            )
            assert found == Subject("root", "root"), (name, serial)
    # And the name the local trail and some tools give root where a user name is required means root too
    named = {"userName": "<root_account>", "serialNumber": f"arn:aws:iam::{ACCOUNT_ID}:mfa/x"}
    assert subject("deactivate_mfa_device_root.json", requestParameters=named) == Subject("root", "root")
    assert subject("deactivate_mfa_device_root_custom_name.json") == Subject("root", "root")


def test_a_device_named_after_a_user_is_not_that_users_device() -> None:
    # Given an administrator (a role session) deleting a device named "mina_dev" that IAM says is nobody's
    role = load_event("attach_user_policy_by_iamguard.json")["detail"]["userIdentity"] | {
        "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Admin/ops",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/Admin"}},
    }
    serial = f"arn:aws:iam::{ACCOUNT_ID}:mfa/mina_dev"
    delete = {
        "eventName": "DeleteVirtualMFADevice",
        "userIdentity": role,
        "requestParameters": {"serialNumber": serial},
    }
    # Then nobody is guessed from the name
    assert device_subject("deactivate_mfa_device.json", {}, **delete) is None
    # And when IAM says the device is assigned (to root, here), that owner is the subject
    assert device_subject("deactivate_mfa_device.json", {serial: Subject("root", "root")}, **delete) == Subject(
        "root", "root"
    )


def test_an_iam_user_deleting_a_device_is_not_its_owner() -> None:
    # DeleteVirtualMFADevice needs the device deactivated first: the caller may be any administrator
    serial = f"arn:aws:iam::{ACCOUNT_ID}:mfa/old-phone"
    delete = {"eventName": "DeleteVirtualMFADevice", "requestParameters": {"serialNumber": serial}}
    assert device_subject("deactivate_mfa_device.json", {}, **delete) is None
    owners = {serial: Subject("user", "bob_ci")}
    assert device_subject("deactivate_mfa_device.json", owners, **delete) == Subject("user", "bob_ci")


def test_a_deactivation_without_user_name_is_the_callers_own_device() -> None:
    # IAM takes the user from the caller's credentials when the request names none
    assert subject("deactivate_mfa_device.json", requestParameters={"serialNumber": "GAKT000ABC"}) == Subject(
        "user", "alice"
    )
    fido = f"arn:aws:iam::{ACCOUNT_ID}:u2f/user/alice/yubikey-EXAMPLE"
    assert subject("deactivate_mfa_device.json", requestParameters={"serialNumber": fido}) == Subject("user", "alice")


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (f"arn:aws:iam::{ACCOUNT_ID}:root", Subject("root", "root")),
        (f"arn:aws:iam::{ACCOUNT_ID}:user/mina_dev", Subject("user", "mina_dev")),
        (f"arn:aws:iam::{ACCOUNT_ID}:user/division/team/mina_dev", Subject("user", "mina_dev")),
        (f"arn:aws:iam::{ACCOUNT_ID}:role/Admin", None),
        ("", None),
    ],
)
def test_device_owners_are_read_from_their_arn(arn: str, expected: Subject | None) -> None:
    assert subject_of_arn(arn) == expected


@pytest.mark.parametrize("serial", [{"a": 1}, "short", "x" * 300])
def test_serial_numbers_no_device_can_have_are_refused(serial: Any) -> None:
    with pytest.raises(SubjectError, match="serialNumber"):
        device_subject(
            "deactivate_mfa_device.json",
            {},
            eventName="DeleteVirtualMFADevice",
            userIdentity={"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/A/s"},
            requestParameters={"serialNumber": serial},
        )


def test_assume_root_names_the_member_account() -> None:
    assert subject("assume_root.json") == Subject("account", "111122223333")
    arn = {"targetPrincipal": "arn:aws:iam::444455556666:root", "taskPolicyArn": {"arn": "x"}}
    assert subject("assume_root.json", requestParameters=arn) == Subject("account", "444455556666")
    for target in ("../etc", "12345", None, {"a": 1}):
        with pytest.raises(SubjectError, match="targetPrincipal"):
            subject("assume_root.json", requestParameters={"targetPrincipal": target})


def test_group_events_name_the_group() -> None:
    attach = {"eventName": "AttachGroupPolicy", "requestParameters": {"groupName": "ops", "policyArn": "arn:x"}}
    assert subject("attach_user_policy_admin.json", **attach) == Subject("group", "ops")


def test_a_role_session_is_nobody_iamguard_evaluates() -> None:
    raw = event("create_access_key_root.json")
    raw["detail"]["userIdentity"] = load_event("attach_user_policy_by_iamguard.json")["detail"]["userIdentity"]
    parsed = parse_event(raw)
    assert locate_subject(parsed, RULES["CreateAccessKey"]) is None


@pytest.mark.parametrize("name", ["../etc", "a" * 200, "", "bob smith", 7])
def test_names_no_iam_user_can_have_are_refused(name: Any) -> None:
    with pytest.raises(SubjectError, match="is not a valid IAM name"):
        subject("create_user.json", requestParameters={"userName": name})


# ---------------------------------------------------------------- settings
def test_event_path_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "GUARDRAIL_POLICY_ARN": f"arn:aws:iam::{ACCOUNT_ID}:policy/g",
            "IAMGUARD_ROLE_ARNS": f"arn:aws:iam::{ACCOUNT_ID}:role/a, arn:aws:iam::{ACCOUNT_ID}:role/b",
            "IDEMPOTENCY_TABLE": "idem",
            "SIGNIN_FAILURE_THRESHOLD": "3",
            "SIGNIN_FAILURE_WINDOW_MINUTES": "15",
        }
    )
    assert settings.guardrail_policy_arn == f"arn:aws:iam::{ACCOUNT_ID}:policy/g"
    assert settings.iamguard_role_arns == (f"arn:aws:iam::{ACCOUNT_ID}:role/a", f"arn:aws:iam::{ACCOUNT_ID}:role/b")
    assert (settings.idempotency_table, settings.signin_failure_threshold) == ("idem", 3)
    assert settings.signin_failure_window_minutes == 15
    defaults = Settings.from_env({})
    assert (defaults.signin_failure_threshold, defaults.signin_failure_window_minutes) == (5, 10)
    assert defaults.guardrail_policy_arn is None and defaults.iamguard_role_arns == ()


@pytest.mark.parametrize(
    "env",
    [
        {"IAMGUARD_ROLE_ARNS": "arn:aws:iam::123456789012:user/not-a-role"},
        {"GUARDRAIL_POLICY_ARN": "guardrail"},
        {"SIGNIN_FAILURE_THRESHOLD": "0"},
        {"SIGNIN_FAILURE_WINDOW_MINUTES": "soon"},
    ],
)
def test_invalid_event_path_settings_fail_at_cold_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)
