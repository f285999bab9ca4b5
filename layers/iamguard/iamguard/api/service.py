"""What the status API answers, read from the findings table; no HTTP here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from botocore.exceptions import ClientError

from iamguard.api.errors import AccountNotFound, AuditUnavailable, BadRequest, FrameworkNotFound, UserNotFound
from iamguard.api.exemptions import ExemptionService
from iamguard.api.launch import AuditLauncher, LambdaAuditLauncher
from iamguard.api.models import (
    AccountCounts,
    AccountList,
    AccountStatus,
    AuditStarted,
    CheckResult,
    EventKind,
    EventList,
    EventRecord,
    FindingDetail,
    FindingPage,
    LastAudit,
    SeverityCounts,
    StatusCounts,
    StatusReport,
    Trend,
    TrendPoint,
    UserCounts,
    UserDetail,
    UserPage,
    UserStatus,
    UserSummary,
    Verdict,
)
from iamguard.api.pagination import BAD_TOKEN, decode_token, encode_token, query_fingerprint
from iamguard.audit.run import finding_dict
from iamguard.aws import AwsContext, error_code
from iamguard.checks import CATALOG
from iamguard.checks.compliance import ComplianceReport, UnknownFramework, evaluate, load_framework
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.domain.messages import Language
from iamguard.persistence import summary
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore, item_to_finding
from iamguard.persistence.summary import is_gone
from iamguard.settings import Settings
from iamguard.settings.api import ApiSettings

Item = dict[str, Any]
TREND_POINTS = 2400  # audit runs in one GET /trend: 90 days of the default hourly audit, and on-demand runs
Keyed = tuple[Item, dict[str, str]]


class StatusService:
    """Answers the API's questions from a FindingsStore; starts audits through an AuditLauncher."""

    def __init__(
        self,
        store: FindingsStore,
        settings: ApiSettings,
        launcher: AuditLauncher | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        organization_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.launcher = launcher
        self.clock = clock
        self.organization_id = organization_id  # organization mode: GET /status is the organization's verdict

    # -- GET /status ----------------------------------------------------------------
    def status(self) -> StatusReport:
        """The account's posture from the summary the audit and the events keep (three reads at any size).

        A table no audit has summarised yet is answered by `computed_status` (a full read).
        In organization mode it is the organization's verdict (`organization_status`).
        """
        if self.organization_id is not None:
            return self.organization_status()
        counts, record = self.store.summary_and_audit()
        if counts is None or not counts.get("audited_at"):
            return self.computed_status(record)
        account_id = str(record["account_id"]) if record else counts.get("account_id")
        account_wide = [
            f
            for kind in ("root", "account")
            for f in (self.store.findings_for_resource(kind, "", str(account_id)) if account_id else [])
            if not is_gone(f)
        ]
        by_status, failed, users = summary.counters(counts)
        return self._report(record, account_id, account_wide, by_status, failed, users)

    def computed_status(self, record: Mapping[str, Any] | None) -> StatusReport:
        """The same answer computed from every stored finding (what the summary spares the API)."""
        findings = [f for f in map(item_to_finding, (item for item, _ in self.store.finding_items())) if not is_gone(f)]
        account_id = (
            str(record["account_id"])
            if record
            else next((f.account_id for f in findings if f.resource_type != "user"), None)
        )
        by_status, failed, users = summary.counters(summary.tally(findings))
        account_wide = [f for f in findings if f.resource_type != "user" and f.account_id == account_id]
        return self._report(record, account_id, account_wide, by_status, failed, users)

    # -- organization mode: GET /status, /accounts, /accounts/{id}/status ---------------------
    def organization_status(self) -> StatusReport:
        """The sum of every account's summary and one verdict: non-compliant when any account fails, unknown
        when any account is stale, unaudited or unreachable (two Queries: the accounts' summaries and runs).

        Summed here, not read from the table-wide summary, which concurrent member audits overwrite.
        """
        summaries = self.store.account_summaries()
        accounts = [self._account(item, run) for item, run in summaries]
        by_status, failed, users = summary.counters(summary.total(item for item, _ in summaries))
        runs = [run for _, run in summaries if run is not None]
        record = max(runs, key=lambda run: str(run["finished_at"]), default=None)  # the latest audit
        report = self._report(record, None, [], by_status, failed, users)
        verdicts = [a.verdict for a in accounts]
        if Verdict.NON_COMPLIANT in verdicts:
            verdict = Verdict.NON_COMPLIANT
        elif not accounts or Verdict.UNKNOWN in verdicts:
            verdict = Verdict.UNKNOWN
        else:
            verdict = Verdict.COMPLIANT
        return report.model_copy(
            update={
                "verdict": verdict,
                "stale": not accounts or any(a.stale for a in accounts),
                "organization_id": self.organization_id,
                "accounts": AccountCounts(
                    total=len(accounts),
                    compliant=verdicts.count(Verdict.COMPLIANT),
                    non_compliant=verdicts.count(Verdict.NON_COMPLIANT),
                    unknown=verdicts.count(Verdict.UNKNOWN),
                ),
            }
        )

    def accounts(self) -> AccountList:
        """Each account's verdict, last audit and counts, from its own summary item (no finding is read)."""
        return AccountList(
            organization_id=self.organization_id,
            accounts=[self._account(item, record) for item, record in self.store.account_summaries()],
        )

    def account_status(self, account_id: str) -> StatusReport:
        """One account's posture, as GET /status answers it in single-account mode."""
        counts, record = self.store.account_summary(account_id)
        if counts is None:
            raise AccountNotFound(account_id)
        account_wide = [
            f
            for kind in ("root", "account")
            for f in self.store.findings_for_resource(kind, "", account_id)
            if not is_gone(f)
        ]
        by_status, failed, users = summary.counters(counts)
        return self._report(record, account_id, account_wide, by_status, failed, users)

    def _account(self, counts: Mapping[str, Any], record: Mapping[str, Any] | None) -> AccountStatus:
        account_id = str(counts.get("account_id") or str(counts["sk"]).removeprefix(summary.ACCOUNT_SK_PREFIX))
        by_status, failed, users = summary.counters(counts)
        report = self._report(record, account_id, [], by_status, failed, users)
        return AccountStatus(
            account_id=account_id,
            verdict=report.verdict,
            stale=report.stale,
            last_audit=report.last_audit,
            users=report.users,
            findings=report.findings,
            failed_by_severity=report.failed_by_severity,
        )

    def _report(
        self,
        record: Mapping[str, Any] | None,
        account_id: str | None,
        account_wide: list[Finding],
        by_status: Mapping[str, int],
        failed: Mapping[str, int],
        users: Mapping[str, int],
    ) -> StatusReport:
        now = self.clock()
        audit = self._last_audit(record, now) if record else None
        stale = audit is None or audit.stale
        if any(count for severity, count in failed.items() if severity != Severity.INFORMATIONAL.value):
            verdict = Verdict.NON_COMPLIANT
        elif stale or not sum(by_status.values()) or by_status[Status.ERROR.value]:
            verdict = Verdict.UNKNOWN
        else:
            verdict = Verdict.COMPLIANT
        return StatusReport(
            verdict=verdict,
            account_id=account_id,
            generated_at=now,
            stale=stale,
            last_audit=audit,
            root=_check_results(f for f in account_wide if f.resource_type == "root"),
            account=_check_results(f for f in account_wide if f.resource_type == "account"),
            users=UserCounts(total=sum(users.values()), **users),
            findings=StatusCounts(**by_status),
            failed_by_severity=SeverityCounts(**failed),
        )

    def _last_audit(self, record: Mapping[str, Any], now: datetime) -> LastAudit:
        finished = datetime.fromisoformat(str(record["finished_at"]))
        age = now - finished
        return LastAudit(
            started_at=datetime.fromisoformat(str(record["started_at"])),
            finished_at=finished,
            age_seconds=max(0, int(age.total_seconds())),
            stale=age > self.settings.stale_after,
            api_calls=int(record.get("api_calls", 0)),
            errors={str(k): str(v) for k, v in (record.get("errors") or {}).items()},
        )

    # -- GET /users, /users/{name} -----------------------------------------------------
    def users(
        self,
        *,
        status: UserStatus | None = None,
        min_severity: Severity | None = None,
        limit: int = 50,
        next_token: str | None = None,
        account: str | None = None,
    ) -> UserPage:
        """Users (in table order), `limit` per page, each with the checks it fails; `account`: of that account only."""
        fingerprint = query_fingerprint(endpoint="users", status=status, min_severity=min_severity, account=account)
        key_names = FindingsStore.resume_key_names(account_id=account)
        start = decode_token(next_token, fingerprint, key_names) if next_token else None
        if start is not None and not (start["pk"].startswith("USER#") and start.get("account_id", account) == account):
            raise BadRequest(BAD_TOKEN)
        page: list[UserSummary] = []
        resume: dict[str, str] | None = None
        items = self._items(resource_type="user", account_id=account, start_key=start)
        for _, group in groupby(items, key=lambda keyed: keyed[0]["pk"]):
            keyed = list(group)
            summary = _user_summary([item_to_finding(item) for item, _ in keyed])
            if summary is None or (status is not None and summary.status is not status):
                continue
            if min_severity is not None and (
                summary.highest_severity is None or summary.highest_severity.rank < min_severity.rank
            ):
                continue
            if len(page) == limit:
                break  # one more match exists: the page ends at the previous user
            page.append(summary)
            resume = keyed[-1][1]
        else:
            resume = None
        return UserPage(users=page, next_token=encode_token(resume, fingerprint) if resume else None)

    def user(self, name: str, account: str | None = None) -> UserDetail:
        """One user of `account` (default: the deployment's own account, the hub's in organization mode)."""
        findings = self.store.findings_for_resource("user", name, account or "")
        summary = _user_summary(findings)
        if summary is None:
            raise UserNotFound(name)
        ordered = sorted(findings, key=_worst_first)
        return UserDetail(
            name=summary.name,
            arn=summary.arn,
            account_id=summary.account_id,
            status=summary.status,
            highest_severity=summary.highest_severity,
            findings=[FindingDetail.model_validate(finding_dict(f)) for f in ordered],
        )

    # -- GET /findings ------------------------------------------------------------------
    def findings(
        self,
        *,
        check_id: str | None = None,
        severity: Severity | None = None,
        status: Status | None = None,
        limit: int = 50,
        next_token: str | None = None,
        account: str | None = None,
    ) -> FindingPage:
        """Findings matching every given filter (`account`: of that account only), `limit` per page."""
        fingerprint = query_fingerprint(
            endpoint="findings", check_id=check_id, severity=severity, status=status, account=account
        )
        key_names = FindingsStore.resume_key_names(check_id=check_id, account_id=account)
        start = decode_token(next_token, fingerprint, key_names) if next_token else None
        if start is not None and check_id and start["gsi1pk"] != f"CHECK#{check_id}":
            raise BadRequest(BAD_TOKEN)
        if start is not None and start.get("account_id", account) != account:
            raise BadRequest(BAD_TOKEN)  # the index partition must be the account asked for
        page: list[FindingDetail] = []
        resume: dict[str, str] | None = None
        for item, key in self._items(
            check_id=check_id, severity=severity, status=status, account_id=account, start_key=start
        ):
            if item["check_id"] not in CATALOG:
                continue  # a check retired from the catalog: nothing to explain it with
            if len(page) == limit:
                break
            page.append(FindingDetail.model_validate(finding_dict(item_to_finding(item))))
            resume = key
        else:
            resume = None
        return FindingPage(findings=page, next_token=encode_token(resume, fingerprint) if resume else None)

    def _items(self, *, start_key: Mapping[str, str] | None = None, **filters: Any) -> Iterator[Keyed]:
        try:
            yield from self.store.finding_items(start_key=start_key, **filters)
        except ClientError as exc:
            if start_key and error_code(exc) == "ValidationException":
                raise BadRequest(BAD_TOKEN) from exc
            raise

    # -- GET /compliance/{framework} -----------------------------------------------------
    def compliance(self, framework: str, language: Language = "en") -> ComplianceReport:
        """The framework's controls judged from the stored findings of resources that still exist."""
        try:
            spec = load_framework(framework)
        except UnknownFramework as exc:
            raise FrameworkNotFound(str(exc)) from exc
        findings: list[Finding] = []
        counted: dict[str, int] = {}
        for check_id in sorted(spec.mapped_checks):
            # A user check's passes are most of the table: counted in DynamoDB, never read.
            by_count = CATALOG[check_id].scope == "user"
            if by_count:
                counted[check_id] = self.store.count_findings(check_id, Status.PASS)
            for status in Status:
                if status is Status.PASS and by_count:
                    continue
                items = self.store.finding_items(check_id=check_id, status=status)
                findings.extend(f for f in (item_to_finding(item) for item, _ in items) if not is_gone(f))
        return evaluate(spec, findings, language, counted)

    # -- GET /events ----------------------------------------------------------------------
    def events(self, *, kind: EventKind | None = None, days: int = 7, limit: int = 50) -> EventList:
        """The latest detections and enforcement actions, newest first."""
        wanted = [
            item
            for item in self.store.recent_activity(days=days, limit=1000 if kind else limit, now=self.clock())
            if kind is None or item.get("kind") == kind.value
        ]
        return EventList(events=[_event_record(item) for item in wanted[:limit]], days=days)

    # -- GET /trend ----------------------------------------------------------------------
    def trend(self, *, days: int = 30) -> Trend:
        """Open findings after each audit of the last `days` days (audit runs are kept 90 days)."""
        runs, complete = self.store.audit_runs(self.clock() - timedelta(days=days), most=TREND_POINTS)
        return Trend(days=days, points=[_trend_point(run) for run in runs], complete=complete)

    # -- PUT, GET, DELETE /exceptions ---------------------------------------------------------
    @property
    def exemptions(self) -> ExemptionService:
        """The API's exceptions, in the same table (iamguard.api.exemptions)."""
        store = ExemptionStore.of(self.store)
        return ExemptionService(store, self.settings.exception_max_days, self.clock)

    # -- POST /audit ----------------------------------------------------------------------
    def start_audit(self) -> AuditStarted:
        if self.launcher is None:
            raise AuditUnavailable("This API has no audit function configured (AUDIT_FUNCTION_NAME).")
        requested = self.clock()
        run_id = self.launcher.start(uuid.uuid4().hex)
        return AuditStarted(
            run_id=run_id,
            requested_at=requested,
            follow="/status",
            message="The audit runs in the background; GET /status shows it as last_audit once it has finished.",
        )


def service_from_env() -> StatusService:
    """The service as the Lambda function runs it: settings from the environment, audits via Lambda."""
    settings = Settings.from_env()
    aws = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
    function = settings.api.audit_function_name
    launcher = LambdaAuditLauncher(aws, function) if function else None
    return StatusService(
        FindingsStore.for_settings(aws.dynamodb(), settings),
        settings.api,
        launcher,
        organization_id=settings.organization.organization_id,
    )


def _worst_first(finding: Finding) -> tuple[int, int, str]:
    order = {Status.FAIL: 0, Status.ERROR: 1, Status.EXEMPT: 2, Status.PASS: 3}
    return order[finding.status], -finding.severity.rank, finding.check_id


def _user_summary(findings: list[Finding]) -> UserSummary | None:
    """One user's standing; None when it has no findings or no longer exists."""
    standing = summary.standing(findings)
    if standing is None:
        return None
    findings = [f for f in findings if f.check_id in CATALOG]
    failed = sorted((f for f in findings if f.status is Status.FAIL), key=_worst_first)
    exempt = [f.check_id for f in findings if f.status is Status.EXEMPT]
    errors = [f.check_id for f in findings if f.status is Status.ERROR]
    status = UserStatus(standing)
    seen = [f.last_seen for f in findings if f.last_seen]
    return UserSummary.model_validate(
        {
            "name": findings[0].resource_name,
            "arn": findings[0].resource_arn,
            "account_id": findings[0].account_id,
            "status": status,
            "highest_severity": failed[0].severity if failed else None,
            "failed_checks": [f.check_id for f in failed],
            "exempt_checks": sorted(exempt),
            "error_checks": sorted(errors),
            "last_seen": max(seen) if seen else None,
        }
    )


def _check_results(findings: Iterable[Finding]) -> list[CheckResult]:
    order = list(CATALOG)
    return [
        CheckResult.model_validate(
            {
                "check_id": f.check_id,
                "title": CATALOG[f.check_id].title,
                "severity": f.severity,
                "status": f.status,
                "resource_name": f.resource_name,
                "detail": f.detail,
                "last_seen": f.last_seen,
                "exempt_owner": f.exempt_owner,
                "exempt_reason": f.exempt_reason,
                "exempt_until": f.exempt_until,
            }
        )
        for f in sorted((f for f in findings if f.check_id in CATALOG), key=lambda f: order.index(f.check_id))
    ]


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; JSON wants int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def _trend_point(run: Item) -> TrendPoint:
    summary = _plain(run.get("summary") or {})
    counts = SeverityCounts.model_validate(summary.get("failed_by_severity") or {})
    return TrendPoint(
        at=datetime.fromisoformat(str(run["started_at"])),
        open=sum(counts.model_dump().values()),
        failed_by_severity=counts,
        errors=len(run.get("errors") or {}),
    )


def _event_record(item: Item) -> EventRecord:
    data = _plain(item.get("data") or {})
    severity = data.get("severity")
    return EventRecord(
        kind=str(item.get("kind", "")),
        id=str(item["sk"]).split("#", 2)[-1],
        at=datetime.fromisoformat(str(item["at"])),
        severity=Severity.parse(severity) if isinstance(severity, str) and _is_severity(severity) else None,
        summary=data.get("summary") or data.get("reason"),
        resource_name=data.get("resource_name") or data.get("user_name"),
        data=data,
    )


def _is_severity(value: str) -> bool:
    try:
        Severity.parse(value)
    except ValueError:
        return False
    return True
