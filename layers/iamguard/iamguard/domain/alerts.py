"""Real-time detections (DESIGN.md's detection table) and enforcement actions.

The event path produces `Alert`s and `Action`s; the notifier delivers them; the
store keeps them as recent activity for the status API.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from iamguard.domain.findings import Change, Severity


class Detection(StrEnum):
    USER_CREATED = "user_created"
    CONSOLE_ACCESS_GRANTED = "console_access_granted"
    ADMIN_ACCESS_GRANTED = "admin_access_granted"
    REQUIRED_POLICY_REMOVED = "required_policy_removed"
    MFA_REMOVED = "mfa_removed"
    ROOT_ACCESS_KEY_CREATED = "root_access_key_created"
    PASSWORD_POLICY_WEAKENED = "password_policy_weakened"
    ROOT_CONSOLE_SIGN_IN = "root_console_sign_in"
    CONSOLE_SIGN_IN_WITHOUT_MFA = "console_sign_in_without_mfa"
    CONSOLE_SIGN_IN_FAILURES = "console_sign_in_failures"
    ROOT_SESSION_ASSUMED = "root_session_assumed"


class Alert(BaseModel):
    """One real-time detection, raised from one CloudTrail event."""

    model_config = ConfigDict(frozen=True)

    detection: Detection
    severity: Severity
    resource_name: str
    resource_arn: str | None = None
    summary: str  # one sentence: what happened
    actor: str | None = None  # who did it (CloudTrail userIdentity, readable)
    source_ip: str | None = None
    event_id: str
    event_name: str
    event_time: datetime
    region: str | None = None
    account_id: str
    related_check_ids: tuple[str, ...] = ()  # checks whose remediation applies
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        # The account too: in organization mode one eventID may come from several accounts.
        return f"{self.account_id}#{self.event_id}#{self.detection.value}#{self.resource_name}"


# Why iamguard held an action back (iamguard.enforce): the user has an active access key, the
# grace period is running, or an administrator detached the guardrail by hand.
Withheld = Literal["access_key", "grace_period", "admin_detached"]


class Action(BaseModel):
    """An enforcement action iamguard took, held back, or (in monitor mode) would have taken."""

    model_config = ConfigDict(frozen=True)

    action: str  # "attach_guardrail_policy", "detach_guardrail_policy", "attach_required_policy"
    user_name: str
    policy_arn: str
    account_id: str | None = None  # the user's account
    performed: bool  # False in monitor mode, when the action failed, or when it was withheld
    reason: str
    event_id: str | None = None  # None when the scheduled audit acted
    at: datetime
    error: str | None = None
    withheld: Withheld | None = None  # why iamguard did not act; the reason says what to do instead
    due_at: datetime | None = None  # grace_period: when the attach becomes due
    detached_by: str | None = None  # admin_detached: who took the guardrail off, and when
    detached_at: datetime | None = None
    announce: bool = True  # False: reported only (monitor mode, or people were already told)

    @property
    def outcome(self) -> Literal["performed", "failed", "withheld", "monitor"]:
        if self.performed:
            return "performed"
        if self.error:
            return "failed"
        return "withheld" if self.withheld else "monitor"


class Announcer(Protocol):
    """Where alerts, finding changes and actions go to be told to people (see iamguard.notify)."""

    def announce(self, *, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> object:
        """Tell people (each thing once). What it returns (a delivery report, or None) is for logs and CLIs."""
        ...


class LogOnlyAnnouncer:
    """Used when no channel is configured: keeps the announcement in the structured log."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def announce(self, *, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> None:
        for alert in alerts:
            self._logger.warning("alert", extra={"alert": alert.model_dump(mode="json")})
        for change in changes:
            if change.notable:
                self._logger.info(
                    "finding changed",
                    extra={
                        "check_id": change.finding.check_id,
                        "resource": change.finding.resource_name,
                        "transition": change.transition.value,
                    },
                )
        for action in actions:
            self._logger.info("enforcement action", extra={"action": action.model_dump(mode="json")})
