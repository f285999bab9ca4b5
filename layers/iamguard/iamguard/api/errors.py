"""Domain errors of the status API; iamguard.api.app maps each to an HTTP status."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An error the caller should see, with its HTTP status and a stable code."""

    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    """The query cannot be answered as asked (e.g. a next_token from another query)."""


class UserNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"No findings for user {name!r}: it does not exist or has not been audited yet.")


class AuditUnavailable(ApiError):
    """This deployment cannot start audits (no audit function configured)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "audit_unavailable"


class FrameworkNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class AccountNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"

    def __init__(self, account_id: str) -> None:
        super().__init__(f"No audit of account {account_id!r}: it is not part of the organization or not audited yet.")
