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
message is in the outbox and the findings no longer wait, or neither. The
messages of one announcement (an event's alert and its findings' messages) are
claimed together (`claim_all`): one transaction of up to 100 actions instead of
a write per message, each message decided as its own claim would decide it.

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

import contextlib
import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from iamguard.domain.messages import Channel, Message
from iamguard.persistence.table import expression, from_ddb, iso, item_key, read_items, to_ddb

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OUTBOX = "OUTBOX"
KEEP = timedelta(days=30)  # the dedup window: how long a sent marker is kept
_CONFLICT_RETRIES = 4  # a claim transaction that collided with another one on the same items (or was throttled)
_TRANSIENT = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
MAX_ACTIONS = 100  # DynamoDB's limit of actions in one TransactWriteItems
_MAX_BATCH_BYTES = 3_000_000  # of message text per transaction, well inside its 4 MB request limit


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


@dataclass(frozen=True)
class Claim:
    """One message to record: claimed for `targets`, or held for the digest when there are none."""

    message: Message
    targets: frozenset[Channel]
    announcements: Sequence[Mapping[str, Any]] = ()  # its findings' announcement steps

    @property
    def actions(self) -> int:
        return 1 + len(self.announcements)


# A claim on its way: its position among the claims asked for, the claim, and its outbox item (built once).
_Pending = tuple[int, Claim, dict[str, Any]]


def _posts(channel: Channel) -> str:
    return f"posts_{channel.value}"


def _below(channel: Channel, limit: int) -> ConditionBase:
    """The channel has been sent the message fewer than `limit` times."""
    return Attr(_posts(channel)).not_exists() | Attr(_posts(channel)).lt(limit)


class Outbox:
    """Claims, tracks and lists messages in the findings table (one injected DynamoDB client)."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, lease: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.table = table_name
        self.lease_time = lease

    @staticmethod
    def _key(message_key: str) -> dict[str, Any]:
        return item_key(f"NOTIFY#{message_key}", "MESSAGE")

    def _create(self, item: dict[str, Any], announcements: Sequence[Mapping[str, Any]]) -> ClaimResult:
        """Put the item if it is new; with `announcements`, in one transaction with those steps."""
        new = expression(condition=Attr("pk").not_exists())
        if not announcements:
            try:
                self.client.put_item(TableName=self.table, Item=to_ddb(item), **new)
            except self.client.exceptions.ConditionalCheckFailedException:
                return ClaimResult(False)
            return ClaimResult(True)
        put = {"Put": {"TableName": self.table, "Item": to_ddb(item), **new}}
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self.client.transact_write_items(TransactItems=[put, *announcements])  # type: ignore[list-item]
            except self.client.exceptions.TransactionCanceledException as exc:
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

    def claim_all(self, claims: Sequence[Claim], now: datetime) -> list[ClaimResult]:
        """Record several messages with as few writes as DynamoDB allows; each result as `claim` or `hold` gives it.

        Messages go in transactions of up to MAX_ACTIONS actions, a message's item never apart
        from its announcements. A cancellation names the actions that failed: a message claimed
        before is a duplicate (its announcements are taken, as `claim` does), one whose
        announcement is gone comes back `lost`; the others are sent again at once without them.
        """
        results: list[ClaimResult | None] = [None] * len(claims)
        items = [(position, claim, self._claim_item(claim, now)) for position, claim in enumerate(claims)]
        for batch in _batches(items):
            for position, result in self._claim_batch(batch):
                results[position] = result
        return [result if result is not None else ClaimResult(False) for result in results]

    def _claim_batch(self, batch: list[_Pending]) -> Iterator[tuple[int, ClaimResult]]:
        attempt = 0
        while batch:
            if len(batch) == 1:  # a single write: PutItem, or a transaction with its announcements
                position, claim, item = batch[0]
                yield position, self._create(item, claim.announcements)
                return
            new = expression(condition=Attr("pk").not_exists())
            actions: list[Any] = []
            for _, claim, item in batch:
                actions.append({"Put": {"TableName": self.table, "Item": to_ddb(item), **new}})
                actions.extend(claim.announcements)
            try:
                self.client.transact_write_items(TransactItems=actions)
            except self.client.exceptions.TransactionCanceledException as exc:
                cancelled = exc
                reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons", [])  # type: ignore[assignment]
                codes = [str(reason.get("Code", "None")) for reason in reasons]
            else:
                yield from ((position, ClaimResult(True)) for position, *_ in batch)
                return
            if len(codes) != len(actions):  # no reason per action: each message claimed on its own
                for position, claim, item in batch:
                    yield position, self._create(item, claim.announcements)
                return
            decided = False
            remaining = []
            offset = 0
            for position, claim, item in batch:
                mine = codes[offset : offset + claim.actions]
                offset += claim.actions
                if mine[0] == "ConditionalCheckFailed":  # in the outbox already: what it announces has been told
                    self._take(claim.announcements)
                    yield position, ClaimResult(False)
                    decided = True
                elif lost := tuple(i - 1 for i, code in enumerate(mine) if i and code == "ConditionalCheckFailed"):
                    yield position, ClaimResult(False, lost)
                    decided = True
                else:
                    remaining.append((position, claim, item))
            if decided:
                batch = remaining
                continue
            if _TRANSIENT.intersection(codes) and attempt < _CONFLICT_RETRIES:
                time.sleep(0.05 * 2**attempt)  # another transaction held one of the items: try again
                attempt += 1
                continue
            raise cancelled

    def _claim_item(self, claim: Claim, now: datetime) -> dict[str, Any]:
        if not claim.targets:
            return self._item(claim.message, OutboxState.HELD, f"DIGEST#{claim.message.account_id}", now)
        item = self._item(claim.message, OutboxState.PENDING, OUTBOX, now)
        item["targets"] = sorted(channel.value for channel in claim.targets)
        return item

    def _take(self, announcements: Sequence[Mapping[str, Any]]) -> None:
        """Remove announcements whose message was claimed before (each on its own; gone ones are fine)."""
        for step in announcements:
            update = dict(step["Update"])
            with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
                self.client.update_item(**update)

    def _item(self, message: Message, state: OutboxState, index: str, now: datetime) -> dict[str, Any]:
        return {
            "pk": f"NOTIFY#{message.key}",
            "sk": "MESSAGE",
            "kind": "notification",
            "state": state.value,
            "message": message.model_dump_json(),
            "severity": message.severity.value,
            "attempts": 0,
            "created_at": iso(now),
            "updated_at": iso(now),
            "gsi1pk": index,
            "gsi1sk": f"{iso(now)}#{message.key}",
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
        return self._create(self._claim_item(Claim(message, frozenset(targets)), now), announcements)

    def hold(self, message: Message, now: datetime, announcements: Sequence[Mapping[str, Any]] = ()) -> ClaimResult:
        """Keep a message for the next digest only (taking its announcements). Falsy as for `claim`."""
        return self._create(self._claim_item(Claim(message, frozenset()), now), announcements)

    def lease(self, message_key: str, now: datetime, counts: Mapping[Channel, int | None] = {}) -> datetime | None:
        """Take an undelivered message for this run and count a send to each channel of `counts`.

        `counts` maps a channel to its limit of sends that may deliver (None: no limit); the
        lease is refused when a limited channel reached it. Returns the lease (its end, which
        `reserve` names) or None when another run holds the message or a limit was reached.
        """
        until = now + self.lease_time
        names: dict[str, str] = {}
        values: dict[str, Any] = {":until": iso(until)}
        if counts:
            values.update({":zero": 0, ":one": 1})
        sets = ["lease_until = :until"]
        condition: ConditionBase = Attr("gsi1pk").eq(OUTBOX) & (
            Attr("lease_until").not_exists() | Attr("lease_until").lt(iso(now))
        )
        for number, (channel, limit) in enumerate(sorted(counts.items())):
            name = f"#p{number}"
            names[name] = _posts(channel)
            sets.append(f"{name} = if_not_exists({name}, :zero) + :one")
            if limit is not None:
                condition &= _below(channel, limit)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(message_key),
                **expression(update="SET " + ", ".join(sets), condition=condition, names=names, values=values),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return until

    def reserve(self, message_key: str, channel: Channel, limit: int | None, lease: datetime) -> bool:
        """Count one more send to `channel` under the lease this run holds (a fallback); False: not allowed."""
        condition: ConditionBase = Attr("lease_until").eq(iso(lease))
        if limit is not None:
            condition &= _below(channel, limit)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(message_key),
                **expression(
                    update="SET #p = if_not_exists(#p, :zero) + :one",
                    condition=condition,
                    names={"#p": _posts(channel)},
                    values={":zero": 0, ":one": 1},
                ),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
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
            ":state": state.value,
            ":delivered": [c.value for c in sorted(delivered)],
            ":attempts": attempts,
            ":now": iso(now),
        }
        sets = ["#s = :state", "delivered = :delivered", "attempts = :attempts", "updated_at = :now"]
        if error:
            sets.append("last_error = :error")
            values[":error"] = error[:1000]
        update = "SET " + ", ".join(sets)
        if state is OutboxState.PENDING:
            update += " REMOVE lease_until"  # free for the next flush
        else:
            update += " REMOVE gsi1pk, gsi1sk, lease_until"
        given_back = [(channel, n) for channel, n in sorted(refunds.items()) if n]
        for number, (channel, n) in enumerate(given_back):
            names[f"#r{number}"] = _posts(channel)
            values[f":r{number}"] = -n
        if given_back:
            update += " ADD " + ", ".join(f"#r{number} :r{number}" for number in range(len(given_back)))
        self.client.update_item(
            TableName=self.table,
            Key=self._key(message_key),
            **expression(update=update, names=names, values=values),
        )

    def consume(self, entries: Iterable[OutboxEntry], now: datetime) -> None:
        """Held messages that went into a digest leave the digest queue."""
        for entry in entries:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(entry.message.key),
                **expression(
                    update="SET #s = :state, updated_at = :now REMOVE gsi1pk, gsi1sk",
                    names={"#s": "state"},
                    values={":state": OutboxState.DIGESTED.value, ":now": iso(now)},
                ),
            )

    # -- reading -------------------------------------------------------------------
    def _query(self, index_key: str, limit: int) -> Iterator[dict[str, Any]]:
        items = read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            IndexName="gsi1",
            **expression(key_condition=Key("gsi1pk").eq(index_key)),
        )
        return itertools.islice(items, limit)

    def due(self, now: datetime, limit: int = 200) -> list[OutboxEntry]:
        """Undelivered messages whose lease has run out, oldest (then worst) first."""
        entries = [
            entry_from_item(item)
            for item in self._query(OUTBOX, limit)
            if not item.get("lease_until") or str(item["lease_until"]) < iso(now)
        ]
        return sorted(entries, key=lambda e: (e.created_at, -e.message.severity.rank))

    def held(self, account_id: str, limit: int = 500) -> list[OutboxEntry]:
        """Messages held for the next digest of an account, oldest first."""
        return [entry_from_item(item) for item in self._query(f"DIGEST#{account_id}", limit)]

    def get(self, message_key: str) -> OutboxEntry | None:
        response = self.client.get_item(TableName=self.table, Key=self._key(message_key), ConsistentRead=True)
        return entry_from_item(from_ddb(response["Item"])) if "Item" in response else None


def _batches(claims: list[_Pending]) -> Iterator[list[_Pending]]:
    """Claims in order, cut into transactions DynamoDB accepts: ≤ MAX_ACTIONS actions, ≤ ~3 MB, no item twice."""
    batch: list[_Pending] = []
    actions = size = 0
    keys: set[str] = set()
    for position, claim, item in claims:
        mine = {str(item["pk"])} | {str(step["Update"]["Key"]) for step in claim.announcements}
        length = len(str(item["message"]))
        if batch and (actions + claim.actions > MAX_ACTIONS or size + length > _MAX_BATCH_BYTES or keys & mine):
            yield batch
            batch, actions, size, keys = [], 0, 0, set()
        batch.append((position, claim, item))
        actions, size, keys = actions + claim.actions, size + length, keys | mine
    if batch:
        yield batch


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
