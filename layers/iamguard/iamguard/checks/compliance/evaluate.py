"""A framework's verdict, control by control, from findings (an audit's or the stored ones)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from iamguard.checks.base import CATALOG
from iamguard.checks.compliance.catalog import Control, Coverage, Framework, Source, load_framework
from iamguard.domain.findings import Finding, ResourceType, Severity, Status
from iamguard.domain.messages import Language


class ControlStatus(StrEnum):
    PASS = "PASS"  # every mapped check passed for every resource
    FAIL = "FAIL"  # a mapped check failed for some resource
    EXEMPT = "EXEMPT"  # its only failures are exempt
    ERROR = "ERROR"  # a mapped check could not be evaluated
    NO_DATA = "NO_DATA"  # a mapped account-wide check has no finding yet (no audit)
    MANUAL = "MANUAL"  # not covered by iamguard


# The worst status of a control's findings decides it.
_PRECEDENCE = (ControlStatus.FAIL, ControlStatus.ERROR, ControlStatus.EXEMPT, ControlStatus.NO_DATA)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResourceResult(_Frozen):
    """A resource that keeps a control from passing."""

    check_id: str
    status: Status
    severity: Severity
    resource_type: ResourceType
    resource_name: str
    resource_arn: str
    account_id: str
    detail: str


class ControlResult(_Frozen):
    id: str
    title: str
    title_en: str | None
    status: ControlStatus
    coverage: Coverage
    checks: tuple[str, ...]
    note: str | None
    passed: int  # findings of the mapped checks that pass this control
    resources: tuple[ResourceResult, ...]  # the failing, exempt and unevaluated ones


class ComplianceTotals(_Frozen):
    controls: int
    passed: int
    failed: int
    exempt: int
    error: int
    no_data: int
    manual: int


class FrameworkInfo(_Frozen):
    id: str
    name: str
    version: str
    language: Language
    scope: str
    sources: tuple[Source, ...]


class ComplianceReport(_Frozen):
    framework: FrameworkInfo
    accounts: tuple[str, ...]  # the accounts the findings are about
    totals: ComplianceTotals
    controls: tuple[ControlResult, ...]
    unmapped_checks: dict[str, str]


def evaluate(
    framework: str | Framework,
    findings: Iterable[Finding],
    language: Language = "en",
    counted_passes: Mapping[str, int] | None = None,
) -> ComplianceReport:
    """The framework's controls judged from `findings`; notes (our words) in `language`.

    `counted_passes`: per check, passing findings counted but not handed in (the status API counts a
    user check's passes in DynamoDB instead of reading thousands of them); `findings` then holds the rest.
    """
    counted = dict(counted_passes or {})
    spec = load_framework(framework) if isinstance(framework, str) else framework
    by_check: dict[str, list[Finding]] = defaultdict(list)
    accounts: set[str] = set()
    for finding in findings:
        by_check[finding.check_id].append(finding)
        accounts.add(finding.account_id)
    audited = bool(by_check) or any(counted.values())
    results = tuple(_control(control, by_check, counted, audited, language) for control in spec.controls)
    counts = {status: sum(r.status is status for r in results) for status in ControlStatus}
    totals = ComplianceTotals(
        controls=len(results),
        passed=counts[ControlStatus.PASS],
        failed=counts[ControlStatus.FAIL],
        exempt=counts[ControlStatus.EXEMPT],
        error=counts[ControlStatus.ERROR],
        no_data=counts[ControlStatus.NO_DATA],
        manual=counts[ControlStatus.MANUAL],
    )
    info = FrameworkInfo.model_validate(
        spec.model_dump(include={"id", "name", "version", "language", "scope", "sources"})
    )
    return ComplianceReport(
        framework=info,
        accounts=tuple(sorted(accounts)),
        totals=totals,
        controls=results,
        unmapped_checks=spec.unmapped_checks,
    )


def _control(
    control: Control,
    by_check: dict[str, list[Finding]],
    counted: Mapping[str, int],
    audited: bool,
    language: Language,
) -> ControlResult:
    seen: set[ControlStatus] = set()
    passed = 0
    resources: list[ResourceResult] = []
    # Organization checks run only in organization mode: without their findings they evidence nothing here.
    evidenced = [
        e
        for e in control.evidence
        if CATALOG[e.check].scope != "organization" or by_check.get(e.check) or counted.get(e.check)
    ]
    for evidence in evidenced:
        findings = by_check.get(evidence.check, [])
        passed += counted.get(evidence.check, 0)
        if (
            not findings
            and not counted.get(evidence.check)
            and not (audited and CATALOG[evidence.check].scope == "user")
        ):
            seen.add(ControlStatus.NO_DATA)  # a user check without findings after an audit: no users to fail
        for finding in findings:
            status = _finding_status(finding, evidence.counts(finding))
            if status is ControlStatus.PASS:
                passed += 1
                continue
            seen.add(status)
            resources.append(
                ResourceResult.model_validate(
                    finding.model_dump(
                        include={
                            "check_id",
                            "status",
                            "severity",
                            "resource_type",
                            "resource_name",
                            "resource_arn",
                            "account_id",
                            "detail",
                        }
                    )
                )
            )
    passing = next((s for s in _PRECEDENCE if s in seen), ControlStatus.PASS)
    status = passing if evidenced else ControlStatus.MANUAL
    return ControlResult(
        id=control.id,
        title=control.title,
        title_en=control.title_en,
        status=status,
        coverage=control.coverage,
        checks=control.check_ids,
        note=control.note.text(language) if control.note else None,
        passed=passed,
        resources=tuple(sorted(resources, key=lambda r: (-r.severity.rank, r.resource_name, r.check_id))),
    )


def _finding_status(finding: Finding, counts: bool) -> ControlStatus:
    if finding.status is Status.ERROR:
        return ControlStatus.ERROR
    if finding.status is Status.PASS or not counts:
        return ControlStatus.PASS
    return ControlStatus.FAIL if finding.status is Status.FAIL else ControlStatus.EXEMPT
