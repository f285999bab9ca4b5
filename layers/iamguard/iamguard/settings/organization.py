"""Settings of organization mode (part of `iamguard.settings.Settings`).

Organization mode is on when ORGANIZATION_ID is set: the hub's functions then take
events and audits from member accounts, reaching each one through the role the
member StackSet creates in it (MEMBER_AUDIT_ROLE_NAME to read, MEMBER_ENFORCE_ROLE_NAME
to attach and detach the guardrail). Unset, iamguard watches its own account only.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ORGANIZATION_ID = re.compile(r"^o-[a-z0-9]{10,32}$")  # the pattern of Organizations' API reference
_STACKSET_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,127}$")  # CloudFormation's StackSetName pattern
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")

DEFAULT_MEMBER_AUDIT_ROLE = "iamguard-member-audit"
DEFAULT_MEMBER_ENFORCE_ROLE = "iamguard-member-enforce"
DEFAULT_MEMBER_GUARDRAIL = "iamguard-member-mfa-guardrail"


class OrganizationSettings(BaseModel):
    """Where the hub finds its member accounts and the roles it assumes in them."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    organization_id: str | None = Field(default=None, validation_alias="ORGANIZATION_ID")
    member_audit_role_name: str = Field(default=DEFAULT_MEMBER_AUDIT_ROLE, validation_alias="MEMBER_AUDIT_ROLE_NAME")
    member_enforce_role_name: str = Field(
        default=DEFAULT_MEMBER_ENFORCE_ROLE, validation_alias="MEMBER_ENFORCE_ROLE_NAME"
    )
    # The StackSet that deploys member/template.yaml: accounts without an instance of it are reported.
    # Empty: coverage is not checked.
    member_stackset_name: str | None = Field(default=None, validation_alias="MEMBER_STACKSET_NAME")
    # The account that holds the organization's people as IAM users, if any (CIS 1.21); elsewhere a console
    # user fails org_member_console_users.
    identity_account_id: str | None = Field(default=None, validation_alias="IDENTITY_ACCOUNT_ID")
    # The hub's own account (template: AWS::AccountId in organization mode). Its users keep the findings
    # table's single-account keys; every other account's are qualified by the account (FindingsStore).
    hub_account_id: str | None = Field(default=None, validation_alias="HUB_ACCOUNT_ID")
    # The planner's queue of per-account audits (functions/plan_audit); set on the planner only.
    audit_queue_url: str | None = Field(default=None, validation_alias="AUDIT_QUEUE_URL")

    # The MFA guardrail the member StackSet creates in each account (its policy name; the ARN is per account).
    member_guardrail_policy_name: str = Field(
        default=DEFAULT_MEMBER_GUARDRAIL, validation_alias="MEMBER_GUARDRAIL_POLICY_NAME"
    )

    @field_validator("organization_id")
    @classmethod
    def _organization_id(cls, value: str | None) -> str | None:
        if value is not None and not _ORGANIZATION_ID.match(value):
            raise ValueError(f"not an organization id (o-…): {value!r}")
        return value

    @field_validator("member_audit_role_name", "member_enforce_role_name", "member_guardrail_policy_name")
    @classmethod
    def _role_name(cls, value: str) -> str:
        if not _ROLE_NAME.match(value):
            raise ValueError(f"not an IAM role name: {value!r}")
        return value

    @field_validator("identity_account_id", "hub_account_id")
    @classmethod
    def _account_id(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.match(r"^\d{12}$", value):
            raise ValueError(f"not a 12-digit account id: {value!r}")
        return value

    @field_validator("member_stackset_name")
    @classmethod
    def _stackset_name(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not _STACKSET_NAME.match(value):
            raise ValueError(f"not a StackSet name: {value!r}")
        return value

    @model_validator(mode="after")
    def _hub_account(self) -> OrganizationSettings:
        if self.organization_id is not None and self.hub_account_id is None:
            raise ValueError("organization mode needs HUB_ACCOUNT_ID, the hub's own account id (the template sets it)")
        return self

    @property
    def enabled(self) -> bool:
        return self.organization_id is not None

    @property
    def home_account(self) -> str | None:
        """The account whose users keep the single-account keys; None (every account) outside organization mode."""
        return self.hub_account_id if self.enabled else None

    def member_guardrail_arn(self, account_id: str, partition: str = "aws") -> str:
        return f"arn:{partition}:iam::{account_id}:policy/{self.member_guardrail_policy_name}"

    def member_role_arns(self, account_id: str, partition: str = "aws") -> tuple[str, str]:
        """The ARNs of the member audit and enforce roles in one account (the hub's own identities there)."""
        return tuple(  # type: ignore[return-value]
            f"arn:{partition}:iam::{account_id}:role/{name}"
            for name in (self.member_audit_role_name, self.member_enforce_role_name)
        )
