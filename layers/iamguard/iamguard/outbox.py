"""The notification outbox: one item per message in the findings table, written before sending.

Item layout (same table as iamguard.store):
  notification  pk=NOTIFY#<message key>  sk=MESSAGE
                gsi1pk=OUTBOX            gsi1sk=<created>#<key>   while undelivered (sparse index)
                gsi1pk=DIGEST#<account>  gsi1sk=<created>#<key>   while held for the next digest

Creating the item is conditional on it not existing, so the item is also the
"sent" marker: a duplicate run, a redelivered EventBridge event or a second
overlapping audit claims nothing and sends nothing. A claimed message keeps a
short lease; if the run dies mid-send, the lease runs out and a later flush
delivers what is missing. Items expire (TTL) long after they are settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from iamguard.notify.message import Message
from iamguard.notify.settings import Channel
from iamguard.store import _from_ddb, _iso, _to_ddb

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OUTBOX = "OUTBOX"
KEEP = timedelta(days=30)  # the dedup window: how long a sent marker is kept


class OutboxState(StrEnum):
    SENDING = "sending"  # claimed, being delivered (leased)
    PENDING = "pending"  # some channel still has to get it
    SENT = "sent"
    DEAD = "dead"  # given up on: in the dead-letter queue
    HELD = "held"  # routed to the digest only
    DIGESTED = "digested"


@dataclass(frozen=True)
class OutboxEntry:
    message: Message
    state: OutboxState
    targets: frozenset[Channel]
    delivered: frozenset[Channel]
    attempts: int
    created_at: datetime
    last_error: str | None = None

    @property
    def remaining(self) -> frozenset[Channel]:
        return self.targets - self.delivered


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Outbox:
    """Claims, tracks and lists messages in the findings table (one injected DynamoDB client)."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, lease: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.table = table_name
        self.lease_time = lease

    @staticmethod
    def _key(message_key: str) -> dict[str, Any]:
        return {"pk": {"S": f"NOTIFY#{message_key}"}, "sk": {"S": "MESSAGE"}}

    def _put_new(self, item: dict[str, Any]) -> bool:
        try:
            self.client.put_item(
                TableName=self.table, Item=_to_ddb(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _item(self, message: Message, state: OutboxState, index: str, now: datetime) -> dict[str, Any]:
        return {
            "pk": f"NOTIFY#{message.key}",
            "sk": "MESSAGE",
            "kind": "notification",
            "state": state.value,
            "message": message.model_dump_json(),
            "severity": message.severity.value,
            "attempts": 0,
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "gsi1pk": index,
            "gsi1sk": f"{_iso(now)}#{message.key}",
            "expires_at": int((now + KEEP).timestamp()),
        }

    # -- claiming ------------------------------------------------------------------
    def claim(self, message: Message, targets: Iterable[Channel], now: datetime) -> bool:
        """Record the message before sending it. False: it was claimed before (a duplicate)."""
        item = self._item(message, OutboxState.SENDING, OUTBOX, now)
        item["targets"] = sorted(channel.value for channel in targets)
        item["lease_until"] = _iso(now + self.lease_time)
        return self._put_new(item)

    def hold(self, message: Message, now: datetime) -> bool:
        """Keep a message for the next digest only. False: it was seen before."""
        return self._put_new(self._item(message, OutboxState.HELD, f"DIGEST#{message.account_id}", now))

    def lease(self, message_key: str, now: datetime) -> bool:
        """Take an undelivered message for this run; False when another run holds it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(message_key),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="gsi1pk = :outbox AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues={
                    ":until": {"S": _iso(now + self.lease_time)},
                    ":now": {"S": _iso(now)},
                    ":outbox": {"S": OUTBOX},
                },
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    # -- recording outcomes -----------------------------------------------------------
    def settle(
        self,
        message_key: str,
        state: OutboxState,
        *,
        delivered: Iterable[Channel],
        attempts: int,
        now: datetime,
        error: str | None = None,
    ) -> None:
        """Record the outcome of a delivery round: SENT and DEAD leave the outbox, PENDING stays in it."""
        values: dict[str, Any] = {
            ":state": {"S": state.value},
            ":delivered": {"L": [{"S": c.value} for c in sorted(delivered)]},
            ":attempts": {"N": str(attempts)},
            ":now": {"S": _iso(now)},
        }
        sets = ["#s = :state", "delivered = :delivered", "attempts = :attempts", "updated_at = :now"]
        if error:
            sets.append("last_error = :error")
            values[":error"] = {"S": error[:1000]}
        if state is OutboxState.PENDING:
            expression = "SET " + ", ".join(sets) + " REMOVE lease_until"  # free for the next flush
        else:
            expression = "SET " + ", ".join(sets) + " REMOVE gsi1pk, gsi1sk, lease_until"
        self.client.update_item(
            TableName=self.table,
            Key=self._key(message_key),
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues=values,
        )

    def consume(self, entries: Iterable[OutboxEntry], now: datetime) -> None:
        """Held messages that went into a digest leave the digest queue."""
        for entry in entries:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(entry.message.key),
                UpdateExpression="SET #s = :state, updated_at = :now REMOVE gsi1pk, gsi1sk",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":state": {"S": OutboxState.DIGESTED.value}, ":now": {"S": _iso(now)}},
            )

    # -- reading -------------------------------------------------------------------
    def _query(self, index_key: str, limit: int) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("query")
        seen = 0
        for page in paginator.paginate(
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": index_key}},
        ):
            for raw in page.get("Items", []):
                yield _from_ddb(raw)
                seen += 1
                if seen >= limit:
                    return

    def due(self, now: datetime, limit: int = 200) -> list[OutboxEntry]:
        """Undelivered messages whose lease has run out, oldest (then worst) first."""
        entries = [
            entry_from_item(item)
            for item in self._query(OUTBOX, limit)
            if not item.get("lease_until") or str(item["lease_until"]) < _iso(now)
        ]
        return sorted(entries, key=lambda e: (e.created_at, -e.message.severity.rank))

    def held(self, account_id: str, limit: int = 500) -> list[OutboxEntry]:
        """Messages held for the next digest of an account, oldest first."""
        return [entry_from_item(item) for item in self._query(f"DIGEST#{account_id}", limit)]

    def get(self, message_key: str) -> OutboxEntry | None:
        response = self.client.get_item(TableName=self.table, Key=self._key(message_key), ConsistentRead=True)
        return entry_from_item(_from_ddb(response["Item"])) if "Item" in response else None


def entry_from_item(item: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry(
        message=Message.model_validate_json(str(item["message"])),
        state=OutboxState(str(item["state"])),
        targets=frozenset(Channel(str(c)) for c in item.get("targets", [])),
        delivered=frozenset(Channel(str(c)) for c in item.get("delivered", [])),
        attempts=int(item.get("attempts", 0)),
        created_at=datetime.fromisoformat(str(item["created_at"])).astimezone(UTC),
        last_error=str(item["last_error"]) if item.get("last_error") else None,
    )
