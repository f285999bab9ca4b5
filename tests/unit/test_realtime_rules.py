"""The event path's pure rules: screening, own-role detection, detections, the enforcement plan (no AWS)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from iamguard.domain.account import AccessKey, InlinePolicy, ManagedPolicyRef, PasswordPolicy
from iamguard.domain.alerts import Detection
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.enforcement.enforcer import (
    ATTACH_GUARDRAIL,
    ATTACH_REQUIRED,
    DETACH_GUARDRAIL,
    Enforcer,
    guardrail_step,
    plan,
)
from iamguard.persistence.findings import GuardrailRecord
from iamguard.realtime.cloudtrail import CloudTrailEvent, parse_event
from iamguard.realtime.detections import (
    Burst,
    Observed,
    UserView,
    admin_access_granted,
    console_sign_in_failures,
    console_sign_in_without_mfa,
    password_policy_weakened,
    root_console_sign_in,
    user_created,
)
from iamguard.realtime.event_map import RULES
from iamguard.realtime.processor import EventResult, own_role, screen
from iamguard.settings import Settings

from tests.conftest import ACCOUNT_ID, load_event
from tests.factories import ADMIN, CHANGE_PASSWORD, DOCUMENTS, NOW, STAR, creds, finding, group, user, with_mfa

GUARDRAIL = f"arn:aws:iam::{ACCOUNT_ID}:policy/iamguard-mfa-guardrail"
ROLE = "arn:aws:iam::123456789012:role/iamguard-OnIamEventFunctionRole-EXAMPLE"
SETTINGS = Settings(guardrail_policy_arn=GUARDRAIL, iamguard_role_arns=(ROLE,))


def event(name: str, **detail: Any) -> CloudTrailEvent:
    raw = copy.deepcopy(load_event(f"{name}.json"))
    raw["detail"].update(detail)
    return parse_event(raw)


# ---------------------------------------------------------------- screening
@pytest.mark.parametrize(
    ("name", "detail", "reason"),
    [
        ("create_user", {}, None),
        ("create_user_access_denied", {}, "the call failed (AccessDenied)"),
        ("get_user_read_only", {}, "GetUser is a read-only call"),
        ("create_user", {"readOnly": True}, "CreateUser is a read-only call"),
        ("create_user", {"eventName": "ListRoles"}, "ListRoles is a read-only call"),
        ("create_user", {"eventName": "CreateRole"}, "CreateRole from iam.amazonaws.com is not an event iamguard acts"),
        ("create_user", {"recipientAccountId": "999999999999"}, "from account 999999999999"),
        ("attach_user_policy_by_iamguard", {}, "caused by iamguard's own role"),
        ("console_login_failure", {"errorCode": "Failed authentication"}, None),
        ("console_login_sso", {}, "console sign-in through IAM Identity Center"),
        ("console_login_user_mfa", {"responseElements": None}, "the sign-in result"),
        ("check_mfa", {}, "CheckMfa is a step of the console sign-in"),
        ("console_login_saml_iam_user_type", {}, "console sign-in through SAML federation"),
        ("identity_center_user_authentication", {}, "UserAuthentication is an IAM Identity Center sign-in"),
        # A successful sign-in never hides the name (AWS hides only names that failed): a corrupt record.
        (
            "console_login_user_no_mfa",
            {
                "userIdentity": {
                    "type": "IAMUser",
                    "accountId": ACCOUNT_ID,
                    "userName": "HIDDEN_DUE_TO_SECURITY_REASONS",
                }
            },
            "a successful IAM user sign-in that names no user",
        ),
        (
            "console_login_user_no_mfa",
            {"userIdentity": {"type": "IAMUser", "accountId": ACCOUNT_ID}},
            "a successful IAM user sign-in that names no user",
        ),
        ("console_login_failure_hidden_user", {}, None),
    ],
)
def test_screen(name: str, detail: dict[str, Any], reason: str | None) -> None:
    parsed = event(name, **detail)
    result = screen(parsed, RULES.get(parsed.detail.event_name), SETTINGS, ACCOUNT_ID)
    if reason is None:
        assert result is None
    else:
        assert result is not None and reason in result


def test_own_role_by_session_issuer_or_assumed_role_arn_only() -> None:
    identity = event("attach_user_policy_by_iamguard").detail.user_identity
    assert own_role(identity, [ROLE]) == ROLE
    without_issuer = identity.model_copy(update={"session_context": None})
    assert own_role(without_issuer, [ROLE]) == ROLE
    assert own_role(identity, ["arn:aws:iam::123456789012:role/SomeoneElse"]) is None
    assert own_role(event("create_user").detail.user_identity, [ROLE]) is None  # root


# ---------------------------------------------------------------- detections (pure)
def view(u: Any, findings: tuple[Finding, ...] = (), groups: dict[str, Any] | None = None) -> UserView:
    return UserView(u, groups or {}, DOCUMENTS, findings)


def test_user_created_severity_follows_the_worst_failed_check() -> None:
    created = event("create_user")
    low_only = Observed(users=(view(user("bob"), (finding("user_mfa", status=Status.FAIL, severity=Severity.LOW),)),))
    serious = Observed(
        users=(view(user("bob"), (finding("user_console_mfa", status=Status.FAIL, severity=Severity.HIGH),)),),
    )
    exempt = Observed(
        users=(view(user("bob"), (finding("user_console_mfa", status=Status.EXEMPT, severity=Severity.HIGH),)),)
    )
    assert [a.severity for a in user_created(created, low_only, SETTINGS)] == [Severity.INFORMATIONAL]
    assert [a.severity for a in user_created(created, serious, SETTINGS)] == [Severity.HIGH]
    assert user_created(created, exempt, SETTINGS)[0].summary.endswith("it passes every check.")


def test_an_inline_star_policy_put_on_a_user_is_admin_granted() -> None:
    put = event(
        "attach_user_policy_admin",
        eventName="PutUserPolicy",
        requestParameters={"userName": "bob", "policyName": "everything"},
    )
    admin = user("bob", inline_policies=(InlinePolicy("everything", STAR),))
    harmless = user("bob", inline_policies=(InlinePolicy("everything", DOCUMENTS[CHANGE_PASSWORD.arn]),))
    assert [a.detection for a in admin_access_granted(put, Observed(users=(view(admin),)), SETTINGS)] == [
        Detection.ADMIN_ACCESS_GRANTED
    ]
    assert admin_access_granted(put, Observed(users=(view(harmless),)), SETTINGS) == []


def test_a_group_grant_counts_only_for_members() -> None:
    join = event("add_user_to_group_admin")
    ops = {"ops": group("ops", ADMIN)}
    member = user("carol_ops", group_names=("ops",))
    outsider = user("carol_ops")
    assert admin_access_granted(join, Observed(users=(view(member, groups=ops),)), SETTINGS)
    assert admin_access_granted(join, Observed(users=(view(outsider, groups=ops),)), SETTINGS) == []


def test_password_policy_weakened_only_below_the_baseline() -> None:
    update = event("update_account_password_policy")
    strong = PasswordPolicy(minimum_length=14, password_reuse_prevention=24)
    assert password_policy_weakened(update, Observed(password_policy=strong), SETTINGS) == []
    [alert] = password_policy_weakened(update, Observed(password_policy=PasswordPolicy()), SETTINGS)
    assert alert.extra["unmet_rules"] == [
        "minimum length is 8, needs at least 14",
        "reuse prevention is 0, needs at least 24",
    ]


def test_root_sign_in_without_a_reported_mfa_flag_is_high() -> None:
    raw = copy.deepcopy(load_event("console_login_root_no_mfa.json"))
    del raw["detail"]["additionalEventData"]["MFAUsed"]
    [alert] = root_console_sign_in(parse_event(raw), Observed(), SETTINGS)
    assert alert.severity is Severity.HIGH and "(MFA use not reported)" in alert.summary


@pytest.mark.parametrize(
    ("name", "alerts"),
    [
        ("console_login_user_no_mfa", 1),
        ("console_login_signin_spelling", 1),
        ("console_login_user_mfa", 0),
        ("console_login_saml_iam_user_type", 0),  # type IAMUser, MFAUsed "No", but a SAML sign-in
        ("console_login_sso", 0),
        ("console_login_failure", 0),
    ],
)
def test_without_mfa_is_an_iam_users_own_password_sign_in_only(name: str, alerts: int) -> None:
    assert len(console_sign_in_without_mfa(event(name), Observed(), SETTINGS)) == alerts


def test_failures_alert_only_when_the_burst_opens() -> None:
    failure = event("console_login_failure")
    window = timedelta(minutes=10)
    assert console_sign_in_failures(failure, Observed(burst=Burst("dave_new", 7, 5, window, False)), SETTINGS) == []
    [alert] = console_sign_in_failures(failure, Observed(burst=Burst("dave_new", 5, 5, window, True)), SETTINGS)
    assert alert.extra == {"failures": 5, "threshold": 5, "window_minutes": 10}
    assert "(ap-southeast-2)" in alert.summary  # the sign-in endpoint's region, not ours


# ---------------------------------------------------------------- enforcement plan
CONSOLE_NO_MFA = user("bob", credentials=creds(password=True))


def test_plan_for_a_console_user_without_mfa() -> None:
    steps = plan(CONSOLE_NO_MFA, {}, SETTINGS)
    assert [(s.action, s.policy_arn) for s in steps] == [(ATTACH_GUARDRAIL, GUARDRAIL)]


@pytest.mark.parametrize(
    ("who", "settings"),
    [
        (with_mfa(CONSOLE_NO_MFA), SETTINGS),
        (user("bob"), SETTINGS),  # no console password
        (CONSOLE_NO_MFA, SETTINGS.model_copy(update={"guardrail_policy_arn": None})),
        (CONSOLE_NO_MFA, SETTINGS.model_copy(update={"exempt_users": frozenset({"bob"})})),
        (replace(CONSOLE_NO_MFA, tags={"iamguard:exempt": "TRUE"}), SETTINGS),
    ],
    ids=["has-mfa", "no-password", "no-guardrail-configured", "exempt-by-setting", "exempt-by-tag"],
)
def test_no_guardrail_step(who: Any, settings: Settings) -> None:
    assert plan(who, {}, settings) == []


def test_plan_attaches_only_missing_required_policies() -> None:
    required = SETTINGS.model_copy(update={"required_policy_arns": (CHANGE_PASSWORD.arn, ADMIN.arn)})
    through_group = replace(with_mfa(CONSOLE_NO_MFA), group_names=("g",))
    steps = plan(through_group, {"g": group("g", CHANGE_PASSWORD)}, required)
    assert [(s.action, s.policy_arn) for s in steps] == [(ATTACH_REQUIRED, ADMIN.arn)]


ACTIVE_KEY = AccessKey(slot=1, active=True, last_rotated=NOW - timedelta(days=3), last_used=None)
GUARDRAIL_REF = ManagedPolicyRef(GUARDRAIL, "iamguard-mfa-guardrail")


def test_no_guardrail_for_a_console_user_with_an_active_access_key() -> None:
    with_key = replace(CONSOLE_NO_MFA, credentials=creds(password=True, keys=(ACTIVE_KEY,)))
    step = guardrail_step(with_key, {}, SETTINGS)
    assert step is not None and (step.action, step.withheld) == (ATTACH_GUARDRAIL, "access_key")
    assert "aws sts get-session-token --serial-number" in step.reason
    # an inactive key signs nothing: the guardrail is attached
    inactive = replace(ACTIVE_KEY, active=False)
    step = guardrail_step(replace(CONSOLE_NO_MFA, credentials=creds(password=True, keys=(inactive,))), {}, SETTINGS)
    assert step is not None and step.withheld is None


def test_the_guardrail_comes_off_once_the_user_has_mfa_and_nothing_else_does() -> None:
    # AdministratorAccess and the guardrail attached directly; the user has MFA now
    guarded = with_mfa(replace(CONSOLE_NO_MFA, attached_policies=(ADMIN, GUARDRAIL_REF)))
    required = SETTINGS.model_copy(update={"required_policy_arns": (ADMIN.arn,)})
    assert [(s.action, s.policy_arn) for s in plan(guarded, {}, required)] == [(DETACH_GUARDRAIL, GUARDRAIL)]
    # a guardrail attached through a group (by someone else) is not iamguard's to detach
    in_group = with_mfa(replace(CONSOLE_NO_MFA, group_names=("g",)))
    assert plan(in_group, {"g": group("g", GUARDRAIL_REF)}, SETTINGS) == []


def test_an_administrators_detach_holds_the_guardrail_back() -> None:
    record = GuardrailRecord("bob", CONSOLE_NO_MFA.user_id, detached_by="root", detached_at=NOW)
    step = guardrail_step(CONSOLE_NO_MFA, {}, SETTINGS, record)
    assert step is not None and step.withheld == "admin_detached"
    assert step.reason.startswith("root detached the MFA guardrail from bob at 2026-06-01 12:00 UTC")


def test_the_grace_period_defers_then_attaches() -> None:
    grace = SETTINGS.model_copy(update={"guardrail_grace_hours": 24})
    step = guardrail_step(CONSOLE_NO_MFA, {}, grace, None, NOW)
    assert step is not None and (step.withheld, step.due_at) == ("grace_period", NOW + timedelta(hours=24))
    started = GuardrailRecord("bob", CONSOLE_NO_MFA.user_id, since=NOW - timedelta(hours=23))
    step = guardrail_step(CONSOLE_NO_MFA, {}, grace, started, NOW)
    assert step is not None and step.due_at == NOW + timedelta(hours=1)
    over = replace(started, since=NOW - timedelta(hours=24))
    step = guardrail_step(CONSOLE_NO_MFA, {}, grace, over, NOW)
    assert step is not None and (step.action, step.withheld) == (ATTACH_GUARDRAIL, None)


def test_settings_read_the_grace_period() -> None:
    assert Settings.from_env({"GUARDRAIL_GRACE_HOURS": "48"}).guardrail_grace_hours == 48
    assert Settings.from_env({}).guardrail_grace_hours == 0
    with pytest.raises(ValueError, match="guardrail_grace_hours"):
        Settings.from_env({"GUARDRAIL_GRACE_HOURS": "-1"})


def stubbed_enforcer(mode: str) -> tuple[Enforcer, Stubber]:
    iam = boto3.client("iam", region_name="us-east-1")
    clock = datetime(2026, 6, 1, tzinfo=UTC)
    return Enforcer(iam, SETTINGS.model_copy(update={"mode": mode}), clock=lambda: clock), Stubber(iam)


def test_enforcer_attaches_exactly_the_planned_policy() -> None:
    enforcer, stub = stubbed_enforcer("enforce")
    stub.add_response("attach_user_policy", {}, {"UserName": "bob", "PolicyArn": GUARDRAIL})
    with stub:
        [action] = enforcer.enforce(CONSOLE_NO_MFA, {}, "event-1")
    stub.assert_no_pending_responses()
    assert (action.performed, action.event_id, action.error) == (True, "event-1", None)


def test_enforcer_in_monitor_mode_calls_nothing() -> None:
    enforcer, stub = stubbed_enforcer("monitor")
    with stub:  # any call would fail: no response is queued
        [action] = enforcer.enforce(CONSOLE_NO_MFA, {}, "event-1")
    assert action.performed is False and "monitor mode" in action.reason


def test_enforcer_detaches_exactly_the_guardrail() -> None:
    enforcer, stub = stubbed_enforcer("enforce")
    guarded = with_mfa(replace(CONSOLE_NO_MFA, attached_policies=(GUARDRAIL_REF,)))
    stub.add_response("detach_user_policy", {}, {"UserName": "bob", "PolicyArn": GUARDRAIL})
    with stub:
        [action] = enforcer.enforce(guarded, {}, "event-1")
    stub.assert_no_pending_responses()
    assert (action.action, action.performed, action.announce) == (DETACH_GUARDRAIL, True, True)


def test_enforcer_records_a_refused_attach_and_raises_on_throttling() -> None:
    enforcer, stub = stubbed_enforcer("enforce")
    stub.add_client_error("attach_user_policy", "LimitExceeded", "Cannot exceed quota for PoliciesPerUser: 10")
    with stub:
        [action] = enforcer.enforce(CONSOLE_NO_MFA, {}, "event-1")
    assert action.performed is False and action.error == "LimitExceeded: Cannot exceed quota for PoliciesPerUser: 10"

    stub.add_client_error("attach_user_policy", "Throttling", "Rate exceeded")
    with stub, pytest.raises(Exception, match="Throttling"):
        enforcer.enforce(CONSOLE_NO_MFA, {}, "event-2")


# ---------------------------------------------------------------- output line
def test_result_line_has_the_replay_shape() -> None:
    [alert] = root_console_sign_in(event("console_login_root_no_mfa"), Observed(), SETTINGS)
    line = EventResult(event_id="e", event_name="ConsoleLogin", outcome="evaluated", reason="r", alerts=[alert]).line()
    assert list(line) == [
        "event_id",
        "event_name",
        "outcome",
        "reason",
        "findings",
        "alerts",
        "actions",
        "duplicate",
        "api_calls",
    ]
    assert line["alerts"] == [
        {
            "detection": "root_console_sign_in",
            "severity": "critical",
            "resource_name": "root",
            "summary": "The root user signed in to the console without MFA from 198.51.100.23 (us-east-1).",
        }
    ]
