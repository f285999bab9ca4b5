"""Typed models of the account state that checks read.

Inventory builds these once (in bulk for an audit, or for one user on the
event path); checks only read them, so a check never calls AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

PolicyDocument = dict[str, Any]

ADMINISTRATOR_ACCESS_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
CHANGE_PASSWORD_POLICY_ARN = "arn:aws:iam::aws:policy/IAMUserChangePassword"


@dataclass(frozen=True)
class ManagedPolicyRef:
    arn: str
    name: str


@dataclass(frozen=True)
class InlinePolicy:
    name: str
    document: PolicyDocument


@dataclass(frozen=True)
class Group:
    name: str
    arn: str
    attached_policies: tuple[ManagedPolicyRef, ...] = ()
    inline_policies: tuple[InlinePolicy, ...] = ()


@dataclass(frozen=True)
class AccessKey:
    """One access key, as the credential report describes it (slot 1 or 2)."""

    slot: int
    active: bool
    last_rotated: datetime | None
    last_used: datetime | None


@dataclass(frozen=True)
class MfaDevice:
    serial_number: str
    virtual: bool
    enabled_at: datetime | None = None


def is_virtual_mfa_serial(serial_number: str) -> bool:
    """Virtual devices are `arn:…:mfa/<name>`; FIDO keys and passkeys `arn:…:u2f/…`; hardware TOTP a bare serial."""
    return serial_number.startswith("arn:") and ":mfa/" in serial_number


@dataclass(frozen=True)
class Credentials:
    """Credential-report facts about one principal (an IAM user or root)."""

    password_enabled: bool
    password_last_used: datetime | None
    password_last_changed: datetime | None
    mfa_active: bool
    access_keys: tuple[AccessKey, ...] = ()
    # When these facts were true: the credential report's GeneratedTime (it can be hours old),
    # or the time of a live read. None: unknown (the time of the read that produced them).
    observed_at: datetime | None = None
    # The report row's user_creation_time: a row of a deleted user whose name was reused differs.
    principal_created: datetime | None = None

    @property
    def active_keys(self) -> tuple[AccessKey, ...]:
        return tuple(key for key in self.access_keys if key.active)


@dataclass(frozen=True)
class User:
    name: str
    arn: str
    user_id: str
    created: datetime
    path: str = "/"
    tags: dict[str, str] = field(default_factory=dict)
    attached_policies: tuple[ManagedPolicyRef, ...] = ()
    inline_policies: tuple[InlinePolicy, ...] = ()
    group_names: tuple[str, ...] = ()
    # The managed policy that caps the user's permissions (PermissionsBoundaryArn), if any.
    permissions_boundary: ManagedPolicyRef | None = None
    mfa_devices: tuple[MfaDevice, ...] = ()
    # None when the credential report could not be read: checks that need it report an error.
    credentials: Credentials | None = None
    # Only looked up (GetLoginProfile) where it matters: console users that never signed in.
    password_reset_required: bool | None = None
    # Why that lookup failed for this user (throttled, denied): its checks report ERROR, the audit goes on.
    login_profile_error: str | None = None

    @property
    def has_mfa(self) -> bool:
        return bool(self.mfa_devices) or bool(self.credentials and self.credentials.mfa_active)


@dataclass(frozen=True)
class LoginProfileFacts:
    """What GetLoginProfile said about one user's console password, and when it said it."""

    user_name: str
    user_id: str  # a user re-created under the same name has another id: its facts start afresh
    password_reset_required: bool
    profile_created: datetime | None  # LoginProfile.CreateDate
    observed_at: datetime  # when GetLoginProfile answered


class LoginProfileMemory(Protocol):
    """Where an audit keeps the login-profile facts it read, to reuse while they cannot have changed.

    A cache: a failed read or write loses nothing but the saving (the facts are read live).
    """

    def recall(self) -> dict[str, LoginProfileFacts]:
        """The facts kept, by user name."""
        ...

    def remember(self, facts: list[LoginProfileFacts]) -> None:
        """Keep new observations (an older one never replaces a newer one)."""
        ...


@dataclass(frozen=True)
class RootUse:
    """Root was used at a known time, as an event says (newer than any credential report)."""

    at: datetime
    how: str  # "signed in to the console", "called iam:CreateAccessKey"


@dataclass(frozen=True)
class RootState:
    """The root user, live from GetAccountSummary (and ListVirtualMFADevices), plus its report row."""

    arn: str
    mfa_enabled: bool  # AccountMFAEnabled: any device (virtual, hardware TOTP, FIDO key, passkey)
    has_virtual_mfa: bool
    access_keys_present: bool
    credentials: Credentials | None
    # AccountPasswordPresent (None: the summary does not say; then root is assumed to have one).
    # The report cannot tell: its root row's password_enabled is always "not_supported".
    password_present: bool | None = None
    signing_certificates_present: bool = False
    virtual_mfa_devices: int = 0  # root may have up to 8 MFA devices; these are the virtual ones
    used: RootUse | None = None  # set on the event path from the event itself

    @property
    def has_no_credentials(self) -> bool:
        """No password, access key, signing certificate or MFA: a member account whose root credentials
        were deleted through centralized root access (AWS Organizations), the recommended state."""
        return (
            self.password_present is False
            and not self.access_keys_present
            and not self.signing_certificates_present
            and not self.mfa_enabled
        )


@dataclass(frozen=True)
class PasswordPolicy:
    """GetAccountPasswordPolicy; an account without a policy has `None` instead of this."""

    minimum_length: int = 8
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    allow_users_to_change_password: bool = False
    max_password_age_days: int | None = None
    password_reuse_prevention: int | None = None
    hard_expiry: bool = False


InventoryPart = Literal["credential_report"]


@dataclass(frozen=True)
class AccountState:
    """Everything the checks need, read in one sweep."""

    account_id: str
    read_at: datetime
    root: RootState
    password_policy: PasswordPolicy | None
    aliases: tuple[str, ...]
    users: tuple[User, ...]
    groups: dict[str, Group]
    policy_documents: dict[str, PolicyDocument]
    # Parts of the inventory that could not be read, with the reason; checks
    # that depend on them report ERROR rather than a silent pass.
    errors: dict[InventoryPart, str] = field(default_factory=dict)
    api_calls: int = 0
