"""An organization on moto: the hub (management account), member accounts, the member audit role in some."""

from __future__ import annotations

import json
from dataclasses import dataclass

from iamguard.aws import AwsContext
from iamguard.organization.access import MemberAccess

AUDIT_ROLE = "iamguard-member-audit"
HUB_ACCOUNT = "123456789012"  # moto's default account: the management account here


@dataclass(frozen=True)
class Organization:
    id: str
    members: list[str]  # member account ids, in creation order
    with_role: list[str]  # the members that have the audit role

    @property
    def without_role(self) -> list[str]:
        return [m for m in self.members if m not in self.with_role]


def member(hub: AwsContext, account_id: str) -> AwsContext:
    """Credentials acting in the member (the role AWS creates with CreateAccount)."""
    return MemberAccess(hub, "OrganizationAccountAccessRole").context(account_id)


def build_organization(hub: AwsContext, members: int = 3, without_role: int = 1) -> Organization:
    """`members` accounts; all but the last `without_role` get the member audit role, and one user each:
    the first an administrator without MFA (fails), the others a user without console access."""
    organizations = hub.client("organizations")
    organization_id = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    ids = []
    for n in range(members):
        status = organizations.create_account(AccountName=f"member-{n}", Email=f"member-{n}@example.com")
        ids.append(status["CreateAccountStatus"]["AccountId"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{HUB_ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    for n, account_id in enumerate(ids):
        iam = member(hub, account_id).iam()
        user = f"admin-{n}" if n == 0 else f"dev-{n}"
        iam.create_user(UserName=user)
        if n == 0:
            iam.create_login_profile(UserName=user, Password="Initial-Passw0rd!")
            iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        if n < members - without_role:
            iam.create_role(RoleName=AUDIT_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    return Organization(organization_id, ids, ids[: members - without_role])
