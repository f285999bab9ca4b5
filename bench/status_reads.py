"""Benchmark: the DynamoDB reads of one GET /status, for a findings table of N users (issue #13: <= 3 at 10,000).

On a moto server in its own process (bench/moto_server.py), the findings table holds what
a finished audit of N users left: each user's findings as earlier runs stored them (written
25 items a request), and the summaries the audit's write path (`FindingsStore.record` with
`full_audit_account`) writes for an account whose findings did not change: the account's
and the table's, made by the same `summary_item`. (Running `record` itself over 40,000
unchanged findings re-reads and re-writes each on moto: many minutes on a busy machine,
and the number of reads GET /status makes does not depend on it.) Then GET /status is
answered by the status API's service (`StatusService.status`, what the API function runs),
through a DynamoDB client whose calls are counted by operation; the answer is compared with
the full read's (`computed_status`, a scan of every finding).

Results: bench/results/status_reads-N.json; bench/report.py shows them in RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import benchlib

READS = ("GetItem", "BatchGetItem", "Query", "Scan")
TABLE = "bench-status-reads"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def findings_of(users: int, at: datetime) -> list[Any]:
    """Four findings a user (a third failing MFA, some admins, exempt ones, errors) and the account's own."""
    from iamguard.domain.findings import Finding, Severity, Status

    def one(check: str, status: Status, severity: Severity, kind: str, name: str, arn: str) -> Finding:
        return Finding(
            check_id=check,
            severity=severity,
            status=status,
            resource_type=kind,  # type: ignore[arg-type]
            resource_arn=arn,
            resource_name=name,
            account_id=benchlib.ACCOUNT_ID,
            detail=f"{check} {status.value}",
            observed_at=at,
        )

    out = []
    for index in range(users):
        name = f"user{index:05d}"
        arn = f"arn:aws:iam::{benchlib.ACCOUNT_ID}:user/{name}"
        mfa = Status.FAIL if index % 3 == 0 else Status.PASS
        admin = Status.FAIL if index % 7 == 0 else Status.EXEMPT if index % 11 == 0 else Status.PASS
        keys = Status.ERROR if index % 13 == 0 else Status.PASS
        out += [
            one("user_console_mfa", mfa, Severity.HIGH, "user", name, arn),
            one("user_mfa", mfa, Severity.LOW, "user", name, arn),
            one("user_admin_access", admin, Severity.HIGH, "user", name, arn),
            one("user_access_keys_rotated", keys, Severity.MEDIUM, "user", name, arn),
        ]
    root = f"arn:aws:iam::{benchlib.ACCOUNT_ID}:root"
    account = f"arn:aws:iam::{benchlib.ACCOUNT_ID}:account"
    out += [
        one("root_mfa_enabled", Status.FAIL, Severity.CRITICAL, "root", "root", root),
        one("root_no_access_keys", Status.PASS, Severity.HIGH, "root", "root", root),
        one("password_policy", Status.FAIL, Severity.MEDIUM, "account", benchlib.ACCOUNT_ID, account),
    ]
    return out


def measure(users: int) -> dict[str, Any]:
    from iamguard.api.service import StatusService
    from iamguard.domain.findings import Transition
    from iamguard.iam.inventory import CallCounter
    from iamguard.persistence import summary
    from iamguard.persistence.findings import FindingsStore, finding_to_item
    from iamguard.persistence.table import to_ddb
    from iamguard.settings.api import ApiSettings
    from iamguard_cli.local.bootstrap import ensure_findings_table

    env = benchlib.local_aws_env()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[key] = env[key]
    at = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    result: dict[str, Any] = {"users": users}
    with benchlib.MotoProcess() as srv:
        store = FindingsStore(_patient_client(srv.url), TABLE)
        ensure_findings_table(store)
        findings = findings_of(users, at)
        started = time.perf_counter()
        items = [to_ddb(finding_to_item(f, 1, Transition.RECORDED)) for f in findings]
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            store.client.batch_write_item(RequestItems={TABLE: batch})  # type: ignore[dict-item]
        log(f"{len(items)} findings stored in {time.perf_counter() - started:.1f} s")
        for sk in (summary.SUMMARY_SK, summary.account_sk(benchlib.ACCOUNT_ID)):
            item = summary.summary_item(findings, account_id=benchlib.ACCOUNT_ID, audited_at=at, sk=sk)
            store.client.put_item(TableName=TABLE, Item=to_ddb(item))
        store.record_audit_run(
            started_at=at,
            finished_at=at + timedelta(seconds=30),
            account_id=benchlib.ACCOUNT_ID,
            summary={},
            errors={},
            api_calls=15,
        )

        counter = CallCounter()
        counted = FindingsStore(counter.attach(_patient_client(srv.url)), TABLE)
        clock = lambda: at + timedelta(minutes=5)  # noqa: E731
        service = StatusService(counted, ApiSettings(), clock=clock)
        started = time.perf_counter()
        answer = service.status().model_dump(mode="json")
        seconds = time.perf_counter() - started
        calls = dict(counter.calls)
        full = StatusService(store, ApiSettings(), clock=clock).computed_status(store.latest_audit())
        expected = full.model_dump(mode="json")
    same = {k: v for k, v in answer.items() if k != "generated_at"} == {
        k: v for k, v in expected.items() if k != "generated_at"
    }
    result.update(
        findings_stored=len(findings),
        status_seconds=round(seconds, 3),
        dynamodb_calls_by_operation=calls,
        dynamodb_reads=sum(n for op, n in calls.items() if op in READS),
        same_answer_as_a_full_read=same,
        users_in_answer=answer["users"]["total"],
    )
    return result


def _patient_client(url: str) -> Any:
    """A DynamoDB client that waits for moto: scanning 40,000 items on a busy machine takes longer than
    iamguard's 30 s read timeout, and only the number of calls is measured here."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=900, retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session().client("dynamodb", region_name=benchlib.REGION, endpoint_url=url, config=config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "status_reads",
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
    }
    result.update(measure(args.users))
    path = benchlib.RESULTS / f"status_reads-{args.users}.json"
    benchlib.write_json(path, result)
    reads = f"{result['dynamodb_reads']} reads, {result['dynamodb_calls_by_operation']}"
    log(f"wrote {path.relative_to(benchlib.REPO)}: {reads}")
    return 0 if result["same_answer_as_a_full_read"] and result["dynamodb_reads"] <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
