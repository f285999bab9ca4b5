"""`iamguard audit --organization`: every ACTIVE account of the organization, each through its member role."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, TextIO

from iamguard.audit.fanout import store_member_outcome
from iamguard.audit.organization import OrganizationAuditResult, audit_organization, hub_account_of
from iamguard.audit.report import write_csv, write_organization_json, write_organization_table
from iamguard.audit.run import AuditResult
from iamguard.domain.findings import Finding, Status, at_or_above
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings

from iamguard_cli.commands.common import EXIT_FINDINGS, EXIT_OK, CliError, aws_context, aws_errors, is_local_endpoint
from iamguard_cli.local.bootstrap import ensure_findings_table

_ACCOUNT_ID = re.compile(r"^\d{12}$")


def add_organization_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("organization (from management or delegated-administrator credentials)")
    group.add_argument(
        "--organization", action="store_true", help="audit every ACTIVE account by assuming the member role in each"
    )
    group.add_argument("--role-name", help="the member role to assume (default: $MEMBER_AUDIT_ROLE_NAME)")
    group.add_argument("--accounts", type=account_ids, help="only these accounts (comma-separated ids)")
    group.add_argument(
        "--concurrency", type=concurrency, default=8, metavar="N", help="accounts audited at once (1-64, default 8)"
    )


def account_ids(value: str) -> list[str]:
    ids = [part.strip() for part in value.split(",") if part.strip()]
    bad = [account for account in ids if not _ACCOUNT_ID.match(account)]
    if bad or not ids:
        raise argparse.ArgumentTypeError(f"not 12-digit account ids: {', '.join(bad) or value!r}")
    return ids


def concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("--concurrency takes a number from 1 to 64")
    return number


def run_organization(args: argparse.Namespace, settings: Settings) -> int:
    if args.role_name is not None and not re.match(r"^[\w+=,.@-]{1,64}$", args.role_name):
        raise CliError(f"not an IAM role name: {args.role_name!r}", exit_code=2)
    ctx = aws_context(args)
    with aws_errors(args.endpoint_url):
        store: FindingsStore | None = None
        if args.store:
            # The hub's own users keep the single-account keys (FindingsStore.home_account).
            store = FindingsStore(
                ctx.dynamodb(), args.table or settings.findings_table, home_account=hub_account_of(ctx)
            )
            if is_local_endpoint(args.endpoint_url):
                ensure_findings_table(store)
        result = audit_organization(
            ctx,
            settings,
            role_name=args.role_name,
            only=args.accounts,
            concurrency=args.concurrency,
            # With --store, the status API's exceptions apply too, each in its own account.
            exemptions=ExemptionStore.of(store).all() if store is not None else (),
        )
        if store is not None:
            for audit in result.audits:
                store_member_outcome(store, audit)
            for account_id, reason in result.errors.items():
                store_member_outcome(store, account_id, reason)

    def shown(audit: AuditResult) -> list[Finding]:
        if args.only_failed:
            return [f for f in audit.findings if f.status in {Status.FAIL, Status.ERROR}]
        return audit.findings

    if args.output:
        try:
            with args.output.open("w", encoding="utf-8", newline="") as out:
                _write(out, args.format, result, shown)
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror}") from exc
    else:
        _write(sys.stdout, args.format, result, shown)

    if not result.audits:
        raise CliError(f"no account of the organization could be audited ({len(result.errors)} tried; see errors)")
    findings = [f for audit in result.audits for f in audit.findings]
    if args.fail_on is not None and at_or_above(findings, args.fail_on):
        return EXIT_FINDINGS
    unaudited = bool(result.errors) or any(f.status is Status.ERROR for f in findings)
    if unaudited and args.fail_on is not None:
        return EXIT_FINDINGS
    return EXIT_OK


def _write(out: TextIO, kind: str, result: OrganizationAuditResult, shown: Any) -> None:
    if kind == "json":
        write_organization_json(out, result, shown)
        out.write("\n")
    elif kind == "csv":
        write_csv(out, [f for audit in result.audits for f in shown(audit)], with_account=True)
    else:
        write_organization_table(out, result, shown)


__all__ = ["add_organization_arguments", "run_organization"]
