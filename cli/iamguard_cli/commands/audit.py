"""`iamguard audit`: the scheduled Lambda's audit, from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from iamguard.audit.report import write_csv, write_json, write_ocsf, write_table
from iamguard.audit.run import AuditResult, run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.checks.compliance import FRAMEWORK_IDS
from iamguard.domain.findings import Change, Finding, Severity, Status, at_or_above
from iamguard.iam.inventory import Inventory
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import HISTORY_DAYS, FindingsStore
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.persistence.summary import ACCOUNT_SK_PREFIX
from iamguard.settings import DEFAULT_FINDINGS_TABLE, ConfigError, Settings

from iamguard_cli.commands.audit_organization import add_organization_arguments, run_organization
from iamguard_cli.commands.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_aws_arguments,
    aws_context,
    aws_errors,
    is_local_endpoint,
)
from iamguard_cli.commands.notify_options import add_notify_arguments, announcer_from_args, report_delivery
from iamguard_cli.local.bootstrap import ensure_findings_table

# The HTML page's, the status API's and the compliance report's modules are imported by the
# functions that use them: a JSON or CSV audit does not pay for them at start-up.


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="audit the whole account (root, password policy, every user) and report the findings",
        description="Audit the whole account with the same code as the scheduled Lambda.",
    )
    add_aws_arguments(parser)
    parser.add_argument(
        "--format",
        choices=["table", "json", "csv", "ocsf", "html"],
        default="table",
        help="ocsf: OCSF 1.5.0 Compliance Findings, one JSON object per line; html: one self-contained page "
        "(with --store or --table, the trend of open findings from the stored audit runs)",
    )
    parser.add_argument(
        "--trend-days",
        type=_trend_days,
        default=30,
        metavar="DAYS",
        help="days of stored audit runs in the HTML report's trend (1-90, default 30)",
    )
    parser.add_argument("--output", type=Path, help="write the report to FILE instead of stdout")
    parser.add_argument(
        "--only-failed", action="store_true", help="report only FAIL and ERROR findings (the HTML page lists no others)"
    )
    parser.add_argument(
        "--fail-on",
        type=_severity_or_none,
        default=Severity.INFORMATIONAL,
        metavar="SEVERITY",
        help="exit 3 when a finding at or above SEVERITY failed (critical|high|medium|low|informational|none; "
        "default: any failure)",
    )
    parser.add_argument(
        "--compliance",
        choices=FRAMEWORK_IDS,
        metavar="FRAMEWORK",
        help=f"report control by control against a framework ({', '.join(FRAMEWORK_IDS)}): passed, failed with "
        "the failing resources, not covered by iamguard (manual); --format table or json",
    )
    parser.add_argument("--store", action="store_true", help="record the findings in the findings table")
    parser.add_argument(
        "--table", default=None, help=f"findings table (default: $FINDINGS_TABLE or {DEFAULT_FINDINGS_TABLE})"
    )
    parser.add_argument(
        "--required-policy",
        action="append",
        default=[],
        metavar="ARN",
        help="a policy ARN every user must have (repeatable; adds to $REQUIRED_POLICY_ARNS)",
    )
    parser.add_argument(
        "--exempt",
        action="append",
        default=[],
        metavar="USER",
        help="a user to report as exempt (repeatable; adds to $EXEMPT_USERS)",
    )
    add_notify_arguments(parser)
    add_organization_arguments(parser)
    parser.set_defaults(run=run)


def _severity_or_none(value: str) -> Severity | None:
    if value.strip().lower() == "none":
        return None
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"unknown severity {value!r}") from exc


def _trend_days(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= HISTORY_DAYS):
        raise argparse.ArgumentTypeError(f"must be a whole number of days from 1 to {HISTORY_DAYS}, not {value!r}")
    return int(value)


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        base = Settings.from_env()
        return base.model_validate(
            {
                **base.model_dump(),
                "required_policy_arns": tuple(base.required_policy_arns) + tuple(args.required_policy),
                "exempt_users": frozenset(base.exempt_users | set(args.exempt)),
            }
        )
    except (ConfigError, ValueError) as exc:
        raise CliError(str(exc), exit_code=2) from exc


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.compliance and args.format not in COMPLIANCE_FORMATS:
        raise CliError(
            f"--compliance reports as {' or '.join(COMPLIANCE_FORMATS)}, not {args.format}", exit_code=EXIT_USAGE
        )
    if args.organization and args.compliance:
        raise CliError("--compliance reports one account; run it without --organization", exit_code=EXIT_USAGE)
    if args.organization:
        return run_organization(args, settings)
    ctx = aws_context(args)
    store: FindingsStore | None = None
    changes: list[Change] = []
    with aws_errors(args.endpoint_url):
        memory: LoginProfileStore | None = None
        if args.store:
            # As the deployment's functions build it: in organization mode the hub's users keep the
            # single-account keys and any other account's (these credentials') are qualified by it.
            store = FindingsStore.for_settings(ctx.dynamodb(), settings, args.table)
            if is_local_endpoint(args.endpoint_url):
                ensure_findings_table(store)
            account_id = str(ctx.sts().get_caller_identity()["Account"])  # the audited account
            _refuse_organization_table(store, account_id)
            # Login-profile facts earlier runs (and the event path) kept are reused while they hold.
            memory = LoginProfileStore.of(store, account_id)
        announcer = announcer_from_args(args, settings, ctx, store=store)
        # With --store, the status API's exceptions apply too (tags and EXEMPT_USERS always do).
        exemptions = ExemptionStore.of(store).all() if store is not None else []
        result = run_audit(Inventory(ctx, login_profiles=memory), settings, exemptions=exemptions)
        if store is not None:
            changes = store_audit(result, store)

    shown = (
        [f for f in result.findings if f.status in {Status.FAIL, Status.ERROR}] if args.only_failed else result.findings
    )
    if args.compliance:
        _write_compliance(args, result, settings)
    elif args.format == "html":
        page = html_report(args, settings, ctx, result, store)
        _output(args.output, lambda out: out.write(page))
    else:
        _output(args.output, lambda out: _write_report(out, args.format, result, shown))

    if announcer is not None:
        with aws_errors(args.endpoint_url):
            if store is not None:  # each change once, then whatever an earlier run left undelivered
                delivery = announcer.announce(alerts=[], changes=changes, actions=[])
            else:  # no history to compare with: the failures of this run
                delivery = announcer.announce_failures(result.failed)
        report_delivery(delivery)

    if args.fail_on is not None and at_or_above(result.findings, args.fail_on):
        return EXIT_FINDINGS
    if any(f.status is Status.ERROR for f in result.findings) and args.fail_on is not None:
        return EXIT_FINDINGS
    return EXIT_OK


def _refuse_organization_table(store: FindingsStore, account_id: str) -> None:
    """Without organization settings every user is keyed by name alone: in an organization's table that
    would overwrite the hub's users and apply the hub's exceptions here. Refuse before anything is written."""
    if store.home_account is not None:
        return
    others = sorted(
        {str(item["sk"]).removeprefix(ACCOUNT_SK_PREFIX) for item, _ in store.account_summaries()} - {account_id}
    )
    if others:
        raise CliError(
            f"table {store.table} holds other accounts' findings ({', '.join(others[:3])}"
            f"{', …' if len(others) > 3 else ''}): it is an organization's. Set ORGANIZATION_ID and "
            "HUB_ACCOUNT_ID as the hub's functions have them (docs/organizations.md), or use another table",
            exit_code=EXIT_USAGE,
        )


def _output(path: Path | None, write: Callable[[TextIO], object]) -> None:
    if path is None:
        write(sys.stdout)
        return
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            write(out)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from exc


def html_report(
    args: argparse.Namespace,
    settings: Settings,
    ctx: AwsContext,
    result: AuditResult,
    store: FindingsStore | None,
) -> str:
    """The HTML page; its trend from the findings table with --store or --table, else this run alone."""
    from iamguard.api.models import TrendPoint
    from iamguard.api.service import StatusService

    from iamguard_cli.report import build_view, render_html

    history = "this run only: no findings table was given (--store or --table keeps and reads the history)"
    points = [TrendPoint.model_validate(_point_of(result))]
    if store is None and args.table:
        store = FindingsStore.for_settings(ctx.dynamodb(), settings, args.table)
    if store is not None:
        with aws_errors(args.endpoint_url):
            trend = StatusService(store, settings.api).trend(days=args.trend_days)
        points = trend.points
        history = f"{len(points)} audit runs of the last {args.trend_days} days, from table {store.table}"
        if not trend.complete:
            history += " (the oldest left out)"
    return render_html(build_view(result, points, history=history))


def _point_of(result: AuditResult) -> dict[str, object]:
    by_severity = result.summary()["failed_by_severity"]
    return {
        "at": result.generated_at,
        "open": sum(by_severity.values()),
        "failed_by_severity": by_severity,
        "errors": len(result.errors),
    }


def _write_report(out: TextIO, kind: str, result: AuditResult, findings: list[Finding]) -> None:
    """The report, written finding by finding (never whole in memory)."""
    if kind == "ocsf":
        write_ocsf(out, findings)
    elif kind == "json":
        write_json(out, result, findings)
        out.write("\n")
    elif kind == "csv":
        write_csv(out, findings)
    else:
        write_table(out, result, findings)


COMPLIANCE_FORMATS = ("table", "json")


def _write_compliance(args: argparse.Namespace, result: AuditResult, settings: Settings) -> None:
    """The framework's controls judged from this audit's findings."""
    from iamguard.audit.compliance_report import write_compliance_json, write_compliance_table
    from iamguard.checks.compliance import evaluate

    language = args.language or settings.language
    report = evaluate(args.compliance, result.findings, language)

    def write(out: TextIO) -> None:
        if args.format == "json":
            write_compliance_json(out, report)
        else:
            write_compliance_table(out, report, language)

    _output(args.output, write)
