"""Virtual MFA devices: enrolment with verified codes, and TOTP checks.

AWS only enables a virtual MFA device after two consecutive codes from it;
moto accepts any two strings. iamguard therefore checks the codes itself with
pyotp before it calls EnableMFADevice, so a device that was scanned wrongly is
never enabled (the owner would be locked out at the next sign-in).

Seeds are secrets: this module hands them to the caller's `show` callback (the
terminal) and to pyotp, and never logs them.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyotp

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

ISSUER = "Amazon Web Services"
# Time steps (30 s each) a code may be behind or ahead of this machine's clock.
LOOK_BACK_STEPS = 4
LOOK_AHEAD_STEPS = 1
MAX_DEVICES_PER_USER = 8
_CODE = re.compile(r"^\d{6}$")


class MfaCodeError(ValueError):
    """The codes cannot enable the device; the message says why and what to do."""


class EnrollmentError(RuntimeError):
    """Enrolment could not start or finish (device name taken, too many devices, ...)."""


@dataclass(frozen=True)
class NewDevice:
    """A virtual MFA device that was created but is not enabled yet."""

    serial_number: str
    seed: str  # base32 secret: for the authenticator only
    owner: str  # user name, or "root"
    account_id: str

    @property
    def uri(self) -> str:
        """The otpauth:// URI an authenticator app reads from the QR code."""
        label = f"{ISSUER}:{self.owner}@{self.account_id}"
        uri: str = pyotp.TOTP(self.seed).provisioning_uri(name=label, issuer_name=ISSUER)
        return uri

    @property
    def grouped_seed(self) -> str:
        """The secret in groups of four characters, for typing it in by hand."""
        return " ".join(self.seed[i : i + 4] for i in range(0, len(self.seed), 4))


def qr_ascii(data: str) -> str:
    """A QR code drawn with block characters, readable by a phone camera from a terminal."""
    import qrcode

    code = qrcode.QRCode(border=2)
    code.add_data(data)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def _steps_matching(totp: pyotp.TOTP, code: str, now: datetime) -> list[int]:
    current = totp.timecode(now)
    return [
        step
        for step in range(current - LOOK_BACK_STEPS, current + LOOK_AHEAD_STEPS + 1)
        if hmac.compare_digest(totp.generate_otp(step), code)
    ]


def code_is_valid(seed: str, code: str, now: datetime | None = None) -> bool:
    """True when `code` is the device's code for a time step near `now` (a sign-in)."""
    if not _CODE.match(code):
        return False
    return bool(_steps_matching(pyotp.TOTP(seed), code, now or datetime.now(UTC)))


def verify_consecutive_codes(seed: str, code1: str, code2: str, now: datetime | None = None) -> int:
    """Check two enrolment codes as AWS does; return the time step of the second.

    Both must be valid for the device, different, and from consecutive 30-second
    time steps (the first, then the very next). Raises `MfaCodeError` otherwise.
    """
    code1, code2 = code1.strip(), code2.strip()
    for label, code in (("first", code1), ("second", code2)):
        if not _CODE.match(code):
            raise MfaCodeError(f"The {label} code must be exactly 6 digits.")
    if code1 == code2:
        raise MfaCodeError(
            "The two codes are the same. Wait until your authenticator shows a new code "
            "(every 30 seconds) and enter that one as the second code."
        )
    totp = pyotp.TOTP(seed)
    at = now or datetime.now(UTC)
    first, second = _steps_matching(totp, code1, at), _steps_matching(totp, code2, at)
    if not first and not second:
        raise MfaCodeError(
            "Neither code is valid for this device. Check that your authenticator scanned this QR code "
            "(or that you typed this secret) and that its clock is right."
        )
    if not first:
        raise MfaCodeError("The first code is not valid for this device (or it has expired). Enter two fresh codes.")
    if not second:
        raise MfaCodeError("The second code is not valid for this device (or it has expired). Enter two fresh codes.")
    for step in second:
        if step - 1 in first:
            return step
    raise MfaCodeError(
        "Both codes are valid but not consecutive. Enter the code your authenticator shows, wait for the "
        "next code to appear, and enter that one as the second code."
    )


def authenticator_codes(seed: str, now: datetime | None = None) -> tuple[str, str]:
    """Two consecutive codes, as an authenticator app shows them (the previous and the current)."""
    totp = pyotp.TOTP(seed)
    current = totp.timecode(now or datetime.now(UTC))
    return totp.generate_otp(current - 1), totp.generate_otp(current)


class Enrollment:
    """Enrols a virtual MFA device for an IAM user or, in the local runtime, for root.

    `create()` makes the device; the caller shows `NewDevice.uri`/`seed` to the
    owner; `enable(device, code1, code2)` verifies the codes and only then calls
    EnableMFADevice; `abandon(device)` deletes a device that was never enabled.
    """

    def __init__(self, iam: IAMClient, account_id: str, clock: Callable[[], datetime] | None = None) -> None:
        self.iam = iam
        self.account_id = account_id
        self._clock = clock or (lambda: datetime.now(UTC))

    def create(self, user: str | None, device_name: str | None = None) -> NewDevice:
        """Create the device; `user=None` is root (local runtime: root's own credentials)."""
        from iamguard_cli.local.moto_ext import ROOT_MFA_SERIAL

        owner = user or "root"
        if user is not None:
            self._check_device_limit(user)
        name = device_name or (ROOT_MFA_SERIAL.rsplit("/", 1)[-1] if user is None else user)
        device: Mapping[str, Any]
        try:
            device = self.iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
        except self.iam.exceptions.EntityAlreadyExistsException:
            device = self._replace_unassigned(name, owner)
        seed = device.get("Base32StringSeed", b"")
        seed_text = seed.decode() if isinstance(seed, bytes) else str(seed)
        return NewDevice(device["SerialNumber"], seed_text, owner, self.account_id)

    def _check_device_limit(self, user: str) -> None:
        try:
            devices = self.iam.list_mfa_devices(UserName=user)["MFADevices"]
        except self.iam.exceptions.NoSuchEntityException as exc:
            raise EnrollmentError(f"user {user} does not exist") from exc
        if len(devices) >= MAX_DEVICES_PER_USER:
            raise EnrollmentError(f"user {user} already has {MAX_DEVICES_PER_USER} MFA devices (the AWS limit)")

    def _replace_unassigned(self, name: str, owner: str) -> Mapping[str, Any]:
        """A device of that name exists: reuse the name only if an earlier enrolment was abandoned."""
        for page in self.iam.get_paginator("list_virtual_mfa_devices").paginate(AssignmentStatus="Unassigned"):
            for device in page["VirtualMFADevices"]:
                if device["SerialNumber"].rsplit("/", 1)[-1] == name:
                    self.iam.delete_virtual_mfa_device(SerialNumber=device["SerialNumber"])
                    return self.iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
        raise EnrollmentError(
            f"an MFA device named {name!r} is already in use; choose another name for {owner}'s device (--device-name)"
        )

    def enable(self, device: NewDevice, code1: str, code2: str) -> None:
        """Verify the two codes (raises MfaCodeError), then enable the device."""
        from iamguard_cli.local.moto_ext import ROOT_USER_NAME

        verify_consecutive_codes(device.seed, code1, code2, self._clock())
        self.iam.enable_mfa_device(
            UserName=ROOT_USER_NAME if device.owner == "root" else device.owner,
            SerialNumber=device.serial_number,
            AuthenticationCode1=code1.strip(),
            AuthenticationCode2=code2.strip(),
        )

    def abandon(self, device: NewDevice) -> None:
        """Delete a device that was created but never enabled."""
        with contextlib.suppress(self.iam.exceptions.NoSuchEntityException):  # already gone
            self.iam.delete_virtual_mfa_device(SerialNumber=device.serial_number)
