"""The hub's way into a member account: assume the role the member StackSet created there.

`MemberAccess(hub).context(account_id)` is an `AwsContext` whose clients act in that
account (credentials from `sts:AssumeRole`, kept until shortly before they expire, so a
warm function assumes each role about once an hour). A role that is missing, or that
does not trust the hub, raises `MemberAccessError` with a reason a reader can act on:
the account needs the member StackSet instance.

`shared_access(hub, role_name)` is the one `MemberAccess` of a role for a hub context: what a
function builds from its one `AwsContext` (the event path's router, the messages' account
directory, the member auditor) shares one set of credentials per member account.
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3
from botocore.exceptions import ClientError

from iamguard.aws import AwsContext, error_code, error_text

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REFRESH_BEFORE_EXPIRY = timedelta(minutes=5)
SESSION_NAME = "iamguard-hub"
_DENIED = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "RegionDisabledException"}


class MemberAccessError(Exception):
    """The hub could not act in a member account; `reason` says why and what to fix."""

    def __init__(self, account_id: str, reason: str) -> None:
        super().__init__(f"account {account_id}: {reason}")
        self.account_id = account_id
        self.reason = reason


def role_arn(account_id: str, role_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


@dataclass
class MemberAccess:
    """Assumes `role_name` in member accounts from the hub's own credentials (`hub`)."""

    hub: AwsContext
    role_name: str
    partition: str = "aws"
    _cache: dict[str, tuple[AwsContext, datetime]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def context(self, account_id: str) -> AwsContext:
        """An `AwsContext` acting in `account_id` (raises `MemberAccessError`)."""
        if not _ACCOUNT_ID.match(account_id):
            raise MemberAccessError(account_id, "not a 12-digit AWS account id")
        now = datetime.now(UTC)
        with self._lock:
            cached = self._cache.get(account_id)
            if cached is not None and cached[1] - _REFRESH_BEFORE_EXPIRY > now:
                return cached[0]
        context, expires = self._assume(account_id)
        with self._lock:
            self._cache[account_id] = (context, expires)
        return context

    def _assume(self, account_id: str) -> tuple[AwsContext, datetime]:
        arn = role_arn(account_id, self.role_name, self.partition)
        try:
            response = self.hub.sts().assume_role(RoleArn=arn, RoleSessionName=SESSION_NAME)
        except ClientError as exc:
            if error_code(exc) in _DENIED:
                raise MemberAccessError(
                    account_id,
                    f"cannot assume {arn} ({error_text(exc)}): deploy the iamguard member StackSet "
                    "to this account, or check the role's trust policy",
                ) from exc
            raise
        credentials = response["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.hub.region,
        )
        context = AwsContext(
            region=self.hub.region,
            endpoint_url=self.hub.endpoint_url,
            retry_mode=self.hub.retry_mode,
            max_attempts=self.hub.max_attempts,
            _session=session,
        )
        expires = credentials["Expiration"]
        return context, expires if expires.tzinfo else expires.replace(tzinfo=UTC)


# (the hub context's identity, role name, partition) → its MemberAccess, while anyone holds it. The value
# holds the hub, so an id in a key cannot be reused by another context while the entry exists.
_SHARED: weakref.WeakValueDictionary[tuple[int, str, str], MemberAccess] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_access(hub: AwsContext, role_name: str, partition: str = "aws") -> MemberAccess:
    """The one `MemberAccess` of `role_name` for `hub`: everyone acting from the same hub context shares
    its credentials, so a warm function assumes each member's role once, not once per component."""
    key = (id(hub), role_name, partition)
    with _SHARED_LOCK:
        access = _SHARED.get(key)
        if access is None or access.hub is not hub:
            access = MemberAccess(hub, role_name, partition)
            _SHARED[key] = access
        return access
