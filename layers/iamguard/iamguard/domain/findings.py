"""Findings: what a check concluded about one resource, and how that changes over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFORMATIONAL = "informational"

    @property
    def rank(self) -> int:
        """Higher is worse: informational=0 … critical=4."""
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def parse(cls, value: str) -> Severity:
        aliases = {"info": cls.INFORMATIONAL}
        lowered = value.strip().lower()
        return aliases.get(lowered) or cls(lowered)


_SEVERITY_ORDER = [
    Severity.INFORMATIONAL,
    Severity.LOW,
    Severity.MEDIUM,
    Severity.HIGH,
    Severity.CRITICAL,
]


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    EXEMPT = "EXEMPT"  # would fail, but the user is exempt (tag or setting)
    ERROR = "ERROR"  # could not be evaluated (e.g. credential report unavailable)


class Transition(StrEnum):
    """How a stored finding changed with a new observation; what notifications key on."""

    OPENED = "opened"  # new, or back to FAIL after a PASS
    RESOLVED = "resolved"  # FAIL → PASS, or the resource is gone
    ESCALATED = "escalated"  # still FAIL, higher severity
    UNCHANGED = "unchanged"
    RECORDED = "recorded"  # first observation, not a failure: nothing to announce


ResourceType = Literal["root", "user", "account"]


class Finding(BaseModel):
    """One check's verdict on one resource."""

    model_config = ConfigDict(frozen=True)

    check_id: str
    severity: Severity
    status: Status
    resource_type: ResourceType
    resource_arn: str
    resource_name: str
    account_id: str
    detail: str
    observed_at: datetime
    # Set by the store:
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    status_changed_at: datetime | None = None
    # The exception behind an EXEMPT finding (iamguard.domain.exemptions); on a FAIL, the one that expired.
    exempt_source: str | None = None
    exempt_owner: str | None = None
    exempt_reason: str | None = None
    exempt_until: date | None = None

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    @property
    def exemption_expired(self) -> bool:
        """Failing because its exception ran out (the finding names the one that expired)."""
        return self.failed and self.exempt_source is not None

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_arn, self.check_id


def transition(previous: Finding | None, current: Finding) -> Transition:
    """Classify what changed between the stored finding and a new observation."""
    if previous is None:
        return Transition.OPENED if current.failed else Transition.RECORDED
    if current.failed and not previous.failed:
        return Transition.OPENED
    if previous.failed and not current.failed:
        return Transition.RESOLVED
    if current.failed and current.severity.rank > previous.severity.rank:
        return Transition.ESCALATED
    return Transition.UNCHANGED


def at_or_above(findings: list[Finding], threshold: Severity) -> list[Finding]:
    return [f for f in findings if f.failed and f.severity.rank >= threshold.rank]


@dataclass(frozen=True)
class Change:
    """A stored finding and what its latest observation did to it.

    `announcement` is the token of the pending announcement the change carries
    (None: nothing to announce); `recovered` marks one that an earlier run
    recorded but never got into the outbox.
    """

    finding: Finding
    previous: Finding | None
    transition: Transition
    announcement: str | None = None
    recovered: bool = False

    @property
    def notable(self) -> bool:
        return self.transition in {Transition.OPENED, Transition.RESOLVED, Transition.ESCALATED}
