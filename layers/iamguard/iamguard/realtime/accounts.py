"""Which account an event happened in, and where the hub evaluates it (organization mode).

An event of the hub's own account goes to the hub's processor, as in a single-account
deployment. An event of another account is evaluated there only when organization mode is on,
the account is an ACTIVE member of the organization (`AccountDirectory.membership`) and the
member roles can be assumed; otherwise it is *rejected* — logged with its reason, counted by
`EventsRejected` with a `reason` dimension, and answered normally so that EventBridge and
Lambda do not retry it:

| reason | why |
|---|---|
| account_mismatch | the envelope's `account` and CloudTrail's `recipientAccountId` differ |
| organization_mode_off | another account's event, and ORGANIZATION_ID is not set |
| not_in_organization | the account is not an ACTIVE account of ORGANIZATION_ID |
| member_role_missing | the member audit role cannot be assumed |

(Without the enforce role, an enforcing hub watches that account in monitor mode.)

Organizations failing to answer is not a rejection: it raises, and the event is retried and
kept in the events dead-letter queue (a hub that cannot tell must not drop events).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from pydantic import ValidationError

from iamguard.aws import AwsContext
from iamguard.organization.access import MemberAccessError
from iamguard.organization.directory import AccountDirectory
from iamguard.realtime.cloudtrail import parse_event, printable
from iamguard.realtime.processor import EventProcessor, EventResult
from iamguard.settings import Settings

REJECTION_METRIC = "EventsRejected"
_ACCOUNT_ID = re.compile(r"^\d{12}$")

MemberProcessorFactory = Callable[[str, Settings, AwsContext, "AwsContext | None"], EventProcessor]


@dataclass(frozen=True)
class Rejection:
    """Why the hub refuses to evaluate an event of another account (`code` is the metric's dimension)."""

    code: str
    reason: str
    account_id: str | None = None

    def result(self, raw: Any) -> EventResult:
        detail = raw.get("detail") if isinstance(raw, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        event_id = detail.get("eventID")
        name = detail.get("eventName")
        return EventResult(
            event_id=printable(event_id, 128) if isinstance(event_id, str) else None,
            event_name=printable(name, 128) if isinstance(name, str) else None,
            outcome="rejected",
            reason=self.reason,
        )

    def emit_metric(self, metrics: Any) -> None:
        """`EventsRejected` with this rejection's reason as a dimension (its own EMF blob, so the
        function's other metrics keep their dimensions)."""
        namespace = getattr(metrics, "namespace", None) or "iamguard"
        service = getattr(metrics, "service", None)
        with single_metric(
            name=REJECTION_METRIC,
            unit=MetricUnit.Count,
            value=1,
            namespace=namespace,
            default_dimensions={"service": service} if service else None,
        ) as metric:
            metric.add_dimension(name="reason", value=self.code)


def claimed_accounts(raw: Any) -> tuple[str | None, str | None]:
    """(the envelope's `account`, CloudTrail's `recipientAccountId`) as the raw event states them."""
    if not isinstance(raw, dict):
        return None, None
    envelope = raw.get("account")
    detail = raw.get("detail")
    recipient = detail.get("recipientAccountId") if isinstance(detail, dict) else None
    return (envelope if isinstance(envelope, str) else None), (recipient if isinstance(recipient, str) else None)


class MemberRouter:
    """Chooses the processor for an event's account; builds and keeps one per member account."""

    def __init__(
        self, settings: Settings, hub: AwsContext, build: MemberProcessorFactory, *, logger: Any = None
    ) -> None:
        self.settings = settings
        self.organization = settings.organization
        self.build = build
        self.logger = logger
        self.directory = AccountDirectory(hub, self.organization, logger=logger) if self.organization.enabled else None
        self._members: dict[str, tuple[AwsContext, AwsContext | None, EventProcessor]] = {}

    def route(self, raw: Any, hub_account: str, *, hub: Callable[[str], EventProcessor]) -> EventProcessor | Rejection:
        envelope, recipient = claimed_accounts(raw)
        if envelope and recipient and envelope != recipient:
            return Rejection(
                "account_mismatch",
                f"the event's envelope names account {printable(envelope, 32)} but its CloudTrail record "
                f"account {printable(recipient, 32)}: not an event EventBridge delivers",
            )
        account = recipient or envelope
        if account is None or account == hub_account:
            return hub(hub_account)
        try:
            event = parse_event(raw)
        except (ValidationError, TypeError, ValueError, InvalidModelTypeError):
            return hub(hub_account)  # malformed: rejected there, with the parser's reason
        account = event.account_id
        if not _ACCOUNT_ID.match(account):
            return Rejection("not_in_organization", f"{printable(account, 32)!r} is not an AWS account id")
        if self.directory is None:
            return Rejection(
                "organization_mode_off",
                f"the event is from account {account}; this deployment watches {hub_account} only "
                "(organization mode is off: ORGANIZATION_ID is not set)",
                account,
            )
        refused = self.directory.membership(account)
        if refused is not None:
            return Rejection("not_in_organization", refused, account)
        try:
            return self._processor(account)
        except MemberAccessError as exc:
            return Rejection("member_role_missing", exc.reason, account)

    def _processor(self, account_id: str) -> EventProcessor:
        assert self.directory is not None
        audit = self.directory.audit.context(account_id)
        enforce = self._enforce_context(account_id) if self.settings.mode == "enforce" else None
        kept = self._members.get(account_id)
        if kept is not None and kept[0] is audit and kept[1] is enforce:
            return kept[2]  # the same credentials: the same clients
        settings = self.member_settings(account_id)
        if enforce is None and self.settings.mode == "enforce":
            settings = settings.model_copy(update={"mode": "monitor"})
        processor = self.build(account_id, settings, audit, enforce)
        self._members[account_id] = (audit, enforce, processor)
        return processor

    def _enforce_context(self, account_id: str) -> AwsContext | None:
        """The enforce role, or None: a member whose StackSet runs in monitor mode has none, and is then
        watched in monitor mode (findings, alerts, the would-be actions) rather than not at all."""
        assert self.directory is not None
        try:
            return self.directory.enforce.context(account_id)
        except MemberAccessError as exc:
            if self.logger is not None:
                self.logger.warning(
                    "member enforce role unavailable: monitoring the account only",
                    extra={"account_id": account_id, "reason": exc.reason},
                )
            return None

    def member_settings(self, account_id: str) -> Settings:
        """The hub's settings as they apply in a member account: its guardrail, and the member roles as
        iamguard's own (their calls there are iamguard's, not an administrator's)."""
        return self.settings.model_copy(
            update={
                "guardrail_policy_arn": self.organization.member_guardrail_arn(account_id),
                "iamguard_role_arns": (
                    *self.settings.iamguard_role_arns,
                    *self.organization.member_role_arns(account_id),
                ),
            }
        )

    def log_rejection(self, result: EventResult, rejection: Rejection) -> None:
        if self.logger is not None:
            self.logger.warning(
                "event rejected",
                extra={
                    "event_id": result.event_id,
                    "event_name": result.event_name,
                    "outcome": result.outcome,
                    "reason": result.reason,
                    "rejection": rejection.code,
                    "account_id": rejection.account_id,
                },
            )
