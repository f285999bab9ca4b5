"""Findings as OCSF 1.5.0 Compliance Findings (class 2003, cloud profile), one JSON object per line.

The mapping (docs/reports.md has the table):

- `status_id`: FAIL and ERROR are New (1): someone has to act; EXEMPT is Suppressed (3); PASS is
  Resolved (4). `status_code` keeps iamguard's own status, `status_detail` the finding's sentence.
- `compliance.status_id`: PASS → Pass (1), FAIL and EXEMPT → Fail (3) (an exemption does not make the
  resource compliant, it only silences it), ERROR → Warning (2: "did not yield a result due to missing
  information").
- `finding_info.uid` is the same for one (account, check, resource) in every run and every output, so
  a consumer can update the finding it already holds instead of adding a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iamguard import __version__
from iamguard.audit.run import remediation_for
from iamguard.checks import CATALOG
from iamguard.checks.base import Check
from iamguard.domain.findings import Finding, Severity, Status

OCSF_VERSION = "1.5.0"
CLASS_UID = 2003  # Compliance Finding
CATEGORY_UID = 2  # Findings
ACTIVITY_CREATE = 1
PROFILES = ("cloud",)

CIS_STANDARD = "CIS AWS Foundations Benchmark v3.0.0"
FSBP_STANDARD = "AWS Foundational Security Best Practices v1.0.0"

SEVERITY_ID = {
    Severity.INFORMATIONAL: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}
STATUS_ID = {
    Status.FAIL: (1, "New"),
    Status.ERROR: (1, "New"),
    Status.EXEMPT: (3, "Suppressed"),
    Status.PASS: (4, "Resolved"),
}
COMPLIANCE_STATUS_ID = {
    Status.PASS: (1, "Pass"),
    Status.ERROR: (2, "Warning"),
    Status.FAIL: (3, "Fail"),
    Status.EXEMPT: (3, "Fail"),
}
# Security Hub's (ASFF) resource types, which Security Lake and Prowler's OCSF output use too.
RESOURCE_TYPE = {"user": "AwsIamUser", "root": "AwsAccount", "account": "AwsAccount"}
FINDING_TYPES = ["Software and Configuration Checks/AWS Security Best Practices"]


def finding_uid(finding: Finding) -> str:
    """Stable per (account, check, resource): the same finding has the same uid in every run."""
    return f"iamguard:{finding.account_id}:{finding.check_id}:{finding.resource_arn}"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _partition(arn: str) -> str:
    parts = arn.split(":", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "arn" and parts[1] else "aws"


def compliance_references(check: Check) -> tuple[list[str], list[str]]:
    """The standards a check evidences and the requirements (control ids) within them."""
    standards: list[str] = []
    requirements: list[str] = []
    for standard, ids, prefix in (
        (CIS_STANDARD, check.standards.cis, "CIS "),
        (FSBP_STANDARD, check.standards.security_hub, ""),
    ):
        if not ids:
            continue
        standards.append(standard)
        requirements.extend(prefix + part.strip() for part in ids.split(",") if part.strip())
    return standards, requirements


def _remediation(finding: Finding) -> dict[str, Any]:
    steps = remediation_for(finding)
    console = " ".join(steps["console"])
    return {"desc": f"Console: {console} CLI: {steps['cli']}" if console else f"CLI: {steps['cli']}"}


def ocsf_finding(finding: Finding) -> dict[str, Any]:
    """One finding as an OCSF Compliance Finding (a plain dict, ready for json.dumps)."""
    check = CATALOG[finding.check_id]
    severity_id, severity = SEVERITY_ID[finding.severity]
    status_id, status = STATUS_ID[finding.status]
    compliance_status_id, compliance_status = COMPLIANCE_STATUS_ID[finding.status]
    standards, requirements = compliance_references(check)
    partition = _partition(finding.resource_arn)

    info: dict[str, Any] = {
        "uid": finding_uid(finding),
        "title": check.title,
        "desc": check.risk,
        "types": FINDING_TYPES,
        "analytic": {"uid": check.id, "name": check.id, "type_id": 1, "type": "Rule"},
    }
    if finding.first_seen is not None:
        info["created_time"] = _ms(finding.first_seen)
        info["first_seen_time"] = _ms(finding.first_seen)
    if finding.last_seen is not None:
        info["last_seen_time"] = _ms(finding.last_seen)
    if finding.status_changed_at is not None:
        info["modified_time"] = _ms(finding.status_changed_at)

    compliance: dict[str, Any] = {
        "control": check.id,
        "status_id": compliance_status_id,
        "status": compliance_status,
        "status_detail": finding.detail,
    }
    if standards:
        compliance["standards"] = standards
        compliance["requirements"] = requirements

    return {
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": list(PROFILES),
            "product": {"name": "iamguard", "vendor_name": "iamguard", "version": __version__},
            "event_code": check.id,
        },
        "class_uid": CLASS_UID,
        "class_name": "Compliance Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Compliance Finding: Create",
        "time": _ms(finding.observed_at),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "status_code": finding.status.value,
        "status_detail": finding.detail,
        "message": finding.detail,
        "finding_info": info,
        "compliance": compliance,
        "remediation": _remediation(finding),
        "resources": [
            {
                "uid": finding.resource_arn,
                "name": finding.resource_name,
                "type": RESOURCE_TYPE[finding.resource_type],
                "cloud_partition": partition,
            }
        ],
        "cloud": {
            "provider": "AWS",
            "cloud_partition": partition,
            "account": {"uid": finding.account_id, "type_id": 10, "type": "AWS Account"},
        },
    }
