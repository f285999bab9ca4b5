"""PUT, GET and DELETE /exceptions: the API's exceptions to checks, validated before they are kept.

An exception names a check of the catalog (or `*`) and a resource: a user's name, or `account`
for the account's own checks (root and account-wide). It always ends: `expires` is a day from
today to today + EXCEPTION_MAX_DAYS (UTC). The next audit, or the next event about the user,
applies it (and the first run after it ends reopens the finding: "exception expired").

An exception holds in one account: `account` (12 digits), by default the deployment's own (the
hub's in organization mode). The same user name in another member account is another user.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus

from iamguard.api.errors import ApiError, BadRequest
from iamguard.api.models import ExceptionList, ExceptionRecord, ExceptionRequest
from iamguard.checks import CATALOG
from iamguard.domain.exemptions import ACCOUNT_RESOURCE, ALL_CHECKS, Exemption
from iamguard.persistence.exemptions import ExemptionStore


class ExceptionNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class ExemptionService:
    """Validates and keeps the API's exceptions."""

    def __init__(self, store: ExemptionStore, max_days: int, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.max_days = max_days
        self.clock = clock

    def list(self, account: str | None = None) -> ExceptionList:
        """Every exception, or those that hold in `account`."""
        today = self.clock().astimezone(UTC).date()
        wanted = [e for e in self.store.all() if account is None or e.holds_in(account)]
        ordered = sorted(wanted, key=lambda e: (e.expires or today, e.check_id, e.resource, e.account_id or ""))
        return ExceptionList(exceptions=[_record(e, today) for e in ordered], max_days=self.max_days)

    def put(
        self, check_id: str, resource: str, request: ExceptionRequest, caller: str, account: str | None = None
    ) -> tuple[ExceptionRecord, bool]:
        """Keep (or replace) the exception of `account` (default: the home account); the record, and if it is new."""
        _validate_target(check_id, resource)
        owner, reason = request.owner.strip(), request.reason.strip()
        for name, value in (("owner", owner), ("reason", reason)):
            if not value:
                raise BadRequest(f"{name} must not be blank: say who answers for the exception, and why.")
        now = self.clock()
        today = now.astimezone(UTC).date()
        latest = today + timedelta(days=self.max_days)
        if request.expires < today:
            raise BadRequest(f"expires {request.expires} is in the past: an exception must end today or later.")
        if request.expires > latest:
            raise BadRequest(
                f"expires {request.expires} is too far ahead: an exception may last at most {self.max_days} days "
                f"(until {latest}; setting EXCEPTION_MAX_DAYS)."
            )
        exemption = Exemption(
            check_id=check_id,
            resource=resource,
            owner=owner,
            reason=reason,
            expires=request.expires,
            source="api",
            created_at=now,
            created_by=caller,
            account_id=self.store.account_of(account),
        )
        created = self.store.put(exemption)
        return _record(exemption, today), created

    def delete(self, check_id: str, resource: str, account: str | None = None) -> ExceptionRecord:
        _validate_target(check_id, resource)
        removed = self.store.delete(check_id, resource, account)
        if removed is None:
            where = f" in account {account}" if account else ""
            raise ExceptionNotFound(f"No exception for check {check_id!r} and resource {resource!r}{where}.")
        return _record(removed, self.clock().astimezone(UTC).date())


def _validate_target(check_id: str, resource: str) -> None:
    if check_id != ALL_CHECKS and check_id not in CATALOG:
        raise BadRequest(f"Unknown check id {check_id!r}: use an id of the catalog (README, What it checks) or *.")
    if check_id != ALL_CHECKS and CATALOG[check_id].scope != "user" and resource != ACCOUNT_RESOURCE:
        raise BadRequest(
            f"{check_id} is a check of the account, not of a user: its resource is {ACCOUNT_RESOURCE!r}, "
            f"not {resource!r}."
        )


def _record(exemption: Exemption, today: date) -> ExceptionRecord:
    return ExceptionRecord(
        check_id=exemption.check_id,
        resource=exemption.resource,
        owner=exemption.owner,
        reason=exemption.reason,
        expires=exemption.expires or date.max,
        live=exemption.live(today),
        created_at=exemption.created_at,
        created_by=exemption.created_by,
        account_id=exemption.account_id,
    )
