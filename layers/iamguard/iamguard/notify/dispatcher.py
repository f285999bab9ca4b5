"""The dispatcher: iamguard's `Announcer`. Routes, deduplicates, retries, falls back, never loses.

For each message:
 1. route by severity (NotifySettings.routing) to Slack, e-mail, Teams, PagerDuty, the webhook; Security
    Hub gets every finding change; what routes nowhere is held for the digest;
 2. claim it in the outbox: a conditional write that, for finding changes, also
    takes the findings' pending announcements (one transaction). A message
    claimed before is a duplicate and is not sent again; an announcement another
    run took first is left out of the message;
 3. send each claimed message: lease it (counting a send per channel), send to
    each target (only failures that certainly did not deliver are retried inside
    a send, iamguard.notify.retry); when a person channel still fails, send it to
    the other person channel as a fallback;
 4. record the outcome: delivered everywhere → sent; otherwise pending, and a
    later `flush()` sends what is missing; after `max_attempts` rounds or
    `max_age_hours`, or when a channel had its limit of sends that may have
    delivered, the message goes to the dead-letter queue and the
    `UndeliveredAlerts` metric counts it (an alarm watches that metric).
Every `announce` ends with a `flush`, so each run (audit, digest, event path)
also delivers what earlier runs left. A channel that failed is skipped for a
minute, so an outage costs one timeout, not one per message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.domain.alerts import Action, Alert
from iamguard.domain.findings import Change, Finding, Transition
from iamguard.domain.messages import DIGEST_CHANNELS, PERSON_CHANNELS, Channel, Language, Message, MessageKind
from iamguard.notify.base import DeliveryError, Notifier
from iamguard.notify.redact import scrub
from iamguard.notify.render import MessageBuilder, when
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import Claim, ClaimResult, Outbox, OutboxState
from iamguard.settings.notify import NotifySettings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

UNDELIVERED_METRIC = "UndeliveredAlerts"
CHANNEL_COOLDOWN = timedelta(seconds=60)
CLAIM_ROUNDS = 4  # claims of messages whose announcements other runs keep taking
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

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        total = DeliveryReport()
        total += self
        total += other
        return total

    def describe(self) -> str:
        parts = [f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "nothing to send"


@dataclass
class _Round:
    """One delivery round of one message."""

    delivered: set[Channel]
    errors: dict[Channel, str] = field(default_factory=dict)  # tried and failed
    unknown: set[Channel] = field(default_factory=set)  # of those, the ones that may have delivered it
    skipped: set[Channel] = field(default_factory=set)  # failed moments ago in this run: not tried again
    counted: set[Channel] = field(default_factory=set)  # sends counted in the outbox (lease / reserve)
    fallbacks: int = 0

    def refunds(self) -> dict[Channel, int]:
        """Counted sends that certainly did not deliver: given back to the channel's limit."""
        return {c: 1 for c in self.counted if c in self.errors and c not in self.unknown}

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
    """Implements `iamguard.domain.alerts.Announcer` over any set of channels."""

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
        account_alias: Callable[[str], str | None] | None = None,
    ) -> None:
        self.notifiers = {n.channel: n for n in notifiers}
        self.settings = settings
        self.outbox = outbox
        self.store = store
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.log = logger or logging.getLogger("iamguard.notify")
        self.clock = clock or (lambda: datetime.now(UTC))
        self.builder = MessageBuilder(language, clock=self.clock, account_alias=account_alias)
        self._down_until: dict[Channel, datetime] = {}
        self.total = DeliveryReport()  # everything this dispatcher did (a CLI run's summary)

    # -- the Announcer protocol -----------------------------------------------------------
    def announce(self, *, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> DeliveryReport:
        """Tell people about detections, finding changes and enforcement actions (each once), then
        deliver whatever earlier runs left in the outbox."""
        account = next((a.account_id for a in alerts), None) or next((c.finding.account_id for c in changes), "")
        report = DeliveryReport()
        synced: list[tuple[Message, frozenset[Channel], datetime]] = []
        if Channel.SECURITY_HUB in self.notifiers:
            # Claimed first: they take no announcement, so the people's claims below must not strand them.
            synced = self._claim_all(self.builder.sync_messages(changes), {}, report)
        messages = [self.builder.alert_message(alert) for alert in alerts]
        messages += self.builder.finding_messages(changes)
        messages += [self.builder.action_message(action, action.account_id or account) for action in actions]
        claimed = self._claim_all(messages, {c.finding.key: c for c in changes if c.notable}, report)
        for message, targets, created_at in claimed + synced:
            self._deliver(message, targets, frozenset(), 0, created_at, {}, report=report)
        self._count(report)
        self.total += report
        return report + self.flush()

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
            wanted = frozenset(DIGEST_CHANNELS)
        else:
            wanted = self.settings.channels_for(message.severity)
        return frozenset(c for c in wanted if c in self.notifiers and self.notifiers[c].accepts(message))

    def deliver(self, messages: Iterable[Message]) -> DeliveryReport:
        """Claim and send messages that carry no finding announcements (digests, failures without a table)."""
        report = DeliveryReport()
        for message, targets, created_at in self._claim_all(list(messages), {}, report):
            self._deliver(message, targets, frozenset(), 0, created_at, {}, report=report)
        self._count(report)
        self.total += report
        return report

    def flush(self, limit: int = 200) -> DeliveryReport:
        """Deliver what earlier runs could not (or claimed and never sent); dead-letter what has waited too long."""
        report = DeliveryReport()
        if self.outbox is None:
            return report
        for entry in self.outbox.due(self.clock(), limit):
            note = self.builder.catalog.text("note.delayed", time=when(entry.created_at))
            self._deliver(
                entry.message,
                entry.targets,
                entry.delivered,
                entry.attempts,
                entry.created_at,
                entry.posts,
                report=report,
                note=note,
                skip_if_down=True,
            )
        self._count(report)
        self.total += report
        return report

    def _claim_all(
        self, messages: Sequence[Message], changes: Mapping[tuple[str, str], Change], report: DeliveryReport
    ) -> list[tuple[Message, frozenset[Channel], datetime]]:
        """Record the messages in the outbox together (or hold them for the digest); the ones this run must now send.

        A message whose announcements another run took in part is rebuilt without them and
        claimed again (up to CLAIM_ROUNDS times); one taken whole, or claimed before, is a duplicate.
        """
        now = self.clock()
        claimed: list[tuple[Message, frozenset[Channel], datetime]] = []
        waiting: list[tuple[Message, frozenset[Channel], list[Change]]] = []
        for message in messages:
            targets = self.targets(message)
            if self.outbox is None:
                if targets:
                    claimed.append((message, targets, now))
                continue
            if not targets and message.kind is MessageKind.FINDINGS_SYNC:
                continue
            members = [
                changes[f.key] for f in message.findings if message.kind is MessageKind.FINDING and f.key in changes
            ]
            waiting.append((message, targets, members))
        for _ in range(CLAIM_ROUNDS):
            if not waiting or self.outbox is None:
                break
            announced = [
                [c for c in members if c.announcement is not None] if self.store is not None else []
                for _, _, members in waiting
            ]
            asks = [
                Claim(
                    message,
                    targets,
                    [self.store.claim_announcement(c) for c in taken] if self.store is not None else [],
                )
                for (message, targets, _), taken in zip(waiting, announced, strict=True)
            ]
            again: list[tuple[Message, frozenset[Channel], list[Change]]] = []
            results = self.outbox.claim_all(asks, now)
            for (message, targets, members), taken, result in zip(waiting, announced, results, strict=True):
                if result.claimed and targets:
                    claimed.append((message, targets, now))
                elif result.claimed:
                    report.held += 1
                elif rebuilt := self._without_taken(message, members, taken, result):
                    again.append((rebuilt[0], targets, rebuilt[1]))
                else:
                    report.duplicates += 1
                    self.log.info("notification already claimed", extra={"key": message.key})
            waiting = again
        report.duplicates += len(waiting)  # still contended after every round: another run has them
        return claimed

    def _without_taken(
        self, message: Message, members: list[Change], announced: list[Change], result: ClaimResult
    ) -> tuple[Message, list[Change]] | None:
        """The message again without the announcements another run took first, and the changes it still tells;
        None when nothing is left of it."""
        if not result.lost:
            return None
        taken = {id(announced[i]) for i in result.lost}
        left = [c for c in members if id(c) not in taken]
        rebuilt = self.builder.finding_messages(left)
        if len(rebuilt) != 1:  # nothing left (or, impossibly, a different grouping): all taken elsewhere
            return None
        self.log.info("announcements taken by another run", extra={"key": message.key, "taken": len(taken)})
        return rebuilt[0], left

    def _deliver(
        self,
        message: Message,
        targets: frozenset[Channel],
        delivered: frozenset[Channel],
        attempts: int,
        created_at: datetime,
        posts: Mapping[Channel, int],
        *,
        report: DeliveryReport,
        note: str | None = None,
        skip_if_down: bool = False,
    ) -> None:
        """One delivery round of one claimed message, under a lease when there is an outbox."""
        now = self.clock()
        too_old = now - created_at >= timedelta(hours=self.settings.max_age_hours)
        remaining = targets - delivered
        exhausted = frozenset(c for c in remaining if self._used_up(c, posts.get(c, 0)))
        tryable = remaining - exhausted
        if skip_if_down and not too_old and not exhausted and all(self._is_down(c) for c in tryable):
            return  # those channels just failed in this run: not an attempt, try next run
        counted = {c for c in tryable if not self._is_down(c)}
        lease: datetime | None = None
        if self.outbox is not None:
            lease = self.outbox.lease(message.key, now, {c: self._limit(c) for c in counted})
            if lease is None:
                return  # another run is on it (or has just used up a channel's sends)
        result = self._attempt(message.with_note(note) if note else message, tryable, counted, delivered, lease)
        report.fallbacks += result.fallbacks
        posts_after = {
            c: posts.get(c, 0) + (1 if c in result.counted and c not in result.refunds() else 0) for c in targets
        }
        self._settle(
            message,
            targets,
            result,
            attempts=attempts + (1 if result.failed else 0),
            created_at=created_at,
            posts=posts_after,
            report=report,
        )

    def _attempt(
        self,
        message: Message,
        remaining: Iterable[Channel],
        sendable: set[Channel],
        delivered: frozenset[Channel],
        lease: datetime | None,
    ) -> _Round:
        """Send to each remaining channel; if a person channel fails, to the other one as a fallback.

        Only `sendable` channels are sent to (under a lease, the lease counted one send to each);
        the rest failed moments ago in this run. A fallback send is counted first
        (`Outbox.reserve`) and skipped when its channel has no sends left.
        """
        result = _Round(set(delivered))
        for channel in sorted(remaining):
            if channel not in sendable:
                result.skipped.add(channel)
                continue
            result.counted.add(channel)
            self._send(channel, message, result)
        # Only Slack and e-mail stand in for each other; Teams, PagerDuty and the webhook wait in the outbox.
        missed = sorted(c for c in result.errors.keys() | result.skipped if c in PERSON_CHANNELS)
        if missed and message.kind in PEOPLE_KINDS and not result.delivered & set(missed):
            failed = ", ".join(self.builder.catalog.channel[c] for c in missed)
            for spare in PERSON_CHANNELS:
                if spare in result.delivered or spare in missed or spare not in self.notifiers or self._is_down(spare):
                    continue
                if lease is not None:
                    assert self.outbox is not None
                    if not self.outbox.reserve(message.key, spare, self._limit(spare), lease):
                        continue
                result.counted.add(spare)
                note = self.builder.catalog.text(
                    "note.fallback", channel=self.builder.catalog.channel[spare], failed=failed
                )
                if self._send(spare, message.with_note(note), result):
                    result.fallbacks = 1
                    break
        return result

    def _limit(self, channel: Channel) -> int | None:
        notifier = self.notifiers.get(channel)
        return notifier.max_posts if notifier is not None else None

    def _used_up(self, channel: Channel, posts: int) -> bool:
        """Whether a channel had every send it may have for a message (iamguard.notify.retry)."""
        limit = self._limit(channel)
        return limit is not None and posts >= limit

    def _is_down(self, channel: Channel) -> bool:
        down_until = self._down_until.get(channel)
        return down_until is not None and down_until > self.clock()

    def _send(self, channel: Channel, message: Message, result: _Round) -> bool:
        """Send once; record the outcome in `result`. A failed channel is skipped for a minute."""
        try:
            self.notifiers[channel].send(message)
        except DeliveryError as exc:
            self._down_until[channel] = self.clock() + CHANNEL_COOLDOWN
            reason = scrub(str(exc))
            self.log.warning(
                "notification channel failed",
                extra={
                    "channel": channel.value,
                    "key": message.key,
                    "reason": reason,
                    "permanent": exc.permanent,
                    "outcome_unknown": exc.unknown,
                },
            )
            result.errors[channel] = reason
            if exc.unknown:
                result.unknown.add(channel)
            return False
        self._down_until.pop(channel, None)
        result.delivered.add(channel)
        return True

    def _settle(
        self,
        message: Message,
        targets: frozenset[Channel],
        result: _Round,
        *,
        attempts: int,
        created_at: datetime,
        posts: Mapping[Channel, int],
        report: DeliveryReport,
    ) -> None:
        now = self.clock()
        delivered = frozenset(result.delivered)
        remaining = targets - delivered
        refunds = result.refunds()
        summary = {
            "key": message.key,
            "kind": message.kind.value,
            "severity": message.severity.value,
            "targets": sorted(targets),
            "delivered": sorted(delivered),
        }
        if not remaining:
            if self.outbox is not None:
                self.outbox.settle(
                    message.key, OutboxState.SENT, delivered=delivered, attempts=attempts, now=now, refunds=refunds
                )
            report.sent += 1
            self.log.info("notification sent", extra=summary)
            return
        error = result.describe()
        if self.outbox is None:
            report.undelivered += 1
            self.log.error("notification not delivered and no outbox to keep it", extra={**summary, "error": error})
            return
        used_up = sorted(c for c in remaining if self._used_up(c, posts.get(c, 0)))
        too_old = now - created_at >= timedelta(hours=self.settings.max_age_hours)
        reason = ""
        if used_up and len(used_up) == len(remaining):
            sends = ", ".join(f"{c.value}: {posts.get(c, 0)} sends without a confirmation" for c in used_up)
            reason = f"gave up: {sends} (it may have arrived); last error: {error or 'none in this run'}"
        elif attempts >= self.settings.max_attempts or too_old:
            reason = f"gave up after {attempts} attempt(s) over {when(created_at)} … {when(now)}: {error}"
        if reason and self._dead_letter(message, targets, delivered, attempts, reason, now, refunds):
            report.dead_lettered += 1
            return
        self.outbox.settle(
            message.key,
            OutboxState.PENDING,
            delivered=delivered,
            attempts=attempts,
            now=now,
            error=error,
            refunds=refunds,
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
        refunds: Mapping[Channel, int],
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
        self.outbox.settle(
            message.key,
            OutboxState.DEAD,
            delivered=delivered,
            attempts=attempts,
            now=now,
            error=reason,
            refunds=refunds,
        )
        self.log.error(
            "notification undeliverable: dead-lettered",
            extra={"key": message.key, "targets": sorted(targets), "delivered": sorted(delivered), "reason": reason},
        )
        return True

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
