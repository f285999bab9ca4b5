"""Seed accounts for the demo, the README and the tests, through ordinary IAM calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from iamguard.domain.account import ADMINISTRATOR_ACCESS_ARN, CHANGE_PASSWORD_POLICY_ARN

from iamguard_cli.local import moto_ext
from iamguard_cli.local.server import LOCAL_ACCOUNT_ID
from iamguard_cli.mfa import authenticator_codes

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

DEMO_PASSWORD = "Demo-Only-Password-1!"
READ_ONLY_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def seed_walkthrough(iam: IAMClient, account_id: str = LOCAL_ACCOUNT_ID) -> None:
    """The account of DESIGN.md's walkthrough, just after wonjun_admin was created.

    Root signed in today and has no MFA; wonjun_admin has a console password
    with a forced reset, AdministratorAccess and IAMUserChangePassword attached
    directly, and no MFA; there is no password policy and no account alias.
    """
    moto_ext.root(account_id).password_last_used = datetime.now(UTC)
    iam.create_user(UserName="wonjun_admin")
    iam.create_login_profile(UserName="wonjun_admin", Password=DEMO_PASSWORD, PasswordResetRequired=True)
    iam.attach_user_policy(UserName="wonjun_admin", PolicyArn=ADMINISTRATOR_ACCESS_ARN)
    iam.attach_user_policy(UserName="wonjun_admin", PolicyArn=CHANGE_PASSWORD_POLICY_ARN)


def seed_designed_account(iam: IAMClient) -> None:
    """A small account with one clear case per check; see tests/integration/test_cli_server.py for the verdicts."""
    iam.create_account_alias(AccountAlias="iamguard-example")
    iam.update_account_password_policy(MinimumPasswordLength=8, AllowUsersToChangePassword=False)

    # developers: read-only through a group, may change their own password.
    iam.create_group(GroupName="developers")
    iam.attach_group_policy(GroupName="developers", PolicyArn=READ_ONLY_ARN)
    iam.attach_group_policy(GroupName="developers", PolicyArn=CHANGE_PASSWORD_POLICY_ARN)
    # ops: admin through an inline * on * policy.
    iam.create_group(GroupName="ops")
    iam.put_group_policy(
        GroupName="ops",
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )

    # alice: a well-kept console user with MFA, permissions through a group.
    iam.create_user(UserName="alice")
    iam.create_login_profile(UserName="alice", Password=DEMO_PASSWORD)
    iam.add_user_to_group(GroupName="developers", UserName="alice")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]
    seed = device["Base32StringSeed"]
    # The codes alice's authenticator app shows (the local runtime checks them, as AWS does).
    code1, code2 = authenticator_codes(seed.decode() if isinstance(seed, bytes) else seed)
    iam.enable_mfa_device(
        UserName="alice", SerialNumber=device["SerialNumber"], AuthenticationCode1=code1, AuthenticationCode2=code2
    )
    # bob_ci: programmatic only, two active keys, no MFA.
    iam.create_user(UserName="bob_ci")
    iam.add_user_to_group(GroupName="developers", UserName="bob_ci")
    iam.create_access_key(UserName="bob_ci")
    iam.create_access_key(UserName="bob_ci")
    # carol_ops: admin via the ops group, no password, no MFA.
    iam.create_user(UserName="carol_ops")
    iam.add_user_to_group(GroupName="ops", UserName="carol_ops")
    # dave_new: console password with a forced reset and no way to change it; direct policy.
    iam.create_user(UserName="dave_new")
    iam.create_login_profile(UserName="dave_new", Password=DEMO_PASSWORD, PasswordResetRequired=True)
    iam.attach_user_policy(UserName="dave_new", PolicyArn=READ_ONLY_ARN)
    # erin_contractor: exempt by tag, console password without MFA.
    iam.create_user(UserName="erin_contractor", Tags=[{"Key": "iamguard:exempt", "Value": "true"}])
    iam.create_login_profile(UserName="erin_contractor", Password=DEMO_PASSWORD)
    iam.add_user_to_group(GroupName="developers", UserName="erin_contractor")
