"""Small builders for account state and findings, so tests read like the case they describe."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from iamguard.domain.account import (
    ADMINISTRATOR_ACCESS_ARN,
    AccessKey,
    AccountState,
    Credentials,
    Group,
    InlinePolicy,
    ManagedPolicyRef,
    MfaDevice,
    PasswordPolicy,
    RootState,
    User,
)
from iamguard.domain.findings import Finding, Severity, Status

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
ADMIN = ManagedPolicyRef(ADMINISTRATOR_ACCESS_ARN, "AdministratorAccess")
CHANGE_PASSWORD = ManagedPolicyRef("arn:aws:iam::aws:policy/IAMUserChangePassword", "IAMUserChangePassword")
READ_ONLY = ManagedPolicyRef("arn:aws:iam::aws:policy/ReadOnlyAccess", "ReadOnlyAccess")
STAR = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
DOCUMENTS: dict[str, Any] = {
    ADMIN.arn: STAR,
    CHANGE_PASSWORD.arn: {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iam:ChangePassword"], "Resource": ["arn:aws:iam::*:user/${aws:username}"]},
            {"Effect": "Allow", "Action": ["iam:GetAccountPasswordPolicy"], "Resource": "*"},
        ],
    },
    READ_ONLY.arn: {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "s3:Get*"], "Resource": "*"}],
    },
}


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def creds(
    *,
    password: bool = False,
    password_last_used: datetime | None = None,
    password_last_changed: datetime | None = None,
    mfa: bool = False,
    keys: tuple[AccessKey, ...] = (),
) -> Credentials:
    return Credentials(
        password_enabled=password,
        password_last_used=password_last_used,
        password_last_changed=password_last_changed or (days_ago(1) if password else None),
        mfa_active=mfa,
        access_keys=keys,
    )


def key(slot: int = 1, *, rotated_days: float = 10, used_days: float | None = 1, active: bool = True) -> AccessKey:
    return AccessKey(
        slot=slot,
        active=active,
        last_rotated=days_ago(rotated_days),
        last_used=days_ago(used_days) if used_days is not None else None,
    )


def user(name: str = "alice", **fields: Any) -> User:
    base = User(
        name=name,
        arn=f"arn:aws:iam::{ACCOUNT}:user/{name}",
        user_id=f"AIDA{name.upper()}",
        created=days_ago(30),
        credentials=creds(),
    )
    return replace(base, **fields)


def with_mfa(u: User) -> User:
    return replace(u, mfa_devices=(MfaDevice(f"arn:aws:iam::{ACCOUNT}:mfa/{u.name}", virtual=True),))


def inline_star(name: str = "everything") -> InlinePolicy:
    return InlinePolicy(name, STAR)


def group(name: str, *refs: ManagedPolicyRef, inline: tuple[InlinePolicy, ...] = ()) -> Group:
    return Group(name=name, arn=f"arn:aws:iam::{ACCOUNT}:group/{name}", attached_policies=refs, inline_policies=inline)


def root(**fields: Any) -> RootState:
    base = RootState(
        arn=f"arn:aws:iam::{ACCOUNT}:root",
        mfa_enabled=True,
        has_virtual_mfa=False,
        access_keys_present=False,
        credentials=creds(password=True, mfa=True, password_last_used=days_ago(30)),
    )
    return replace(base, **fields)


GOOD_POLICY = PasswordPolicy(minimum_length=14, password_reuse_prevention=24, allow_users_to_change_password=True)


def state(*users: User, groups: dict[str, Group] | None = None, **fields: Any) -> AccountState:
    base = AccountState(
        account_id=ACCOUNT,
        read_at=NOW,
        root=root(),
        password_policy=GOOD_POLICY,
        aliases=("example",),
        users=users,
        groups=groups or {},
        policy_documents=dict(DOCUMENTS),
    )
    return replace(base, **fields)


def finding(
    check: str = "user_console_mfa",
    user: str | None = "bob",
    status: Status = Status.FAIL,
    severity: Severity = Severity.HIGH,
    at: datetime = NOW,
    detail: str | None = None,
    **fields: Any,
) -> Finding:
    """A finding observed at `at`, as the store hands it back (first seen, last seen, changed at `at`; `fields`
    override them): about IAM user `user`, or (user=None) root for a root_* check, else the account."""
    if user is not None:
        kind, name, arn = "user", user, f"arn:aws:iam::{ACCOUNT}:user/{user}"
    elif check.startswith("root_"):
        kind, name, arn = "root", "root", f"arn:aws:iam::{ACCOUNT}:root"
    else:
        kind, name, arn = "account", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:account"
    return Finding(
        check_id=check,
        severity=severity,
        status=status,
        resource_type=kind,
        resource_arn=arn,
        resource_name=name,
        account_id=ACCOUNT,
        detail=detail
        or _DETAILS.get(check, "{check} is {status} for {name}.").format(check=check, status=status.value, name=name),
        observed_at=at,
        **{"first_seen": at, "last_seen": at, "status_changed_at": at, **fields},
    )


_DETAILS = {"user_console_mfa": "User {name} has a console password but no MFA device."}
