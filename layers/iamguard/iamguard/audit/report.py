"""Renders audit results as a table, JSON, CSV or OCSF (JSON Lines), written to a stream finding by finding.

`write_json` / `write_csv` / `write_table` never build the whole report: each finding is
rendered and written on its own, so a 10,000-user report costs the memory of one line.
`render_*` return the same text as a string, for callers that want it whole (tests, small reports).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from typing import TextIO

from iamguard.audit.ocsf import ocsf_finding
from iamguard.audit.organization import OrganizationAuditResult
from iamguard.audit.run import AuditResult, finding_dict
from iamguard.domain.findings import Finding, Status

CSV_FIELDS = ["check_id", "severity", "status", "resource_type", "resource_name", "resource_arn", "detail"]
# The exception behind an EXEMPT finding (or the one that expired, on a FAIL): empty when none.
CSV_FIELDS += ["exempt_owner", "exempt_reason", "exempt_until"]
_LINES_PER_WRITE = 500
_STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.EXEMPT: 2, Status.PASS: 3}


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (
            _STATUS_ORDER[f.status],
            -f.severity.rank,
            f.resource_type != "root",
            f.resource_name,
            f.check_id,
        ),
    )


def write_json(out: TextIO, result: AuditResult, findings: list[Finding]) -> None:
    """The report as JSON: the head, then each finding on its own line (the C encoder, not indent's slow path).

    Lines are written _LINES_PER_WRITE at a time: one write per finding was a tenth of the report's time.
    """
    head = {
        "account_id": result.account_id,
        "generated_at": result.generated_at.isoformat(timespec="seconds"),
        "summary": result.summary(),
        "errors": result.errors,
    }
    out.write(json.dumps(head, indent=2, ensure_ascii=False)[:-2])  # without the closing "\n}"
    out.write(',\n  "findings": [')
    encode = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(..., ensure_ascii=False) makes per call
    ordered = iter(_sorted(findings))
    separator = "\n    "
    while chunk := list(itertools.islice(ordered, _LINES_PER_WRITE)):
        out.write(separator + ",\n    ".join(encode(finding_dict(finding)) for finding in chunk))
        separator = ",\n    "
    out.write("\n  ]\n}" if findings else "]\n}")


def write_csv(out: TextIO, findings: list[Finding], *, with_account: bool = False) -> None:
    """One row per finding; `with_account` (an organization's report) adds the account_id column first."""
    fields = ["account_id", *CSV_FIELDS] if with_account else CSV_FIELDS
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for finding in _sorted(findings):
        writer.writerow(finding.model_dump(mode="json", include=set(fields)))


def write_ocsf(out: TextIO, findings: list[Finding]) -> None:
    """One OCSF Compliance Finding per line (JSON Lines; iamguard.audit.ocsf has the mapping)."""
    for finding in _sorted(findings):
        out.write(json.dumps(ocsf_finding(finding), ensure_ascii=False))
        out.write("\n")


def write_table(out: TextIO, result: AuditResult, findings: list[Finding]) -> None:
    """Aligned columns: one pass for the widths, one to write the rows."""
    header = ("STATUS", "SEVERITY", "CHECK", "RESOURCE", "DETAIL")
    ordered = _sorted(findings)
    widths = [len(title) for title in header[:4]]
    for f in ordered:
        cells = (f.status.value, f.severity.value, f.check_id, f.resource_name)
        widths = [max(width, len(cell)) for width, cell in zip(widths, cells, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells[:4])) + "  " + cells[4] + "\n"

    out.write(line(header))
    for f in ordered:
        out.write(line((f.status.value, f.severity.value, f.check_id, f.resource_name, f.detail)))
    summary = result.summary()
    counts = ", ".join(f"{count} {sev}" for sev, count in summary["failed_by_severity"].items() if count)
    out.write(
        f"\nAccount {result.account_id}: {summary['by_status']['FAIL']} failed "
        f"({counts or 'none'}), {summary['by_status']['PASS']} passed, {summary['by_status']['EXEMPT']} exempt, "
        f"{summary['by_status']['ERROR']} errors — {summary['users']} users, {result.api_calls} API calls, "
        f"{result.duration_seconds:.2f}s.\n"
    )
    for part, reason in result.errors.items():
        out.write(f"warning: {part} unavailable: {reason}\n")


def _rendered(write: Callable[[TextIO], None]) -> str:
    out = io.StringIO()
    write(out)
    return out.getvalue()


def render_json(result: AuditResult, findings: list[Finding]) -> str:
    return _rendered(lambda out: write_json(out, result, findings))


def render_csv(findings: list[Finding]) -> str:
    return _rendered(lambda out: write_csv(out, findings))


def render_ocsf(findings: list[Finding]) -> str:
    return _rendered(lambda out: write_ocsf(out, findings))


def render_table(result: AuditResult, findings: list[Finding]) -> str:
    return _rendered(lambda out: write_table(out, result, findings))


def write_organization_json(
    out: TextIO, result: OrganizationAuditResult, shown: Callable[[AuditResult], list[Finding]]
) -> None:
    """`{"organization_id", "generated_at", "summary", "accounts": [<each account's report>], "errors"}`.

    Each account's report is exactly what `write_json` writes for it; `shown` picks its findings.
    """
    out.write("{\n")
    out.write(f'  "organization_id": {json.dumps(result.organization_id)},\n')
    out.write(f'  "generated_at": {json.dumps(result.generated_at.isoformat(timespec="seconds"))},\n')
    out.write(f'  "summary": {json.dumps(result.summary())},\n')
    out.write('  "accounts": [')
    separator = "\n    "
    for audit in result.audits:
        out.write(separator)
        out.write(json.dumps(json.loads(render_json(audit, shown(audit))), ensure_ascii=False))
        separator = ",\n    "
    out.write("\n  ],\n" if result.audits else "],\n")
    out.write(f'  "errors": {json.dumps(result.errors, ensure_ascii=False)}\n}}')


def write_organization_table(
    out: TextIO, result: OrganizationAuditResult, shown: Callable[[AuditResult], list[Finding]]
) -> None:
    """Each account's table under its id and name, then the organization's totals and the unaudited accounts."""
    for audit in result.audits:
        name = result.names.get(audit.account_id, "")
        out.write(f"== {audit.account_id}{f' ({name})' if name else ''}\n")
        write_table(out, audit, shown(audit))
        out.write("\n")
    summary = result.summary()
    counts = ", ".join(f"{count} {sev}" for sev, count in summary["failed_by_severity"].items() if count)
    out.write(
        f"Organization {result.organization_id}: {summary['audited']} of {summary['accounts']} accounts audited, "
        f"{summary['non_compliant_accounts']} with failures ({counts or 'none'}).\n"
    )
    for account_id, reason in result.errors.items():
        out.write(f"error: account {account_id} not audited: {reason}\n")
