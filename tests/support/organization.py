"""An organization on moto, the way one is built on AWS: Organizations creates member accounts (each with
its OrganizationAccountAccessRole), and the member roles of member/template.yaml are created in each
through that role."""

from __future__ import annotations

import json

from iamguard.aws import AwsContext
from iamguard.organization.access import MemberAccess
from iamguard.settings.organization import DEFAULT_MEMBER_AUDIT_ROLE, DEFAULT_MEMBER_ENFORCE_ROLE

ACCESS_ROLE = "OrganizationAccountAccessRole"


def organization_id(hub: AwsContext) -> str:
    """The hub's organization (created on first use; the hub is its management account)."""
    client = hub.client("organizations")
    try:
        return str(client.describe_organization()["Organization"]["Id"])
    except client.exceptions.AWSOrganizationsNotInUseException:
        return str(client.create_organization(FeatureSet="ALL")["Organization"]["Id"])


def member_account(
    hub: AwsContext,
    name: str,
    *,
    roles: tuple[str, ...] = (DEFAULT_MEMBER_AUDIT_ROLE, DEFAULT_MEMBER_ENFORCE_ROLE),
    alias: str | None = None,
) -> tuple[str, AwsContext]:
    """A new member account with `roles` trusting the hub; its id and a context acting in it (as its admin)."""
    organization_id(hub)
    status = hub.client("organizations").create_account(Email=f"{name}@example.com", AccountName=name)
    account_id = str(status["CreateAccountStatus"]["AccountId"])
    admin = MemberAccess(hub, ACCESS_ROLE).context(account_id)
    hub_account = hub.sts().get_caller_identity()["Account"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{hub_account}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    for role in roles:
        admin.iam().create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    if alias:
        admin.iam().create_account_alias(AccountAlias=alias)
    return account_id, admin
