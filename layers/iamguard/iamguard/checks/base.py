"""Check metadata, the registry, and the runner."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from iamguard.checks import exemptions as exemption_sources
from iamguard.domain.account import (
    AccountState,
    Credentials,
    Group,
    InventoryPart,
    PasswordPolicy,
    PolicyDocument,
    User,
)
from iamguard.domain.exemptions import ACCOUNT_RESOURCE, Exemption, choose
from iamguard.domain.findings import Finding, ResourceType, Severity, Status
from iamguard.iam.evaluation import Permissions, PolicyCache
from iamguard.settings import Settings

Scope = Literal["root", "account", "user", "organization"]


@dataclass(frozen=True)
class RemediationSteps:
    console: tuple[str, ...]
    cli: str


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str
    severity: Severity | None = None  # overrides the check's severity (escalation)
    unknown: bool = False  # the facts needed are missing: reported as ERROR, never as FAIL


@dataclass(frozen=True)
class Standards:
    cis: str | None = None
    security_hub: str | None = None
    config_rule: str | None = None
    prowler: str | None = None

    def labels(self) -> list[str]:
        out = []
        if self.cis:
            out.append(f"CIS {self.cis}")
        if self.security_hub:
            out.append(f"Security Hub {self.security_hub}")
        if self.config_rule:
            out.append(f"Config {self.config_rule}")
        if self.prowler:
            out.append(f"Prowler {self.prowler}")
        return out


@dataclass(frozen=True)
class UserContext:
    """What user checks may look at besides the user itself."""

    settings: Settings
    now: datetime
    groups: Mapping[str, Group]
    policy_documents: Mapping[str, PolicyDocument]
    password_policy: PasswordPolicy | None
    # Documents compiled once for all users of one run (see iamguard.policy).
    policy_cache: PolicyCache = field(default_factory=PolicyCache, compare=False, repr=False)
    # The API's exceptions (iamguard.persistence.exemptions), by resource; tags and the setting are read here.
    exemptions: Mapping[str, list[Exemption]] = field(default_factory=dict)

    def permissions(self, user: User) -> Permissions:
        """The user's effective identity-based permissions."""
        return Permissions(user, self.groups, self.policy_documents, self.policy_cache)


AccountEvaluator = Callable[[AccountState, Settings, datetime], Outcome]
UserEvaluator = Callable[[User, UserContext], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    severity: Severity
    scope: Scope
    title: str
    risk: str
    remediation: RemediationSteps
    standards: Standards
    permissions: tuple[str, ...]
    needs: frozenset[InventoryPart] = field(default_factory=frozenset)
    evaluate_account: AccountEvaluator | None = None
    evaluate_user: UserEvaluator | None = None


CATALOG: dict[str, Check] = {}


def register(check: Check) -> None:
    """Add a check to the catalog (each id once); the decorators of every scope call this."""
    if check.id in CATALOG:
        raise ValueError(f"duplicate check id {check.id}")
    CATALOG[check.id] = check


def account_check(
    *,
    id: str,
    severity: Severity,
    scope: Literal["root", "account"],
    title: str,
    risk: str,
    remediation: RemediationSteps,
    standards: Standards,
    permissions: tuple[str, ...],
    needs: Iterable[InventoryPart] = (),
) -> Callable[[AccountEvaluator], AccountEvaluator]:
    def decorate(fn: AccountEvaluator) -> AccountEvaluator:
        register(
            Check(id, severity, scope, title, risk, remediation, standards, permissions, frozenset(needs), fn, None)
        )
        return fn

    return decorate


def user_check(
    *,
    id: str,
    severity: Severity,
    title: str,
    risk: str,
    remediation: RemediationSteps,
    standards: Standards,
    permissions: tuple[str, ...],
    needs: Iterable[InventoryPart] = (),
) -> Callable[[UserEvaluator], UserEvaluator]:
    def decorate(fn: UserEvaluator) -> UserEvaluator:
        register(
            Check(id, severity, "user", title, risk, remediation, standards, permissions, frozenset(needs), None, fn)
        )
        return fn

    return decorate


def checks_by_scope(*scopes: Scope) -> list[Check]:
    return [check for check in CATALOG.values() if check.scope in scopes]


def utc_day(now: datetime) -> date:
    """The day an exception's `expires` is compared with."""
    return now.astimezone(UTC).date() if now.tzinfo else now.date()


def live_exemption(
    user: User, settings: Settings, check_id: str, stored: Mapping[str, list[Exemption]], today: date
) -> Exemption | None:
    """The exception (setting, tag or API) that exempts this user from this check today, if any."""
    applicable = exemption_sources.for_user(user, settings, stored, CATALOG)
    return choose(list(applicable.exemptions), check_id, today)[0]


_FINDING_FIELDS = {
    "check_id",
    "severity",
    "status",
    "resource_type",
    "resource_arn",
    "resource_name",
    "account_id",
    "detail",
    "observed_at",
}
_EXEMPT_FIELDS = _FINDING_FIELDS | {"exempt_source", "exempt_owner", "exempt_reason", "exempt_until"}
# Every field of a Finding in declaration order, with its default for those a check leaves unset.
_UNSET: dict[str, Any] = {name: info.get_default() for name, info in Finding.model_fields.items()}


def _constructed(fields_set: set[str], values: dict[str, Any]) -> Finding:
    """What `Finding.model_construct(fields_set, **values)` makes when `values` holds every field.

    model_construct looks up each field's aliases and default on every call: at 12 findings a user
    that was a third of the checks' time. A Finding has no aliases, no post-init hook and no extra
    fields, so setting the instance's state directly makes the same object
    (tests/integration/test_audit_fast_paths.py compares them).
    """
    finding = Finding.__new__(Finding)
    object.__setattr__(finding, "__dict__", values)
    object.__setattr__(finding, "__pydantic_fields_set__", fields_set)
    object.__setattr__(finding, "__pydantic_extra__", None)
    object.__setattr__(finding, "__pydantic_private__", None)
    return finding


def _error_outcome(check: Check, errors: Mapping[InventoryPart, str]) -> Outcome | None:
    missing = [f"{part.replace('_', ' ')}: {errors[part]}" for part in check.needs if part in errors]
    if not missing:
        return None
    return Outcome(False, "Could not be evaluated — " + "; ".join(missing) + ".")


def observed_at(check: Check, credentials: Credentials | None, now: datetime) -> datetime:
    """When the facts behind a verdict were true.

    A check that reads the credential report is as old as the report (up to 4 hours), so
    a newer observation of the same finding (the event path reads live) outranks it in the
    store; never later than `now`, whatever the clocks say.
    """
    if "credential_report" in check.needs and credentials is not None and credentials.observed_at is not None:
        return min(credentials.observed_at, now)
    return now


def judge(
    check: Check,
    outcome: Outcome,
    exemptions: list[Exemption],
    today: date,
    *,
    arn: str,
    name: str,
    rtype: ResourceType,
    account_id: str,
    observed: datetime,
    error: bool = False,
    problem: str | None = None,
) -> Finding:
    """A check's outcome on one resource as its finding, under the exceptions that resource holds.

    The exception live `today` makes a failure EXEMPT; one that ran out is named on the FAIL, as is
    the `problem` of an exception that could not apply. `error`: the facts were missing (ERROR).
    """
    live, expired = choose(exemptions, check.id, today)
    status = Status.ERROR if error else _status(outcome, live)
    detail, exemption = _exempted(outcome, status, live, expired, problem)
    # Built from typed values of this module, so not validated again; and every finding shares one
    # set of field names (pydantic keeps a set per instance otherwise: half of a finding's memory,
    # about 80 MB in a 10,000-user audit). model_copy copies the set before changing it.
    fields: dict[str, Any] = {
        **_UNSET,
        "check_id": check.id,
        "severity": outcome.severity or check.severity,
        "status": status,
        "resource_type": rtype,
        "resource_arn": arn,
        "resource_name": name,
        "account_id": account_id,
        "detail": detail or outcome.detail,
        "observed_at": observed,
    }
    if exemption is None:
        return _constructed(_FINDING_FIELDS, fields)
    fields["exempt_source"] = exemption.source
    fields["exempt_owner"] = exemption.owner
    fields["exempt_reason"] = exemption.reason
    fields["exempt_until"] = exemption.expires
    return _constructed(_EXEMPT_FIELDS, fields)


def _status(outcome: Outcome, exempt: Exemption | None) -> Status:
    if outcome.unknown:
        return Status.ERROR
    if outcome.passed:
        return Status.PASS
    return Status.EXEMPT if exempt else Status.FAIL


def _exempted(
    outcome: Outcome, status: Status, live: Exemption | None, expired: Exemption | None, problem: str | None
) -> tuple[str | None, Exemption | None]:
    """The detail and the exception a finding carries: the live one (EXEMPT), or on a FAIL the one that ran out."""
    if status is Status.EXEMPT and live is not None:
        return f"{outcome.detail} ({live.describe()})", live
    if status is not Status.FAIL:
        return None, None
    notes = []
    if expired is not None and expired.expires is not None:
        notes.append(expired.describe(ended=True))
    if problem:
        notes.append(f"not exempt: {problem}")
    return (f"{outcome.detail} ({'; '.join(notes)})" if notes else None), expired


def account_resource(state: AccountState, scope: Literal["root", "account"]) -> tuple[str, str]:
    if scope == "root":
        return state.root.arn, "root"
    return f"arn:aws:iam::{state.account_id}:account", state.aliases[0] if state.aliases else state.account_id


def run_user_checks(
    user: User,
    ctx: UserContext,
    account_id: str,
    errors: Mapping[InventoryPart, str] | None = None,
    only: Iterable[str] | None = None,
) -> list[Finding]:
    """All user checks (or `only` those) for one user."""
    wanted = set(only) if only is not None else None
    applicable = exemption_sources.for_user(user, ctx.settings, ctx.exemptions, CATALOG)
    held = list(applicable.exemptions)
    today = utc_day(ctx.now)
    findings = []
    for check in checks_by_scope("user"):
        if (wanted is not None and check.id not in wanted) or check.evaluate_user is None:
            continue
        error = _error_outcome(check, errors or {})
        unknown = error is not None or bool(check.needs and user.credentials is None)
        if unknown:
            outcome = error or Outcome(False, "Could not be evaluated — credential data unavailable.")
        else:
            outcome = check.evaluate_user(user, ctx)
        findings.append(
            judge(
                check,
                outcome,
                held,
                today,
                arn=user.arn,
                name=user.name,
                rtype="user",
                account_id=account_id,
                observed=observed_at(check, user.credentials, ctx.now),
                error=unknown,
                problem=applicable.problem,
            )
        )
    return findings


def run_checks(
    state: AccountState,
    settings: Settings,
    now: datetime | None = None,
    only: Iterable[str] | None = None,
    exemptions: Iterable[Exemption] = (),
) -> list[Finding]:
    """Run the catalog (or `only` the named checks) over an account state, applying the API's `exemptions`."""
    now = now or state.read_at
    wanted = set(only) if only is not None else None
    stored = exemption_sources.by_resource(exemptions, state.account_id)
    account_exemptions = stored.get(ACCOUNT_RESOURCE, [])
    today = utc_day(now)
    findings: list[Finding] = []
    for check in checks_by_scope("root", "account"):
        if (wanted is not None and check.id not in wanted) or check.evaluate_account is None:
            continue
        scope: Literal["root", "account"] = "root" if check.scope == "root" else "account"
        arn, name = account_resource(state, scope)
        error = _error_outcome(check, state.errors)
        outcome = error or check.evaluate_account(state, settings, now)
        findings.append(
            judge(
                check,
                outcome,
                account_exemptions,
                today,
                arn=arn,
                name=name,
                rtype=scope,
                account_id=state.account_id,
                observed=observed_at(check, state.root.credentials, now) if scope == "root" else now,
                error=error is not None,
            )
        )
    ctx = UserContext(settings, now, state.groups, state.policy_documents, state.password_policy, exemptions=stored)
    for user in state.users:
        findings.extend(run_user_checks(user, ctx, state.account_id, state.errors, wanted))
    return findings
