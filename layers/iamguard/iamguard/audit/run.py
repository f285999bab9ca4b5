"""The account audit: one bulk inventory read, every check in memory, optionally stored and enforced."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from iamguard.checks import CATALOG, run_checks
from iamguard.checks.exemptions import by_resource
from iamguard.checks.organization import run_organization_checks
from iamguard.domain.alerts import Action
from iamguard.domain.exemptions import Exemption
from iamguard.domain.findings import Change, Finding, Severity, Status
from iamguard.domain.organization import OrganizationFacts
from iamguard.iam.inventory import Inventory
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings

if TYPE_CHECKING:
    from iamguard.enforcement.enforcer import Enforcer


@dataclass(frozen=True)
class AuditResult:
    account_id: str
    generated_at: datetime
    findings: list[Finding]
    errors: dict[str, str]
    api_calls: int
    api_calls_by_operation: dict[str, int] = field(default_factory=dict)
    duration_seconds: float = 0.0
    actions: list[Action] = field(default_factory=list)  # enforcement (MODE=enforce): the MFA guardrail

    @property
    def announced_actions(self) -> list[Action]:
        """The actions to tell people about (performed, failed, or withheld for the first time)."""
        return [action for action in self.actions if action.announce]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]

    def summary(self) -> dict[str, Any]:
        by_status = Counter(f.status.value for f in self.findings)
        by_severity = Counter(f.severity.value for f in self.failed)
        return {
            "total": len(self.findings),
            "by_status": {status.value: by_status.get(status.value, 0) for status in Status},
            "failed_by_severity": {sev.value: by_severity.get(sev.value, 0) for sev in Severity},
            "users": len({f.resource_name for f in self.findings if f.resource_type == "user"}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "summary": self.summary(),
            "errors": self.errors,
            "findings": [finding_dict(f) for f in self.findings],
        }


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding with its check's title and remediation, for JSON output and the API."""
    check = CATALOG[finding.check_id]
    data = finding.model_dump(mode="json", exclude_none=True)
    data["title"] = check.title
    data["risk"] = check.risk
    data["remediation"] = remediation_for(finding)
    data["standards"] = check.standards.labels()
    return data


def remediation_for(finding: Finding) -> dict[str, Any]:
    check = CATALOG[finding.check_id]
    name = finding.resource_name
    return {
        "console": [step.replace("{user}", name) for step in check.remediation.console],
        "cli": check.remediation.cli.replace("<user>", name)
        if finding.resource_type == "user"
        else check.remediation.cli,
    }


def run_audit(
    inventory: Inventory,
    settings: Settings,
    now: datetime | None = None,
    *,
    enforcer: Enforcer | None = None,
    organization: OrganizationFacts | None = None,
    exemptions: Iterable[Exemption] = (),
) -> AuditResult:
    """Read the whole account and run every check; with an enforcer, also put the MFA guardrail right.

    With `organization` (a member account audited from the hub) the organization checks run too.
    `exemptions` are the status API's exceptions (ExemptionStore.all); tags and EXEMPT_USERS are read here.
    """
    started = time.perf_counter()
    state = inventory.read_account()
    stored = list(exemptions)
    findings = run_checks(state, settings, now or state.read_at, exemptions=stored)
    if organization is not None:
        findings += run_organization_checks(state, organization, now or state.read_at, stored)
    actions = enforcer.enforce_account(state, by_resource(stored, state.account_id)) if enforcer is not None else []
    return AuditResult(
        account_id=state.account_id,
        generated_at=now or state.read_at,
        findings=findings,
        errors={str(part): reason for part, reason in state.errors.items()},
        api_calls=inventory.counter.total,
        api_calls_by_operation=dict(inventory.counter.calls),
        duration_seconds=time.perf_counter() - started,
        actions=actions,
    )


def store_audit(result: AuditResult, store: FindingsStore) -> list[Change]:
    """Record the audit's findings, its enforcement actions and the run itself; return the notable changes."""
    changes = store.record(result.findings, full_audit_account=result.account_id)
    for action in result.announced_actions:
        store.record_activity(
            "action", action.at, f"audit#{action.action}#{action.user_name}", action.model_dump(mode="json")
        )
    store.record_audit_run(
        started_at=result.generated_at,
        finished_at=datetime.now(UTC),
        account_id=result.account_id,
        summary=result.summary(),
        errors=result.errors,
        api_calls=result.api_calls,
    )
    return [change for change in changes if change.notable]


def report_audit(
    result: AuditResult,
    changes: list[Change],
    notifications: dict[str, Any],
    *,
    deferred: int,
    metrics: Any,
    logger: Any,
) -> dict[str, Any]:
    """A finished audit's metrics (Powertools Metrics) and log lines; returns the function's answer.

    AuditApiCalls is emitted once per completed audit: the StaleAudit alarm counts its data points.
    """
    summary = result.summary()
    for severity, count in summary["failed_by_severity"].items():
        metrics.add_metric(name=f"FailedFindings_{severity}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="AuditErrors", unit=MetricUnit.Count, value=len(result.errors))
    metrics.add_metric(name="AuditApiCalls", unit=MetricUnit.Count, value=result.api_calls)
    performed = sum(1 for action in result.actions if action.performed)
    if performed:
        metrics.add_metric(name="EnforcementActions", unit=MetricUnit.Count, value=performed)
    for part, reason in result.errors.items():
        logger.error("inventory part unavailable", extra={"part": part, "reason": reason})
    logger.info(
        "audit finished",
        extra={
            "account_id": result.account_id,
            "summary": summary,
            "changes": [
                {"check_id": c.finding.check_id, "resource": c.finding.resource_name, "transition": c.transition.value}
                for c in changes
            ],
            "api_calls": result.api_calls,
            "actions": [f"{a.action}:{a.user_name}:{a.outcome}" for a in result.actions],
            "actions_left_for_next_audit": deferred,
            "duration_seconds": round(result.duration_seconds, 3),
            "notifications": notifications,
        },
    )
    return {
        "account_id": result.account_id,
        "summary": summary,
        "changes": len(changes),
        "actions": [a.model_dump(mode="json", exclude_none=True) for a in result.actions],
        "errors": result.errors,
        "notifications": notifications,
    }
