"""Bursts of failed console sign-ins, counted in DynamoDB (the findings table), not in memory.

Each failure is one item (keyed by its time and CloudTrail eventID, so a
duplicate delivery is counted once). A burst opens when `threshold` failures
fall within `window` of each other; it stays open while failures keep coming
at that rate and closes after a quiet `window`. Only the failure that opens a
burst is announced — one alert per burst, even across Lambda instances.

Items (TTL `expires_at`):
  failure  pk=SIGNIN_FAILURES#<account>#<principal>  sk=FAIL#<iso time>#<eventID>
  burst    pk=SIGNIN_FAILURES#<account>#<principal>  sk=BURST  until=<epoch seconds>  opened_by=<eventID>
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Attr, Key

from iamguard.persistence.table import expression, iso, item_key, to_ddb
from iamguard.realtime.detections import Burst

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_KEEP = timedelta(days=1)  # failure items outlive their window by this much (TTL)


class SignInFailures:
    """Counts failed sign-ins per principal and says when a burst opens."""

    def __init__(self, client: DynamoDBClient, table: str, *, threshold: int, window: timedelta) -> None:
        self.client = client
        self.table = table
        self.threshold = threshold
        self.window = window

    def count(self, account_id: str, principal: str, event_id: str, at: datetime) -> Burst:
        """Count one failure (once per event id) and report the burst it belongs to."""
        pk = f"SIGNIN_FAILURES#{account_id}#{principal}"
        # Replayed or late events may be old: keep their items at least a window from now.
        expires = int((max(at, datetime.now(UTC)) + self.window + _KEEP).timestamp())
        item = {
            "pk": pk,
            "sk": f"FAIL#{iso(at)}#{event_id}",
            "kind": "signin_failure",
            "at": iso(at),
            "expires_at": expires,
        }
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):  # counted already
            self.client.put_item(
                TableName=self.table, Item=to_ddb(item), **expression(condition=Attr("pk").not_exists())
            )
        failures = self._count(pk, at)
        opened = failures >= self.threshold and self._open_burst(pk, event_id, at, expires)
        return Burst(principal, failures, self.threshold, self.window, opened)

    def _count(self, pk: str, at: datetime) -> int:
        total = 0
        # '~' sorts after every event id character
        window = Key("pk").eq(pk) & Key("sk").between(f"FAIL#{iso(at - self.window)}", f"FAIL#{iso(at)}#~")
        for page in self.client.get_paginator("query").paginate(
            TableName=self.table,
            **expression(key_condition=window),
            Select="COUNT",
            ConsistentRead=True,
        ):
            total += int(page.get("Count", 0))
        return total

    def _open_burst(self, pk: str, event_id: str, at: datetime, expires: int) -> bool:
        """True when this failure opens a burst (or is a retry of the failure that opened it)."""
        now = int(at.timestamp())
        until = int((at + self.window).timestamp())
        key = item_key(pk, "BURST")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=key,
                **expression(
                    update="SET #until = :until, opened_by = :id, opened_at = :at, #kind = :kind, "
                    "expires_at = :expires",
                    condition=Attr("pk").not_exists() | Attr("until").lt(now),
                    names={"#until": "until", "#kind": "kind"},
                    values={
                        ":until": until,
                        ":id": event_id,
                        ":at": iso(at),
                        ":kind": "signin_burst",
                        ":expires": expires,
                    },
                ),
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            pass
        # A burst is open: this failure keeps it open for another window.
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table,
                Key=key,
                **expression(
                    update="SET #until = :until, expires_at = :expires",
                    condition=Attr("until").lt(until),
                    names={"#until": "until"},
                    values={":until": until, ":expires": expires},
                ),
            )
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item", {})
        return item.get("opened_by", {}).get("S") == event_id
