"""admin_access_granted for policy versions and permissions boundaries, and their screening (pure, no AWS)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from iamguard.domain.account import ManagedPolicyRef
from iamguard.domain.findings import Change, Status, Transition
from iamguard.realtime.cloudtrail import CloudTrailEvent, parse_event
from iamguard.realtime.detections import Observed, UserView, admin_access_granted
from iamguard.realtime.event_map import RULES
from iamguard.realtime.processor import screen
from iamguard.settings import Settings

from tests.conftest import ACCOUNT_ID, load_event
from tests.factories import ADMIN, DOCUMENTS, READ_ONLY, STAR, finding, group, user

SETTINGS = Settings()
TOOLS = ManagedPolicyRef(f"arn:aws:iam::{ACCOUNT_ID}:policy/deploy-tools", "deploy-tools")
BOUNDARY = ManagedPolicyRef(f"arn:aws:iam::{ACCOUNT_ID}:policy/cap", "cap")


def event(name: str, **detail: Any) -> CloudTrailEvent:
    raw = copy.deepcopy(load_event(f"{name}.json"))
    raw["detail"].update(detail)
    return parse_event(raw)


def stored(status: Status | None) -> tuple[Change, ...]:
    """What the store returned for user_admin_access: the new finding and the one stored before."""
    if status is None:
        return ()
    previous = finding("user_admin_access", "pat", status, detail="before")
    return (Change(previous, previous, Transition.UNCHANGED),)


def seen(u: Any, documents: dict[str, Any], before: Status | None = None, groups: Any = None) -> Observed:
    return Observed(users=(UserView(u, groups or {}, {**DOCUMENTS, **documents}, (), stored(before)),))


NEW_DEFAULT = {"policyArn": TOOLS.arn, "policyDocument": "{}", "setAsDefault": True}


@pytest.mark.parametrize(
    ("before", "alerts"),
    [(None, 1), (Status.PASS, 1), (Status.ERROR, 1), (Status.FAIL, 0), (Status.EXEMPT, 0)],
    ids=["never-judged", "was-not-admin", "unknown", "already-admin", "already-admin-exempt"],
)
def test_a_new_default_version_alerts_only_for_users_it_made_admins(before: Status | None, alerts: int) -> None:
    created = event("create_policy_version_admin", requestParameters=NEW_DEFAULT)
    pat = user("pat", attached_policies=(TOOLS,))
    assert len(admin_access_granted(created, seen(pat, {TOOLS.arn: STAR}, before), SETTINGS)) == alerts


def test_a_new_default_version_that_is_not_admin_or_not_held_does_not_alert() -> None:
    created = event("create_policy_version_admin", requestParameters=NEW_DEFAULT)
    holder = user("pat", attached_policies=(TOOLS,))
    assert admin_access_granted(created, seen(holder, {TOOLS.arn: DOCUMENTS[READ_ONLY.arn]}), SETTINGS) == []
    # An admin through another policy is not made one by this policy's version
    other = user("pat", attached_policies=(ADMIN,))
    assert admin_access_granted(created, seen(other, {TOOLS.arn: STAR}), SETTINGS) == []


def test_a_new_default_version_of_a_group_policy_names_the_group() -> None:
    set_default = event("set_default_policy_version", requestParameters={"policyArn": TOOLS.arn, "versionId": "v1"})
    member = user("pat", group_names=("deployers",))
    groups = {"deployers": group("deployers", TOOLS)}
    [alert] = admin_access_granted(set_default, seen(member, {TOOLS.arn: STAR}, groups=groups), SETTINGS)
    assert alert.summary == (
        "Root made version v1 of policy deploy-tools its default, which gives pat full administrator access "
        "(deploy-tools via group deployers); the user has no MFA device."
    )
    assert alert.related_check_ids == ("user_admin_access", "user_admin_without_mfa")


def test_a_boundary_policy_made_admin_alerts_for_the_user_it_no_longer_caps() -> None:
    created = event("create_policy_version_admin", requestParameters={**NEW_DEFAULT, "policyArn": BOUNDARY.arn})
    capped = user("pat", attached_policies=(ADMIN,), permissions_boundary=BOUNDARY)
    assert len(admin_access_granted(created, seen(capped, {BOUNDARY.arn: STAR}, Status.PASS), SETTINGS)) == 1
    still_capped = seen(capped, {BOUNDARY.arn: DOCUMENTS[READ_ONLY.arn]}, Status.PASS)
    assert admin_access_granted(created, still_capped, SETTINGS) == []


@pytest.mark.parametrize(
    ("name", "boundary_document", "before", "alerts"),
    [
        ("delete_user_permissions_boundary", None, Status.PASS, 1),  # the cap is gone
        ("delete_user_permissions_boundary", None, Status.FAIL, 0),  # it capped nothing
        ("put_user_permissions_boundary", DOCUMENTS[READ_ONLY.arn], Status.FAIL, 0),  # a cap: not admin now
        ("put_user_permissions_boundary", STAR, Status.PASS, 1),  # a boundary that allows everything, replacing a cap
    ],
)
def test_boundary_events_alert_when_they_leave_a_new_admin(
    name: str, boundary_document: dict[str, Any] | None, before: Status, alerts: int
) -> None:
    changed = event(name, requestParameters={"userName": "pat", "permissionsBoundary": BOUNDARY.arn})
    pat = user("pat", attached_policies=(ADMIN,), permissions_boundary=BOUNDARY if boundary_document else None)
    documents = {BOUNDARY.arn: boundary_document} if boundary_document else {}
    assert len(admin_access_granted(changed, seen(pat, documents, before), SETTINGS)) == alerts


def test_attaching_administrator_access_under_a_capping_boundary_is_not_admin_granted() -> None:
    attach = event("attach_user_policy_admin", requestParameters={"userName": "pat", "policyArn": ADMIN.arn})
    capped = user("pat", attached_policies=(ADMIN,), permissions_boundary=BOUNDARY)
    assert admin_access_granted(attach, seen(capped, {BOUNDARY.arn: DOCUMENTS[READ_ONLY.arn]}), SETTINGS) == []
    assert len(admin_access_granted(attach, seen(capped, {BOUNDARY.arn: STAR}), SETTINGS)) == 1


@pytest.mark.parametrize(
    ("request_parameters", "reason"),
    [
        ({"policyArn": TOOLS.arn, "setAsDefault": True}, None),
        ({"policyArn": TOOLS.arn, "setAsDefault": "true"}, None),
        ({"policyArn": TOOLS.arn, "setAsDefault": False}, "without setAsDefault"),
        ({"policyArn": TOOLS.arn}, "without setAsDefault"),
        ({"policyArn": TOOLS.arn, "setAsDefault": {"x": 1}}, "without setAsDefault"),
    ],
)
def test_a_policy_version_counts_only_when_it_becomes_the_default(
    request_parameters: dict[str, Any], reason: str | None
) -> None:
    parsed = event("create_policy_version_admin", requestParameters=request_parameters)
    result = screen(parsed, RULES["CreatePolicyVersion"], SETTINGS, ACCOUNT_ID)
    assert result is None if reason is None else reason in (result or "")


def test_alert_text_takes_only_sane_values_from_the_event() -> None:
    hostile = event(
        "set_default_policy_version",
        requestParameters={"policyArn": TOOLS.arn + "x" * 5000, "versionId": "v1; rm -rf /" + "y" * 5000},
    )
    member = user("pat", attached_policies=(ManagedPolicyRef(TOOLS.arn + "x" * 5000, "deploy-tools"),))
    [alert] = admin_access_granted(hostile, seen(member, {TOOLS.arn + "x" * 5000: STAR}), SETTINGS)
    assert "made another version of policy deploy-tools" in alert.summary
    assert len(alert.summary) < 500
