"""The notification outbox: one item per message in the findings table, written before sending.

Item layout (same table as iamguard.store):
  notification  pk=NOTIFY#<message key>  sk=MESSAGE
                gsi1pk=OUTBOX            gsi1sk=<created>#<key>   while undelivered (sparse index)
                gsi1pk=DIGEST#<account>  gsi1sk=<created>#<key>   while held for the next digest
                posts_<channel>=<n>      sends to that channel that may have delivered it
                lease_until=<time>       while a run is sending it

Creating the item is conditional on it not existing, so the item is also the
"sent" marker: a duplicate run, a redelivered EventBridge event or a second
overlapping audit claims nothing and sends nothing. The claim of a finding
message is one transaction with the removal of its findings' pending
announcements (iamguard.store.FindingsStore.claim_announcement): either the
message is in the outbox and the findings no longer wait, or neither.

A claimed message is free for any run to deliver; the run that sends it first
takes a lease (a conditional update), and the same update counts the send for
each channel it is about to try. The settle after the send gives back the count
of a send that certainly did not deliver; a send whose answer never came keeps
it, and a channel whose count reached its limit is not sent the message again
(see iamguard.notify.retry). If a run dies mid-send, the lease runs out and a
later flush delivers what is missing. Items expire (TTL) long after they are
settled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
_CONFLICT_RETRIES = 4  # a claim transaction that collided with another one on the same items (or was throttled)
_TRANSIENT = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class OutboxState(StrEnum):
    SENDING = "sending"  # claimed and leased by older versions (a lease now goes with any undelivered state)
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
    posts: Mapping[Channel, int] = field(default_factory=dict)  # sends per channel that may have delivered it

    @property
    def remaining(self) -> frozenset[Channel]:
        return self.targets - self.delivered


@dataclass(frozen=True)
class ClaimResult:
    """What a claim did. False-y unless the message is now in the outbox, owned by this run's claim."""

    claimed: bool
    lost: tuple[int, ...] = ()  # announcements (indices) another run took first or a newer transition replaced

    @property
    def duplicate(self) -> bool:
        """The message itself was claimed before (by this or another run)."""
        return not self.claimed and not self.lost

    def __bool__(self) -> bool:
        return self.claimed


def _posts(channel: Channel) -> str:
    return f"posts_{channel.value}"


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

    def _create(self, item: dict[str, Any], announcements: Sequence[Mapping[str, Any]]) -> ClaimResult:
        """Put the item if it is new; with `announcements`, in one transaction with those steps."""
        if not announcements:
            try:
                self.client.put_item(
                    TableName=self.table, Item=_to_ddb(item), ConditionExpression="attribute_not_exists(pk)"
                )
            except ClientError as exc:
                if _conditional_failed(exc):
                    return ClaimResult(False)
                raise
            return ClaimResult(True)
        put = {
            "Put": {"TableName": self.table, "Item": _to_ddb(item), "ConditionExpression": "attribute_not_exists(pk)"}
        }
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self.client.transact_write_items(TransactItems=[put, *announcements])  # type: ignore[list-item]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons", [])  # type: ignore[assignment]
                codes = [str(reason.get("Code", "None")) for reason in reasons]
                if codes and codes[0] == "ConditionalCheckFailed":
                    # The message is in the outbox already: what it announces has been told.
                    self._take(announcements)
                    return ClaimResult(False)
                lost = tuple(i - 1 for i, code in enumerate(codes) if i and code == "ConditionalCheckFailed")
                if lost:
                    return ClaimResult(False, lost)
                if _TRANSIENT.intersection(codes) and attempt < _CONFLICT_RETRIES:
                    time.sleep(0.05 * 2**attempt)  # another transaction held one of the items: try again
                    continue
                raise
            return ClaimResult(True)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _take(self, announcements: Sequence[Mapping[str, Any]]) -> None:
        """Remove announcements whose message was claimed before (each on its own; gone ones are fine)."""
        for step in announcements:
            update = dict(step["Update"])
            try:
                self.client.update_item(**update)
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise

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
    def claim(
        self,
        message: Message,
        targets: Iterable[Channel],
        now: datetime,
        announcements: Sequence[Mapping[str, Any]] = (),
    ) -> ClaimResult:
        """Record the message before sending it, taking `announcements` (transaction steps) in the same write.

        Falsy when it was claimed before (a duplicate), or when one of the announcements
        is gone (`lost`: rebuild the message without them).
        """
        item = self._item(message, OutboxState.PENDING, OUTBOX, now)
        item["targets"] = sorted(channel.value for channel in targets)
        return self._create(item, announcements)

    def hold(self, message: Message, now: datetime, announcements: Sequence[Mapping[str, Any]] = ()) -> ClaimResult:
        """Keep a message for the next digest only (taking its announcements). Falsy as for `claim`."""
        return self._create(self._item(message, OutboxState.HELD, f"DIGEST#{message.account_id}", now), announcements)

    def lease(self, message_key: str, now: datetime, counts: Mapping[Channel, int | None] = {}) -> datetime | None:
        """Take an undelivered message for this run and count a send to each channel of `counts`.

        `counts` maps a channel to its limit of sends that may deliver (None: no limit); the
        lease is refused when a limited channel reached it. Returns the lease (its end, which
        `reserve` names) or None when another run holds the message or a limit was reached.
        """
        until = now + self.lease_time
        names: dict[str, str] = {}
        values: dict[str, Any] = {":until": {"S": _iso(until)}, ":now": {"S": _iso(now)}, ":outbox": {"S": OUTBOX}}
        if counts:
            values.update({":zero": {"N": "0"}, ":one": {"N": "1"}})
        sets = ["lease_until = :until"]
        conditions = ["gsi1pk = :outbox", "(attribute_not_exists(lease_until) OR lease_until < :now)"]
        for number, (channel, limit) in enumerate(sorted(counts.items())):
            name = f"#p{number}"
            names[name] = _posts(channel)
            sets.append(f"{name} = if_not_exists({name}, :zero) + :one")
            if limit is not None:
                values[f":max{number}"] = {"N": str(limit)}
                conditions.append(f"(attribute_not_exists({name}) OR {name} < :max{number})")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(message_key),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                **({"ExpressionAttributeNames": names} if names else {}),  # type: ignore[arg-type]
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return until

    def reserve(self, message_key: str, channel: Channel, limit: int | None, lease: datetime) -> bool:
        """Count one more send to `channel` under the lease this run holds (a fallback); False: not allowed."""
        condition = "lease_until = :lease"
        values: dict[str, Any] = {":lease": {"S": _iso(lease)}, ":zero": {"N": "0"}, ":one": {"N": "1"}}
        if limit is not None:
            condition += " AND (attribute_not_exists(#p) OR #p < :max)"
            values[":max"] = {"N": str(limit)}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(message_key),
                UpdateExpression="SET #p = if_not_exists(#p, :zero) + :one",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#p": _posts(channel)},
                ExpressionAttributeValues=values,
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
        refunds: Mapping[Channel, int] = {},
    ) -> None:
        """Record the outcome of a delivery round: SENT and DEAD leave the outbox, PENDING stays in it.

        `refunds` gives back the counted sends that certainly did not deliver (skipped, or refused).
        """
        names = {"#s": "state"}
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
        expression = "SET " + ", ".join(sets)
        if state is OutboxState.PENDING:
            expression += " REMOVE lease_until"  # free for the next flush
        else:
            expression += " REMOVE gsi1pk, gsi1sk, lease_until"
        given_back = [(channel, n) for channel, n in sorted(refunds.items()) if n]
        for number, (channel, n) in enumerate(given_back):
            names[f"#r{number}"] = _posts(channel)
            values[f":r{number}"] = {"N": str(-n)}
        if given_back:
            expression += " ADD " + ", ".join(f"#r{number} :r{number}" for number in range(len(given_back)))
        self.client.update_item(
            TableName=self.table,
            Key=self._key(message_key),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
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
        posts={channel: int(item[_posts(channel)]) for channel in Channel if _posts(channel) in item},
    )
