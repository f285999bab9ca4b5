"""The organization audit: every ACTIVE member account audited through its member role, each on its own.

`audit_organization` is what `iamguard audit --organization` runs (bounded threads in one
process); the Lambda fan-out (`iamguard.audit.fanout`) runs `audit_member` once per queued
account instead. Either way one account's missing role or failure never stops the others:
it becomes that account's entry in `errors` (and, when stored, its ERROR finding).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.audit.run import AuditResult, run_audit
from iamguard.aws import AwsContext, error_code, error_text
from iamguard.domain.account import LoginProfileMemory
from iamguard.domain.exemptions import Exemption
from iamguard.domain.findings import Severity, Status
from iamguard.domain.organization import MemberAccount, OrganizationFacts
from iamguard.iam.inventory import Inventory
from iamguard.organization.access import MemberAccess, MemberAccessError
from iamguard.organization.accounts import active_accounts, organization_facts
from iamguard.settings import Settings

MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class OrganizationAuditResult:
    organization_id: str
    generated_at: datetime
    audits: list[AuditResult]  # one per account audited, in account id order
    errors: dict[str, str]  # account id → why it could not be audited
    names: dict[str, str] = field(default_factory=dict)  # account id → its name in the organization

    def summary(self) -> dict[str, Any]:
        by_status: Counter[str] = Counter()
        by_severity: Counter[str] = Counter()
        for audit in self.audits:
            part = audit.summary()
            by_status.update(part["by_status"])
            by_severity.update(part["failed_by_severity"])
        return {
            "accounts": len(self.audits) + len(self.errors),
            "audited": len(self.audits),
            "unaudited": len(self.errors),
            "non_compliant_accounts": sum(1 for audit in self.audits if audit.failed),
            "total": sum(by_status.values()),
            "by_status": {status.value: by_status.get(status.value, 0) for status in Status},
            "failed_by_severity": {sev.value: by_severity.get(sev.value, 0) for sev in Severity},
            "users": sum(audit.summary()["users"] for audit in self.audits),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "summary": self.summary(),
            "accounts": [audit.to_dict() for audit in self.audits],
            "errors": dict(self.errors),
        }


def audit_member(
    access: MemberAccess,
    account_id: str,
    settings: Settings,
    organization: OrganizationFacts | None = None,
    *,
    hub_account: str | None = None,
    login_profiles: LoginProfileMemory | None = None,
    exemptions: Iterable[Exemption] = (),
) -> AuditResult:
    """One member account's audit, read through its member role (raises `MemberAccessError`).

    The hub's own account (`hub_account`; the StackSet does not deploy to the management account)
    is read with the hub's own credentials. `login_profiles`: what earlier runs kept of this
    account's users' login profiles (the stored audit's; `LoginProfileStore.of`). `exemptions`: the
    status API's exceptions (`ExemptionStore.all`); only those that hold in this account apply.
    """
    ctx = access.hub if account_id == hub_account else access.context(account_id)
    inventory = Inventory(ctx, login_profiles=login_profiles)
    return run_audit(inventory, settings, organization=organization, exemptions=exemptions)


def hub_account_of(hub: AwsContext) -> str:
    """The account the hub's credentials belong to (GetCallerIdentity needs no permission)."""
    return str(hub.sts().get_caller_identity()["Account"])


def failure_reason(exc: Exception) -> str:
    """Why an account's audit failed, in one line (never a credential)."""
    if isinstance(exc, MemberAccessError):
        return exc.reason
    if isinstance(exc, ClientError):
        return f"{error_code(exc)}: {error_text(exc)}"
    return f"{type(exc).__name__}: {exc}"


def organization_id_of(hub: AwsContext, settings: Settings) -> str:
    configured = settings.organization.organization_id
    if configured:
        return configured
    return str(hub.client("organizations").describe_organization()["Organization"]["Id"])


def audit_organization(
    hub: AwsContext,
    settings: Settings,
    *,
    role_name: str | None = None,
    only: Iterable[str] | None = None,
    concurrency: int = 8,
    exemptions: Iterable[Exemption] = (),
) -> OrganizationAuditResult:
    """Audit every ACTIVE account (or `only` these), `concurrency` at a time, from the hub's credentials.

    `exemptions`: the status API's exceptions (a stored audit's); each account applies its own only."""
    started = datetime.now(UTC)
    organization_id = organization_id_of(hub, settings)
    wanted = sorted(set(only)) if only is not None else None
    accounts = active_accounts(hub, wanted)
    errors = {
        account_id: "not an ACTIVE account of the organization"
        for account_id in (wanted or [])
        if account_id not in {a.id for a in accounts}
    }
    organization = settings.organization
    facts = organization_facts(
        hub, organization_id, organization.member_stackset_name, organization.identity_account_id
    )
    access = MemberAccess(hub, role_name or settings.organization.member_audit_role_name)
    hub_account = hub_account_of(hub)
    stored = list(exemptions)

    def one(account: MemberAccount) -> AuditResult | str:
        try:
            return audit_member(access, account.id, settings, facts, hub_account=hub_account, exemptions=stored)
        except (MemberAccessError, ClientError, BotoCoreError) as exc:
            return failure_reason(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, MAX_CONCURRENCY))) as pool:
        outcomes = list(pool.map(one, accounts))
    audits = []
    for account, outcome in zip(accounts, outcomes, strict=True):
        if isinstance(outcome, str):
            errors[account.id] = outcome
        else:
            audits.append(outcome)
    return OrganizationAuditResult(
        organization_id=organization_id,
        generated_at=started,
        audits=audits,
        errors=dict(sorted(errors.items())),
        names={a.id: a.name for a in accounts},
    )
