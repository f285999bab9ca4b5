"""The hub's way into member accounts: assumed-role contexts act in the member account, and a missing role is a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from iamguard.aws import AwsContext
from iamguard.organization.access import MemberAccess, MemberAccessError
from iamguard.settings import ConfigError, Settings

MEMBER = "222233334444"


@pytest.fixture
def member_account(aws: AwsContext) -> str:
    """A member account (moto Organizations) with the member audit role, created as its administrator."""
    organizations = aws.client("organizations")
    organizations.create_organization(FeatureSet="ALL")
    status = organizations.create_account(AccountName="member", Email="member@example.com")["CreateAccountStatus"]
    admin = MemberAccess(aws, "OrganizationAccountAccessRole").context(status["AccountId"])
    admin.iam().create_role(RoleName="iamguard-member-audit", AssumeRolePolicyDocument="{}")
    return str(status["AccountId"])


def test_context_acts_in_the_member_account(aws: AwsContext, member_account: str) -> None:
    access = MemberAccess(aws, "iamguard-member-audit")
    member = access.context(member_account)
    assert member.sts().get_caller_identity()["Account"] == member_account
    member.iam().create_user(UserName="only-in-member")
    assert [u["UserName"] for u in member.iam().list_users()["Users"]] == ["only-in-member"]
    assert aws.iam().list_users()["Users"] == []  # the hub's own account is untouched
    assert access.context(member_account) is member  # credentials are kept until shortly before they expire


def test_a_missing_role_is_access_denied_on_moto_as_in_aws(aws: AwsContext, member_account: str) -> None:
    with pytest.raises(MemberAccessError) as raised:
        MemberAccess(aws, "no-such-role").context(member_account)
    assert f"arn:aws:iam::{member_account}:role/no-such-role" in raised.value.reason


def test_a_role_that_cannot_be_assumed_names_the_stackset() -> None:
    hub = AwsContext(region="us-east-1")
    sts = hub.sts()
    stub = Stubber(sts)
    stub.add_client_error(
        "assume_role",
        service_error_code="AccessDenied",
        service_message="User: arn:aws:sts::111122223333:assumed-role/hub is not authorized to perform: sts:AssumeRole",
        http_status_code=403,
    )
    stub.activate()

    class StubbedHub(AwsContext):
        def sts(self):  # type: ignore[no-untyped-def,override]
            return sts

    with pytest.raises(MemberAccessError) as raised:
        MemberAccess(StubbedHub(), "iamguard-member-audit").context(MEMBER)
    assert raised.value.account_id == MEMBER
    assert "arn:aws:iam::222233334444:role/iamguard-member-audit" in raised.value.reason
    assert "member StackSet" in raised.value.reason


def test_expired_credentials_are_assumed_again(aws: AwsContext, member_account: str) -> None:
    access = MemberAccess(aws, "iamguard-member-audit")
    first = access.context(member_account)
    access._cache[member_account] = (first, datetime.now(UTC) + timedelta(minutes=1))  # within the refresh margin
    assert access.context(member_account) is not first


@pytest.mark.parametrize("account", ["12345", "12345678901a", ""])
def test_a_malformed_account_id_is_refused_before_any_call(aws: AwsContext, account: str) -> None:
    with pytest.raises(MemberAccessError, match="12-digit"):
        MemberAccess(aws, "r").context(account)


def test_organization_settings_are_validated() -> None:
    assert not Settings.from_env({}).organization.enabled
    settings = Settings.from_env({"ORGANIZATION_ID": "o-abcdef1234", "MEMBER_AUDIT_ROLE_NAME": "audit-role"})
    assert settings.organization.enabled and settings.organization.member_audit_role_name == "audit-role"
    with pytest.raises(ConfigError, match="ORGANIZATION_ID"):
        Settings.from_env({"ORGANIZATION_ID": "org-1"})
    with pytest.raises(ConfigError, match="MEMBER_ENFORCE_ROLE_NAME"):
        Settings.from_env({"MEMBER_ENFORCE_ROLE_NAME": "bad role/name"})
    assert Settings.from_env({"MEMBER_STACKSET_NAME": ""}).organization.member_stackset_name is None
    assert Settings.from_env({"MEMBER_STACKSET_NAME": "iamguard-member"}).organization.member_stackset_name
    with pytest.raises(ConfigError, match="MEMBER_STACKSET_NAME"):
        Settings.from_env({"MEMBER_STACKSET_NAME": "1-starts-with-a-digit"})
