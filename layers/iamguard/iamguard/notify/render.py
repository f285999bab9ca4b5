"""Turn finding changes, alerts, actions and the digest into `Message`s, in one language.

Finding changes of one check that moved the same way in one run are one message
("3 new findings: Every IAM user has MFA"), so the first audit of a large account
is a few dozen messages, not thousands. Free text that comes from outside the
catalog (a finding's detail, an alert's summary) appears only in English messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby

from iamguard.checks import CATALOG
from iamguard.domain.alerts import Action, Alert
from iamguard.domain.findings import Change, Finding, Severity, Status, Transition
from iamguard.domain.messages import Field, Language, Message, MessageKind, Section
from iamguard.notify.catalog import Catalog, fill, for_user, load_catalog
from iamguard.notify.redact import scrub

ICONS = {
    Severity.CRITICAL: "🔴",
    Severity.HIGH: "🟠",
    Severity.MEDIUM: "🟡",
    Severity.LOW: "🔵",
    Severity.INFORMATIONAL: "⚪",
}
CHUNK = 100  # findings per Security Hub message: BatchImportFindings' batch size, a bounded outbox item
# Findings per message to people: the message's claim is one transaction with one step per finding
# (iamguard.outbox), and DynamoDB allows 100 actions in a transaction.
PER_MESSAGE = 99
LISTED = 10  # resources named in a grouped message
DIGEST_LINES = 15
FAILING_OUTCOMES = {"opened", "escalated", "failing", "expired"}
EXPIRING_WITHIN_DAYS = 7  # the digest lists exceptions that end this soon


def when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "—"


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:20]


def _chunks(items: Sequence[Change], size: int = CHUNK) -> list[Sequence[Change]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _clean(finding: Finding) -> Finding:
    """A finding as a message carries it (to Security Hub, the outbox): free text scrubbed."""
    return finding.model_copy(update={"detail": scrub(finding.detail)})


def outcome(change: Change, *, stateless: bool = False) -> str:
    """What a notable change means to a reader: opened, expired (an exception ran out), escalated, resolved,
    exempted, unknown (or failing)."""
    if change.transition is Transition.OPENED:
        if stateless:
            return "failing"
        previous = change.previous
        expired = change.finding.exemption_expired and previous is not None and previous.status is Status.EXEMPT
        return "expired" if expired else "opened"
    if change.transition is Transition.ESCALATED:
        return "escalated"
    return {Status.EXEMPT: "exempted", Status.ERROR: "unknown"}.get(change.finding.status, "resolved")


def sync_transition(change: Change) -> str:
    """How Security Hub must treat a change: opened, reopened, escalated or resolved."""
    if change.transition is Transition.OPENED:
        return "opened" if change.previous is None else "reopened"
    return change.transition.value


class MessageBuilder:
    """Builds messages in one language from the catalog."""

    def __init__(
        self,
        language: Language,
        *,
        clock: Callable[[], datetime] | None = None,
        account_alias: Callable[[str], str | None] | None = None,
    ) -> None:
        self.language: Language = language
        self.catalog: Catalog = load_catalog(language)
        self._clock = clock or (lambda: datetime.now(UTC))
        # Organization mode: the account's alias next to its id (iamguard.organization.directory).
        self._alias = account_alias

    # -- pieces ------------------------------------------------------------------
    def _severity_field(self, severity: Severity) -> Field:
        return Field(label=self.catalog.text("field.severity"), value=self.catalog.severity[severity])

    def _field(self, key: str, value: str, *, code: bool = False) -> Field:
        return Field(label=self.catalog.text(f"field.{key}"), value=value, code=code)

    def _english(self, key: str, text: str | None, shown: str) -> list[Field]:
        """Outside free text (English) as a field, only in English messages and only when it adds something."""
        if self.language != "en" or not text or text.strip() == shown.strip():
            return []
        return [self._field(key, scrub(text))]

    def _fix(self, risk: str, console: Iterable[str], cli: str, user: str | None) -> tuple[Section, ...]:
        steps = tuple(for_user(step, user) if user else step for step in console)
        return (
            Section(title=self.catalog.text("section.why"), lines=(risk,)),
            Section(title=self.catalog.text("section.fix"), lines=steps, numbered=True),
            Section(title=self.catalog.text("section.cli"), code=for_user(cli, user) if user else cli),
        )

    def account(self, account_id: str) -> str:
        """How a message names an account: its id, and its alias when the builder knows one."""
        alias = self._alias(account_id) if self._alias is not None and account_id else None
        if not alias:
            return account_id
        return self.catalog.text("value.account_alias", account=account_id, alias=scrub(alias))

    def _account_field(self, account_id: str) -> Field:
        return self._field("account", self.account(account_id), code=True)

    def _footer(self, account_id: str, ref: str) -> str:
        return self.catalog.text("footer", account=self.account(account_id) or "—", ref=ref)

    def _more(self, total: int, shown: int) -> tuple[str, ...]:
        return (self.catalog.text("note.more", count=total - shown),) if total > shown else ()

    # -- finding changes ------------------------------------------------------------
    def finding_messages(self, changes: Sequence[Change], *, stateless: bool = False) -> list[Message]:
        """One message per check, outcome and severity (chunked); `stateless` = failures without history."""
        notable = [c for c in changes if c.notable]

        def group_key(change: Change) -> tuple[int, str, str, str]:
            f = change.finding
            return (-f.severity.rank, f.check_id, outcome(change, stateless=stateless), f.account_id)

        messages = []
        for (_, check_id, result, _account), members in groupby(sorted(notable, key=group_key), key=group_key):
            for chunk in _chunks(sorted(members, key=lambda c: c.finding.resource_name), PER_MESSAGE):
                messages.append(self._finding_message(check_id, result, chunk))
        return messages

    def _finding_message(self, check_id: str, result: str, changes: Sequence[Change]) -> Message:
        first = changes[0].finding
        text = self.catalog.check(check_id)
        severity = first.severity
        failing = result in FAILING_OUTCOMES
        user = first.resource_name if len(changes) == 1 and first.resource_type == "user" else None
        icon = ICONS[severity]
        standards = ", ".join(CATALOG[check_id].standards.labels())
        fields = [self._severity_field(severity)]
        if len(changes) == 1:
            headline = self.catalog.text(
                f"headline.finding.{result}",
                icon=icon,
                severity=self.catalog.severity[severity],
                resource=first.resource_name,
            )
            if result in {"exempted", "unknown", "expired"}:
                summary = self.catalog.text(f"summary.{result}", resource=first.resource_name)
            else:
                summary = fill(text.failed if failing else text.passed, resource=first.resource_name)
            fields += [
                self._field("resource", first.resource_name, code=True),
                self._account_field(first.account_id),
                self._field("check", text.title),
                *self._english("detail", first.detail, summary),
                *self._exception_fields(first, result),
            ]
            previous = changes[0].previous
            if failing:
                fields.append(self._field("first_seen", when(first.first_seen or first.observed_at)))
            elif previous is not None:
                fields.append(self._field("open_since", when(previous.status_changed_at or previous.first_seen)))
            listed: tuple[Section, ...] = ()
        else:
            count = len(changes)
            headline = self.catalog.text(
                f"headline.group.{result}",
                icon=icon,
                severity=self.catalog.severity[severity],
                count=count,
                title=text.title,
            )
            summary = self.catalog.text(
                f"summary.group.{result}", title=text.title, count=count, severity=self.catalog.severity[severity]
            )
            fields.append(self._account_field(first.account_id))
            lines = tuple(
                f"{c.finding.resource_name} — {scrub(c.finding.detail)}"
                if self.language == "en"
                else c.finding.resource_name + self._until_note(c.finding)
                for c in changes[:LISTED]
            )
            listed = (Section(title=self.catalog.text("section.resources"), lines=lines + self._more(count, LISTED)),)
        if standards:
            fields.append(self._field("standards", standards))
        placeholder = user or self.catalog.text("value.user")
        sections = listed + (self._fix(text.risk, text.console, text.cli, placeholder) if failing else ())
        key = "finding:{}:{}:{}:{}:{}".format(
            first.account_id,
            check_id,
            result,
            severity.value,
            _digest(
                f"{c.finding.resource_arn}|{(c.finding.status_changed_at or c.finding.observed_at).isoformat()}"
                for c in changes
            ),
        )
        return Message(
            key=key,
            kind=MessageKind.FINDING,
            severity=severity,
            language=self.language,
            account_id=first.account_id,
            created_at=self._clock(),
            headline=headline,
            summary=summary,
            fields=tuple(fields),
            sections=sections,
            footer=self._footer(first.account_id, check_id),
            attributes={
                "kind": MessageKind.FINDING.value,
                "severity": severity.value,
                "account_id": first.account_id,
                "check_id": check_id,
                "transition": result,
                "resource": first.resource_name if len(changes) == 1 else f"{len(changes)} resources",
                "count": str(len(changes)),
            },
            findings=tuple(_clean(c.finding) for c in changes),
        )

    def _exception_fields(self, finding: Finding, result: str) -> list[Field]:
        """Who, why and until when, for a finding an exception covers (or covered until it expired).

        The owner and the reason are people's own words, shown in every language.
        """
        if finding.exempt_source is None or result not in {"exempted", "expired"}:
            return []
        until = finding.exempt_until.isoformat() if finding.exempt_until else self.catalog.text("value.no_end")
        fields = [self._field("exception_ended" if result == "expired" else "exception_until", until)]
        if finding.exempt_owner:
            fields.append(self._field("exception_owner", scrub(finding.exempt_owner)))
        if finding.exempt_reason:
            fields.append(self._field("exception_reason", scrub(finding.exempt_reason)))
        return fields

    def _until_note(self, finding: Finding) -> str:
        return f" ({finding.exempt_until.isoformat()})" if finding.exempt_source and finding.exempt_until else ""

    def sync_messages(self, changes: Sequence[Change]) -> list[Message]:
        """Security Hub batches: every notable change, whatever its severity, by how it changed."""
        notable = sorted((c for c in changes if c.notable), key=lambda c: (sync_transition(c), c.finding.key))
        messages = []
        for transition, members in groupby(notable, key=sync_transition):
            for chunk in _chunks(list(members)):
                findings = tuple(_clean(c.finding) for c in chunk)
                worst = max(findings, key=lambda f: f.severity.rank)
                key = "securityhub:{}:{}".format(
                    worst.account_id,
                    _digest(
                        f"{f.resource_arn}|{f.check_id}|{f.status.value}|{f.severity.value}|{f.observed_at.isoformat()}"
                        for f in findings
                    ),
                )
                messages.append(
                    Message(
                        key=key,
                        kind=MessageKind.FINDINGS_SYNC,
                        severity=worst.severity,
                        language=self.language,
                        account_id=worst.account_id,
                        created_at=self._clock(),
                        headline=f"Security Hub: {len(findings)} finding(s) {transition}",
                        summary=f"{len(findings)} finding(s) {transition}",
                        attributes={"kind": MessageKind.FINDINGS_SYNC.value, "transition": transition},
                        findings=findings,
                    )
                )
        return messages

    # -- alerts and actions ---------------------------------------------------------
    def alert_message(self, alert: Alert) -> Message:
        text = self.catalog.detection(alert.detection.value)
        summary = fill(text.summary, resource=alert.resource_name)
        fields = [
            self._severity_field(alert.severity),
            self._field("resource", alert.resource_name, code=True),
            self._field("who", scrub(alert.actor or self.catalog.text("value.unknown"))),
            *([self._field("source_ip", alert.source_ip, code=True)] if alert.source_ip else []),
            self._field("event", alert.event_name, code=True),
            self._field("when", when(alert.event_time)),
            *([self._field("region", alert.region, code=True)] if alert.region else []),
            self._account_field(alert.account_id),
            *self._english("detail", alert.summary, summary),
        ]
        return Message(
            key=f"alert:{alert.dedup_key}",
            kind=MessageKind.ALERT,
            severity=alert.severity,
            language=self.language,
            account_id=alert.account_id,
            created_at=self._clock(),
            headline=self.catalog.text(
                "headline.alert",
                icon=ICONS[alert.severity],
                severity=self.catalog.severity[alert.severity],
                title=text.title,
            ),
            summary=summary,
            fields=tuple(fields),
            sections=self._fix(text.risk, text.console, text.cli, alert.resource_name),
            footer=self._footer(alert.account_id, alert.detection.value),
            attributes={
                "kind": MessageKind.ALERT.value,
                "severity": alert.severity.value,
                "account_id": alert.account_id,
                "detection": alert.detection.value,
                "resource": alert.resource_name,
                "event_id": alert.event_id,
                "event_name": alert.event_name,
            },
        )

    def action_message(self, action: Action, account_id: str = "") -> Message:
        text = self.catalog.action(action.action)
        result = action.outcome
        policy_name = action.policy_arn.rsplit("/", 1)[-1]
        params = {
            "user": action.user_name,
            "policy": action.policy_arn,
            "policy_name": policy_name,
            "action": action.action,
            "account": account_id or "<account-id>",
            "due": when(action.due_at) if action.due_at else "",
            "by": scrub(action.detached_by or self.catalog.text("value.unknown")),
            "at": when(action.detached_at) if action.detached_at else self.catalog.text("value.unknown"),
        }
        severity = Severity.MEDIUM if result == "monitor" else Severity.HIGH
        held = text.withheld.get(action.withheld) if action.withheld else None
        if result == "withheld":
            summary = fill(held.summary, **params) if held else scrub(action.reason)
        else:
            summary = fill(getattr(text, result), **params)
        fields = [
            self._severity_field(severity),
            self._field("resource", action.user_name, code=True),
            self._field("policy", action.policy_arn, code=True),
            self._field("when", when(action.at)),
            *self._english("reason", action.reason, summary),
            *([self._field("error", scrub(action.error))] if action.error else []),
        ]
        sections: tuple[Section, ...] = ()
        if held is not None and result == "withheld":
            sections = (
                Section(
                    title=self.catalog.text("section.fix"),
                    lines=tuple(for_user(fill(step, **params), action.user_name) for step in held.steps),
                    numbered=True,
                ),
                Section(
                    title=self.catalog.text("section.cli"), code=for_user(fill(held.cli, **params), action.user_name)
                ),
            )
        elif action.performed:
            undo = tuple(for_user(fill(step, **params), action.user_name) for step in text.undo)
            sections = (
                Section(title=self.catalog.text("section.undo"), lines=undo, numbered=True),
                Section(
                    title=self.catalog.text("section.undo_cli"),
                    code=for_user(fill(text.undo_cli, **params), action.user_name),
                ),
            )
        reference = action.event_id or action.at.isoformat()
        return Message(
            key=f"action:{reference}:{action.action}:{action.user_name}:{action.policy_arn}:{result}"
            + (f":{action.withheld}" if action.withheld else ""),
            kind=MessageKind.ACTION,
            severity=severity,
            language=self.language,
            account_id=account_id,
            created_at=self._clock(),
            headline=self.catalog.text(f"headline.action.{result}", title=fill(text.title, **params)),
            summary=summary,
            fields=tuple(fields),
            sections=sections,
            footer=self._footer(account_id, action.action),
            attributes={
                "kind": MessageKind.ACTION.value,
                "severity": severity.value,
                "account_id": account_id,
                "action": action.action,
                "resource": action.user_name,
                "transition": result,
            },
        )

    # -- digest -----------------------------------------------------------------------
    def _ending_exceptions(self, findings: Sequence[Finding], account_id: str) -> list[Finding]:
        """Exempt findings whose exception ends within EXPIRING_WITHIN_DAYS, soonest first."""
        today = self._clock().astimezone(UTC).date()
        last = today + timedelta(days=EXPIRING_WITHIN_DAYS)
        return sorted(
            (
                f
                for f in findings
                if f.status is Status.EXEMPT
                and f.account_id == account_id
                and f.exempt_until is not None
                and today <= f.exempt_until <= last
            ),
            key=lambda f: (f.exempt_until, f.resource_name, f.check_id),
        )

    def _ending_line(self, finding: Finding) -> str:
        return self.catalog.text(
            "digest.exception_line",
            resource=finding.resource_name,
            title=self.catalog.check(finding.check_id).title,
            check=finding.check_id,
            until=finding.exempt_until.isoformat() if finding.exempt_until else "",
            owner=scrub(finding.exempt_owner) if finding.exempt_owner else self.catalog.text("value.unknown"),
        )

    def digest_message(
        self,
        findings: Sequence[Finding],
        since: Sequence[Message],
        *,
        account_id: str,
        ref: str,
        min_severity: Severity = Severity.HIGH,
    ) -> Message | None:
        """The scheduled reminder: open findings at or above `min_severity`, plus what was held for it."""
        failed = [f for f in findings if f.failed and f.account_id == account_id]
        serious = sorted(
            (f for f in failed if f.severity.rank >= min_severity.rank),
            key=lambda f: (-f.severity.rank, f.status_changed_at or f.observed_at, f.resource_name),
        )
        ending = self._ending_exceptions(findings, account_id)
        if not serious and not since and not ending:
            return None
        lines = tuple(
            self.catalog.text(
                "digest.line",
                icon=ICONS[f.severity],
                resource=f.resource_name,
                title=self.catalog.check(f.check_id).title,
                check=f.check_id,
                since=(f.status_changed_at or f.first_seen or f.observed_at).date().isoformat(),
            )
            for f in serious[:DIGEST_LINES]
        )
        counts = tuple(
            self.catalog.text(
                "digest.count", severity=self.catalog.severity[sev], count=sum(1 for f in failed if f.severity is sev)
            )
            for sev in sorted(Severity, key=lambda s: -s.rank)
            if any(f.severity is sev for f in failed)
        )
        sections = []
        if lines:
            sections.append(
                Section(
                    title=self.catalog.text("section.digest.open"), lines=lines + self._more(len(serious), DIGEST_LINES)
                )
            )
        if since:
            sections.append(
                Section(
                    title=self.catalog.text("section.digest.since"),
                    lines=tuple(m.headline for m in since[:DIGEST_LINES]) + self._more(len(since), DIGEST_LINES),
                )
            )
        if ending:
            sections.append(
                Section(
                    title=self.catalog.text("section.digest.exceptions"),
                    lines=tuple(self._ending_line(f) for f in ending[:DIGEST_LINES])
                    + self._more(len(ending), DIGEST_LINES),
                )
            )
        if counts:
            sections.append(Section(title=self.catalog.text("section.digest.counts"), lines=counts))
        worst = max(
            [f.severity for f in serious[:1]] + [m.severity for m in since] + [f.severity for f in ending],
            key=lambda s: s.rank,
        )
        return Message(
            key=f"digest:{account_id}:{ref}",
            kind=MessageKind.DIGEST,
            severity=worst,
            language=self.language,
            account_id=account_id,
            created_at=self._clock(),
            headline=self.catalog.text("headline.digest", count=len(serious)),
            summary=self.catalog.text("summary.digest", count=len(serious), account=account_id),
            fields=(self._account_field(account_id),),
            sections=tuple(sections),
            footer=self._footer(account_id, "digest"),
            attributes={
                "kind": MessageKind.DIGEST.value,
                "severity": worst.value,
                "account_id": account_id,
                "count": str(len(serious)),
            },
        )
