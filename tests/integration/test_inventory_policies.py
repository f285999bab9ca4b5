"""What the inventory reads for policy evaluation: default versions and permissions boundaries, in bulk and live."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from botocore.stub import Stubber
from iamguard.audit.run import run_audit
from iamguard.aws import AwsContext
from iamguard.domain.account import ManagedPolicyRef
from iamguard.domain.findings import Status
from iamguard.iam.evaluation import admin_verdict
from iamguard.iam.inventory import Inventory
from iamguard.settings import Settings

NO_WAIT: dict[str, Any] = {"sleep": lambda _s: None}
ACCOUNT = "123456789012"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
NARROW = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


def test_managed_policies_are_read_by_their_default_version(aws: AwsContext) -> None:
    # Given a policy whose first version allows everything and whose default (v2) is narrow
    iam = aws.iam()
    arn = iam.create_policy(PolicyName="tools", PolicyDocument=json.dumps(EVERYTHING))["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(NARROW), SetAsDefault=True)
    iam.create_user(UserName="u")
    iam.attach_user_policy(UserName="u", PolicyArn=arn)

    # Then neither the bulk read nor the live read makes u an administrator
    state = Inventory(aws, **NO_WAIT).read_account()
    assert state.policy_documents[arn] == NARROW
    user, groups, documents = Inventory(aws).read_user("u")
    assert documents[arn] == NARROW
    assert not admin_verdict(user, groups, documents).is_admin

    # And once v1 is the default again, both do
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    state = Inventory(aws, **NO_WAIT).read_account()
    [bulk_user] = state.users
    assert admin_verdict(bulk_user, state.groups, state.policy_documents).is_admin
    user, groups, documents = Inventory(aws).read_user("u")
    assert admin_verdict(user, groups, documents).is_admin


def test_permissions_boundaries_are_read_with_their_documents(aws: AwsContext) -> None:
    iam = aws.iam()
    custom = iam.create_policy(PolicyName="cap", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_user(UserName="aws_capped", PermissionsBoundary=READ_ONLY)
    iam.create_user(UserName="own_capped")
    iam.put_user_permissions_boundary(UserName="own_capped", PermissionsBoundary=custom)
    iam.create_user(UserName="free")

    state = Inventory(aws, **NO_WAIT).read_account()
    users = {u.name: u for u in state.users}
    assert users["aws_capped"].permissions_boundary == ManagedPolicyRef(READ_ONLY, "ReadOnlyAccess")
    assert users["own_capped"].permissions_boundary == ManagedPolicyRef(custom, "cap")
    assert users["free"].permissions_boundary is None
    # The boundary's document is there to evaluate (AWS managed ones are fetched, as attached ones are)
    assert state.policy_documents[custom] == NARROW
    assert "Statement" in state.policy_documents[READ_ONLY]

    user, _groups, documents = Inventory(aws).read_user("own_capped")
    assert user.permissions_boundary == ManagedPolicyRef(custom, "cap")
    assert documents[custom] == NARROW


def test_the_audit_judges_admins_and_escalation_as_iam_evaluates(aws: AwsContext) -> None:
    # Given an admin capped by a boundary, an admin whose boundary was lifted, and a deployer who can escalate
    iam = aws.iam()
    for name in ("capped", "uncapped"):
        iam.create_user(UserName=name)
        iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_user_permissions_boundary(UserName="capped", PermissionsBoundary=READ_ONLY)
    iam.put_user_permissions_boundary(UserName="uncapped", PermissionsBoundary=READ_ONLY)
    iam.delete_user_permissions_boundary(UserName="uncapped")
    deploy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/deploy-*"},
            {"Effect": "Allow", "Action": ["lambda:CreateFunction", "lambda:InvokeFunction"], "Resource": "*"},
        ],
    }
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="deploy", PolicyDocument=json.dumps(deploy))

    # When the audit runs
    result = run_audit(Inventory(aws, **NO_WAIT), Settings())
    verdict = {(f.check_id, f.resource_name): f for f in result.findings}

    # Then
    assert verdict["user_admin_access", "capped"].status is Status.PASS
    assert "permissions boundary ReadOnlyAccess does not" in verdict["user_admin_access", "capped"].detail
    assert verdict["user_admin_access", "uncapped"].status is Status.FAIL
    escalation = verdict["user_privilege_escalation", "deployer"]
    assert escalation.status is Status.FAIL
    assert escalation.detail == (
        "User deployer can make itself an administrator: iam:PassRole on roles + lambda:CreateFunction + "
        "lambda:InvokeFunction (run code as a role it passes), allowed by inline policy deploy."
    )


def test_the_real_authorization_details_shape_is_read() -> None:
    # IAM lists every version of a local policy and flags the default; it names a user's boundary by ARN.
    ctx = AwsContext()
    client = ctx.iam()
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    arn = f"arn:aws:iam::{ACCOUNT}:policy/tools"
    stubber = Stubber(client)
    stubber.add_response("get_account_summary", {"SummaryMap": {}})
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    # the report describes u (created before it was generated), so the audit reads no credentials live
    report = (
        "user,arn,user_creation_time,password_enabled,mfa_active\n"
        f"u,arn:aws:iam::{ACCOUNT}:user/u,2026-01-01T00:00:00+00:00,false,false\n"
    ).encode()
    stubber.add_response("get_credential_report", {"Content": report, "ReportFormat": "text/csv"})
    stubber.add_response(
        "get_account_authorization_details",
        {
            "UserDetailList": [
                {
                    "UserName": "u",
                    "UserId": "AIDAEXAMPLEEXAMPLE001",
                    "Arn": f"arn:aws:iam::{ACCOUNT}:user/u",
                    "Path": "/",
                    "CreateDate": created,
                    "AttachedManagedPolicies": [{"PolicyName": "tools", "PolicyArn": arn}],
                    "PermissionsBoundary": {
                        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
                        "PermissionsBoundaryArn": arn,
                    },
                }
            ],
            "GroupDetailList": [],
            "Policies": [
                {
                    "PolicyName": "tools",
                    "Arn": arn,
                    "DefaultVersionId": "v2",
                    "PolicyVersionList": [
                        {"Document": json.dumps(EVERYTHING), "VersionId": "v1", "IsDefaultVersion": False},
                        {"Document": json.dumps(NARROW), "VersionId": "v2", "IsDefaultVersion": True},
                    ],
                }
            ],
        },
    )
    stubber.add_response("list_virtual_mfa_devices", {"VirtualMFADevices": []})
    stubber.add_client_error("get_account_password_policy", "NoSuchEntity", http_status_code=404)
    stubber.add_response("list_account_aliases", {"AccountAliases": []})
    with stubber:
        state = Inventory(ctx, iam_client=client, **NO_WAIT).read_account(ACCOUNT)
    stubber.assert_no_pending_responses()
    [user] = state.users
    assert user.permissions_boundary == ManagedPolicyRef(arn, "tools")
    assert state.policy_documents[arn] == NARROW
