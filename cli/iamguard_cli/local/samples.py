"""The account that the sample events in events/ describe, for replaying them against a local emulator.

It is the designed account (one clear case per check) plus DESIGN.md's
walkthrough user wonjun_admin, plus mina_dev, whose MFA device the
`deactivate_mfa_device.json` sample has just deactivated, plus the users of the
policy-version and boundary samples, each as the event left it:

- pat_deploy holds deploy-tools, whose v1 let it rewrite that very policy and
  whose v2 (`create_policy_version_admin.json`, set as default) allows * on *;
- ci_legacy holds legacy-ci, whose old v1 (* on *) was just made the default
  again (`set_default_policy_version.json`);
- sam_bounded has AdministratorAccess, now capped by a ReadOnlyAccess
  boundary (`put_user_permissions_boundary.json`);
- lee_ops has AdministratorAccess and just lost its boundary
  (`delete_user_permissions_boundary.json`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from iamguard.domain.account import ADMINISTRATOR_ACCESS_ARN

from iamguard_cli.local.seed import DEMO_PASSWORD, READ_ONLY_ARN, seed_designed_account, seed_walkthrough

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

IAMGUARD_SAMPLE_ROLE_ARN = "arn:aws:iam::123456789012:role/iamguard-OnIamEventFunctionRole-EXAMPLE"
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
DEPLOY_TOOLS_V1 = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iam:CreatePolicyVersion", "iam:GetPolicy", "iam:GetPolicyVersion"],
            "Resource": "arn:aws:iam::*:policy/deploy-tools",
        },
        {"Effect": "Allow", "Action": ["lambda:UpdateFunctionCode", "lambda:GetFunction"], "Resource": "*"},
    ],
}
LEGACY_CI_V2 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::ci-*/*"}],
}


def seed_sample_account(iam: IAMClient) -> None:
    """Create the users, groups and settings the samples refer to (an empty account expected)."""
    seed_designed_account(iam)
    seed_walkthrough(iam)
    iam.create_user(UserName="mina_dev")
    iam.create_login_profile(UserName="mina_dev", Password=DEMO_PASSWORD)
    iam.add_user_to_group(GroupName="developers", UserName="mina_dev")
    seed_policy_samples(iam)


def seed_policy_samples(iam: IAMClient) -> None:
    """The users and policies of the policy-version and permissions-boundary samples (see the module docstring)."""
    deploy = iam.create_policy(PolicyName="deploy-tools", PolicyDocument=json.dumps(DEPLOY_TOOLS_V1))["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=deploy, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=True)
    iam.create_user(UserName="pat_deploy")
    iam.attach_user_policy(UserName="pat_deploy", PolicyArn=deploy)
    iam.create_access_key(UserName="pat_deploy")

    legacy = iam.create_policy(PolicyName="legacy-ci", PolicyDocument=json.dumps(EVERYTHING))["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=legacy, PolicyDocument=json.dumps(LEGACY_CI_V2), SetAsDefault=True)
    iam.set_default_policy_version(PolicyArn=legacy, VersionId="v1")
    iam.create_user(UserName="ci_legacy")
    iam.attach_user_policy(UserName="ci_legacy", PolicyArn=legacy)

    iam.create_user(UserName="sam_bounded", PermissionsBoundary=READ_ONLY_ARN)
    iam.attach_user_policy(UserName="sam_bounded", PolicyArn=ADMINISTRATOR_ACCESS_ARN)
    iam.create_user(UserName="lee_ops")
    iam.attach_user_policy(UserName="lee_ops", PolicyArn=ADMINISTRATOR_ACCESS_ARN)
