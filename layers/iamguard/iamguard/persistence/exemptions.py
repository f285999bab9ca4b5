"""The status API's exceptions, kept in the findings table (tags and the setting live elsewhere).

Item layout:
  exception  pk=EXCEPTIONS  sk=<check_id>#<resource>               (the home account's)
             pk=EXCEPTIONS  sk=<account id>#<check_id>#<resource>  (any other account's)
             kind=exception, check_id, resource, owner, reason, expires (YYYY-MM-DD),
             created_at, created_by, expires_at (TTL: 30 days after the exception ends),
             account_id (the other accounts' only)

An exception holds in one account. The home account (every account of a single-account table,
the hub's own in organization mode: `FindingsStore.home_account`) keeps the sort key exceptions
always had, so a table written before organization mode reads as it is. Another account's sort
key starts with its 12-digit id; a check id starts with a letter or is `*`, so the two never meet.

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
from iamguard.persistence.findings import FindingsStore, is_home
from iamguard.persistence.table import expression, from_ddb, iso, item_key, parse_time, read_items, to_ddb

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PARTITION = "EXCEPTIONS"
KEPT_AFTER_EXPIRY = timedelta(days=30)


def sort_key(check_id: str, resource: str, account_id: str | None, home_account: str | None) -> str:
    """The exception's sort key: as it always was in the home account, prefixed by the account elsewhere."""
    if account_id is None or is_home(account_id, home_account):
        return f"{check_id}#{resource}"
    return f"{account_id}#{check_id}#{resource}"


def exemption_item(exemption: Exemption, home_account: str | None = None) -> dict[str, Any]:
    if exemption.expires is None:
        raise ValueError("an exception stored through the API must have an end")
    purge = datetime.combine(exemption.expires, time.min, tzinfo=UTC) + KEPT_AFTER_EXPIRY
    account = exemption.account_id
    home = account is None or is_home(account, home_account)
    return {
        "pk": PARTITION,
        "sk": sort_key(exemption.check_id, exemption.resource, account, home_account),
        **({} if home else {"account_id": account}),
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


def item_exemption(item: Mapping[str, Any], home_account: str | None = None) -> Exemption:
    """The stored exception; one without `account_id` is the home account's (None: a single-account table's)."""
    return Exemption(
        account_id=str(item["account_id"]) if item.get("account_id") else home_account,
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

    def __init__(self, client: DynamoDBClient, table_name: str, home_account: str | None = None) -> None:
        self.client = client
        self.table = table_name
        self.home_account = home_account  # as FindingsStore's: None, a single-account table

    @classmethod
    def of(cls, store: FindingsStore) -> ExemptionStore:
        """The exceptions in the findings store's table, with its home account."""
        return cls(store.client, store.table, store.home_account)

    def account_of(self, account_id: str | None) -> str | None:
        """The account an exception made for `account_id` (None: the home account) is stored as holding in."""
        return account_id if account_id and not is_home(account_id, self.home_account) else self.home_account

    def all(self) -> list[Exemption]:
        """Every stored exception, live or recently expired (one Query; a page holds hundreds)."""
        items = read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            **expression(key_condition=Key("pk").eq(PARTITION)),
            ConsistentRead=True,
        )
        return [item_exemption(item, self.home_account) for item in items]

    def put(self, exemption: Exemption) -> bool:
        """Keep (or replace) an exception; True when it is new."""
        response = self.client.put_item(
            TableName=self.table, Item=to_ddb(exemption_item(exemption, self.home_account)), ReturnValues="ALL_OLD"
        )
        return "Attributes" not in response

    def delete(self, check_id: str, resource: str, account_id: str | None = None) -> Exemption | None:
        """Remove an exception of `account_id` (None: the home account's); the one removed, or None."""
        try:
            response = self.client.delete_item(
                TableName=self.table,
                Key=item_key(PARTITION, sort_key(check_id, resource, account_id, self.home_account)),
                ReturnValues="ALL_OLD",
                **expression(condition=Attr("pk").exists()),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return item_exemption(from_ddb(response["Attributes"]), self.home_account)


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
