"""The hub's way into member accounts: assumed-role contexts act in the member account, and a missing role is a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from iamguard.aws import AwsContext
from iamguard.organization.access import MemberAccess, MemberAccessError, shared_access
from iamguard.organization.directory import AccountDirectory
from iamguard.settings import ConfigError, Settings
from iamguard.settings.organization import OrganizationSettings

from tests.support.organization import member_account

MEMBER = "222233334444"


def test_context_acts_in_the_member_account(aws: AwsContext) -> None:
    account, _admin = member_account(aws, "member-a")
    access = MemberAccess(aws, "iamguard-member-audit")
    member = access.context(account)
    assert member.sts().get_caller_identity()["Account"] == account
    member.iam().create_user(UserName="only-in-member")
    assert [u["UserName"] for u in member.iam().list_users()["Users"]] == ["only-in-member"]
    assert aws.iam().list_users()["Users"] == []  # the hub's own account is untouched
    assert access.context(account) is member  # credentials are kept until shortly before they expire


def test_an_account_without_the_role_cannot_be_entered(aws: AwsContext) -> None:
    # AWS refuses AssumeRole on a role that does not exist (moto would not: iamguard_cli.local.moto_ext)
    account, _admin = member_account(aws, "no-stackset", roles=())
    with pytest.raises(MemberAccessError) as raised:
        MemberAccess(aws, "iamguard-member-audit").context(account)
    assert f"arn:aws:iam::{account}:role/iamguard-member-audit" in raised.value.reason
    assert "AccessDenied" in raised.value.reason or "not authorized" in raised.value.reason


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


def test_expired_credentials_are_assumed_again(aws: AwsContext) -> None:
    account, _admin = member_account(aws, "member-b")
    access = MemberAccess(aws, "iamguard-member-audit")
    first = access.context(account)
    access._cache[account] = (first, datetime.now(UTC) + timedelta(minutes=1))  # within the refresh margin
    assert access.context(account) is not first


@pytest.mark.parametrize("account", ["12345", "12345678901a", ""])
def test_a_malformed_account_id_is_refused_before_any_call(aws: AwsContext, account: str) -> None:
    with pytest.raises(MemberAccessError, match="12-digit"):
        MemberAccess(aws, "r").context(account)


def test_organization_settings_are_validated() -> None:
    assert not Settings.from_env({}).organization.enabled
    settings = Settings.from_env(
        {"ORGANIZATION_ID": "o-abcdef1234", "MEMBER_AUDIT_ROLE_NAME": "audit-role", "HUB_ACCOUNT_ID": "111122223333"}
    )
    assert settings.organization.enabled and settings.organization.member_audit_role_name == "audit-role"
    assert settings.organization.home_account == "111122223333"
    assert Settings.from_env({"HUB_ACCOUNT_ID": "111122223333"}).organization.home_account is None
    # Without the hub's account the store could not tell the hub's users from the members': refused
    with pytest.raises(ConfigError, match="HUB_ACCOUNT_ID"):
        Settings.from_env({"ORGANIZATION_ID": "o-abcdef1234"})
    with pytest.raises(ConfigError, match="HUB_ACCOUNT_ID"):
        Settings.from_env({"ORGANIZATION_ID": "o-abcdef1234", "HUB_ACCOUNT_ID": "12345"})
    with pytest.raises(ConfigError, match="ORGANIZATION_ID"):
        Settings.from_env({"ORGANIZATION_ID": "org-1"})
    with pytest.raises(ConfigError, match="MEMBER_ENFORCE_ROLE_NAME"):
        Settings.from_env({"MEMBER_ENFORCE_ROLE_NAME": "bad role/name"})


def test_one_hub_context_shares_one_access_per_role() -> None:
    hub, other = AwsContext(region="us-east-1"), AwsContext(region="us-east-1")
    audit = shared_access(hub, "iamguard-member-audit")
    assert shared_access(hub, "iamguard-member-audit") is audit  # the router, the directory, the auditor
    assert shared_access(hub, "iamguard-member-enforce") is not audit
    assert shared_access(other, "iamguard-member-audit") is not audit  # another hub's credentials: its own
    assert shared_access(hub, "iamguard-member-audit", "aws-cn") is not audit


def test_two_account_directories_of_one_hub_share_the_credentials(aws: AwsContext) -> None:
    # the event function's router and its notifier each build an AccountDirectory from the one hub context
    account, _admin = member_account(aws, "shared")
    organization = OrganizationSettings(organization_id="o-abcdefghij", hub_account_id="123456789012")
    router, notifier = AccountDirectory(aws, organization), AccountDirectory(aws, organization)
    assert notifier.audit.context(account) is router.audit.context(account)
