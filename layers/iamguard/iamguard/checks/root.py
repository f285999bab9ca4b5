"""Checks on the root user.

Root's MFA, keys and password come from GetAccountSummary, read live; only root's
usage needs the credential report (whose root row cannot say whether root has a
password: its password_enabled is always "not_supported"). A member account whose
root credentials were deleted through centralized root access (AWS Organizations)
has no password, no keys and no MFA: that is the recommended state, so the MFA
checks pass for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from iamguard.checks.base import Outcome, RemediationSteps, Standards, account_check
from iamguard.domain.account import AccountState
from iamguard.domain.findings import Severity
from iamguard.settings import Settings

SUMMARY = ("iam:GetAccountSummary",)
REPORT = ("iam:GenerateCredentialReport", "iam:GetCredentialReport")


NO_CREDENTIALS = (
    "The root user has no credentials (no password, access key or MFA device): root access is managed "
    "centrally (AWS Organizations), the recommended state for a member account."
)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@account_check(
    id="root_mfa_enabled",
    severity=Severity.CRITICAL,
    scope="root",
    title="The root user has MFA enabled",
    risk="Anyone with the root password controls the whole account, including billing and account closure; "
    "MFA is the only second factor root can have.",
    remediation=RemediationSteps(
        console=(
            "Sign in as the root user and open IAM > Dashboard > Add MFA (or Security credentials > Multi-factor "
            "authentication > Assign MFA device).",
            "Choose Authenticator app (or a security key), scan the QR code, enter two consecutive codes, "
            "and choose Add MFA.",
        ),
        cli="Root MFA can only be assigned while signed in as root: aws iam create-virtual-mfa-device "
        "--virtual-mfa-device-name root-account-mfa-device --outfile qr.png --bootstrap-method QRCodePNG; "
        "aws iam enable-mfa-device --user-name <root> --serial-number <arn> --authentication-code1 <code1> "
        "--authentication-code2 <code2> (or run `iamguard mfa enroll --root`).",
    ),
    standards=Standards(
        cis="1.5", security_hub="IAM.9", config_rule="root-account-mfa-enabled", prowler="iam_root_mfa_enabled"
    ),
    permissions=SUMMARY,
)
def root_mfa_enabled(state: AccountState, settings: Settings, now: datetime) -> Outcome:
    if state.root.mfa_enabled:
        return Outcome(True, "The root user has an MFA device.")
    if state.root.has_no_credentials:
        return Outcome(True, NO_CREDENTIALS)
    return Outcome(False, "The root user has no MFA device.")


@account_check(
    id="root_hardware_mfa",
    severity=Severity.HIGH,
    scope="root",
    title="The root user has a hardware MFA device",
    risk="A virtual MFA device lives on a phone that can be lost, cloned or backed up; a hardware key "
    "protects root against phishing and device compromise.",
    remediation=RemediationSteps(
        console=(
            "Sign in as root, open Security credentials > Multi-factor authentication > Assign MFA device.",
            "Choose Security key or Hardware TOTP token, register it, then remove the virtual device.",
        ),
        cli="Hardware devices for root are registered in the console; list what is assigned with "
        "aws iam list-virtual-mfa-devices --assignment-status Assigned.",
    ),
    standards=Standards(cis="1.6", security_hub="IAM.6", prowler="iam_root_hardware_mfa_enabled"),
    permissions=SUMMARY + ("iam:ListVirtualMFADevices",),
)
def root_hardware_mfa(state: AccountState, settings: Settings, now: datetime) -> Outcome:
    root = state.root
    if not root.mfa_enabled:
        if root.has_no_credentials:
            return Outcome(True, NO_CREDENTIALS)
        return Outcome(False, "The root user has no MFA device, hardware or virtual.")
    if root.has_virtual_mfa:
        virtual = max(root.virtual_mfa_devices, 1)
        # Any virtual device can sign root in (AWS Config's root-account-hardware-mfa-enabled fails too).
        return Outcome(
            False, f"The root user can sign in with {_plural(virtual, 'virtual MFA device')}, not only hardware."
        )
    return Outcome(True, "The root user's MFA is a hardware device (a FIDO security key, passkey or TOTP token).")


@account_check(
    id="root_no_access_keys",
    severity=Severity.CRITICAL,
    scope="root",
    title="The root user has no access keys",
    risk="A root access key gives unrestricted, MFA-free programmatic control of the account and cannot be "
    "limited by any policy.",
    remediation=RemediationSteps(
        console=(
            "Sign in as root and open Security credentials > Access keys.",
            "For each key: Actions > Deactivate, confirm nothing breaks, then Actions > Delete.",
        ),
        cli="Signed in with the root key itself: aws iam list-access-keys; aws iam update-access-key "
        "--access-key-id <id> --status Inactive; aws iam delete-access-key --access-key-id <id>.",
    ),
    standards=Standards(
        cis="1.4", security_hub="IAM.4", config_rule="iam-root-access-key-check", prowler="iam_no_root_access_key"
    ),
    permissions=SUMMARY + REPORT,
)
def root_no_access_keys(state: AccountState, settings: Settings, now: datetime) -> Outcome:
    # The live summary decides; the (older) report only says how many of the keys are active.
    if state.root.access_keys_present:
        creds = state.root.credentials
        active = len(creds.active_keys) if creds else 0
        keys = _plural(active, "active access key") if active else "an access key"
        return Outcome(False, f"The root user has {keys}.")
    return Outcome(True, "The root user has no access keys.")


@account_check(
    id="root_not_used_recently",
    severity=Severity.HIGH,
    scope="root",
    title="The root user has not been used recently",
    risk="Everyday use of root means its credentials are exposed far more often than the rare tasks that "
    "need them; IAM users or roles should do the work.",
    remediation=RemediationSteps(
        console=(
            "Create an IAM user or IAM Identity Center user with the permissions needed (IAM > Users > "
            "Create user) and use it instead.",
            "Sign out of root; keep root for the few tasks that require it.",
        ),
        cli="aws iam create-user --user-name <name>; aws iam create-login-profile --user-name <name> "
        "--password-reset-required --password <temporary>; then stop using root credentials.",
    ),
    standards=Standards(cis="1.7", security_hub="IAM.20", prowler="iam_avoid_root_usage"),
    permissions=REPORT,
    needs=("credential_report",),
)
def root_not_used_recently(state: AccountState, settings: Settings, now: datetime) -> Outcome:
    window = timedelta(days=settings.root_usage_days)
    within = f"within the last {_plural(settings.root_usage_days, 'day')}"
    used = state.root.used
    if used is not None and now - used.at < window:
        # An event's fact: whatever an older credential report says, root was used then.
        return Outcome(False, f"The root user {used.how} at {used.at:%Y-%m-%d %H:%M} UTC, {within}.")
    creds = state.root.credentials
    if creds is None:
        return Outcome(False, "The credential report has no root row, so root usage is unknown.", unknown=True)
    uses = [("password", creds.password_last_used)] + [
        (f"access key {key.slot}", key.last_used) for key in creds.access_keys
    ]
    recent = [(what, when) for what, when in uses if when is not None and now - when < window]
    if recent:
        what, when = max(recent, key=lambda item: item[1])
        return Outcome(False, f"The root user's {what} was used at {when:%Y-%m-%d %H:%M} UTC, {within}.")
    return Outcome(True, f"The root user has not been used in the last {settings.root_usage_days} day(s).")
