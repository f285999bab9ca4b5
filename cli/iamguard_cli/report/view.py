"""What the HTML report shows, computed from findings and audit runs (the template only lays it out)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from iamguard.api.models import TrendPoint
from iamguard.api.service import StatusService
from iamguard.audit.run import AuditResult, remediation_for
from iamguard.checks import CATALOG
from iamguard.checks.compliance import FRAMEWORK_IDS, ComplianceReport, evaluate
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.persistence.summary import is_gone

SEVERITIES = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFORMATIONAL]
_STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.EXEMPT: 2, Status.PASS: 3}


def _worst_first(finding: Finding) -> tuple[int, int, bool, str, str]:
    return (
        _STATUS_ORDER[finding.status],
        -finding.severity.rank,
        finding.resource_type != "root",
        finding.resource_name,
        finding.check_id,
    )


@dataclass(frozen=True)
class Verdict:
    level: str  # "fail" | "error" | "pass": the page's colour and the test's hook
    headline: str
    sentence: str


@dataclass(frozen=True)
class FindingRow:
    """One finding as the page shows it, with its check's risk and the fix for this resource."""

    finding: Finding
    title: str
    risk: str
    console: list[str]
    cli: str
    standards: list[str]


@dataclass(frozen=True)
class CheckRow:
    check_id: str
    title: str
    severity: str
    counts: dict[str, int]  # by status value
    failing: list[str]  # resource names
    risk: str
    console: list[str]
    cli: str
    standards: list[str]


@dataclass(frozen=True)
class UserRow:
    name: str
    arn: str
    status: str  # the worst status of the user's findings
    highest_severity: str | None  # of the failed ones
    failed: list[str]
    exempt: list[str]
    errors: list[str]


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    point: TrendPoint

    @property
    def label(self) -> str:
        by_severity = self.point.failed_by_severity.model_dump().items()
        counts = ", ".join(f"{count} {sev}" for sev, count in by_severity if count)
        return f"{self.point.at.isoformat(timespec='minutes')}: {self.point.open} open" + (
            f" ({counts})" if counts else ""
        )


@dataclass(frozen=True)
class TrendChart:
    """The open-findings line as SVG coordinates (viewBox 0 0 WIDTH HEIGHT)."""

    WIDTH = 720
    HEIGHT = 260
    LEFT = 48
    RIGHT = 16
    TOP = 16
    BOTTOM = 40

    points: list[ChartPoint]
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_labels: list[tuple[float, str, str]]  # (x, text-anchor, text)

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def bottom(self) -> int:
        return self.HEIGHT - self.BOTTOM

    @property
    def right(self) -> int:
        return self.WIDTH - self.RIGHT

    @classmethod
    def of(cls, trend: list[TrendPoint]) -> TrendChart:
        plot_w = cls.WIDTH - cls.LEFT - cls.RIGHT
        plot_h = cls.HEIGHT - cls.TOP - cls.BOTTOM
        top = _nice_ceiling(max((p.open for p in trend), default=0))
        times = [p.at.timestamp() for p in trend]
        start, end = (min(times), max(times)) if times else (0.0, 0.0)
        span = end - start

        def x_of(at: float) -> float:
            return cls.LEFT + (plot_w / 2 if span == 0 else (at - start) / span * plot_w)

        def y_of(value: int) -> float:
            return cls.TOP + plot_h - value / top * plot_h

        points = [ChartPoint(x_of(p.at.timestamp()), y_of(p.open), p) for p in trend]
        ticks = [(y_of(v), v) for v in _ticks(top)]
        labels: list[tuple[float, str, str]] = []
        if trend:
            first, last = trend[0].at, trend[-1].at
            if span == 0:
                labels.append((x_of(start), "middle", _when(first)))
            else:
                labels += [(x_of(start), "start", _when(first)), (x_of(end), "end", _when(last))]
        return cls(points=points, y_ticks=ticks, x_labels=labels)


@dataclass(frozen=True)
class SeverityBar:
    severity: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class ReportView:
    account_id: str
    generated_at: datetime
    summary: dict[str, Any]  # exactly AuditResult.summary(): the JSON report's "summary"
    errors: dict[str, str]
    verdict: Verdict
    open_by_severity: dict[str, list[FindingRow]]
    severity_bars: list[SeverityBar]
    checks: list[CheckRow]
    users: list[UserRow]
    attention: list[FindingRow]  # every finding that is not PASS, worst first
    trend: list[TrendPoint]
    chart: TrendChart
    history: str  # where the trend came from, or why there is none
    compliance: list[ComplianceReport]  # every framework, control by control (iamguard.checks.compliance)


def _nice_ceiling(value: int) -> int:
    """The chart's top: at least 1, rounded up to 1, 2 or 5 times a power of ten (at least `value`)."""
    if value <= 5:
        return max(value, 1)
    magnitude = int(10 ** (len(str(value)) - 1))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def _ticks(top: int) -> list[int]:
    if top <= 5:
        return list(range(top + 1))
    return [top * i // 4 for i in range(5)]


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _row(finding: Finding) -> FindingRow:
    check = CATALOG[finding.check_id]
    fix = remediation_for(finding)
    return FindingRow(
        finding=finding,
        title=check.title,
        risk=check.risk,
        console=list(fix["console"]),
        cli=str(fix["cli"]),
        standards=check.standards.labels(),
    )


def _verdict(summary: dict[str, Any], errors: dict[str, str]) -> Verdict:
    if not summary["total"]:
        return Verdict("error", "No findings", "Nothing was audited: no findings were stored or reported.")
    failed = summary["by_status"]["FAIL"]
    counted = ", ".join(f"{n} {sev}" for sev, n in summary["failed_by_severity"].items() if n)
    if failed:
        return Verdict("fail", "Action needed", f"{failed} open findings ({counted}).")
    if summary["by_status"]["ERROR"] or errors:
        return Verdict(
            "error", "Incomplete", f"No open findings, but {summary['by_status']['ERROR']} checks could not run."
        )
    return Verdict("pass", "Compliant", "No open findings.")


def _checks(findings: list[Finding]) -> list[CheckRow]:
    by_check: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_check[f.check_id].append(f)
    rows = []
    for check_id, check in CATALOG.items():
        mine = by_check.get(check_id, [])
        if not mine:
            continue
        counts = Counter(f.status.value for f in mine)
        user_step = check.scope == "user"
        rows.append(
            CheckRow(
                check_id=check_id,
                title=check.title,
                severity=check.severity.value,
                counts={status.value: counts.get(status.value, 0) for status in Status},
                failing=sorted(f.resource_name for f in mine if f.status is Status.FAIL),
                risk=check.risk,
                console=[step.replace("{user}", "<user>") if user_step else step for step in check.remediation.console],
                cli=check.remediation.cli,
                standards=check.standards.labels(),
            )
        )
    return rows


def _users(findings: list[Finding]) -> list[UserRow]:
    by_user: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        if f.resource_type == "user":
            by_user[f.resource_name].append(f)
    rows = []
    for name, mine in by_user.items():
        worst = sorted(mine, key=_worst_first)
        failed = [f for f in worst if f.status is Status.FAIL]
        rows.append(
            UserRow(
                name=name,
                arn=mine[0].resource_arn,
                status=worst[0].status.value,
                highest_severity=failed[0].severity.value if failed else None,
                failed=[f.check_id for f in failed],
                exempt=sorted(f.check_id for f in mine if f.status is Status.EXEMPT),
                errors=sorted(f.check_id for f in mine if f.status is Status.ERROR),
            )
        )
    rows.sort(key=lambda r: (_STATUS_ORDER[Status(r.status)], -len(r.failed), r.name))
    return rows


def _bars(summary: dict[str, Any]) -> list[SeverityBar]:
    width = 96.0
    return [
        SeverityBar(sev.value, int(summary["failed_by_severity"][sev.value]), 16 + i * (width + 16), width)
        for i, sev in enumerate(SEVERITIES)
    ]


def build_view(
    result: AuditResult,
    trend: list[TrendPoint],
    *,
    history: str,
) -> ReportView:
    """The page's content from an audit: its account, time, errors, counts (as its JSON report has them) and
    findings. Passed findings are counted, not listed, so the page needs no --only-failed."""
    findings = [f for f in result.findings if f.check_id in CATALOG]  # stored findings of a retired check: not shown
    summary = AuditResult(result.account_id, result.generated_at, findings, result.errors, result.api_calls).summary()
    worst = sorted(findings, key=_worst_first)
    rows = [_row(f) for f in worst if f.status is not Status.PASS]
    return ReportView(
        account_id=result.account_id,
        generated_at=result.generated_at,
        summary=summary,
        errors=dict(result.errors),
        verdict=_verdict(summary, result.errors),
        open_by_severity={
            sev.value: [r for r in rows if r.finding.status is Status.FAIL and r.finding.severity is sev]
            for sev in SEVERITIES
        },
        severity_bars=_bars(summary),
        checks=_checks(findings),
        users=_users(findings),
        attention=rows,
        trend=trend,
        chart=TrendChart.of(trend),
        history=history,
        compliance=[evaluate(framework_id, findings) for framework_id in FRAMEWORK_IDS],
    )


def view_from_store(service: StatusService, *, days: int = 30) -> ReportView:
    """The page from what is stored: current findings, the latest audit, and the audit runs of `days` days."""
    findings = [f for f in service.store.findings() if not is_gone(f)]
    latest = service.store.latest_audit() or {}
    account_id = str(latest.get("account_id") or (findings[0].account_id if findings else "unknown"))
    started = latest.get("started_at")
    generated_at = datetime.fromisoformat(str(started)) if started else service.clock()
    errors = {str(k): str(v) for k, v in (latest.get("errors") or {}).items()}
    result = AuditResult(account_id, generated_at, findings, errors, int(latest.get("api_calls") or 0))
    trend = service.trend(days=days)
    history = f"{len(trend.points)} audit runs of the last {days} days, from the findings table"
    if not trend.complete:
        history += " (the oldest left out)"
    return build_view(result, trend.points, history=history)
