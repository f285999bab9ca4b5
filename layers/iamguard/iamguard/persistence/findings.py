"""The findings table: current findings per resource and check, and how they changed.

Item layout (one table, see template.yaml):
  finding     pk=<resource key>          sk=CHECK#<check_id>   gsi1pk=CHECK#<check_id> gsi1sk=<STATUS>#<name>
              account_id=<account id>    (index `account`: account_id, pk - one account's findings by Query)
              notify_pending=<token>, notify_previous={...}   while its last transition is not yet announced
  audit run   pk=AUDIT                   sk=LATEST | RUN#<iso time>   (RUN#: TTL expires_at; the trend)
                                         | ACCOUNT#<account id>          (each account's latest run)
  activity    pk=ACTIVITY#<yyyy-mm-dd>   sk=<iso time>#<kind>#<id>   (detections and enforcement actions, TTL)
  exception   pk=EXCEPTIONS              sk=[<account id>#]<check_id>#<resource>   (iamguard.persistence.exemptions)
  guardrail   pk=<user key>              sk=GUARDRAIL          gsi1pk=GUARDRAIL[#<account id>] gsi1sk=<name>
              (what enforcement remembers about one user's MFA guardrail: who detached - or attached -
              it by hand and when, when iamguard attached it, the grace period's start, what people
              were told)
Resource keys: a user is USER#<name> in the home account (the only account of a single-account
deployment; the hub's own in organization mode: `home_account`) and USER#<account id>#<name> in
every other account (IAM user names cannot contain '#', so the two never meet); root and account
are ROOT#<account id> and ACCOUNT#<account id>. A table written before organization mode therefore
reads as it is: no migration. The home account's guardrail records keep gsi1pk=GUARDRAIL, another
account's are GUARDRAIL#<account id>, so each account's records are one index Query.
Other writers share the table: notifications (iamguard.outbox, pk=NOTIFY#...) and failed
sign-in bursts (iamguard.bursts, pk=SIGNIN_FAILURES#...); their layouts are documented there.

Writes are optimistic: every finding item carries a version and is written with
a condition on the version that was read. Two overlapping runs therefore cannot
both record the same transition: the loser re-reads and sees no change. An
observation older than what is stored is dropped (a slow run never overwrites a
newer one). Unchanged findings are only rewritten when their last_seen is older
than the heartbeat, so an hourly audit writes what changed, not every finding.
An audit that writes many (its first: every finding new; a heartbeat's rewrite) puts them in
TransactWriteItems of up to 100, each Put on the condition its single write would have; a Put
whose condition failed is left out, the others sent again, and that finding re-read and decided
again alone. A transaction costs twice the write units of the same Puts (docs/organizations.md).

A notable transition (opened, escalated, resolved) is written together with its
pending announcement, in the same conditional write: `notify_pending` holds a
token (the item version that made the transition). Every later read of the item
(`record` in any run, `pending_changes`) hands that announcement back until a
run claims it: `claim_announcement` is one step of the outbox's claim
transaction (iamguard.outbox), so an announcement leaves its finding exactly
when its message enters the outbox. A run that dies in between loses nothing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from iamguard.checks import CATALOG
from iamguard.domain.findings import Change, Finding, Severity, Status, Transition, transition
from iamguard.persistence import summary
from iamguard.persistence.summary import GONE_DETAIL, account_sk
from iamguard.persistence.table import expression, from_ddb, iso, item_key, parse_time, read_items, to_ddb

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from iamguard.settings import Settings

HISTORY_DAYS = 90
ACCOUNT_INDEX = "account"  # account_id, pk: one account's items (template.yaml's FindingsTable)
_PARALLEL_THRESHOLD = 32  # below this many writes, threads (and transactions) cost more than they save
# TransactWriteItems: at most 100 actions and 4 MB of items; an item's JSON is taken as its size,
# which overstates it (DynamoDB counts names and values, a few bytes more per map).
_TRANSACTION_ACTIONS = 100
_TRANSACTION_BYTES = 4_000_000
# Cancellations sent again after a pause: another transaction on one of the items, throttling.
_RETRIED_CANCELLATIONS = frozenset({"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_TRANSACTION_ATTEMPTS = 10
_PAUSE_BASE = 0.05  # seconds, doubled per attempt (full jitter) …
_PAUSE_CAP = 5.0  # … up to this: about 20 s of pauses at most


class StoreError(RuntimeError):
    """The findings table could not be read or written."""


class Contended(StoreError):
    """Every attempt to write a resource was cancelled: other writers kept changing it."""


class NotNew(StoreError):
    """A resource written as new (`new_resource`) was not: its write was cancelled; read it and decide again."""


@dataclass(frozen=True)
class GuardrailRecord:
    """What enforcement (iamguard.enforce) remembers about one user's MFA guardrail."""

    user_name: str
    user_id: str  # the IAM user this belongs to: a user re-created under the same name starts afresh
    account_id: str = ""  # the user's account; "" is the store's home account
    detached_by: str | None = None  # someone other than iamguard took it off: never attached again
    detached_at: datetime | None = None
    detach_event_id: str | None = None  # None when the audit noticed the detach, not its event
    decided_at: datetime | None = None  # event time of the latest manual attach/detach applied
    attached_at: datetime | None = None  # iamguard attached it (and has not taken it off since)
    attached_by: str | None = None  # someone attached it by hand to a user who had MFA: left on
    since: datetime | None = None  # the current need for it began (the grace period's start)
    told: str | None = None  # the withholding people were told of in the current need

    @property
    def empty(self) -> bool:
        return not (
            self.detached_by or self.attached_by or self.decided_at or self.attached_at or self.since or self.told
        )


_GUARDRAIL_SK = "GUARDRAIL"
_GUARDRAIL_TIMES = ("detached_at", "decided_at", "attached_at", "since")


def _guardrail_item(record: GuardrailRecord, home_account: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": resource_key("user", record.user_name, record.account_id, home_account),
        "sk": _GUARDRAIL_SK,
        "gsi1pk": _guardrail_index_key(record.account_id, home_account),
        "gsi1sk": record.user_name,
        "kind": "guardrail",
        "user_name": record.user_name,
        "account_id": record.account_id or None,
        "user_id": record.user_id,
        "detached_by": record.detached_by,
        "detach_event_id": record.detach_event_id,
        "attached_by": record.attached_by,
        "told": record.told,
    }
    for name in _GUARDRAIL_TIMES:
        value = getattr(record, name)
        item[name] = iso(value) if value else None
    return item


def _guardrail_index_key(account_id: str, home_account: str | None) -> str:
    return _GUARDRAIL_SK if is_home(account_id, home_account) else f"{_GUARDRAIL_SK}#{account_id}"


def _guardrail_record(item: Mapping[str, Any], account_id: str) -> GuardrailRecord:
    return GuardrailRecord(
        user_name=str(item["user_name"]),
        user_id=str(item["user_id"]),
        account_id=account_id,
        detached_by=item.get("detached_by"),
        detach_event_id=item.get("detach_event_id"),
        attached_by=item.get("attached_by"),
        told=item.get("told"),
        **{name: parse_time(item.get(name)) for name in _GUARDRAIL_TIMES},
    )


def is_home(account_id: str, home_account: str | None) -> bool:
    """Whether the account's users keep the single-account keys (see the module's layout); "" is the home account."""
    return home_account is None or not account_id or account_id == home_account


def resource_key(resource_type: str, resource_name: str, account_id: str, home_account: str | None = None) -> str:
    """Partition key of a resource: a user by name (and account, outside the home account), root and account by id."""
    if resource_type == "user":
        if is_home(account_id, home_account):
            return f"USER#{resource_name}"
        return f"USER#{account_id}#{resource_name}"
    return f"{resource_type.upper()}#{account_id}"


def _chunks(items: Mapping[int, dict[str, Any]]) -> list[list[int]]:
    """The items' positions, in order, cut into transactions DynamoDB accepts (actions and bytes)."""
    chunks: list[list[int]] = []
    size = 0
    for position, item in items.items():
        item_size = len(json.dumps(item, separators=(",", ":")).encode())
        if not chunks or len(chunks[-1]) == _TRANSACTION_ACTIONS or size + item_size > _TRANSACTION_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(position)
        size += item_size
    return chunks


def _finding_fields(finding: Finding) -> dict[str, Any]:
    """What `item_to_finding` reads back."""
    return {
        "check_id": finding.check_id,
        "severity": finding.severity.value,
        "status": finding.status.value,
        "resource_type": finding.resource_type,
        "resource_arn": finding.resource_arn,
        "resource_name": finding.resource_name,
        "account_id": finding.account_id,
        "detail": finding.detail,
        "observed_at": iso(finding.observed_at),
        "first_seen": iso(finding.first_seen or finding.observed_at),
        "last_seen": iso(finding.last_seen or finding.observed_at),
        "status_changed_at": iso(finding.status_changed_at or finding.observed_at),
        "exempt_source": finding.exempt_source,
        "exempt_owner": finding.exempt_owner,
        "exempt_reason": finding.exempt_reason,
        "exempt_until": finding.exempt_until.isoformat() if finding.exempt_until else None,
    }


def finding_to_item(
    finding: Finding,
    version: int,
    change: Transition,
    announcement: str | None = None,
    announced_previous: Finding | None = None,
    home_account: str | None = None,
) -> dict[str, Any]:
    """The finding item; with `announcement`, the pending announcement of `change` (and what it changed from)."""
    item: dict[str, Any] = {
        "pk": resource_key(finding.resource_type, finding.resource_name, finding.account_id, home_account),
        "sk": f"CHECK#{finding.check_id}",
        "gsi1pk": f"CHECK#{finding.check_id}",
        "gsi1sk": f"{finding.status.value}#{finding.resource_name}",
        "kind": "finding",
        **_finding_fields(finding),
        "severity_rank": finding.severity.rank,
        "last_transition": change.value,
        "version": version,
    }
    if announcement is not None:
        item["notify_pending"] = announcement
        if announced_previous is not None:
            item["notify_previous"] = _finding_fields(announced_previous)
    return item


def pending_change(item: Mapping[str, Any]) -> Change | None:
    """The announcement a finding item still waits for, as the Change that made it; None if there is none."""
    token = item.get("notify_pending")
    if not isinstance(token, str):  # absent (or the boolean flag of older versions, which nothing reads)
        return None
    raw_previous = item.get("notify_previous")
    try:
        previous = item_to_finding(raw_previous) if isinstance(raw_previous, Mapping) else None
    except (KeyError, ValueError):  # hand-edited or truncated: announce without "open since"
        previous = None
    transition = str(item.get("last_transition", ""))
    if transition not in {Transition.OPENED, Transition.RESOLVED, Transition.ESCALATED}:
        transition = Transition.OPENED.value if item.get("status") == Status.FAIL.value else Transition.RESOLVED.value
    return Change(item_to_finding(item), previous, Transition(transition), announcement=token, recovered=True)


def item_to_finding(item: Mapping[str, Any]) -> Finding:
    return Finding(
        check_id=item["check_id"],
        severity=Severity(item["severity"]),
        status=Status(item["status"]),
        resource_type=item["resource_type"],
        resource_arn=item["resource_arn"],
        resource_name=item["resource_name"],
        account_id=item["account_id"],
        detail=item["detail"],
        observed_at=parse_time(item["observed_at"]) or datetime.now(UTC),
        first_seen=parse_time(item.get("first_seen")),
        last_seen=parse_time(item.get("last_seen")),
        status_changed_at=parse_time(item.get("status_changed_at")),
        exempt_source=item.get("exempt_source"),
        exempt_owner=item.get("exempt_owner"),
        exempt_reason=item.get("exempt_reason"),
        exempt_until=date.fromisoformat(str(item["exempt_until"])) if item.get("exempt_until") else None,
    )


def _exemption_of(finding: Finding) -> tuple[object, ...]:
    return finding.exempt_source, finding.exempt_owner, finding.exempt_reason, finding.exempt_until


@dataclass(frozen=True)
class _Decision:
    """What one observation does to its stored item."""

    change: Change
    item: dict[str, Any] | None = None  # the item to write; None: nothing to write
    condition: dict[str, Any] = field(default_factory=dict)  # ConditionExpression & co. of that write


@dataclass(frozen=True)
class ResourceItems:
    """One resource's partition, read once (one consistent Query): its finding items and, for a user,
    the guardrail record. The event path hands it to enforcement and to `record_resources`."""

    pk: str
    findings: tuple[dict[str, Any], ...]
    guardrail: GuardrailRecord | None = None
    assumed: bool = False  # not read: assumed empty (`new_resource`), which the write's conditions check


class FindingsStore:
    """Reads and writes the findings table through one injected DynamoDB client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        heartbeat: timedelta = timedelta(hours=24),
        workers: int = 16,
        home_account: str | None = None,
    ) -> None:
        self.client = client
        self.table = table_name
        self.heartbeat = heartbeat
        self.workers = workers
        self.home_account = home_account  # None: a single-account table (every user keyed by name)

    @classmethod
    def for_settings(
        cls, client: DynamoDBClient, settings: Settings, table: str | None = None, **options: Any
    ) -> FindingsStore:
        """The store of a deployment: its table (or `table`), and in organization mode the hub's account as home."""
        return cls(client, table or settings.findings_table, home_account=settings.organization.home_account, **options)

    def resource_key(self, resource_type: str, resource_name: str, account_id: str) -> str:
        return resource_key(resource_type, resource_name, account_id, self.home_account)

    # -- writes ------------------------------------------------------------------
    def record(self, findings: Iterable[Finding], *, full_audit_account: str | None = None) -> list[Change]:
        """Store observations; return what changed.

        With `full_audit_account`, stored open findings of that account that the
        audit no longer produced (the user was deleted) are resolved, and the
        account's summary (iamguard.persistence.summary) is rewritten from its stored
        findings - read from the `account` index, so nothing of another account is read -
        and the table-wide summary from every account's summary.
        """
        observed = list(findings)
        if full_audit_account is None:
            return self.record_resources(observed)
        current = {self._key_of(item): item for item in self.account_findings(full_audit_account)}
        changes = self._record_against(observed, current, full_audit_account)
        stored = {key: item_to_finding(item) for key, item in current.items()}
        stored.update((self._finding_key(change.finding), change.finding) for change in changes)
        audited_at = max((f.observed_at for f in observed), default=datetime.now(UTC))
        own = summary.summary_item(
            stored.values(), account_id=full_audit_account, audited_at=audited_at, sk=account_sk(full_audit_account)
        )
        self.client.put_item(TableName=self.table, Item=to_ddb(own))
        if self.home_account is None:  # an organization's GET /status sums the accounts' items instead
            accounts = [item for item in self._account_items(summary.SUMMARY_PK) if item["sk"] != own["sk"]]
            self.client.put_item(
                TableName=self.table,
                Item=to_ddb(summary.combined([own, *accounts], account_id=full_audit_account, audited_at=audited_at)),
            )
        return changes

    def account_findings(self, account_id: str) -> Iterator[dict[str, Any]]:
        """Every stored finding of one account: a Query of the `account` index per kind of resource.

        The index is eventually consistent: a finding written a moment ago may be missing or older,
        which the conditional writes of `record` notice (they re-read the item and decide again).
        """
        for resource_type in ("user", "root", "account"):
            yield from read_items(
                self.client.get_paginator("query"),
                TableName=self.table,
                IndexName=ACCOUNT_INDEX,
                **expression(
                    key_condition=Key("account_id").eq(account_id) & Key("pk").begins_with(f"{resource_type.upper()}#"),
                    filter_condition=Attr("kind").eq("finding"),
                ),
            )

    def read_resource(self, resource_type: str, resource_name: str, account_id: str) -> ResourceItems:
        """Everything stored under one resource, in one consistent Query (no separate guardrail read)."""
        pk = self.resource_key(resource_type, resource_name, account_id)
        findings: list[dict[str, Any]] = []
        guardrail: GuardrailRecord | None = None
        for item in self._partition(pk):
            if str(item["sk"]).startswith("CHECK#"):
                findings.append(item)
            elif item["sk"] == _GUARDRAIL_SK and resource_type == "user":
                guardrail = _guardrail_record(item, account_id)
        return ResourceItems(pk, tuple(findings), guardrail)

    def new_resource(self, resource_type: str, resource_name: str, account_id: str) -> ResourceItems:
        """A resource taken to have nothing stored (a user the event just created), without a read.

        `record_resources` writes it only if that holds - every finding absent and, for a user, no
        guardrail record - and raises `NotNew` when the write is cancelled, instead of re-reading:
        what was decided on the assumption (enforcement's plan) must be decided again by the caller.
        """
        return ResourceItems(self.resource_key(resource_type, resource_name, account_id), (), None, assumed=True)

    def record_resources(
        self,
        findings: Iterable[Finding],
        *,
        read: Iterable[ResourceItems] = (),
        also: Callable[[list[Change]], list[dict[str, Any]]] | None = None,
    ) -> list[Change]:
        """Store observations of a few resources (the event path); return what changed.

        Per resource: one consistent Query reads all of its stored items, and one transaction
        writes what changed - the findings (each conditional on the version read) and the
        summary's counters - with a condition on every other finding read,
        so the counters move exactly with the findings. A conflicting writer cancels it: re-read,
        re-decide. Nothing scans the table (the event functions hold no dynamodb:Scan).
        A resource already read (`read`, `read_resource`) is not read again unless the write
        is cancelled; one taken as new (`new_resource`) is not read at all (`NotNew` if it was
        not). `also` (one resource only) gives items that depend on the changes - the event's
        activity items - and they are written in the same transaction, re-made with the changes
        of each attempt; the transaction happens for them even when no finding changed.
        """
        by_resource: dict[str, dict[tuple[str, str], Finding]] = {}
        for finding in findings:
            pk, sk = self._finding_key(finding)
            by_resource.setdefault(pk, {})[(pk, sk)] = finding
        known = {items.pk: items for items in read}
        if also is not None and len(by_resource) > 1:
            raise ValueError("items that depend on the changes are written with one resource at most")
        if also is not None and not by_resource:
            extra = self._extra_steps(also([]))
            if extra:
                self.client.transact_write_items(TransactItems=extra)  # type: ignore[arg-type]
            return []
        return [
            change
            for pk, observed in by_resource.items()
            for change in self._record_resource(pk, observed, known.get(pk), also)
        ]

    def _record_resource(
        self,
        pk: str,
        observed: Mapping[tuple[str, str], Finding],
        known: ResourceItems | None,
        also: Callable[[list[Change]], list[dict[str, Any]]] | None = None,
    ) -> list[Change]:
        if known is None or not known.assumed:
            return self._record_read(pk, observed, known.findings if known else None, also)
        # Nothing of the resource may be stored: not the findings written, nor any other check's
        # (the user's standing is counted over all of them), nor a guardrail record.
        scope = next(iter(observed.values())).resource_type
        written = {sk for _, sk in observed}
        checks = [
            self._absent(pk, f"CHECK#{check.id}")
            for check in CATALOG.values()
            if check.scope == scope and f"CHECK#{check.id}" not in written
        ]
        checks += [self._absent(pk, _GUARDRAIL_SK)] if scope == "user" else []
        try:
            return self._record_read(pk, observed, (), also, attempts=1, checks=checks)
        except Contended as exc:  # cancelled: something is stored under it after all (or a writer collided)
            raise NotNew(f"{pk} has stored items: read it and decide again") from exc

    def _absent(self, pk: str, sk: str) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": item_key(pk, sk),
                **expression(condition=Attr("pk").not_exists()),
            }
        }

    def _record_read(
        self,
        pk: str,
        observed: Mapping[tuple[str, str], Finding],
        read: Iterable[Mapping[str, Any]] | None = None,
        also: Callable[[list[Change]], list[dict[str, Any]]] | None = None,
        attempts: int = 8,
        checks: list[dict[str, Any]] | None = None,
    ) -> list[Change]:
        for _ in range(attempts):
            items = self._resource_items(pk) if read is None else read
            read = None  # a cancelled write re-reads
            current = {self._key_of(item): dict(item) for item in items}
            decisions = {key: self._decide(finding, current.get(key)) for key, finding in observed.items()}
            changes = [decision.change for decision in decisions.values()]
            changes += [p for key, item in current.items() if key not in observed and (p := pending_change(item))]
            written = {key: decision for key, decision in decisions.items() if decision.item is not None}
            extra = self._extra_steps(also(changes)) if also is not None else []
            if not written and not extra and not checks:
                return changes
            steps: list[dict[str, Any]] = []
            for decision in written.values():
                item = decision.item or {}
                steps.append({"Put": {"TableName": self.table, "Item": to_ddb(item), **decision.condition}})
            for key, item in current.items():
                if key not in written:  # what the counters were computed from must still hold
                    steps.append(self._unchanged(key, item))
            before = [item_to_finding(item) for item in current.values()]
            after = {key: item_to_finding(item) for key, item in current.items()}
            after.update((key, decision.change.finding) for key, decision in written.items())
            counted = summary.delta(before, after.values())
            if counted:
                account = next(iter(observed.values())).account_id
                if self.home_account is None:  # an organization's GET /status sums the accounts' items instead
                    steps.append(summary.delta_update(self.table, counted, account))
                steps.append(summary.delta_update(self.table, counted, account, summary.account_sk(account)))
            steps += extra + (checks or [])
            try:
                self.client.transact_write_items(TransactItems=steps)  # type: ignore[arg-type]
            except self.client.exceptions.TransactionCanceledException:
                continue  # another writer changed this resource since the read: re-read and re-decide
            except ClientError as exc:
                raise StoreError(f"cannot write the findings of {pk}: {exc}") from exc
            return changes
        raise Contended(f"the findings of {pk} kept changing under us")

    def _extra_steps(self, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Unconditional Puts, one per key (a transaction may touch an item once; a retry rewrites the same)."""
        unique = {(str(item["pk"]), str(item["sk"])): item for item in items}
        return [{"Put": {"TableName": self.table, "Item": to_ddb(item)}} for item in unique.values()]

    def _unchanged(self, key: tuple[str, str], item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": item_key(*key),
                **expression(condition=Attr("version").eq(item.get("version"))),
            }
        }

    def _record_against(
        self,
        observed: list[Finding],
        current: Mapping[tuple[str, str], Mapping[str, Any]],
        full_audit_account: str | None,
    ) -> list[Change]:
        jobs = [(finding, current.get(self._finding_key(finding))) for finding in observed]
        order: list[int | Change] = list(range(len(jobs)))  # each Change in its place: a write's or a ready one
        seen = {self._finding_key(f) for f in observed}
        # When the audit read the account: its newest observation (report-based verdicts carry the
        # report's older GeneratedTime). Findings stored after that are newer than the audit.
        cutoff = max((f.observed_at for f in observed), default=None)
        for key, item in current.items():
            if key in seen:
                continue  # its write hands back its pending announcement, if any
            gone = item_to_finding(item)
            # Every finding of a gone resource says so (passing ones too), once.
            if (
                full_audit_account is not None
                and cutoff is not None
                and not str(item["detail"]).endswith(GONE_DETAIL)
                and gone.observed_at < cutoff
            ):
                resolved = gone.model_copy(
                    update={
                        "status": Status.PASS,
                        "detail": f"{gone.resource_name} {GONE_DETAIL}",
                        "observed_at": cutoff,
                    }
                )
                order.append(len(jobs))
                jobs.append((resolved, item))
            elif (pending := pending_change(item)) is not None:
                order.append(pending)  # an earlier run recorded it and died before announcing it
        written = self._write_all(jobs)
        return [written[slot] if isinstance(slot, int) else slot for slot in order]

    def _write_all(self, pending: list[tuple[Finding, Mapping[str, Any] | None]]) -> list[Change]:
        """Write many findings; their Changes in order. A few one by one; more in transactions, in parallel.

        Each finding is decided against what was read and put on the same condition as a single
        write (absent, or the version read), up to 100 in one TransactWriteItems (one item per
        finding, so never two actions on one item). A finding whose condition failed - another
        writer changed it since the read - is not written by its transaction; the others are
        written again without it, and it is re-read and decided again alone (`_write`).
        """
        if len(pending) <= _PARALLEL_THRESHOLD:
            return [self._write(finding, stored) for finding, stored in pending]
        decisions = [self._decide(finding, stored) for finding, stored in pending]
        changes = [decision.change for decision in decisions]
        keys: set[tuple[str, str]] = set()
        batched: list[int] = []
        alone: list[int] = []  # a finding observed twice: the second is written after the transactions
        for position, ((finding, _), decision) in enumerate(zip(pending, decisions, strict=True)):
            if decision.item is None:
                continue
            key = self._finding_key(finding)
            (alone if key in keys else batched).append(position)
            keys.add(key)
        items = {position: decisions[position].item or {} for position in batched}
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="store") as pool:
            transactions = pool.map(lambda chunk: self._transact(chunk, decisions), _chunks(items))
            lost = [*chain.from_iterable(transactions), *alone]
            redone = pool.map(lambda position: self._write_again(pending[position][0]), lost)
            for position, change in zip(lost, redone, strict=True):
                changes[position] = change
        return changes

    def _transact(self, positions: list[int], decisions: list[_Decision]) -> list[int]:
        """Put these findings in one transaction; the positions whose condition failed (not written).

        Another transaction on one of the items (TransactionConflict) or throttling cancels the
        whole transaction: it is sent again after a pause, up to `_TRANSACTION_ATTEMPTS` times.
        botocore gives each call one ClientRequestToken (an idempotency token in DynamoDB's model),
        so its own retries after a lost answer cannot apply a transaction twice; a send from this
        loop follows a cancellation, which wrote nothing, and may take a new token.
        """
        steps = {
            p: {"Put": {"TableName": self.table, "Item": to_ddb(decisions[p].item or {}), **decisions[p].condition}}
            for p in positions
        }
        lost: list[int] = []
        pauses = 0
        while positions:
            try:
                self.client.transact_write_items(TransactItems=[steps[p] for p in positions])  # type: ignore[misc]
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = [str(reason.get("Code")) for reason in exc.response.get("CancellationReasons", [])]
            except ClientError as exc:
                raise StoreError(f"cannot write {len(positions)} findings: {exc}") from exc
            else:
                return lost
            if len(codes) != len(positions):  # no reason per action: each is re-read and written alone
                return [*lost, *positions]
            failed = {p for p, code in zip(positions, codes, strict=True) if code == "ConditionalCheckFailed"}
            if failed:  # written by someone else since the read: the others go again at once, without them
                lost += [p for p in positions if p in failed]
                positions = [p for p in positions if p not in failed]
                continue
            refused = set(codes) - _RETRIED_CANCELLATIONS
            if refused:
                raise StoreError(f"cannot write {len(positions)} findings: {', '.join(sorted(refused))}")
            pauses += 1
            if pauses >= _TRANSACTION_ATTEMPTS:
                raise StoreError(f"{len(positions)} findings kept being cancelled: {', '.join(sorted(set(codes)))}")
            time.sleep(random.uniform(0, min(_PAUSE_CAP, _PAUSE_BASE * 2**pauses)))
        return lost

    def _write_again(self, finding: Finding) -> Change:
        """A finding another writer changed since the read: read it again and decide again, alone."""
        return self._write(finding, self._get(*self._finding_key(finding)))

    def _write(self, finding: Finding, stored: Mapping[str, Any] | None, attempts: int = 5) -> Change:
        """Write one observation; the Change it made, or the pending announcement an earlier run left."""
        for _ in range(attempts):
            decision = self._decide(finding, stored)
            if decision.item is None:
                return decision.change
            try:
                self.client.put_item(TableName=self.table, Item=to_ddb(decision.item), **decision.condition)
            except self.client.exceptions.ConditionalCheckFailedException:
                stored = self._get(*self._finding_key(finding))  # someone else wrote first: re-read and re-decide
                continue
            except ClientError as exc:
                raise StoreError(f"cannot write finding {finding.check_id} for {finding.resource_name}: {exc}") from exc
            return decision.change
        raise StoreError(f"finding {finding.check_id} for {finding.resource_name} kept changing under us")

    def _decide(self, finding: Finding, stored: Mapping[str, Any] | None) -> _Decision:
        """What one observation does to the stored item: the Change, and the item to write (if any)."""
        previous = item_to_finding(stored) if stored else None
        pending = pending_change(stored) if stored else None
        if previous is not None and previous.observed_at > finding.observed_at:
            return _Decision(pending or Change(previous, previous, Transition.UNCHANGED))  # a newer one is stored
        if previous is not None and finding.status is Status.ERROR and previous.status is not Status.ERROR:
            # A check that could not run says nothing new: the last known verdict stands (the audit
            # run records the error), so FAIL -> ERROR is not "resolved" and ERROR -> FAIL not "opened".
            return _Decision(pending or Change(previous, previous, Transition.UNCHANGED))
        change = transition(previous, finding)
        same = (
            previous is not None
            and change is Transition.UNCHANGED
            and previous.status == finding.status
            and previous.severity == finding.severity
            and previous.detail == finding.detail
            and _exemption_of(previous) == _exemption_of(finding)
        )
        if (
            same
            and previous is not None
            and previous.last_seen
            and (finding.observed_at - previous.last_seen < self.heartbeat)
        ):
            return _Decision(pending or Change(previous, previous, Transition.UNCHANGED))
        status_changed = previous is None or previous.status != finding.status
        stored_finding = finding.model_copy(
            update={
                "first_seen": previous.first_seen if previous else finding.observed_at,
                "last_seen": finding.observed_at,
                "status_changed_at": finding.observed_at
                if status_changed
                else previous.status_changed_at
                if previous
                else finding.observed_at,
            }
        )
        version = int(stored["version"]) if stored else 0
        notable = change in {Transition.OPENED, Transition.RESOLVED, Transition.ESCALATED}
        announcement: str | None = None
        announced_previous: Finding | None = None
        if notable:  # the announcement is written with the transition, in the same conditional write
            announcement, announced_previous = str(version + 1), previous
        elif pending is not None:  # still waiting: carried over
            announcement, announced_previous = pending.announcement, pending.previous
        item = finding_to_item(
            stored_finding,
            version + 1,
            change if notable or not stored else Transition(stored.get("last_transition", Transition.UNCHANGED.value)),
            announcement,
            announced_previous,
            self.home_account,
        )
        condition = Attr("pk").not_exists() if stored is None else Attr("version").eq(version)
        if notable:
            result = Change(stored_finding, previous, change, announcement=announcement)
        elif pending is not None:
            result = Change(stored_finding, pending.previous, pending.transition, announcement, recovered=True)
        else:
            result = Change(stored_finding, previous, change)
        return _Decision(result, item, expression(condition=condition))

    def claim_announcement(self, change: Change) -> dict[str, Any]:
        """One step of the outbox's claim transaction: take the change's announcement out of its finding.

        It fails (and the whole claim with it) when another run took it first or a newer
        transition replaced it. The version moves on, so a `record` that read the item
        before the claim re-reads it instead of writing the announcement back.
        """
        if change.announcement is None:
            raise ValueError(f"{change.finding.check_id} for {change.finding.resource_name} has no announcement")
        pk, sk = self._finding_key(change.finding)
        return {
            "Update": {
                "TableName": self.table,
                "Key": item_key(pk, sk),
                **expression(
                    update="REMOVE notify_pending, notify_previous SET #version = #version + :one",
                    condition=Attr("notify_pending").eq(change.announcement),
                    names={"#version": "version"},
                    values={":one": 1},
                ),
            }
        }

    def record_audit_run(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        account_id: str,
        summary: Mapping[str, Any],
        errors: Mapping[str, str],
        api_calls: int,
    ) -> None:
        record = {
            "kind": "audit",
            "account_id": account_id,
            "started_at": iso(started_at),
            "finished_at": iso(finished_at),
            "summary": dict(summary),
            "errors": dict(errors),
            "api_calls": api_calls,
        }
        self.client.put_item(TableName=self.table, Item=to_ddb({"pk": "AUDIT", "sk": "LATEST", **record}))
        self.client.put_item(TableName=self.table, Item=to_ddb({"pk": "AUDIT", "sk": account_sk(account_id), **record}))
        self.client.put_item(
            TableName=self.table,
            Item=to_ddb(
                {
                    "pk": "AUDIT",
                    "sk": f"RUN#{iso(started_at)}",
                    **record,
                    "expires_at": int((finished_at + timedelta(days=HISTORY_DAYS)).timestamp()),
                }
            ),
        )

    @staticmethod
    def activity_item(kind: str, at: datetime, identifier: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """A detection or enforcement action as the status API reads it (one item per kind, time and id)."""
        return {
            "pk": f"ACTIVITY#{at.astimezone(UTC):%Y-%m-%d}",
            "sk": f"{iso(at)}#{kind}#{identifier}",
            "kind": kind,
            "at": iso(at),
            "data": dict(data),
            "expires_at": int((at + timedelta(days=HISTORY_DAYS)).timestamp()),
        }

    def record_activity(self, kind: str, at: datetime, identifier: str, data: Mapping[str, Any]) -> bool:
        """Keep a detection or enforcement action for the status API. False if it was already recorded."""
        item = self.activity_item(kind, at, identifier, data)
        try:
            self.client.put_item(
                TableName=self.table, Item=to_ddb(item), **expression(condition=Attr("pk").not_exists())
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def recent_activity(self, days: int = 7, limit: int = 100, now: datetime | None = None) -> list[dict[str, Any]]:
        """Detections and actions, newest first, from the last `days` days."""
        now = now or datetime.now(UTC)
        found: list[dict[str, Any]] = []
        for offset in range(days):
            day = now - timedelta(days=offset)
            for item in read_items(
                self.client.get_paginator("query"),
                TableName=self.table,
                **expression(key_condition=Key("pk").eq(f"ACTIVITY#{day:%Y-%m-%d}")),
                ScanIndexForward=False,
            ):
                found.append(item)
                if len(found) >= limit:
                    return found
        return found

    # -- reads -------------------------------------------------------------------
    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=item_key(pk, sk), ConsistentRead=True)
        return from_ddb(response["Item"]) if "Item" in response else None

    @staticmethod
    def _key_of(item: Mapping[str, Any]) -> tuple[str, str]:
        return item["pk"], item["sk"]

    def _finding_key(self, finding: Finding) -> tuple[str, str]:
        return self.resource_key(
            finding.resource_type, finding.resource_name, finding.account_id
        ), f"CHECK#{finding.check_id}"

    def _resource_items(self, pk: str) -> Iterator[dict[str, Any]]:
        return read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            **expression(key_condition=Key("pk").eq(pk) & Key("sk").begins_with("CHECK#")),
            ConsistentRead=True,
        )

    def _partition(self, pk: str) -> Iterator[dict[str, Any]]:
        return read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            **expression(key_condition=Key("pk").eq(pk)),
            ConsistentRead=True,
        )

    def finding_items(
        self,
        *,
        check_id: str | None = None,
        status: Status | None = None,
        severity: Severity | None = None,
        resource_type: str | None = None,
        account_id: str | None = None,
        start_key: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
        """Finding items in table order, each with the key to resume *after* it; filtered in DynamoDB.

        With `check_id` this queries the check's index partition (ordered by status, then
        name); else with `account_id` the account's partition of the `account` index (ordered by
        resource); otherwise it scans. Either way the items of one resource come out together.
        The resume key has the fields `resume_key_names` gives.
        """
        wanted: ConditionBase = Attr("kind").eq("finding")
        if severity is not None:
            wanted &= Attr("severity").eq(severity.value)
        if resource_type is not None:
            wanted &= Attr("resource_type").eq(resource_type)
        params: dict[str, Any] = {"TableName": self.table}
        if check_id is not None:
            if account_id is not None:
                wanted &= Attr("account_id").eq(account_id)
            in_check: ConditionBase = Key("gsi1pk").eq(f"CHECK#{check_id}")
            if status is not None:
                in_check &= Key("gsi1sk").begins_with(f"{status.value}#")
            params.update(IndexName="gsi1", **expression(key_condition=in_check, filter_condition=wanted))
        else:
            if status is not None:
                wanted &= Attr("status").eq(status.value)
            if account_id is not None:  # the index's keys go in the key condition (a filter may not name them)
                in_account: ConditionBase = Key("account_id").eq(account_id)
                if resource_type is not None:
                    in_account &= Key("pk").begins_with(f"{resource_type.upper()}#")
                params.update(IndexName=ACCOUNT_INDEX, **expression(key_condition=in_account, filter_condition=wanted))
            else:
                params.update(expression(filter_condition=wanted))
        key_names = self.resume_key_names(check_id=check_id, account_id=account_id)
        if start_key:
            params["ExclusiveStartKey"] = {name: {"S": value} for name, value in start_key.items()}
        operation = self.client.query if "IndexName" in params else self.client.scan
        while True:
            page = operation(**params)
            for raw in page.get("Items", []):
                item = from_ddb(raw)
                yield item, {name: str(item[name]) for name in key_names}
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def resume_key_names(*, check_id: str | None = None, account_id: str | None = None) -> tuple[str, ...]:
        """The fields of `finding_items`' resume key for these filters (the read's table or index keys)."""
        if check_id is not None:
            return ("pk", "sk", "gsi1pk", "gsi1sk")
        if account_id is not None:
            return ("pk", "sk", "account_id")
        return ("pk", "sk")

    def findings(self) -> list[Finding]:
        """Every stored finding of the catalog's checks, read check by check from the index (no Scan).

        For tests and the local demo; the index is eventually consistent in AWS.
        """
        return [
            item_to_finding(item)
            for check_id in CATALOG
            for item in read_items(
                self.client.get_paginator("query"),
                TableName=self.table,
                IndexName="gsi1",
                **expression(key_condition=Key("gsi1pk").eq(f"CHECK#{check_id}")),
            )
        ]

    def count_findings(self, check_id: str, status: Status) -> int:
        """How many findings of one check have `status`, those resolved because their resource is gone left out.

        Counted by DynamoDB (Select COUNT on the check's index partition): nothing is sent back but numbers.
        """
        in_check = Key("gsi1pk").eq(f"CHECK#{check_id}") & Key("gsi1sk").begins_with(f"{status.value}#")
        live = Attr("kind").eq("finding") & ~Attr("detail").contains(GONE_DETAIL)
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            IndexName="gsi1",
            Select="COUNT",
            **expression(key_condition=in_check, filter_condition=live),
        )
        return sum(page["Count"] for page in pages)

    def findings_for_resource(self, resource_type: str, name: str, account_id: str) -> list[Finding]:
        pk = self.resource_key(resource_type, name, account_id)
        return [item_to_finding(item) for item in self._resource_items(pk)]

    def pending_changes(self) -> list[Change]:
        """Every announcement no run has claimed yet (a full scan: the digest's, not the event path's)."""
        pending = read_items(
            self.client.get_paginator("scan"),
            TableName=self.table,
            **expression(filter_condition=Attr("kind").eq("finding") & Attr("notify_pending").exists()),
            ConsistentRead=True,
        )
        return [change for item in pending if (change := pending_change(item)) is not None]

    def latest_audit(self) -> dict[str, Any] | None:
        return self._get("AUDIT", "LATEST")

    def audit_runs(self, since: datetime, *, most: int) -> tuple[list[dict[str, Any]], bool]:
        """The audit runs started since `since`, oldest first: the newest `most` of them, and whether that was all.

        One Query on the AUDIT partition, newest first, that stops after `most` items.
        """
        runs = list(
            read_items(
                self.client.get_paginator("query"),
                TableName=self.table,
                **expression(key_condition=Key("pk").eq("AUDIT") & Key("sk").between(f"RUN#{iso(since)}", "RUN#~")),
                ScanIndexForward=False,
                PaginationConfig={"MaxItems": most + 1, "PageSize": min(most + 1, 1000)},
            )
        )
        return runs[:most][::-1], len(runs) <= most

    def account_summaries(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Every account's summary with its latest audit run: one Query on each of two partitions."""
        audits = {str(item["sk"]): item for item in self._account_items("AUDIT")}
        return [(item, audits.get(str(item["sk"]))) for item in self._account_items(summary.SUMMARY_PK)]

    def account_summary(self, account_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """One account's summary and its latest audit run, in one read."""
        sk = summary.account_sk(account_id)
        return self._summary_and_run(sk, sk)

    def _account_items(self, pk: str) -> Iterator[dict[str, Any]]:
        return read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            **expression(key_condition=Key("pk").eq(pk) & Key("sk").begins_with(summary.ACCOUNT_SK_PREFIX)),
            ConsistentRead=True,
        )

    def summary_and_audit(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The account summary (iamguard.persistence.summary) and the latest audit run, in one read."""
        return self._summary_and_run(summary.SUMMARY_SK, "LATEST")

    def _summary_and_run(self, summary_sk: str, run_sk: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        wanted: list[Any] = [item_key(summary.SUMMARY_PK, summary_sk), item_key("AUDIT", run_sk)]
        found: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            response = self.client.batch_get_item(RequestItems={self.table: {"Keys": wanted, "ConsistentRead": True}})
            for raw in response.get("Responses", {}).get(self.table, []):
                item = from_ddb(raw)
                found[str(item["pk"])] = item
            unprocessed: Mapping[str, Any] = response.get("UnprocessedKeys") or {}
            wanted = list((unprocessed.get(self.table) or {}).get("Keys", []))
            if not wanted:
                break
        return found.get(summary.SUMMARY_PK), found.get("AUDIT")

    # -- enforcement memory (the MFA guardrail, see iamguard.enforce) ---------------
    def guardrail_record(self, user_name: str, account_id: str = "") -> GuardrailRecord | None:
        item = self._get(self.resource_key("user", user_name, account_id), _GUARDRAIL_SK)
        return _guardrail_record(item, account_id) if item else None

    def guardrail_records(self, account_id: str = "") -> dict[str, GuardrailRecord]:
        """Every user's guardrail record in one account (one index query, paginated)."""
        items = read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            IndexName="gsi1",
            **expression(key_condition=Key("gsi1pk").eq(_guardrail_index_key(account_id, self.home_account))),
        )
        return {record.user_name: record for record in (_guardrail_record(item, account_id) for item in items)}

    def save_guardrail_record(self, record: GuardrailRecord) -> None:
        """Keep the record; an empty one (nothing left to remember) is removed."""
        if record.empty:
            self.client.delete_item(
                TableName=self.table,
                Key=item_key(self.resource_key("user", record.user_name, record.account_id), _GUARDRAIL_SK),
            )
            return
        self.client.put_item(TableName=self.table, Item=to_ddb(_guardrail_item(record, self.home_account)))
