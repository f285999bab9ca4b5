"""Login-profile facts kept between runs, so an audit does not ask IAM again what cannot have changed.

Item layout (in the findings table; one partition per account, read with one consistent Query):
  facts   pk=LOGIN_PROFILES[#<account id>]   sk=USER#<name>   user_id, password_reset_required, profile_created,
          observed_at, expires_at (TTL: a day after the observation; older facts are never reused)
          or, once the profile is gone, user_id=None and observed_at (a tombstone: an audit that read
          the profile before it was deleted cannot write its facts back)
The home account's partition is LOGIN_PROFILES, as before organization mode; another account's is
LOGIN_PROFILES#<account id> (the findings store's `home_account` decides, as for its user keys).

The audit reads them all (`recall`) and writes what it read live (`remember`); the event path
rewrites them after Create/UpdateLoginProfile and removes them after DeleteLoginProfile
(`login_profile_changed`). Every write is conditional on being the newest observation, so a
slow audit never puts back a fact an event replaced. When they may be reused is
`iamguard.iam.inventory.login_profile_facts_hold`'s decision; this module only keeps them.
A failed read or write costs the saving, never the audit: the facts are then read live.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from iamguard.domain.account import LoginProfileFacts, User
from iamguard.persistence.findings import FindingsStore, is_home
from iamguard.persistence.table import expression, iso, parse_time, read_items, to_ddb

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PARTITION = "LOGIN_PROFILES"
EVENTS = frozenset({"CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile"})
_KEEP = timedelta(days=1)
_PARALLEL_THRESHOLD = 32
log = logging.getLogger(__name__)


class LoginProfileStore:
    """The `LoginProfileMemory` of audits that store their findings (the Lambda, `iamguard audit --store`)."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, *, workers: int = 16, partition: str = PARTITION
    ) -> None:
        self.client = client
        self.table = table_name
        self.workers = workers
        self.partition = partition

    @classmethod
    def of(cls, store: FindingsStore, account_id: str) -> LoginProfileStore:
        """The facts of one account's users, in the table of `store`."""
        home = is_home(account_id, store.home_account)
        return cls(store.client, store.table, partition=PARTITION if home else f"{PARTITION}#{account_id}")

    def recall(self) -> dict[str, LoginProfileFacts]:
        try:
            return {facts.user_name: facts for facts in self._items()}
        except ClientError as exc:
            log.warning("login-profile facts unreadable; reading them live", extra={"reason": str(exc)})
            return {}

    def remember(self, facts: list[LoginProfileFacts]) -> None:
        if len(facts) <= _PARALLEL_THRESHOLD:
            failures = [problem for problem in map(self._put, facts) if problem]
        else:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="login-profiles") as pool:
                failures = [problem for problem in pool.map(self._put, facts) if problem]
        if failures:  # once per run, not once per user
            log.warning(
                "login-profile facts not kept; the next audit reads them live",
                extra={"users": len(failures), "reason": failures[0]},
            )

    def forget(self, user_name: str, at: datetime) -> None:
        """The user had no login profile at `at`: nothing of it may be reused."""
        problem = self._put(LoginProfileFacts(user_name, "", False, None, at), tombstone=True)
        if problem:
            log.warning("login-profile facts not removed", extra={"user": user_name, "reason": problem})

    def _items(self) -> Iterator[LoginProfileFacts]:
        items = read_items(
            self.client.get_paginator("query"),
            TableName=self.table,
            **expression(key_condition=Key("pk").eq(self.partition)),
            ConsistentRead=True,
        )
        yield from (facts for item in items if (facts := _facts(item)) is not None)

    def _put(self, facts: LoginProfileFacts, *, tombstone: bool = False) -> str | None:
        """Write one observation unless a newer one is stored; the error, if DynamoDB refused it."""
        item: dict[str, Any] = {
            "pk": self.partition,
            "sk": f"USER#{facts.user_name}",
            "kind": "login_profile",
            "user_id": None if tombstone else facts.user_id,
            "password_reset_required": None if tombstone else facts.password_reset_required,
            "profile_created": iso(facts.profile_created) if facts.profile_created else None,
            "observed_at": iso(facts.observed_at),
            "expires_at": int((facts.observed_at + _KEEP).timestamp()),
        }
        newer = Attr("pk").not_exists() | Attr("observed_at").lt(item["observed_at"])
        try:
            self.client.put_item(TableName=self.table, Item=to_ddb(item), **expression(condition=newer))
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # a newer observation (an event's) is kept
        except ClientError as exc:
            return str(exc)
        return None


def _facts(item: dict[str, Any]) -> LoginProfileFacts | None:
    """An item's facts; None for a tombstone or an item that is not one of ours (then the user is read live)."""
    try:
        observed = parse_time(item.get("observed_at"))
        if observed is None or not item.get("user_id") or not isinstance(item.get("password_reset_required"), bool):
            return None
        return LoginProfileFacts(
            user_name=str(item["sk"]).removeprefix("USER#"),
            user_id=str(item["user_id"]),
            password_reset_required=item["password_reset_required"],
            profile_created=parse_time(item.get("profile_created")),
            observed_at=observed if observed.tzinfo else observed.replace(tzinfo=UTC),
        )
    except (TypeError, ValueError):  # hand-edited: not a time
        return None


def observed_facts(user: User) -> LoginProfileFacts | None:
    """The login-profile facts a live read of one user (`Inventory.read_user`) saw; None without a profile."""
    credentials = user.credentials
    if credentials is None or not credentials.password_enabled or user.password_reset_required is None:
        return None
    return LoginProfileFacts(
        user_name=user.name,
        user_id=user.user_id,
        password_reset_required=user.password_reset_required,
        profile_created=credentials.password_last_changed,  # a live read's is the profile's CreateDate
        observed_at=credentials.observed_at or datetime.now(UTC),
    )


def login_profile_changed(store: LoginProfileStore, event_name: str, user: User) -> None:
    """The event path, after re-reading `user` live for an event: keep what the read saw of its login profile.

    Only login-profile events do anything. Create/UpdateLoginProfile keep the new facts;
    DeleteLoginProfile (or a profile gone again) leaves a tombstone, so no audit reuses the
    flag of a password that no longer exists.
    """
    if event_name not in EVENTS:
        return
    facts = observed_facts(user)
    if facts is not None:
        store.remember([facts])
    else:
        store.forget(user.name, (user.credentials.observed_at if user.credentials else None) or datetime.now(UTC))
