"""The check catalog: every check with its stable id, metadata and evaluation.

Checks are small functions registered with `@user_check` / `@account_check`.
They read an `AccountState` (never AWS) and return an `Outcome`; `run_checks`
turns outcomes into findings, handling exemptions and inventory errors in one
place.
"""

from __future__ import annotations

from iamguard.checks import account as _account  # noqa: F401
from iamguard.checks import organization as _organization  # noqa: F401

# Importing the modules registers their checks, in catalog order.
from iamguard.checks import root as _root  # noqa: F401
from iamguard.checks import users as _users  # noqa: F401
from iamguard.checks.base import (
    CATALOG,
    Check,
    Outcome,
    RemediationSteps,
    account_check,
    checks_by_scope,
    run_checks,
    run_user_checks,
    user_check,
)

__all__ = [
    "CATALOG",
    "Check",
    "Outcome",
    "RemediationSteps",
    "account_check",
    "checks_by_scope",
    "run_checks",
    "run_user_checks",
    "user_check",
]
