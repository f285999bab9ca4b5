"""Simulated console sign-ins: the ConsoleLogin events AWS sign-in would send to CloudTrail.

There is no console in the local runtime, so `iamguard local signin USER`
stands in for it. It signs a user (or root) in, or fails to, as the real sign-in
page would for that user's current state:

- a user needs a console password; a user (or root) with an MFA device must give
  a code, which is checked with pyotp against the device's seed (kept by the
  local account since CreateVirtualMFADevice). `MFAUsed` is "Yes" only then;
- a wrong code, or `--fail` (a wrong password), is a failed sign-in, and a
  failed sign-in of a name that does not exist carries CloudTrail's hidden name;
- a successful sign-in records the password as used, as AWS does: the user's
  PasswordLastUsed (GetUser, and the credential report moto builds from it),
  root's `password_last_used` in the report's root row (see moto_ext). The next
  credential report therefore says so, and the ConsoleLogin event itself makes
  `root_not_used_recently` fail at once.

Nothing secret is kept in the event or printed: no password, no code, no seed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from iamguard_cli.local import moto_ext
from iamguard_cli.local.trail import CONSOLE_SIGN_IN, IAM_REGION, Trail
from iamguard_cli.mfa import code_is_valid

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
ROOT = "root"
CONSOLE_URL = "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB"
BROWSER = "Mozilla/5.0 (iamguard local sign-in)"


class SignInError(ValueError):
    """The sign-in cannot be simulated as asked (e.g. success for a user without a console password)."""


@dataclass(frozen=True)
class SignInResult:
    user: str
    console_login: Literal["Success", "Failure"]
    mfa_used: Literal["Yes", "No"]
    event: dict[str, Any]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "console_login": self.console_login,
            "mfa_used": self.mfa_used,
            "event_id": self.event["detail"]["eventID"],
            "note": self.note,
        }


def _iam_backend(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["aws"]


def _seeds_of(account_id: str, serials: list[str]) -> list[str]:
    devices = _iam_backend(account_id).virtual_mfa_devices
    return [devices[serial].base32_string_seed for serial in serials if serial in devices]


def console_sign_in(
    trail: Trail,
    account_id: str,
    user: str,
    *,
    mfa_code: str | None = None,
    fail: bool = False,
    source_ip: str = "127.0.0.1",
    user_agent: str = BROWSER,
) -> SignInResult:
    """Sign `user` ("root" for the root user) in to the console, and publish the ConsoleLogin event."""
    from moto.core.utils import utcnow
    from moto.iam.exceptions import NoSuchEntity, NotFoundException

    note = ""
    additional: dict[str, Any] = {"LoginTo": CONSOLE_URL, "MobileVersion": "No", "MFAUsed": "No"}
    if user == ROOT:
        state = moto_ext.root(account_id)
        identity: dict[str, Any] = {
            "type": "Root",
            "principalId": account_id,
            "arn": f"arn:aws:iam::{account_id}:root",
            "accountId": account_id,
            "accessKeyId": "",
        }
        # Codes are checked against root's virtual devices; a hardware key has no seed here.
        serials = [device.serial_number for device in state.mfa_devices if device.kind == "virtual"]
        has_mfa = bool(state.mfa_devices)
        iam_user = None
        if not state.password and not fail:
            raise SignInError("root has no password (its credentials were deleted through centralized root access)")
    else:
        try:
            iam_user = _iam_backend(account_id).get_user(user)
        except (NoSuchEntity, NotFoundException):
            if not fail:
                raise SignInError(f"there is no IAM user {user} (use --fail to simulate a failed sign-in)") from None
            iam_user = None
        if iam_user is None:
            identity = {"type": "IAMUser", "principalId": HIDDEN, "accountId": account_id, "userName": HIDDEN}
            serials, has_mfa = [], False
        else:
            identity = {
                "type": "IAMUser",
                "principalId": iam_user.id,
                "arn": iam_user.arn,
                "accountId": account_id,
                "userName": iam_user.name,
            }
            serials = list(iam_user.mfa_devices)
            has_mfa = bool(serials)
            if iam_user.password is None and not fail:
                raise SignInError(f"{user} has no console password (CreateLoginProfile first)")

    success = not fail
    if success and has_mfa:
        if mfa_code is None:
            raise SignInError(f"{user} has an MFA device: give the code from it (--mfa-code)")
        seeds = _seeds_of(account_id, serials)
        if any(code_is_valid(seed, mfa_code) for seed in seeds):
            additional["MFAUsed"] = "Yes"
            additional["MFAIdentifier"] = serials[0]
        else:
            success = False
            note = "the MFA code is not valid for the device"
    elif mfa_code is not None and not has_mfa and iam_user is not None:
        note = f"{user} has no MFA device: the code was not asked for"
    elif mfa_code is not None and user == ROOT and not has_mfa:
        note = "root has no MFA device: the code was not asked for"

    now = datetime.now(UTC)
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": IAM_REGION,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Success" if success else "Failure"},
        "additionalEventData": additional,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    }
    if not success:
        detail["errorMessage"] = "Failed authentication"
    elif iam_user is not None:
        iam_user.password_last_used = utcnow()
    else:
        moto_ext.root(account_id).password_last_used = now
    event = trail.publish(CONSOLE_SIGN_IN, "aws.signin", detail, account_id, IAM_REGION, now)
    return SignInResult(
        user=user,
        console_login="Success" if success else "Failure",
        mfa_used=additional["MFAUsed"],
        event=event,
        note=note,
    )
