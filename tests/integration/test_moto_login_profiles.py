"""Passwords are dated by the login profile, as AWS dates them, not by the user (moto_ext)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.checks import run_checks
from iamguard.domain.findings import Status
from iamguard.iam.inventory import Inventory
from iamguard.settings import Settings
from iamguard_cli.local import moto_ext

from tests.conftest import ACCOUNT_ID

NO_WAIT: dict[str, Any] = {"sleep": lambda _s: None}
LONG_AGO = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)


def moto_user(name: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["global"].users[name]


def report_password_last_changed(aws: AwsContext, name: str) -> datetime | None:
    users = Inventory(aws, **NO_WAIT).credential_report()
    return users[name].password_last_changed


def close_to_now(moment: datetime | None) -> bool:
    return moment is not None and abs(datetime.now(UTC) - moment) < timedelta(seconds=30)


def test_a_password_given_today_to_an_old_user_is_dated_today(aws: AwsContext) -> None:
    # Given a user made 200 days ago who gets a console password today
    iam = aws.iam()
    iam.create_user(UserName="veteran")
    moto_user("veteran").create_date = LONG_AGO
    created = iam.create_login_profile(UserName="veteran", Password="Fresh-Password-1!")["LoginProfile"]

    # Then both of AWS's dates are today's: the profile's CreateDate and the report's password_last_changed
    assert close_to_now(created["CreateDate"])
    assert close_to_now(iam.get_login_profile(UserName="veteran")["LoginProfile"]["CreateDate"])
    assert close_to_now(report_password_last_changed(aws, "veteran"))

    # ... so the audit says the password is new, not "given 200 days ago and never used"
    state = Inventory(aws, **NO_WAIT).read_account()
    verdicts = {f.check_id: f for f in run_checks(state, Settings.from_env({})) if f.resource_name == "veteran"}
    assert verdicts["user_pending_first_sign_in"].status is Status.PASS
    assert verdicts["user_pending_first_sign_in"].detail.startswith("User veteran got a console password 0 days ago")
    assert verdicts["user_access_keys_rotated"].status is Status.PASS  # the unused-credentials check
    # ... and the event path's live read dates it the same way
    live, _, _ = Inventory(aws, **NO_WAIT).read_user("veteran")
    assert live.credentials is not None and close_to_now(live.credentials.password_last_changed)


def test_a_user_without_a_password_has_no_password_date(aws: AwsContext) -> None:
    aws.iam().create_user(UserName="robot")
    assert report_password_last_changed(aws, "robot") is None  # AWS says N/A; moto said the user's creation


def test_a_new_password_moves_password_last_changed_and_keeps_the_profiles_create_date(aws: AwsContext) -> None:
    # Given a login profile created and last set 200 days ago
    iam = aws.iam()
    iam.create_user(UserName="nina")
    iam.create_login_profile(UserName="nina", Password="Old-Password-1!", PasswordResetRequired=True)
    dates = moto_ext.login_profile_dates(moto_user("nina"))
    assert dates is not None
    dates.created = dates.password_set = LONG_AGO

    # When only the reset flag is lifted
    iam.update_login_profile(UserName="nina", PasswordResetRequired=False)

    # Then the password and its dates stay (moto used to delete the profile), only the flag changed
    profile = iam.get_login_profile(UserName="nina")["LoginProfile"]
    assert profile["CreateDate"] == LONG_AGO and profile["PasswordResetRequired"] is False
    assert report_password_last_changed(aws, "nina") == LONG_AGO

    # When an administrator sets a new password
    iam.update_login_profile(UserName="nina", Password="New-Password-2!")

    # Then the report dates the password now, the profile keeps its creation, and the flag is unchanged
    assert close_to_now(report_password_last_changed(aws, "nina"))
    profile = iam.get_login_profile(UserName="nina")["LoginProfile"]
    assert profile["CreateDate"] == LONG_AGO and profile["PasswordResetRequired"] is False


def test_a_deleted_profile_ends_its_dates_and_a_new_one_starts_them_again(aws: AwsContext) -> None:
    iam = aws.iam()
    iam.create_user(UserName="omar")
    iam.create_login_profile(UserName="omar", Password="First-Password-1!")
    dates = moto_ext.login_profile_dates(moto_user("omar"))
    assert dates is not None
    dates.created = dates.password_set = LONG_AGO

    iam.delete_login_profile(UserName="omar")
    assert report_password_last_changed(aws, "omar") is None
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName="omar")

    iam.create_login_profile(UserName="omar", Password="Second-Password-2!")
    assert close_to_now(report_password_last_changed(aws, "omar"))
    assert close_to_now(iam.get_login_profile(UserName="omar")["LoginProfile"]["CreateDate"])
