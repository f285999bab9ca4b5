"""The findings table: current findings per resource and check, and how they changed.

Item layout (one table, see template.yaml):
  finding     pk=<TYPE>#<name>           sk=CHECK#<check_id>   gsi1pk=CHECK#<check_id> gsi1sk=<STATUS>#<name>
  transition  pk=HISTORY#<yyyy-mm-dd>    sk=<iso time>#<check_id>#<resource key>   (TTL expires_at)
  audit run   pk=AUDIT                   sk=LATEST | RUN#<iso time>
  activity    pk=ACTIVITY#<yyyy-mm-dd>   sk=<iso time>#<kind>#<id>   (detections and enforcement actions, TTL)
Other writers share the table: notifications (iamguard.outbox, pk=NOTIFY#...) and failed
sign-in bursts (iamguard.bursts, pk=SIGNIN_FAILURES#...); their layouts are documented there.

Writes are optimistic: every finding item carries a version and is written with
a condition on the version that was read. Two overlapping runs therefore cannot
both record the same transition: the loser re-reads and sees no change. An
observation older than what is stored is dropped (a slow run never overwrites a
newer one). Unchanged findings are only rewritten when their last_seen is older
than the heartbeat, so an hourly audit writes what changed, not every finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from iamguard.findings import Finding, Severity, Status, Transition, transition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HISTORY_DAYS = 90
_PARALLEL_THRESHOLD = 32  # below this many writes, threads cost more than they save
GONE_DETAIL = "no longer exists; the finding is resolved."  # detail of findings resolved because the resource is gone
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreError(RuntimeError):
    """The findings table could not be read or written."""


@dataclass(frozen=True)
class Change:
    """A stored finding and what its latest observation did to it."""

    finding: Finding
    previous: Finding | None
    transition: Transition

    @property
    def notable(self) -> bool:
        return self.transition in {Transition.OPENED, Transition.RESOLVED, Transition.ESCALATED}


def resource_key(resource_type: str, resource_name: str, account_id: str) -> str:
    """Partition key of a resource: users by name (unique per account), root and account by id."""
    if resource_type == "user":
        return f"USER#{resource_name}"
    return f"{resource_type.upper()}#{account_id}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def finding_to_item(finding: Finding, version: int, change: Transition, notify_pending: bool) -> dict[str, Any]:
    pk = resource_key(finding.resource_type, finding.resource_name, finding.account_id)
    item: dict[str, Any] = {
        "pk": pk,
        "sk": f"CHECK#{finding.check_id}",
        "gsi1pk": f"CHECK#{finding.check_id}",
        "gsi1sk": f"{finding.status.value}#{finding.resource_name}",
        "kind": "finding",
        "check_id": finding.check_id,
        "severity": finding.severity.value,
        "severity_rank": finding.severity.rank,
        "status": finding.status.value,
        "resource_type": finding.resource_type,
        "resource_arn": finding.resource_arn,
        "resource_name": finding.resource_name,
        "account_id": finding.account_id,
        "detail": finding.detail,
        "observed_at": _iso(finding.observed_at),
        "first_seen": _iso(finding.first_seen or finding.observed_at),
        "last_seen": _iso(finding.last_seen or finding.observed_at),
        "status_changed_at": _iso(finding.status_changed_at or finding.observed_at),
        "last_transition": change.value,
        "version": version,
    }
    if notify_pending:
        item["notify_pending"] = True
    return item


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
        observed_at=_time(item["observed_at"]) or datetime.now(UTC),
        first_seen=_time(item.get("first_seen")),
        last_seen=_time(item.get("last_seen")),
        status_changed_at=_time(item.get("status_changed_at")),
    )


def _to_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def _from_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


class FindingsStore:
    """Reads and writes the findings table through one injected DynamoDB client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        heartbeat: timedelta = timedelta(hours=24),
        workers: int = 16,
    ) -> None:
        self.client = client
        self.table = table_name
        self.heartbeat = heartbeat
        self.workers = workers

    # -- set-up (local emulators only; the stack creates the real table) -----------
    def ensure_table(self) -> bool:
        """Create the table with the template's key schema if missing. True when it was created."""
        try:
            self.client.describe_table(TableName=self.table)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        self.client.create_table(
            TableName=self.table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
        return True

    # -- writes ------------------------------------------------------------------
    def record(self, findings: Iterable[Finding], *, full_audit_account: str | None = None) -> list[Change]:
        """Store observations; return what changed.

        With `full_audit_account`, stored open findings of that account that the
        audit no longer produced (the user was deleted) are resolved.
        """
        observed = list(findings)
        if full_audit_account is not None:
            current = {
                self._key_of(item): item for item in self.scan_findings() if item["account_id"] == full_audit_account
            }
        else:
            # The event path: one consistent Query per resource reads all of its stored findings.
            current = {}
            for pk in dict.fromkeys(self._finding_key(finding)[0] for finding in observed):
                current.update((self._key_of(item), item) for item in self._resource_items(pk))
        changes = self._write_all([(finding, current.get(self._finding_key(finding))) for finding in observed])
        if full_audit_account is not None and observed:
            seen = {self._finding_key(f) for f in observed}
            # When the audit read the account: its newest observation (report-based verdicts carry the
            # report's older GeneratedTime). Findings stored after that are newer than the audit.
            cutoff = max(f.observed_at for f in observed)
            for key, item in current.items():
                # Every finding of a gone resource says so (passing ones too), once.
                if key in seen or str(item["detail"]).endswith(GONE_DETAIL):
                    continue
                gone = item_to_finding(item)
                if gone.observed_at >= cutoff:
                    continue
                resolved = gone.model_copy(
                    update={
                        "status": Status.PASS,
                        "detail": f"{gone.resource_name} {GONE_DETAIL}",
                        "observed_at": cutoff,
                    }
                )
                changes.append(self._write(resolved, item))
        return changes

    def _write_all(self, pending: list[tuple[Finding, Mapping[str, Any] | None]]) -> list[Change]:
        """Write many findings; large batches in parallel (each write is independent and conditional)."""
        if len(pending) <= _PARALLEL_THRESHOLD:
            return [self._write(finding, stored) for finding, stored in pending]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="store") as pool:
            return list(pool.map(lambda job: self._write(*job), pending))

    def _write(self, finding: Finding, stored: Mapping[str, Any] | None, attempts: int = 5) -> Change:
        for _ in range(attempts):
            previous = item_to_finding(stored) if stored else None
            if previous is not None and previous.observed_at > finding.observed_at:
                return Change(previous, previous, Transition.UNCHANGED)  # a newer observation is stored
            if previous is not None and finding.status is Status.ERROR and previous.status is not Status.ERROR:
                # A check that could not run says nothing new: the last known verdict stands (the audit
                # run records the error), so FAIL -> ERROR is not "resolved" and ERROR -> FAIL not "opened".
                return Change(previous, previous, Transition.UNCHANGED)
            change = transition(previous, finding)
            same = (
                previous is not None
                and change is Transition.UNCHANGED
                and previous.status == finding.status
                and previous.severity == finding.severity
                and previous.detail == finding.detail
            )
            if (
                same
                and previous is not None
                and previous.last_seen
                and (finding.observed_at - previous.last_seen < self.heartbeat)
            ):
                return Change(previous, previous, Transition.UNCHANGED)
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
            pending = notable or bool(stored and stored.get("notify_pending"))
            item = finding_to_item(
                stored_finding,
                version + 1,
                change
                if notable or not stored
                else Transition(stored.get("last_transition", Transition.UNCHANGED.value)),
                pending,
            )
            try:
                if stored is None:
                    self.client.put_item(
                        TableName=self.table, Item=_to_ddb(item), ConditionExpression="attribute_not_exists(pk)"
                    )
                else:
                    self.client.put_item(
                        TableName=self.table,
                        Item=_to_ddb(item),
                        ConditionExpression="#v = :v",
                        ExpressionAttributeNames={"#v": "version"},
                        ExpressionAttributeValues={":v": {"N": str(version)}},
                    )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise StoreError(
                        f"cannot write finding {finding.check_id} for {finding.resource_name}: {exc}"
                    ) from exc
                stored = self._get(item["pk"], item["sk"])  # someone else wrote first: re-read and re-decide
                continue
            if notable:
                self._record_history(stored_finding, change)
            return Change(stored_finding, previous, change)
        raise StoreError(f"finding {finding.check_id} for {finding.resource_name} kept changing under us")

    def _record_history(self, finding: Finding, change: Transition) -> None:
        at = finding.observed_at
        key = resource_key(finding.resource_type, finding.resource_name, finding.account_id)
        self.client.put_item(
            TableName=self.table,
            Item=_to_ddb(
                {
                    "pk": f"HISTORY#{at:%Y-%m-%d}",
                    "sk": f"{_iso(at)}#{finding.check_id}#{key}",
                    "kind": "transition",
                    "transition": change.value,
                    "check_id": finding.check_id,
                    "severity": finding.severity.value,
                    "status": finding.status.value,
                    "resource_name": finding.resource_name,
                    "resource_arn": finding.resource_arn,
                    "detail": finding.detail,
                    "at": _iso(at),
                    "expires_at": int((at + timedelta(days=HISTORY_DAYS)).timestamp()),
                }
            ),
        )

    def mark_notified(self, finding: Finding) -> None:
        """Clear the pending-notification flag once every channel has the message."""
        pk = resource_key(finding.resource_type, finding.resource_name, finding.account_id)
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": f"CHECK#{finding.check_id}"}},
            UpdateExpression="REMOVE notify_pending",
        )

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
            "started_at": _iso(started_at),
            "finished_at": _iso(finished_at),
            "summary": dict(summary),
            "errors": dict(errors),
            "api_calls": api_calls,
        }
        self.client.put_item(TableName=self.table, Item=_to_ddb({"pk": "AUDIT", "sk": "LATEST", **record}))
        self.client.put_item(
            TableName=self.table,
            Item=_to_ddb(
                {
                    "pk": "AUDIT",
                    "sk": f"RUN#{_iso(started_at)}",
                    **record,
                    "expires_at": int((finished_at + timedelta(days=HISTORY_DAYS)).timestamp()),
                }
            ),
        )

    def record_activity(self, kind: str, at: datetime, identifier: str, data: Mapping[str, Any]) -> bool:
        """Keep a detection or enforcement action for the status API. False if it was already recorded."""
        item = {
            "pk": f"ACTIVITY#{at.astimezone(UTC):%Y-%m-%d}",
            "sk": f"{_iso(at)}#{kind}#{identifier}",
            "kind": kind,
            "at": _iso(at),
            "data": dict(data),
            "expires_at": int((at + timedelta(days=HISTORY_DAYS)).timestamp()),
        }
        try:
            self.client.put_item(
                TableName=self.table, Item=_to_ddb(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def recent_activity(self, days: int = 7, limit: int = 100, now: datetime | None = None) -> list[dict[str, Any]]:
        """Detections and actions, newest first, from the last `days` days."""
        now = now or datetime.now(UTC)
        found: list[dict[str, Any]] = []
        for offset in range(days):
            day = now - timedelta(days=offset)
            paginator = self.client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"ACTIVITY#{day:%Y-%m-%d}"}},
                ScanIndexForward=False,
            ):
                found.extend(_from_ddb(raw) for raw in page.get("Items", []))
                if len(found) >= limit:
                    return found[:limit]
        return found[:limit]

    # -- reads -------------------------------------------------------------------
    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return _from_ddb(response["Item"]) if "Item" in response else None

    @staticmethod
    def _key_of(item: Mapping[str, Any]) -> tuple[str, str]:
        return item["pk"], item["sk"]

    @staticmethod
    def _finding_key(finding: Finding) -> tuple[str, str]:
        return resource_key(
            finding.resource_type, finding.resource_name, finding.account_id
        ), f"CHECK#{finding.check_id}"

    def _resource_items(self, pk: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :check)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":check": {"S": "CHECK#"}},
            ConsistentRead=True,
        ):
            for raw in page.get("Items", []):
                yield _from_ddb(raw)

    def scan_findings(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table,
            FilterExpression="#k = :finding",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues={":finding": {"S": "finding"}},
            ConsistentRead=True,
        ):
            for raw in page.get("Items", []):
                yield _from_ddb(raw)

    def finding_items(
        self,
        *,
        check_id: str | None = None,
        status: Status | None = None,
        severity: Severity | None = None,
        resource_type: str | None = None,
        start_key: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
        """Finding items in table order, each with the key to resume *after* it; filtered in DynamoDB.

        With `check_id` this queries the check's index partition (ordered by status, then
        name); otherwise it scans, and the items of one resource come out together.
        """
        names = {"#k": "kind"}
        values: dict[str, Any] = {":finding": {"S": "finding"}}
        filters = ["#k = :finding"]
        if severity is not None:
            names["#sev"] = "severity"
            values[":sev"] = {"S": severity.value}
            filters.append("#sev = :sev")
        if resource_type is not None:
            names["#rt"] = "resource_type"
            values[":rt"] = {"S": resource_type}
            filters.append("#rt = :rt")
        params: dict[str, Any] = {"TableName": self.table, "ExpressionAttributeNames": names}
        if check_id is not None:
            values[":check"] = {"S": f"CHECK#{check_id}"}
            condition = "gsi1pk = :check"
            if status is not None:
                values[":status"] = {"S": f"{status.value}#"}
                condition += " AND begins_with(gsi1sk, :status)"
            params.update(IndexName="gsi1", KeyConditionExpression=condition)
            key_names: tuple[str, ...] = ("pk", "sk", "gsi1pk", "gsi1sk")
        else:
            if status is not None:
                names["#st"] = "status"
                values[":status"] = {"S": status.value}
                filters.append("#st = :status")
            key_names = ("pk", "sk")
        params.update(FilterExpression=" AND ".join(filters), ExpressionAttributeValues=values)
        if start_key:
            params["ExclusiveStartKey"] = {name: {"S": value} for name, value in start_key.items()}
        operation = self.client.query if check_id is not None else self.client.scan
        while True:
            page = operation(**params)
            for raw in page.get("Items", []):
                item = _from_ddb(raw)
                yield item, {name: str(item[name]) for name in key_names}
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def findings(self) -> list[Finding]:
        return [item_to_finding(item) for item in self.scan_findings()]

    def findings_for_resource(self, resource_type: str, name: str, account_id: str) -> list[Finding]:
        return [item_to_finding(item) for item in self._resource_items(resource_key(resource_type, name, account_id))]

    def pending_notifications(self) -> list[Finding]:
        return [item_to_finding(item) for item in self.scan_findings() if item.get("notify_pending")]

    def latest_audit(self) -> dict[str, Any] | None:
        return self._get("AUDIT", "LATEST")

    def history(self, day: datetime) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"HISTORY#{day:%Y-%m-%d}"}},
            ScanIndexForward=False,
        )
        return [_from_ddb(raw) for raw in response.get("Items", [])]
