"""Renders audit results as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json

from iamguard.audit.run import AuditResult, finding_dict
from iamguard.domain.findings import Finding, Status

CSV_FIELDS = ["check_id", "severity", "status", "resource_type", "resource_name", "resource_arn", "detail"]


def _sorted(findings: list[Finding]) -> list[Finding]:
    status_order = {Status.FAIL: 0, Status.ERROR: 1, Status.EXEMPT: 2, Status.PASS: 3}
    return sorted(
        findings,
        key=lambda f: (
            status_order[f.status],
            -f.severity.rank,
            f.resource_type != "root",
            f.resource_name,
            f.check_id,
        ),
    )


def render_json(result: AuditResult, findings: list[Finding]) -> str:
    """The report as JSON: each finding rendered once, one per line (the C encoder, not indent's slow path)."""
    head = {
        "account_id": result.account_id,
        "generated_at": result.generated_at.isoformat(timespec="seconds"),
        "summary": result.summary(),
        "errors": result.errors,
    }
    lines = [json.dumps(finding_dict(f), ensure_ascii=False) for f in _sorted(findings)]
    opening = json.dumps(head, indent=2, ensure_ascii=False)[:-2]  # without the closing "\n}"
    return opening + ',\n  "findings": [\n    ' + ",\n    ".join(lines) + ("\n  ]\n}" if lines else "]\n}")


def render_csv(findings: list[Finding]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for finding in _sorted(findings):
        writer.writerow(finding.model_dump(mode="json"))
    return out.getvalue()


def render_table(result: AuditResult, findings: list[Finding]) -> str:
    rows = [("STATUS", "SEVERITY", "CHECK", "RESOURCE", "DETAIL")]
    rows += [(f.status.value, f.severity.value, f.check_id, f.resource_name, f.detail) for f in _sorted(findings)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    summary = result.summary()
    counts = ", ".join(f"{count} {sev}" for sev, count in summary["failed_by_severity"].items() if count)
    lines.append("")
    lines.append(
        f"Account {result.account_id}: {summary['by_status']['FAIL']} failed "
        f"({counts or 'none'}), {summary['by_status']['PASS']} passed, {summary['by_status']['EXEMPT']} exempt, "
        f"{summary['by_status']['ERROR']} errors — {summary['users']} users, {result.api_calls} API calls, "
        f"{result.duration_seconds:.2f}s."
    )
    for part, reason in result.errors.items():
        lines.append(f"warning: {part} unavailable: {reason}")
    return "\n".join(lines) + "\n"
