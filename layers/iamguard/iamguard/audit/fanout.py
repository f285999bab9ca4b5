"""The organization audit as a Lambda fan-out: a planner queues one message per ACTIVE account, and
the audit function takes them one at a time (SQS, batch size 1, bounded concurrency).

Each account's audit is its own invocation: a slow or broken account delays or fails only itself.
An account whose member role cannot be assumed is stored as an ERROR finding (member_audit_access,
naming the missing StackSet instance) and an audit run with that error; the message is then done,
not retried. Anything else that fails the audit is reported as that message's failure
(ReportBatchItemFailures), so SQS retries it and finally moves it to the dead-letter queue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from iamguard.audit.organization import audit_member, hub_account_of
from iamguard.audit.run import AuditResult, report_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.checks.organization import access_error_finding
from iamguard.domain.findings import Change
from iamguard.domain.organization import MemberAccount, OrganizationFacts
from iamguard.notify.dispatcher import Dispatcher
from iamguard.organization.access import MemberAccessError, shared_access
from iamguard.organization.accounts import active_accounts, organization_facts
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.persistence.table import parse_time
from iamguard.settings import Settings

_BATCH = 10  # SendMessageBatch's limit
_ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class AuditRequest:
    """One queued account audit (the message body)."""

    account_id: str
    name: str
    planned_at: datetime

    def body(self) -> str:
        return json.dumps({"account_id": self.account_id, "name": self.name, "planned_at": self.planned_at.isoformat()})

    @classmethod
    def parse(cls, body: str) -> AuditRequest:
        data = json.loads(body)
        account_id = data["account_id"]
        if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id):
            raise ValueError("account_id is not a 12-digit account id")
        return cls(account_id, str(data.get("name", "")), datetime.fromisoformat(str(data["planned_at"])))


def plan_audits(
    hub: AwsContext, sqs: Any, queue_url: str, *, now: datetime | None = None
) -> tuple[list[MemberAccount], dict[str, str]]:
    """Queue one audit per ACTIVE account; returns the accounts and the ones SQS refused (id → reason)."""
    planned_at = now or datetime.now(UTC)
    accounts = active_accounts(hub)
    failed: dict[str, str] = {}
    for start in range(0, len(accounts), _BATCH):
        batch = accounts[start : start + _BATCH]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": a.id, "MessageBody": AuditRequest(a.id, a.name, planned_at).body(), "MessageGroupId": a.id}
                if queue_url.endswith(".fifo")
                else {"Id": a.id, "MessageBody": AuditRequest(a.id, a.name, planned_at).body()}
                for a in batch
            ],
        )
        failed.update({entry["Id"]: str(entry.get("Message") or entry["Code"]) for entry in response.get("Failed", [])})
    return accounts, failed


def stale_accounts(
    store: FindingsStore, accounts: Iterable[MemberAccount], stale_after: timedelta, now: datetime
) -> list[str]:
    """The accounts whose last finished audit is older than `stale_after` (or that have none)."""
    finished = {
        str(item.get("account_id")): parse_time(audit.get("finished_at"))
        for item, audit in store.account_summaries()
        if audit is not None
    }
    return sorted(a.id for a in accounts if (at := finished.get(a.id)) is None or now - at > stale_after)


def report_plan(
    accounts: list[MemberAccount], failed: Mapping[str, str], stale: list[str], *, metrics: Any, logger: Any
) -> dict[str, Any]:
    """The planner's metrics (StaleAccounts: the stale-audit alarm over every account) and answer."""
    metrics.add_metric(name="AccountsPlanned", unit=MetricUnit.Count, value=len(accounts) - len(failed))
    metrics.add_metric(name="StaleAccounts", unit=MetricUnit.Count, value=len(stale))
    for account_id, reason in failed.items():
        logger.error("audit not queued", extra={"account_id": account_id, "reason": reason})
    if stale:
        logger.warning("accounts with a stale audit", extra={"accounts": stale})
    logger.info("audits planned", extra={"accounts": len(accounts), "not_queued": len(failed)})
    return {"accounts": len(accounts), "queued": len(accounts) - len(failed), "failed": dict(failed), "stale": stale}


@dataclass(frozen=True)
class MemberOutcome:
    account_id: str
    result: AuditResult | None  # None: the member role could not be assumed
    changes: list[Change]
    error: str | None = None


class MemberAuditor:
    """Audits one member account from a queued request and stores it under that account."""

    def __init__(self, hub: AwsContext, settings: Settings, store: FindingsStore) -> None:
        self.hub = hub
        self.settings = settings
        self.store = store
        self.access = shared_access(hub, settings.organization.member_audit_role_name)  # the notifier's too
        self._facts: tuple[OrganizationFacts, datetime] | None = None
        self._hub_account: str | None = None

    def facts(self, now: datetime) -> OrganizationFacts:
        """The organization-wide facts, read again at most every 15 minutes by a warm function."""
        if self._facts is None or now - self._facts[1] > timedelta(minutes=15):
            organization = self.settings.organization
            self._facts = (
                organization_facts(
                    self.hub,
                    str(organization.organization_id),
                    organization.member_stackset_name,
                    organization.identity_account_id,
                ),
                now,
            )
        return self._facts[0]

    def audit(self, account_id: str, now: datetime | None = None) -> MemberOutcome:
        now = now or datetime.now(UTC)
        try:
            if self._hub_account is None:
                self._hub_account = hub_account_of(self.hub)
            result = audit_member(
                self.access,
                account_id,
                self.settings,
                self.facts(now),
                hub_account=self._hub_account,
                login_profiles=LoginProfileStore.of(self.store, account_id),
                exemptions=ExemptionStore.of(self.store).all(),  # the API's; only this account's apply
            )
        except MemberAccessError as exc:
            return self._unreachable(account_id, exc.reason, now)
        return MemberOutcome(account_id, result, store_audit(result, self.store))

    def _unreachable(self, account_id: str, reason: str, now: datetime) -> MemberOutcome:
        return MemberOutcome(account_id, None, store_member_outcome(self.store, account_id, reason, now), reason)


def store_member_outcome(
    store: FindingsStore, audit: AuditResult | str, reason: str | None = None, now: datetime | None = None
) -> list[Change]:
    """Store one member account's audit; or, given its id and `reason`, the ERROR finding of an account
    whose role could not be assumed (its other findings stay as they were) and an audit run saying why."""
    if isinstance(audit, AuditResult):
        return store_audit(audit, store)
    at = now or datetime.now(UTC)
    finding = access_error_finding(audit, reason or "unknown", at)
    changes = [c for c in store.record([finding]) if c.notable]
    unreachable = AuditResult(audit, at, [finding], {"member_role": reason or "unknown"}, api_calls=1)
    store.record_audit_run(
        started_at=at,
        finished_at=datetime.now(UTC),
        account_id=audit,
        summary=unreachable.summary(),
        errors=unreachable.errors,
        api_calls=unreachable.api_calls,
    )
    return changes


def requests_in(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(messageId, body) of each SQS record of the event."""
    return [(str(r["messageId"]), str(r.get("body", ""))) for r in event.get("Records", []) if "messageId" in r]


def is_queue_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and all(r.get("eventSource") == "aws:sqs" for r in records) and bool(records)


def audit_queue_batch(
    event: Mapping[str, Any], auditor: MemberAuditor, announcer: Dispatcher, *, metrics: Any, logger: Any
) -> dict[str, Any]:
    """Audit each queued account; the answer lists the messages to retry (ReportBatchItemFailures)."""
    failures = []
    for message_id, body in requests_in(event):
        try:
            request = AuditRequest.parse(body)
            outcome = auditor.audit(request.account_id)
        except (ValueError, KeyError, TypeError) as exc:  # not one of the planner's messages: keep it in the DLQ
            logger.error("malformed audit request", extra={"message_id": message_id, "reason": str(exc)})
            failures.append({"itemIdentifier": message_id})
            continue
        except Exception:  # any other failure is this account's alone: SQS retries it
            logger.exception("member account audit failed", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
            continue
        delivery = announcer.announce(alerts=[], changes=outcome.changes, actions=[])
        if outcome.result is not None:
            report_audit(outcome.result, outcome.changes, asdict(delivery), deferred=0, metrics=metrics, logger=logger)
        else:
            metrics.add_metric(name="MemberAccessErrors", unit=MetricUnit.Count, value=1)
            logger.error(
                "member account not audited", extra={"account_id": outcome.account_id, "reason": outcome.error}
            )
    return {"batchItemFailures": failures}
