"""Response models of the status API: what the OpenAPI document promises."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from iamguard.domain.findings import Severity, Status

# The catalog's stable ids (iamguard.checks.CATALOG); a unit test keeps the two equal.
CheckId = Literal[
    "root_mfa_enabled",
    "root_hardware_mfa",
    "root_no_access_keys",
    "root_not_used_recently",
    "password_policy",
    "account_alias_set",
    "user_console_mfa",
    "user_mfa",
    "user_admin_access",
    "user_privilege_escalation",
    "user_admin_without_mfa",
    "user_no_direct_policies",
    "user_required_policies",
    "user_password_reset_possible",
    "user_pending_first_sign_in",
    "user_access_keys_rotated",
    "user_unused_credentials",
    "user_single_active_key",
    "member_audit_access",
    "org_member_root_credentials",
    "org_member_stackset",
    "org_member_console_users",
]


class Verdict(StrEnum):
    """The account's overall answer to "are we compliant?"."""

    COMPLIANT = "compliant"  # nothing above informational fails, and a recent audit says so
    NON_COMPLIANT = "non_compliant"  # a finding above informational fails
    UNKNOWN = "unknown"  # no audit yet, the last audit is stale, or a check could not be evaluated


class UserStatus(StrEnum):
    COMPLIANT = "compliant"  # every check passes
    NON_COMPLIANT = "non_compliant"  # at least one check fails
    EXEMPT = "exempt"  # would fail, but the user is exempt
    UNKNOWN = "unknown"  # nothing fails, but a check could not be evaluated


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class SeverityCounts(_Model):
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    informational: int = 0


class StatusCounts(_Model):
    PASS: int = 0
    FAIL: int = 0
    EXEMPT: int = 0
    ERROR: int = 0


class UserCounts(_Model):
    total: int = 0
    compliant: int = 0
    non_compliant: int = 0
    exempt: int = 0
    unknown: int = 0


class CheckResult(_Model):
    """A root or account-wide check's current result."""

    check_id: CheckId
    title: str
    severity: Severity
    status: Status
    resource_name: str
    detail: str
    last_seen: datetime | None = None
    # The exception behind EXEMPT (PUT /exceptions/{check_id}/account), or the one that expired on a FAIL.
    exempt_owner: str | None = None
    exempt_reason: str | None = None
    exempt_until: date | None = None


class LastAudit(_Model):
    started_at: datetime
    finished_at: datetime
    age_seconds: int = Field(description="Seconds since the audit finished.")
    stale: bool = Field(description="True when the audit is older than twice the audit interval.")
    api_calls: int
    errors: dict[str, str] = Field(description="Inventory parts that could not be read, with the reason.")


class AccountCounts(_Model):
    """Organization mode: the member accounts by verdict."""

    total: int = 0
    compliant: int = 0
    non_compliant: int = 0
    unknown: int = 0


class AccountStatus(_Model):
    """One member account in GET /accounts: its verdict, last audit and counts."""

    account_id: str
    verdict: Verdict
    stale: bool = Field(
        description="True when the account has no audit or its last one is older than twice the interval."
    )
    last_audit: LastAudit | None
    users: UserCounts
    findings: StatusCounts
    failed_by_severity: SeverityCounts


class AccountList(_Model):
    organization_id: str | None = Field(description="The organization (organization mode), else null.")
    accounts: list[AccountStatus]


class StatusReport(_Model):
    """Where the account stands (in organization mode: the whole organization)."""

    verdict: Verdict
    account_id: str | None
    generated_at: datetime
    stale: bool = Field(description="True when there is no audit or the last one is older than twice the interval.")
    last_audit: LastAudit | None
    root: list[CheckResult]
    account: list[CheckResult] = Field(description="Account-wide checks: password policy and account alias.")
    users: UserCounts
    findings: StatusCounts
    failed_by_severity: SeverityCounts
    organization_id: str | None = Field(
        default=None, description="Organization mode: the organization this verdict covers (every account)."
    )
    accounts: AccountCounts | None = Field(default=None, description="Organization mode: accounts by verdict.")


class Remediation(_Model):
    console: list[str]
    cli: str


class FindingDetail(_Model):
    """One finding with its check's title, risk and fix steps."""

    check_id: CheckId
    severity: Severity
    status: Status
    resource_type: Literal["root", "user", "account"]
    resource_arn: str
    resource_name: str
    account_id: str
    detail: str
    observed_at: datetime
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    status_changed_at: datetime | None = None
    exempt_source: Literal["tag", "api", "setting"] | None = Field(
        default=None, description="Where the exception behind EXEMPT comes from (on a FAIL: the one that expired)."
    )
    exempt_owner: str | None = None
    exempt_reason: str | None = None
    exempt_until: date | None = Field(default=None, description="Its last day; absent: no end date.")
    title: str
    risk: str
    remediation: Remediation
    standards: list[str]


class FindingPage(_Model):
    findings: list[FindingDetail]
    next_token: str | None = Field(description="Pass as next_token to get the next page; null on the last page.")


class UserSummary(_Model):
    name: str
    arn: str
    account_id: str = Field(description="The user's account (in organization mode, one name may be in several).")
    status: UserStatus
    highest_severity: Severity | None = Field(description="The most severe failed check, if any.")
    failed_checks: list[CheckId]
    exempt_checks: list[CheckId]
    error_checks: list[CheckId]
    last_seen: datetime | None


class UserPage(_Model):
    users: list[UserSummary]
    next_token: str | None = Field(description="Pass as next_token to get the next page; null on the last page.")


class UserDetail(_Model):
    """A user and every finding about it, failures first."""

    name: str
    arn: str
    account_id: str = Field(description="The user's account.")
    status: UserStatus
    highest_severity: Severity | None
    findings: list[FindingDetail]


class EventKind(StrEnum):
    DETECTION = "detection"
    ACTION = "action"


class EventRecord(_Model):
    """A real-time detection or an enforcement action, as the event path recorded it."""

    kind: str = Field(description="detection or action.")
    id: str
    at: datetime
    severity: Severity | None = None
    summary: str | None = None
    resource_name: str | None = None
    data: dict[str, Any]


class EventList(_Model):
    events: list[EventRecord]
    days: int


class TrendPoint(_Model):
    """Where one audit left the account."""

    at: datetime = Field(description="When the audit read the account.")
    open: int = Field(description="Failed findings (all severities) after the audit.")
    failed_by_severity: SeverityCounts
    errors: int = Field(description="Inventory parts the audit could not read: counts may be low when above 0.")


class Trend(_Model):
    """Open findings over time, one point per audit run, oldest first."""

    days: int
    points: list[TrendPoint]
    complete: bool = Field(
        description="False when the window held more runs than one answer carries: the oldest are left out."
    )


class AuditStarted(_Model):
    """An audit was requested; it runs asynchronously."""

    run_id: str
    requested_at: datetime
    follow: str = Field(description="Where to see the result: GET /status, whose last_audit.started_at will be newer.")
    message: str


class ErrorDetail(_Model):
    location: str
    type: str


class ErrorResponse(_Model):
    error: str = Field(description="A stable error code, e.g. bad_request, not_found, internal_error.")
    message: str
    details: list[ErrorDetail] = []


# -- exceptions (PUT/GET/DELETE /exceptions) ------------------------------------------------
def _iso_date(value: Any) -> Any:
    """Only YYYY-MM-DD: pydantic alone would also take a number (seconds since 1970) or 20261231."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return value.strip()
    if isinstance(value, date):
        return value
    raise ValueError("expires must be a date written YYYY-MM-DD")


Text = Annotated[str, StringConstraints(min_length=1)]  # blank (whitespace only) is refused by the service


class ExceptionRequest(_Model):
    """The body of PUT /exceptions/{check_id}/{resource}: every field is required."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: Annotated[Text, Field(max_length=128, description="Who answers for the exception (a person or team).")]
    reason: Annotated[Text, Field(max_length=512, description="Why the check may fail for this resource.")]
    expires: Annotated[
        date,
        BeforeValidator(_iso_date),
        Field(description="The last day (UTC) the exception holds: today at the earliest, at most the maximum ahead."),
    ]


class ExceptionRecord(_Model):
    """One exception made through the API."""

    check_id: str = Field(description="A check id from the catalog, or * for every check.")
    resource: str = Field(description="An IAM user name, or account for the account's own (root and account) checks.")
    owner: str | None
    reason: str
    expires: date
    live: bool = Field(description="It holds today; false once its expires day has passed.")
    created_at: datetime | None = None
    created_by: str | None = Field(default=None, description="The caller's IAM identity (ARN) that made it.")
    account_id: str | None = Field(
        default=None,
        description="The account it holds in (12 digits); null in a single-account deployment, whose one "
        "account it holds in.",
    )


class ExceptionList(_Model):
    exceptions: list[ExceptionRecord] = Field(description="Soonest to end first; expired ones stay 30 days.")
    max_days: int = Field(description="How far ahead an exception may end (setting EXCEPTION_MAX_DAYS).")
