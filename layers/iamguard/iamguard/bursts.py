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

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from iamguard.detections import Burst

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_KEEP = timedelta(days=1)  # failure items outlive their window by this much (TTL)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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
        expires = str(int((max(at, datetime.now(UTC)) + self.window + _KEEP).timestamp()))
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": pk},
                    "sk": {"S": f"FAIL#{_iso(at)}#{event_id}"},
                    "kind": {"S": "signin_failure"},
                    "at": {"S": _iso(at)},
                    "expires_at": {"N": expires},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
        failures = self._count(pk, at)
        opened = failures >= self.threshold and self._open_burst(pk, event_id, at, expires)
        return Burst(principal, failures, self.threshold, self.window, opened)

    def _count(self, pk: str, at: datetime) -> int:
        total = 0
        for page in self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :since AND :until",
            ExpressionAttributeValues={
                ":pk": {"S": pk},
                ":since": {"S": f"FAIL#{_iso(at - self.window)}"},
                ":until": {"S": f"FAIL#{_iso(at)}#~"},  # '~' sorts after every event id character
            },
            Select="COUNT",
            ConsistentRead=True,
        ):
            total += int(page.get("Count", 0))
        return total

    def _open_burst(self, pk: str, event_id: str, at: datetime, expires: str) -> bool:
        """True when this failure opens a burst (or is a retry of the failure that opened it)."""
        now = str(int(at.timestamp()))
        until = str(int((at + self.window).timestamp()))
        key = {"pk": {"S": pk}, "sk": {"S": "BURST"}}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET #until = :until, opened_by = :id, opened_at = :at, #kind = :kind, "
                "expires_at = :expires",
                ConditionExpression="attribute_not_exists(pk) OR #until < :now",
                ExpressionAttributeNames={"#until": "until", "#kind": "kind"},
                ExpressionAttributeValues={
                    ":until": {"N": until},
                    ":now": {"N": now},
                    ":id": {"S": event_id},
                    ":at": {"S": _iso(at)},
                    ":kind": {"S": "signin_burst"},
                    ":expires": {"N": expires},
                },
            )
            return True
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
        # A burst is open: this failure keeps it open for another window.
        try:
            self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET #until = :until, expires_at = :expires",
                ConditionExpression="#until < :until",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":until": {"N": until}, ":expires": {"N": expires}},
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item", {})
        return item.get("opened_by", {}).get("S") == event_id
