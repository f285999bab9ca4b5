"""The dispatcher: iamguard's `Announcer`. Routes, deduplicates, retries, falls back, never loses.

For each message:
 1. route by severity (NotifySettings.routing) to Slack and/or e-mail; Security
    Hub gets every finding change; what routes nowhere is held for the digest;
 2. claim it in the outbox (a conditional write): a message claimed before is
    a duplicate and is not sent again;
 3. send it to each target (each channel retries on its own); when a person
    channel still fails, send it to the other person channel as a fallback;
 4. record the outcome: delivered everywhere → sent; otherwise pending, and a
    later `flush()` sends what is missing; after `max_attempts` rounds or
    `max_age_hours` the message goes to the dead-letter queue and the
    `UndeliveredAlerts` metric counts it (an alarm watches that metric).
A channel that failed is skipped for a minute, so an outage costs one timeout,
not one per message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.alerts import Action, Alert
from iamguard.config import Language
from iamguard.findings import Finding, Transition
from iamguard.notify.base import DeliveryError, Notifier
from iamguard.notify.message import Message, MessageKind
from iamguard.notify.redact import scrub
from iamguard.notify.render import MessageBuilder, when
from iamguard.notify.settings import PERSON_CHANNELS, Channel, NotifySettings
from iamguard.outbox import Outbox, OutboxState
from iamguard.store import Change, FindingsStore

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

UNDELIVERED_METRIC = "UndeliveredAlerts"
CHANNEL_COOLDOWN = timedelta(seconds=60)
PEOPLE_KINDS = {MessageKind.FINDING, MessageKind.ALERT, MessageKind.ACTION, MessageKind.DIGEST}


class MetricsSink(Protocol):
    """What the dispatcher needs from Powertools' Metrics."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


@dataclass
class DeliveryReport:
    """What one announce/flush/digest call did, in counts of messages."""

    sent: int = 0  # delivered to every target
    pending: int = 0  # kept for a later run
    duplicates: int = 0  # claimed before: not sent again
    held: int = 0  # routed to the digest only
    fallbacks: int = 0  # delivered by the other person channel after a failure
    dead_lettered: int = 0  # given up on: in the DLQ, counted by UndeliveredAlerts
    undelivered: int = 0  # failed with no outbox to keep them (CLI without --store)

    def __iadd__(self, other: DeliveryReport) -> DeliveryReport:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def describe(self) -> str:
        parts = [f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "nothing to send"


@dataclass
class _Round:
    """One delivery round of one message."""

    delivered: set[Channel]
    errors: dict[Channel, str] = field(default_factory=dict)  # tried and failed
    skipped: set[Channel] = field(default_factory=set)  # failed moments ago in this run: not tried again
    fallbacks: int = 0

    @property
    def failed(self) -> bool:
        """Whether this round counts as an attempt that failed (skips do not)."""
        return bool(self.errors)

    def describe(self) -> str:
        reasons = {**{c: "not tried: it failed moments ago in this run" for c in self.skipped}, **self.errors}
        return "; ".join(f"{c.value}: {reason}" for c, reason in sorted(reasons.items()))


class DeadLetterQueue:
    """The SQS queue where messages end that could not be delivered."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(
        self, message: Message, *, reason: str, targets: Iterable[Channel], delivered: Iterable[Channel], attempts: int
    ) -> None:
        body = {
            "reason": reason,
            "targets": sorted(c.value for c in targets),
            "delivered": sorted(c.value for c in delivered),
            "attempts": attempts,
            "message": message.model_dump(mode="json"),
        }
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(body, ensure_ascii=False),
            MessageAttributes={
                "key": {"DataType": "String", "StringValue": message.key[:256]},
                "severity": {"DataType": "String", "StringValue": message.severity.value},
            },
        )


class Dispatcher:
    """Implements `iamguard.alerts.Announcer` over any set of channels."""

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        *,
        settings: NotifySettings,
        language: Language = "en",
        outbox: Outbox | None = None,
        store: FindingsStore | None = None,
        dead_letters: DeadLetterQueue | None = None,
        metrics: MetricsSink | None = None,
        logger: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.notifiers = {n.channel: n for n in notifiers}
        self.settings = settings
        self.outbox = outbox
        self.store = store
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.log = logger or logging.getLogger("iamguard.notify")
        self.clock = clock or (lambda: datetime.now(UTC))
        self.builder = MessageBuilder(language, clock=self.clock)
        self._down_until: dict[Channel, datetime] = {}
        self.total = DeliveryReport()  # everything this dispatcher did (a CLI run's summary)

    # -- the Announcer protocol -----------------------------------------------------------
    def announce(self, *, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> DeliveryReport:
        """Tell people about detections, finding changes and enforcement actions (each once)."""
        account = next((a.account_id for a in alerts), None) or next((c.finding.account_id for c in changes), "")
        messages = [self.builder.alert_message(alert) for alert in alerts]
        messages += self.builder.finding_messages(changes)
        messages += [self.builder.action_message(action, action.account_id or account) for action in actions]
        if Channel.SECURITY_HUB in self.notifiers:
            messages += self.builder.sync_messages(changes)
        return self.deliver(messages)

    def announce_failures(self, findings: Sequence[Finding]) -> DeliveryReport:
        """Without a findings table: every failed finding, as 'failing' (no history, no dedup)."""
        changes = [Change(f, None, Transition.OPENED) for f in findings if f.failed]
        return self.deliver(self.builder.finding_messages(changes, stateless=True))

    def send_digest(self, findings: Sequence[Finding], *, account_id: str, ref: str) -> DeliveryReport:
        """The scheduled reminder of open findings, with what was held for it since the last one."""
        held = self.outbox.held(account_id) if self.outbox else []
        message = self.builder.digest_message(
            findings,
            [entry.message for entry in held],
            account_id=account_id,
            ref=ref,
            min_severity=self.settings.digest_min_severity,
        )
        if message is None:
            return DeliveryReport()
        report = self.deliver([message])
        if self.outbox is not None and not report.duplicates:
            self.outbox.consume(held, self.clock())
        return report

    # -- delivery -------------------------------------------------------------------------
    def targets(self, message: Message) -> frozenset[Channel]:
        """The channels a message must reach."""
        if message.kind is MessageKind.FINDINGS_SYNC:
            wanted = frozenset({Channel.SECURITY_HUB})
        elif message.kind is MessageKind.DIGEST:
            wanted = frozenset(PERSON_CHANNELS)
        else:
            wanted = self.settings.channels_for(message.severity)
        return frozenset(c for c in wanted if c in self.notifiers and self.notifiers[c].accepts(message))

    def deliver(self, messages: Iterable[Message]) -> DeliveryReport:
        report = DeliveryReport()
        for message in messages:
            now = self.clock()
            targets = self.targets(message)
            if not targets:
                if message.kind is not MessageKind.FINDINGS_SYNC and self.outbox is not None:
                    if self.outbox.hold(message, now):
                        report.held += 1
                    else:
                        report.duplicates += 1
                self._mark_notified(message)
                continue
            if self.outbox is not None and not self.outbox.claim(message, targets, now):
                report.duplicates += 1
                self.log.info("notification already sent", extra={"key": message.key})
                continue
            result = self._attempt(message, targets, frozenset())
            report.fallbacks += result.fallbacks
            self._settle(message, targets, result, attempts=1 if result.failed else 0, created_at=now, report=report)
        self._count(report)
        self.total += report
        return report

    def flush(self, limit: int = 200) -> DeliveryReport:
        """Deliver what earlier runs could not; dead-letter what has waited too long."""
        report = DeliveryReport()
        if self.outbox is None:
            return report
        max_age = timedelta(hours=self.settings.max_age_hours)
        for entry in self.outbox.due(self.clock(), limit):
            too_old = self.clock() - entry.created_at >= max_age
            if not too_old and all(self._is_down(channel) for channel in entry.remaining):
                continue  # those channels just failed in this run: not an attempt, try next run
            if not self.outbox.lease(entry.message.key, self.clock()):
                continue  # another run is on it
            note = self.builder.catalog.text("note.delayed", time=when(entry.created_at))
            result = self._attempt(entry.message.with_note(note), entry.remaining, entry.delivered)
            report.fallbacks += result.fallbacks
            self._settle(
                entry.message,
                entry.targets,
                result,
                attempts=entry.attempts + (1 if result.failed else 0),
                created_at=entry.created_at,
                report=report,
            )
        self._count(report)
        self.total += report
        return report

    def _attempt(self, message: Message, remaining: Iterable[Channel], delivered: frozenset[Channel]) -> _Round:
        """Send to each remaining channel; if a person channel fails, to the other one as a fallback."""
        result = _Round(set(delivered))
        for channel in sorted(remaining):
            if self._is_down(channel):
                result.skipped.add(channel)
                continue
            error = self._send(channel, message)
            if error is None:
                result.delivered.add(channel)
            else:
                result.errors[channel] = error
        missed = sorted(result.errors.keys() | result.skipped)
        if missed and message.kind in PEOPLE_KINDS and not result.delivered & set(missed):
            failed = ", ".join(self.builder.catalog.channel[c] for c in missed)
            for spare in PERSON_CHANNELS:
                if spare in result.delivered or spare in missed or spare not in self.notifiers or self._is_down(spare):
                    continue
                note = self.builder.catalog.text(
                    "note.fallback", channel=self.builder.catalog.channel[spare], failed=failed
                )
                error = self._send(spare, message.with_note(note))
                if error is None:
                    result.delivered.add(spare)
                    result.fallbacks = 1
                    break
                result.errors[spare] = error
        return result

    def _is_down(self, channel: Channel) -> bool:
        down_until = self._down_until.get(channel)
        return down_until is not None and down_until > self.clock()

    def _send(self, channel: Channel, message: Message) -> str | None:
        """None when delivered, else why not. A failed channel is skipped for a minute."""
        try:
            self.notifiers[channel].send(message)
        except DeliveryError as exc:
            self._down_until[channel] = self.clock() + CHANNEL_COOLDOWN
            reason = scrub(str(exc))
            self.log.warning(
                "notification channel failed",
                extra={"channel": channel.value, "key": message.key, "reason": reason, "permanent": exc.permanent},
            )
            return reason
        self._down_until.pop(channel, None)
        return None

    def _settle(
        self,
        message: Message,
        targets: frozenset[Channel],
        result: _Round,
        *,
        attempts: int,
        created_at: datetime,
        report: DeliveryReport,
    ) -> None:
        now = self.clock()
        delivered = frozenset(result.delivered)
        remaining = targets - delivered
        summary = {
            "key": message.key,
            "kind": message.kind.value,
            "severity": message.severity.value,
            "targets": sorted(targets),
            "delivered": sorted(delivered),
        }
        if not remaining:
            if self.outbox is not None:
                self.outbox.settle(message.key, OutboxState.SENT, delivered=delivered, attempts=attempts, now=now)
            self._mark_notified(message)
            report.sent += 1
            self.log.info("notification sent", extra=summary)
            return
        error = result.describe()
        if self.outbox is None:
            report.undelivered += 1
            self.log.error("notification not delivered and no outbox to keep it", extra={**summary, "error": error})
            return
        too_old = now - created_at >= timedelta(hours=self.settings.max_age_hours)
        if attempts >= self.settings.max_attempts or too_old:
            reason = f"gave up after {attempts} attempt(s) over {when(created_at)} … {when(now)}: {error}"
            if self._dead_letter(message, targets, delivered, attempts, reason, now):
                report.dead_lettered += 1
                return
        self.outbox.settle(
            message.key, OutboxState.PENDING, delivered=delivered, attempts=attempts, now=now, error=error
        )
        report.pending += 1
        self.log.warning("notification kept pending", extra={**summary, "attempts": attempts, "error": error})

    def _dead_letter(
        self,
        message: Message,
        targets: frozenset[Channel],
        delivered: frozenset[Channel],
        attempts: int,
        reason: str,
        now: datetime,
    ) -> bool:
        assert self.outbox is not None
        if self.dead_letters is not None:
            try:
                self.dead_letters.send(message, reason=reason, targets=targets, delivered=delivered, attempts=attempts)
            except (ClientError, BotoCoreError) as exc:
                self.log.error(
                    "dead-letter queue unavailable; message stays pending",
                    extra={"key": message.key, "error": type(exc).__name__},
                )
                return False
        self.outbox.settle(message.key, OutboxState.DEAD, delivered=delivered, attempts=attempts, now=now, error=reason)
        self._mark_notified(message)
        self.log.error(
            "notification undeliverable: dead-lettered",
            extra={"key": message.key, "targets": sorted(targets), "delivered": sorted(delivered), "reason": reason},
        )
        return True

    def _mark_notified(self, message: Message) -> None:
        if self.store is None or message.kind is not MessageKind.FINDING:
            return
        for finding in message.findings:
            self.store.mark_notified(finding)

    def _count(self, report: DeliveryReport) -> None:
        if self.metrics is None:
            return
        for name, value in (
            ("NotificationsSent", report.sent),
            ("NotificationsPending", report.pending),
            ("NotificationFallbacks", report.fallbacks),
            (UNDELIVERED_METRIC, report.dead_lettered),
        ):
            if value:
                self.metrics.add_metric(name=name, unit="Count", value=value)
