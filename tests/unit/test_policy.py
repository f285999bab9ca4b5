"""The IAM evaluation behind user_admin_access, user_privilege_escalation and user_admin_without_mfa."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from iamguard.checks import run_checks
from iamguard.domain.account import InlinePolicy, ManagedPolicyRef, PasswordPolicy
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.iam import evaluation as policy
from iamguard.iam.evaluation import ESCALATION_PATHS, Permissions, arn_intersects, arn_only, covers, intersects
from iamguard.settings import Settings

from tests.factories import ADMIN, DOCUMENTS, NOW, READ_ONLY, STAR, creds, group, state, user, with_mfa

ACCOUNT = "123456789012"
POWER_USER = ManagedPolicyRef("arn:aws:iam::aws:policy/PowerUserAccess", "PowerUserAccess")
BOUNDARY = ManagedPolicyRef(f"arn:aws:iam::{ACCOUNT}:policy/dev-boundary", "dev-boundary")
POWER_USER_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole", "iam:ListRoles"], "Resource": "*"},
    ],
}
# The guardrail iamguard attaches: a conditional Deny of (almost) everything.
GUARDRAIL_DENY = {
    "Effect": "Deny",
    "NotAction": ["iam:ChangePassword", "iam:EnableMFADevice", "iam:ListMFADevices"],
    "Resource": "*",
    "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def inline(*statements: dict[str, Any], name: str = "p") -> InlinePolicy:
    return InlinePolicy(name, doc(*statements))


def findings_for(u: Any, *, documents: dict[str, Any] | None = None, **fields: Any) -> dict[str, Finding]:
    docs = {**DOCUMENTS, POWER_USER.arn: POWER_USER_DOCUMENT, **(documents or {})}
    found = run_checks(state(u, policy_documents=docs, **fields), Settings(), NOW)
    return {f.check_id: f for f in found if f.resource_type == "user"}


def perms(u: Any, documents: dict[str, Any] | None = None, groups: dict[str, Any] | None = None) -> Permissions:
    return Permissions(u, groups or {}, {**DOCUMENTS, **(documents or {})})


# -- wildcards -----------------------------------------------------------------------------------
def test_wildcard_intersection_and_cover() -> None:
    assert intersects("arn:aws:iam::*:user/dev-*", f"arn:aws:iam::{ACCOUNT}:user/*")
    assert not arn_intersects("arn:aws:iam::*:role/*", f"arn:aws:iam::{ACCOUNT}:user/*")
    assert intersects("arn:aws:iam::*:role/*", f"arn:aws:iam::{ACCOUNT}:user/*")  # as plain text, the * spans ":"
    assert not arn_intersects("arn:aws:iam", "*") and arn_intersects("arn:aws:iam::*", f"arn:aws:iam::{ACCOUNT}:user/*")
    assert arn_only("arn:aws:iam::*:user/esc", f"arn:aws:iam::{ACCOUNT}:user/*", f"arn:aws:iam::{ACCOUNT}:user/esc")
    assert not arn_only("arn:aws:iam::*:user/e*", f"arn:aws:iam::{ACCOUNT}:user/*", f"arn:aws:iam::{ACCOUNT}:user/esc")
    assert intersects("IAM:Create*", "iam:createpolicyversion", ignore_case=True)
    assert not intersects("abc", "abd") and intersects("a?c", "a*")
    assert covers("arn:aws:iam::*:user/*", f"arn:aws:iam::{ACCOUNT}:user/*")
    assert not covers("arn:aws:iam::*:user/admin-*", f"arn:aws:iam::{ACCOUNT}:user/*")
    assert covers("arn:aws:iam::*:user/a*", f"arn:aws:iam::{ACCOUNT}:user/alice")
    assert not covers("iam:Create*", "iam:*") and covers("*", "iam:*")
    # IAM has no character classes: [ is a plain character
    assert covers("arn:aws:s3:::[x]", "arn:aws:s3:::[x]") and not covers("arn:aws:s3:::[x]", "arn:aws:s3:::x")


# -- admin -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("statement", "admin"),
    [
        (allow("*"), True),
        (allow(["s3:*", "*"], ["arn:aws:s3:::x", "*"]), True),
        (allow("*", "arn:aws:s3:::bucket/*"), False),
        (allow("iam:*"), False),
        ({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "*"}, True),
        ({"Effect": "Allow", "NotAction": "s3:*", "Resource": "arn:aws:s3:::b"}, False),
        ({"Effect": "Allow", "NotAction": "*", "Resource": "*"}, False),  # excludes everything: allows nothing
        ({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::secrets/*"}, True),  # as Prowler
        (allow("*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}), True),  # a condition can be met
        ({"Effect": "allow", "Action": "*", "Resource": "*"}, True),
        ({"Action": "*", "Resource": "*"}, False),  # no Effect: not a statement
        ({"Effect": "Allow", "Action": 42, "Resource": {"x": 1}}, False),  # malformed: ignored, never raised
    ],
)
def test_an_allow_of_everything_is_admin(statement: dict[str, Any], admin: bool) -> None:
    verdict = perms(user("u", inline_policies=(inline(statement),))).admin()
    assert verdict.is_admin is admin


def test_any_notaction_on_everything_is_admin_and_the_detail_says_what_it_leaves_out() -> None:
    finding = findings_for(user("pu", attached_policies=(POWER_USER,)))["user_admin_access"]
    assert finding.status is Status.FAIL
    assert finding.detail == (
        "User pu has full administrator access: PowerUserAccess (attached directly), which allows every "
        "action except iam:*, organizations:*, account:*."
    )


def test_an_unconditional_deny_of_everything_takes_admin_away() -> None:
    lockdown = inline(deny("*"), name="lockdown")
    u = user("frozen", attached_policies=(ADMIN,), inline_policies=(lockdown,))
    found = findings_for(u)
    assert found["user_admin_access"].status is Status.PASS
    assert found["user_admin_access"].detail == (
        "User frozen is not an administrator: AdministratorAccess (attached directly) would allow everything, "
        "but inline policy lockdown denies every action without a condition."
    )
    assert found["user_admin_without_mfa"].status is Status.PASS
    # A Deny of everything but a few actions (NotAction) leaves no admin either.
    only_reads = inline({"Effect": "Deny", "NotAction": ["s3:Get*"], "Resource": "*"})
    assert not perms(user("r", attached_policies=(ADMIN,), inline_policies=(only_reads,))).admin().is_admin


@pytest.mark.parametrize(
    "statement",
    [
        deny("*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),  # applies only to some requests
        GUARDRAIL_DENY,  # iamguard's own guardrail: lifted by signing in with MFA
        deny("s3:*"),  # a partial deny: still an administrator of everything else
        deny("*", "arn:aws:s3:::prod/*"),
    ],
)
def test_a_conditional_or_partial_deny_leaves_admin(statement: dict[str, Any]) -> None:
    u = user("a", attached_policies=(ADMIN,), inline_policies=(inline(statement),))
    assert perms(u).admin().is_admin


@pytest.mark.parametrize(
    ("boundary_document", "admin"),
    [
        (DOCUMENTS[READ_ONLY.arn], False),
        (STAR, True),
        (POWER_USER_DOCUMENT, True),  # a NotAction boundary is admin by the same rule
        (doc(allow("*"), deny("*")), False),
        ({}, False),  # an unreadable boundary allows nothing
    ],
)
def test_a_permissions_boundary_caps_admin(boundary_document: dict[str, Any], admin: bool) -> None:
    u = user("b", attached_policies=(ADMIN,), permissions_boundary=BOUNDARY)
    verdict = perms(u, {BOUNDARY.arn: boundary_document}).admin()
    assert verdict.is_admin is admin
    assert verdict.capped_by == (None if admin else "dev-boundary")


def test_a_capped_admin_is_not_admin_and_the_detail_names_the_boundary() -> None:
    u = user("capped", group_names=("admins",), permissions_boundary=BOUNDARY)
    found = findings_for(
        u, documents={BOUNDARY.arn: DOCUMENTS[READ_ONLY.arn]}, groups={"admins": group("admins", ADMIN)}
    )
    assert found["user_admin_access"].status is Status.PASS
    assert found["user_admin_access"].detail == (
        "User capped is not an administrator: AdministratorAccess via group admins would allow everything, "
        "but its permissions boundary dev-boundary does not."
    )
    assert found["user_admin_without_mfa"].status is Status.PASS


def test_admin_reads_the_document_it_is_given_for_each_managed_policy() -> None:
    # Inventory supplies each managed policy by its default version; an old permissive version does not count.
    custom = ManagedPolicyRef(f"arn:aws:iam::{ACCOUNT}:policy/custom", "custom")
    u = user("c", attached_policies=(custom,))
    assert not perms(u, {custom.arn: doc(allow("s3:GetObject"))}).admin().is_admin
    assert perms(u, {custom.arn: STAR}).admin().is_admin
    assert not perms(u, {}).admin().is_admin  # a document that could not be read allows nothing


# -- full IAM (iam:* on *) -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("statements", "full"),
    [
        ([allow("iam:*")], True),
        ([allow("IAM:*")], True),
        ([{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}], True),
        ([allow("iam:Create*")], False),
        ([allow("iam:*", "arn:aws:iam::*:user/*")], False),
        ([{"Effect": "Allow", "NotAction": "iam:PassRole", "Resource": "*"}], False),
        ([allow("iam:*"), deny("iam:DeleteRole")], False),
        ([allow("iam:*"), deny("iam:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}})], True),
    ],
)
def test_full_iam_access(statements: list[dict[str, Any]], full: bool) -> None:
    assert bool(perms(user("i", inline_policies=(inline(*statements),))).full_iam()) is full


def test_full_iam_access_counts_as_admin_for_admin_without_mfa() -> None:
    u = user("iam_boss", inline_policies=(inline(allow("iam:*"), name="iam-all"),))
    found = findings_for(u)
    assert found["user_admin_access"].status is Status.PASS
    assert found["user_admin_without_mfa"].status is Status.FAIL
    assert found["user_admin_without_mfa"].detail == (
        "User iam_boss has full IAM access (iam:* on *, admin-equivalent) but no MFA device."
    )
    escalation = found["user_privilege_escalation"]
    assert escalation.status is Status.FAIL and escalation.severity is Severity.HIGH
    assert escalation.detail.startswith(
        "User iam_boss can make itself an administrator: iam:* on * (full IAM access, admin-equivalent), "
        "allowed by inline policy iam-all; "
    )
    assert findings_for(with_mfa(u))["user_admin_without_mfa"].status is Status.PASS


# -- privilege escalation -------------------------------------------------------------------------
RESOURCE_FOR = {
    "self": f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
    "own_groups": f"arn:aws:iam::{ACCOUNT}:group/devs",
    "any_group": f"arn:aws:iam::{ACCOUNT}:group/*",
    "other_users": f"arn:aws:iam::{ACCOUNT}:user/*",
    "roles": f"arn:aws:iam::{ACCOUNT}:role/*",
    "policies": f"arn:aws:iam::{ACCOUNT}:policy/*",
    "any": "*",
}


def path_policy(path: policy.EscalationPath) -> InlinePolicy:
    return inline(*(allow(step.action, RESOURCE_FOR[step.on]) for step in path.steps), name="grants")


@pytest.mark.parametrize("path", ESCALATION_PATHS, ids=lambda p: p.describe())
def test_each_escalation_path_fails_and_is_named(path: policy.EscalationPath) -> None:
    u = user("esc", inline_policies=(path_policy(path),), group_names=("devs",))
    finding = findings_for(u, groups={"devs": group("devs")})["user_privilege_escalation"]
    assert finding.status is Status.FAIL
    assert finding.detail.startswith(
        f"User esc can make itself an administrator: {path.describe()} ({path.how}), allowed by inline policy grants"
    )
    # Each step is needed: without its last action the path is gone.
    if len(path.steps) > 1:
        partial = inline(*(allow(s.action, RESOURCE_FOR[s.on]) for s in path.steps[:-1]))
        assert not Permissions(replace(u, inline_policies=(partial,)), {"devs": group("devs")}, DOCUMENTS).escalations()


@pytest.mark.parametrize(
    ("statements", "escalates"),
    [
        # Self-service credentials are not escalation; the same action on others is.
        ([allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}")], False),
        ([allow("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/ci-*")], True),
        ([allow("iam:UpdateLoginProfile", f"arn:aws:iam::{ACCOUNT}:user/esc")], False),
        # Changing other users' policies alone gives the user nothing (no way to act as them).
        ([allow("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/bob")], False),
        ([allow("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/*")], True),
        # Another group's policies: not its own.
        ([allow("iam:PutGroupPolicy", f"arn:aws:iam::{ACCOUNT}:group/ops")], False),
        # AWS managed policies cannot be rewritten by anyone but AWS.
        ([allow("iam:CreatePolicyVersion", "arn:aws:iam::aws:policy/*")], False),
        # PassRole needs a compute service that runs the role.
        ([allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/*")], False),
        ([allow(["iam:PassRole", "lambda:CreateFunction"], "*")], False),
        ([allow(["iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction"], "*")], True),
        ([allow(["iam:PassRole", "ec2:RunInstances"], "*"), deny("iam:PassRole")], False),
        ([allow(["iam:PassRole", "ec2:RunInstances"], "*"), deny("iam:PassRole", "arn:aws:iam::*:role/admin-*")], True),
        ([allow(["iam:Pass*", "EC2:Run*"])], True),  # wildcards and case
        ([{"Effect": "Allow", "NotAction": ["iam:*", "ec2:*"], "Resource": "*"}], False),  # no IAM action at all
        ([allow("iam:Get*"), allow("iam:List*")], False),
        ([{"Effect": "Allow", "Action": "iam:CreatePolicyVersion", "NotResource": "arn:aws:iam::*:policy/x"}], True),
        (
            [
                allow("iam:CreatePolicyVersion"),
                deny("iam:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}}),
            ],
            True,
        ),
    ],
)
def test_escalation_follows_resources_and_deny(statements: list[dict[str, Any]], escalates: bool) -> None:
    u = user("esc", inline_policies=(inline(*statements),), group_names=("devs",))
    assert bool(Permissions(u, {"devs": group("devs")}, DOCUMENTS).escalations()) is escalates


def test_a_notaction_power_user_is_reported_as_admin_not_as_escalation() -> None:
    found = findings_for(user("pu", attached_policies=(POWER_USER,)))
    assert found["user_admin_access"].status is Status.FAIL
    assert found["user_privilege_escalation"].status is Status.PASS
    assert found["user_privilege_escalation"].detail == (
        "User pu already has full administrator access (user_admin_access reports it)."
    )


def test_a_boundary_caps_changes_to_the_users_own_policies_but_not_paths_through_others() -> None:
    # Given a user allowed to attach policies to itself and to create keys for others,
    # and a boundary that allows the same (but not everything)
    grants = inline(
        allow("iam:AttachUserPolicy", "arn:aws:iam::*:user/${aws:username}"),
        allow("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/*"),
    )
    boundary = doc(allow(["iam:AttachUserPolicy", "iam:CreateAccessKey", "s3:*"]))
    u = user("bounded", inline_policies=(grants,), permissions_boundary=BOUNDARY)
    found = [e.describe() for e in perms(u, {BOUNDARY.arn: boundary}).escalations()]
    # Then attaching to itself gains nothing beyond the boundary; a key for another user escapes it
    assert found == ["iam:CreateAccessKey on other users (create an access key for another user)"]
    # And a boundary that does not allow the action stops it altogether
    tight = doc(allow("s3:*"))
    assert perms(u, {BOUNDARY.arn: tight}).escalations() == []


def test_removing_its_own_boundary_is_an_escalation_when_what_is_left_is_admin() -> None:
    removal = allow(["iam:DeleteUserPermissionsBoundary"], "arn:aws:iam::*:user/${aws:username}")
    u = user("b", attached_policies=(ADMIN,), permissions_boundary=BOUNDARY)
    boundary = doc(allow(["s3:*", "iam:DeleteUserPermissionsBoundary"]))
    found = findings_for(
        replace(u, inline_policies=(inline(removal, name="self-service"),)), documents={BOUNDARY.arn: boundary}
    )
    assert found["user_admin_access"].status is Status.PASS
    escalation = found["user_privilege_escalation"]
    assert escalation.status is Status.FAIL
    assert escalation.detail == (
        "User b can make itself an administrator: iam:DeleteUserPermissionsBoundary on itself (remove its own "
        "permissions boundary, which leaves full administrator access), allowed by AdministratorAccess (attached "
        "directly), inline policy self-service."
    )
    # The boundary itself does not allow removing it: no escalation.
    assert findings_for(u, documents={BOUNDARY.arn: doc(allow("s3:*"))})["user_privilege_escalation"].status is (
        Status.PASS
    )


def test_many_paths_are_summarised() -> None:
    u = user("many", inline_policies=(inline(allow(["iam:Create*", "iam:Attach*", "iam:Put*"])),))
    detail = findings_for(u)["user_privilege_escalation"].detail
    assert detail.count("allowed by") == 3 and detail.endswith(" more.")
    assert "iam:CreatePolicyVersion on customer managed policies" in detail


def test_no_escalation_for_ordinary_users() -> None:
    for u in (user("plain"), user("reader", attached_policies=(READ_ONLY,))):
        finding = findings_for(u)["user_privilege_escalation"]
        assert finding.status is Status.PASS
        assert finding.detail == f"User {u.name} has no known way to make itself an administrator."


# -- ChangePassword --------------------------------------------------------------------------------
def test_a_boundary_without_change_password_locks_a_reset_user_out() -> None:
    locked = user(
        "new",
        credentials=creds(password=True),
        password_reset_required=True,
        attached_policies=(ADMIN,),
        permissions_boundary=BOUNDARY,
    )
    no_setting = PasswordPolicy(minimum_length=14, password_reuse_prevention=24)
    found = findings_for(locked, documents={BOUNDARY.arn: doc(allow("s3:*"))}, password_policy=no_setting)
    assert found["user_password_reset_possible"].status is Status.FAIL
    allowed = doc(allow(["s3:*", "iam:ChangePassword"]))
    found = findings_for(locked, documents={BOUNDARY.arn: allowed}, password_policy=no_setting)
    assert found["user_password_reset_possible"].status is Status.PASS
