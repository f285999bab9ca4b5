"""An AWS Organization on the local moto: the hub's account is the management account, members join.

    organization = LocalOrganization(hub_aws, hub_account_id="123456789012")
    organization.create()                          # Organizations: CreateOrganization (all features)
    ... the hub's stack is provisioned with OrganizationId = organization.organization_id ...
    member = organization.join("dev", member_template, parameters)  # CreateAccount + the member stack

What each member account gets is what AWS gives it: Organizations' CreateAccount (moto),
the OrganizationAccountAccessRole Organizations creates in it (moto_ext), and the member
template (member/template.yaml) provisioned in it through that role, as the service-managed
StackSet would deploy it on joining: the audit role, the guardrail, the enforcement role in
enforce mode and the rules that forward its IAM and sign-in events to the hub's bus. The
local CloudTrail attributes each request to the account of its credentials, so an IAM call
made in a member account lands on that account's default bus, and its forward rule carries
it to the hub's bus with the member's account id.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from iamguard.aws import AwsContext

from iamguard_cli.local import moto_ext
from iamguard_cli.local.provision import Provisioned, Provisioner, RoleSession
from iamguard_cli.local.routing import Template

MEMBER_STACK_NAME = "StackSet-iamguard-member"  # how a StackSet names its stack instances (plus an id)
_ACCOUNT_NAME = re.compile(r"[\w .@+=,-]{1,50}", re.ASCII)


def default_member_template() -> Path:
    """member/template.yaml of the repository this package runs from, else of the working directory."""
    repository = Path(__file__).resolve().parents[3] / "member" / "template.yaml"
    return repository if repository.is_file() else Path.cwd() / "member" / "template.yaml"


@dataclass(frozen=True)
class MemberAccount:
    """One member account: its id, and an administrator's session in it (OrganizationAccountAccessRole)."""

    account_id: str
    name: str
    email: str
    session: RoleSession
    provisioned: Provisioned

    def role_arn(self, logical_id: str) -> str:
        return self.provisioned.attrs[(logical_id, "Arn")]


class OrganizationError(RuntimeError):
    """The local organization could not be set up as asked."""


class LocalOrganization:
    """Organizations on moto, driven with the hub (management) account's root credentials."""

    def __init__(self, hub: AwsContext, *, hub_account_id: str, endpoint_url: str | None = None) -> None:
        self.hub = hub
        self.hub_account_id = hub_account_id
        self.endpoint_url = endpoint_url or hub.endpoint_url
        self.organization_id = ""
        self.members: list[MemberAccount] = []
        self._joining = threading.Lock()  # one account at a time: each gets its own e-mail address

    def create(self) -> str:
        """CreateOrganization with all features; the hub's account is its management account."""
        organizations = self.hub.client("organizations")
        self.organization_id = str(organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"])
        return self.organization_id

    def join(self, name: str, template: Template, parameters: dict[str, str]) -> MemberAccount:
        """CreateAccount, then the member stack in it (what StackSets' automatic deployment does)."""
        with self._joining:
            return self._join(name, template, parameters)

    def _join(self, name: str, template: Template, parameters: dict[str, str]) -> MemberAccount:
        if not self.organization_id:
            raise OrganizationError("create the organization first")
        if not _ACCOUNT_NAME.fullmatch(name):
            raise OrganizationError(f"{name!r} is not an account name (1-50 letters, digits, spaces, .@+=,-)")
        # Unique, as Organizations requires of an account's e-mail address (names may repeat).
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "member"
        email = f"{slug}-{len(self.members) + 1}@example.com"
        organizations = self.hub.client("organizations")
        status = organizations.create_account(Email=email, AccountName=name)["CreateAccountStatus"]
        if status.get("State") != "SUCCEEDED":
            raise OrganizationError(f"CreateAccount {name}: {status.get('State')} {status.get('FailureReason', '')}")
        account_id = str(status["AccountId"])
        role_arn = moto_ext.organization_access_role(account_id, self.hub_account_id)
        credentials = self.hub.sts().assume_role(RoleArn=role_arn, RoleSessionName=f"iamguard-local-{account_id}")[
            "Credentials"
        ]
        session = RoleSession(
            role_arn, credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
        )
        member_aws = self.context(session)
        provisioned = Provisioner(
            template,
            member_aws,
            {**parameters, "OrganizationId": self.organization_id, "HubAccountId": self.hub_account_id},
            stack_name=f"{MEMBER_STACK_NAME}-{account_id}",
            account_id=account_id,
            roles_and_rules=True,
        ).run()
        member = MemberAccount(account_id, name, email, session, provisioned)
        self.members.append(member)
        return member

    def context(self, session: RoleSession) -> AwsContext:
        """An AwsContext acting with a member session against the local endpoint."""
        import boto3

        boto_session = boto3.session.Session(
            aws_access_key_id=session.access_key_id,
            aws_secret_access_key=session.secret_access_key,
            aws_session_token=session.session_token,
            region_name=self.hub.region,
        )
        return AwsContext(
            region=self.hub.region,
            endpoint_url=self.endpoint_url,
            retry_mode="standard",
            max_attempts=3,
            _session=boto_session,
        )

    def member(self, account_id: str) -> MemberAccount:
        for member in self.members:
            if member.account_id == account_id:
                return member
        raise KeyError(account_id)
