"""Root-user state for moto, in one documented place.

moto has no root user: its credential report has no `<root_account>` row and
GetAccountSummary reports AccountMFAEnabled / AccountAccessKeysPresent as a
constant 0. It also ignores PasswordResetRequired on CreateLoginProfile. This
module patches those spots (idempotently) so that iamguard's root checks and
the first-sign-in lockout check can be exercised locally and in tests:

    from iamguard.local import moto_ext
    moto_ext.install()
    moto_ext.root(account_id).mfa = "virtual"

The state lives in the moto process (in-process mock or a server started from
Python); it mirrors what AWS itself would hold for the root user.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ROOT_MFA_SERIAL = "arn:aws:iam::{account_id}:mfa/root-account-mfa-device"
_DATE = "%Y-%m-%dT%H:%M:%S+00:00"

_lock = threading.Lock()
_installed = False


@dataclass
class RootKey:
    access_key_id: str
    active: bool = True
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: datetime | None = None


@dataclass
class RootAccount:
    """What AWS knows about an account's root user."""

    account_id: str
    created: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    mfa: Literal["none", "virtual", "hardware"] = "none"
    mfa_enabled_at: datetime | None = None
    password_last_used: datetime | None = None
    access_keys: list[RootKey] = field(default_factory=list)

    def report_row(self) -> str:
        def when(value: datetime | None) -> str:
            return value.strftime(_DATE) if value else "N/A"

        keys = self.access_keys[:2] + [None] * (2 - len(self.access_keys[:2]))
        cells = [
            "<root_account>",
            f"arn:aws:iam::{self.account_id}:root",
            self.created.strftime(_DATE),
            "not_supported",
            when(self.password_last_used) if self.password_last_used else "no_information",
            "not_supported",
            "not_supported",
            "true" if self.mfa != "none" else "false",
        ]
        for key in keys:
            cells += [
                "true" if key and key.active else "false",
                when(key.created) if key else "N/A",
                when(key.last_used) if key else "N/A",
                "N/A",
                "N/A",
            ]
        cells += ["false", "N/A", "false", "N/A"]
        return ",".join(cells) + "\n"


_roots: dict[str, RootAccount] = {}


def root(account_id: str) -> RootAccount:
    """The root state of a moto account (created on first use: no MFA, no keys)."""
    with _lock:
        return _roots.setdefault(account_id, RootAccount(account_id))


def reset() -> None:
    """Forget all root state (between tests)."""
    with _lock:
        _roots.clear()


class _RootUserView:
    """Quacks like moto's User where a virtual MFA device points at its owner."""

    def __init__(self, account_id: str) -> None:
        self.name = "root"
        self.path = "/"
        self.id = account_id
        self.arn = f"arn:aws:iam::{account_id}:root"
        self.create_date = root(account_id).created
        self.tags: dict[str, str] = {}


def install() -> None:
    """Patch moto (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from moto.iam import models, responses

    original_report = models.IAMBackend.get_credential_report
    original_summary = models.AccountSummary.summary_map
    original_list_devices = models.IAMBackend.list_virtual_mfa_devices
    original_create_login_profile = responses.IamResponse.create_login_profile

    def get_credential_report(self: Any) -> str:
        report: str = original_report(self)
        header, _, rest = report.partition("\n")
        return f"{header}\n{root(self.account_id).report_row()}{rest}"

    def summary_map(self: Any) -> dict[str, Any]:
        summary: dict[str, Any] = dict(original_summary.fget(self))  # type: ignore[attr-defined]
        state = root(self._iam_backend.account_id)
        summary["AccountMFAEnabled"] = 1 if state.mfa != "none" else 0
        summary["AccountAccessKeysPresent"] = 1 if state.access_keys else 0
        return summary

    def list_virtual_mfa_devices(self: Any, assignment_status: str, marker: str | None, max_items: int) -> Any:
        devices, next_marker = original_list_devices(self, assignment_status, marker, max_items)
        state = root(self.account_id)
        if state.mfa == "virtual" and assignment_status in {"Assigned", "Any"} and next_marker is None:
            device = models.VirtualMfaDevice(self.account_id, self.region_name, "/root-account-mfa-device")
            device.enable_date = state.mfa_enabled_at or datetime.now(UTC)
            device.user = _RootUserView(self.account_id)  # type: ignore[assignment]
            devices = [*devices, device]
        return devices, next_marker

    def create_login_profile(self: Any) -> Any:
        result = original_create_login_profile(self)
        if str(self._get_param("PasswordResetRequired", "false")).lower() == "true":
            user = self.backend.get_user(self._get_param("UserName"))
            user.password_reset_required = True
            result = original_get_login_profile_result(self)
        return result

    def original_get_login_profile_result(self: Any) -> Any:
        return responses.IamResponse.get_login_profile(self)

    models.IAMBackend.get_credential_report = get_credential_report  # type: ignore[method-assign]
    models.AccountSummary.summary_map = property(summary_map)  # type: ignore[assignment,method-assign]
    models.IAMBackend.list_virtual_mfa_devices = list_virtual_mfa_devices  # type: ignore[method-assign]
    responses.IamResponse.create_login_profile = create_login_profile  # type: ignore[method-assign]
