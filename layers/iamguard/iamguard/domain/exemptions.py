"""Exceptions to checks: who may fail which check, why, on whose word, and until when.

An exemption names a check (or `*`, every check) and a resource: a user's name, or
`account` for the account itself (its root and account-wide checks). It comes from the
user's tags, from the status API (stored in the findings table) or from the EXEMPT_USERS
setting. It holds through its `expires` day (UTC) and no longer after it; tags and the
setting may leave it open-ended, the API never does.

An API exception holds in one account (`account_id`): in organization mode an exception for
`admin` in one member account says nothing about `admin` in another. Tag exceptions live on the
user in its own account; the EXEMPT_USERS setting is the deployment's and holds in every account.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

ALL_CHECKS = "*"
ACCOUNT_RESOURCE = "account"  # the resource of root and account-wide checks
ExemptionSource = Literal["tag", "api", "setting"]


class Exemption(BaseModel):
    """One exception: a check (or every check) of one resource, with an owner, a reason and an end."""

    model_config = ConfigDict(frozen=True)

    check_id: str  # a catalog id, or ALL_CHECKS
    resource: str  # a user name, or ACCOUNT_RESOURCE
    reason: str
    source: ExemptionSource
    owner: str | None = None
    expires: date | None = None  # the last day it holds (UTC); None: open-ended (tags and the setting only)
    created_at: datetime | None = None
    created_by: str | None = None
    # The account it holds in; None: every account the deployment judges (the setting, a user's own
    # tags, or an API exception of a single-account deployment, which judges one account).
    account_id: str | None = None

    def holds_in(self, account_id: str) -> bool:
        return self.account_id is None or self.account_id == account_id

    def covers(self, check_id: str) -> bool:
        return self.check_id in (ALL_CHECKS, check_id)

    def live(self, today: date) -> bool:
        return self.expires is None or today <= self.expires

    def describe(self, *, ended: bool = False) -> str:
        """One line for a finding's detail: where it comes from, why, whose, until when (or when it ended)."""
        if self.expires is None:
            until = "no end date"
        else:
            until = f"{'expired after' if ended else 'until'} {self.expires.isoformat()}"
        owner = f"owner {self.owner}; " if self.owner else ""
        return f"{_SOURCES[self.source]}: {self.reason}; {owner}{until}"


_SOURCES = {"tag": "exception by tag", "api": "exception via the API", "setting": "exception by setting"}


def choose(candidates: list[Exemption], check_id: str, today: date) -> tuple[Exemption | None, Exemption | None]:
    """The live exemption of a check (the one that lasts longest), else the one that expired last."""
    covering = [e for e in candidates if e.covers(check_id)]
    live = [e for e in covering if e.live(today)]
    if live:
        return max(live, key=lambda e: e.expires or date.max), None
    expired = [e for e in covering if e.expires is not None]
    return None, max(expired, key=lambda e: e.expires or date.min) if expired else None
