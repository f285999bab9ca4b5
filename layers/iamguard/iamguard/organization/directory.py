"""What the hub knows about the accounts of its organization, kept per container.

`AccountDirectory(hub, settings.organization)` answers, for a member account id:
- `membership(id)`: None when it is an ACTIVE account of ORGANIZATION_ID, else why not
  (Organizations' DescribeAccount, which answers only for the caller's own organization);
- `alias(id)` / `label(id)`: the account alias (IAM ListAccountAliases in that account, through
  the member audit role; the hub's own account through its own credentials), for messages;
- `organizational_units(id)`: its OUs, nearest first (Organizations ListParents), for routing;
- `audit` / `enforce`: the `MemberAccess` of the member audit and enforce roles (`shared_access`:
  one set of credentials per role and member for everything built on the same hub context).

Answers are cached: a member for an hour, a refusal, a missing alias or OU for five minutes
(an account may join, get its StackSet instance or its alias meanwhile). Why membership is
asked at all when the hub's role may only assume roles with `aws:ResourceOrgID` = the
organization: that condition already keeps a forged event from reaching any role outside
it, but its AccessDenied looks like a missing StackSet instance; DescribeAccount gives the
reason a reader needs (and the `EventsRejected` metric its dimension).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.aws import AwsContext, error_code
from iamguard.organization.access import MemberAccessError, shared_access
from iamguard.settings.organization import OrganizationSettings

MEMBER_TTL = timedelta(hours=1)
MISS_TTL = timedelta(minutes=5)
MAX_OU_DEPTH = 5  # Organizations nests OUs at most five levels under the root


class AccountDirectory:
    """Membership, alias and OUs of the organization's accounts, as the hub sees them."""

    def __init__(
        self,
        hub: AwsContext,
        organization: OrganizationSettings,
        *,
        logger: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.hub = hub
        self.organization = organization
        # Shared with whatever else acts from `hub` (the event path's router, the member auditor).
        self.audit = shared_access(hub, organization.member_audit_role_name)
        self.enforce = shared_access(hub, organization.member_enforce_role_name)
        self.log = logger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[Any, datetime]] = {}
        self._hub_account: str | None = None

    # -- cache ------------------------------------------------------------------------------
    def _cached(self, kind: str, account_id: str, read: Callable[[], tuple[Any, bool]]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._cache.get((kind, account_id))
            if hit is not None and hit[1] > now:
                return hit[0]
        value, lasting = read()
        with self._lock:
            self._cache[(kind, account_id)] = (value, now + (MEMBER_TTL if lasting else MISS_TTL))
        return value

    def _warn(self, message: str, **extra: Any) -> None:
        if self.log is not None:
            self.log.warning(message, extra=extra)

    # -- answers ------------------------------------------------------------------------------
    def hub_account_id(self) -> str:
        if self._hub_account is None:
            self._hub_account = self.hub.sts().get_caller_identity()["Account"]
        return self._hub_account

    def membership(self, account_id: str) -> str | None:
        """None when `account_id` is an ACTIVE account of the organization; else the reason it is not.

        Organizations errors other than "no such account" raise: the hub cannot tell, so the
        event is retried (and ends in the events dead-letter queue) rather than dropped.
        """
        return self._cached("member", account_id, lambda: self._membership(account_id))  # type: ignore[no-any-return]

    def _membership(self, account_id: str) -> tuple[str | None, bool]:
        organization = self.organization.organization_id
        client = self.hub.client("organizations")
        try:
            account = client.describe_account(AccountId=account_id)["Account"]
        except client.exceptions.AccountNotFoundException:
            return f"account {account_id} is not an account of organization {organization}", False
        arn = account.get("Arn", "")
        if f"/{organization}/" not in arn:
            return f"account {account_id} belongs to another organization than {organization} ({arn})", False
        status = account.get("State") or account.get("Status")
        if status != "ACTIVE":
            return f"account {account_id} is {status} in organization {organization}, not ACTIVE", False
        return None, True

    def alias(self, account_id: str) -> str | None:
        """The account's alias (None: it has none, or it cannot be read right now)."""
        return self._cached("alias", account_id, lambda: self._alias(account_id))  # type: ignore[no-any-return]

    def _alias(self, account_id: str) -> tuple[str | None, bool]:
        try:
            ctx = self.hub if account_id == self.hub_account_id() else self.audit.context(account_id)
            aliases = ctx.iam().list_account_aliases()["AccountAliases"]
        except (MemberAccessError, ClientError, BotoCoreError) as exc:
            self._warn("account alias unavailable", account_id=account_id, error=type(exc).__name__)
            return None, False
        return (aliases[0] if aliases else None), bool(aliases)

    def label(self, account_id: str) -> str:
        """How messages name an account: `123456789012 (alias)`, or the id alone."""
        if not account_id:
            return account_id
        alias = self.alias(account_id)
        return f"{account_id} ({alias})" if alias else account_id

    def organizational_units(self, account_id: str) -> tuple[str, ...]:
        """The OUs an account sits in, nearest first (empty when it sits under the root, or on error)."""
        return self._cached("ous", account_id, lambda: self._parents(account_id))  # type: ignore[no-any-return]

    def _parents(self, account_id: str) -> tuple[tuple[str, ...], bool]:
        client = self.hub.client("organizations")
        found: list[str] = []
        child = account_id
        try:
            for _ in range(MAX_OU_DEPTH + 1):
                parents = client.list_parents(ChildId=child)["Parents"]
                if not parents or parents[0]["Type"] != "ORGANIZATIONAL_UNIT":
                    break
                child = parents[0]["Id"]
                found.append(child)
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            self._warn("organizational units unavailable", account_id=account_id, error=code)
            return (), False
        return tuple(found), True
