"""The status API's exceptions, kept in the findings table (tags and the setting live elsewhere).

Item layout:
  exception  pk=EXCEPTIONS  sk=<check_id>#<resource>
             kind=exception, check_id, resource, owner, reason, expires (YYYY-MM-DD),
             created_at, created_by, expires_at (TTL: 30 days after the exception ends)

All of them sit in one partition: they are few (people write them one by one), so every
audit and every evaluated event reads them all with one Query. An expired exception stays
for `KEPT_AFTER_EXPIRY` so that the run after its end can say "exception expired", and then
DynamoDB's TTL removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key

from iamguard.domain.exemptions import Exemption
from iamguard.persistence.table import expression, from_ddb, iso, item_key, parse_time, read_items, to_ddb

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PARTITION = "EXCEPTIONS"
KEPT_AFTER_EXPIRY = timedelta(days=30)


def _sort_key(check_id: str, resource: str) -> str:
    return f"{check_id}#{resource}"


def exemption_item(exemption: Exemption) -> dict[str, Any]:
    if exemption.expires is None:
        raise ValueError("an exception stored through the API must have an end")
    purge = datetime.combine(exemption.expires, time.min, tzinfo=UTC) + KEPT_AFTER_EXPIRY
    return {
        "pk": PARTITION,
        "sk": _sort_key(exemption.check_id, exemption.resource),
        "kind": "exception",
        "check_id": exemption.check_id,
        "resource": exemption.resource,
        "owner": exemption.owner,
        "reason": exemption.reason,
        "expires": exemption.expires.isoformat(),
        "created_at": iso(exemption.created_at) if exemption.created_at else None,
        "created_by": exemption.created_by,
        "expires_at": int(purge.timestamp()),
    }


def item_exemption(item: Mapping[str, Any]) -> Exemption:
    return Exemption(
        check_id=str(item["check_id"]),
        resource=str(item["resource"]),
        owner=item.get("owner"),
        reason=str(item["reason"]),
        expires=date.fromisoformat(str(item["expires"])),
        source="api",
        created_at=parse_time(item.get("created_at")),
        created_by=item.get("created_by"),
    )


class ExemptionStore:
    """The API's exceptions in the findings table, through one DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table = table_name

    def all(self) -> list[Exemption]:
        """Every stored exception, live or recently expired (one Query; a page holds hundreds)."""
        items = read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            **expression(key_condition=Key("pk").eq(PARTITION)),
            ConsistentRead=True,
        )
        return [item_exemption(item) for item in items]

    def put(self, exemption: Exemption) -> bool:
        """Keep (or replace) an exception; True when it is new."""
        response = self.client.put_item(
            TableName=self.table, Item=to_ddb(exemption_item(exemption)), ReturnValues="ALL_OLD"
        )
        return "Attributes" not in response

    def delete(self, check_id: str, resource: str) -> Exemption | None:
        """Remove an exception; the one removed, or None when there was none."""
        try:
            response = self.client.delete_item(
                TableName=self.table,
                Key=item_key(PARTITION, _sort_key(check_id, resource)),
                ReturnValues="ALL_OLD",
                **expression(condition=Attr("pk").exists()),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return item_exemption(from_ddb(response["Attributes"]))


class CachedExemptions:
    """The event path's view of the stored exceptions: read at most once per `ttl` in a warm function.

    A warm event function handles events seconds apart; reading the exceptions for each would add a
    Query to every event. An exception made or removed through the API reaches the event path within
    `ttl` (the audit always reads afresh); an exception's end needs no re-read, it is a date.
    """

    def __init__(
        self, store: ExemptionStore, ttl: timedelta = timedelta(minutes=1), clock: Callable[[], float] = monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl.total_seconds()
        self._clock = clock
        self._read: tuple[float, list[Exemption]] | None = None

    def all(self) -> list[Exemption]:
        now = self._clock()
        if self._read is None or now - self._read[0] >= self.ttl:
            self._read = (now, self.store.all())
        return self._read[1]
