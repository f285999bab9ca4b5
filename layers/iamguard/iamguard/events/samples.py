"""The account that the sample events in events/ describe, for replaying them against a local emulator.

It is the designed account (one clear case per check) plus DESIGN.md's
walkthrough user wonjun_admin, plus mina_dev, whose MFA device the
`deactivate_mfa_device.json` sample has just deactivated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iamguard.local.seed import DEMO_PASSWORD, seed_designed_account, seed_walkthrough

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

IAMGUARD_SAMPLE_ROLE_ARN = "arn:aws:iam::123456789012:role/iamguard-OnIamEventFunctionRole-EXAMPLE"


def seed_sample_account(iam: IAMClient) -> None:
    """Create the users, groups and settings the samples refer to (an empty account expected)."""
    seed_designed_account(iam)
    seed_walkthrough(iam)
    iam.create_user(UserName="mina_dev")
    iam.create_login_profile(UserName="mina_dev", Password=DEMO_PASSWORD)
    iam.add_user_to_group(GroupName="developers", UserName="mina_dev")
