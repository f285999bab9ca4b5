"""Benchmark: the `iamguard audit` command itself, for N users on a moto server (issue #13's audit targets).

Seeds N users (bench/seeding.py) on a moto server in its own process, pre-generates the
credential report, then measures each command below as its own process (wall time, CPU,
peak RSS by GNU time) and counts the API calls the server received, by operation:

* `audit --format json --output FILE` and `audit --format csv --output FILE`: the streamed
  reports (the targets: < 256 MB peak RSS and < 5 s for 10,000 users);
* `audit --store --format json` twice: the first stored run reads every login profile it
  needs and keeps the facts; the second, on the unchanged account, reuses them (the target:
  at most 20 IAM calls at 2,000 users). DynamoDB calls are counted apart: they are the
  findings table's (the first run writes every finding).

With --never-signed-in the sign-in hook is skipped: every console user looks as if it had
never signed in, the worst case for GetLoginProfile.

Results: bench/results/audit_cli-N[-never-signed-in].json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import benchlib
import seeding


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(srv: benchlib.MotoProcess, work: Path, name: str, *arguments: str) -> dict[str, Any]:
    command = [str(benchlib.VENV_BIN / "iamguard"), "audit", "--endpoint-url", srv.url, "--fail-on", "none", *arguments]
    srv.reset_calls()
    measured = benchlib.run_measured(command, env=benchlib.local_aws_env(), stdout=work / f"audit-cli-{name}.out.txt")
    calls = srv.reset_calls()
    iam = {op.removeprefix("iam:"): n for op, n in calls.items() if op.startswith("iam:")}
    dynamodb = {op.removeprefix("dynamodb:"): n for op, n in calls.items() if op.startswith("dynamodb:")}
    result = measured.to_dict()
    result["iam_calls"] = sum(iam.values())
    result["iam_calls_by_operation"] = dict(sorted(iam.items(), key=lambda kv: -kv[1]))
    result["dynamodb_calls"] = sum(dynamodb.values())
    result["dynamodb_calls_by_operation"] = dict(sorted(dynamodb.items(), key=lambda kv: -kv[1]))
    log(
        f"{name}: {result['wall_seconds']:.2f}s, {result['peak_rss_mb']:.0f} MB, "
        f"{result['iam_calls']} IAM + {result['dynamodb_calls']} DynamoDB calls, exit {result['exit_code']}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=8, help="seeding threads")
    parser.add_argument("--never-signed-in", action="store_true", help="skip the sign-in hook (worst case)")
    parser.add_argument("--no-store", action="store_true", help="skip the two --store runs")
    args = parser.parse_args(argv)

    suffix = "-never-signed-in" if args.never_signed_in else ""
    work = benchlib.RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    users = seeding.plan(args.users)
    result: dict[str, Any] = {
        "benchmark": "audit_cli",
        "users": args.users,
        "account": seeding.describe(users),
        "never_signed_in": args.never_signed_in,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "runs": {},
    }
    with benchlib.MotoProcess(log=work / f"audit-cli-server{suffix}.log") as srv:
        log(f"seeding {args.users} users")
        seeding.seed_account(srv.url, users, workers=args.workers)
        if not args.never_signed_in:
            srv.sign_in(seeding.sign_ins(users))
        seeding.iam_client(srv.url).generate_credential_report()
        result["expected_login_profile_reads"] = (
            sum(1 for u in users if u.console and not u.can_change_password)
            if args.never_signed_in
            else seeding.expected_login_profile_reads(users)
        )
        runs = result["runs"]
        for kind in ("json", "csv"):
            report = work / f"audit-cli-report{suffix}.{kind}"
            runs[kind] = measure(srv, work, f"{kind}{suffix}", "--format", kind, "--output", str(report))
            runs[kind]["report_mb"] = round(report.stat().st_size / 1024 / 1024, 1)
        if not args.no_store:
            for run in ("store_first", "store_second"):
                report = work / f"audit-cli-{run}{suffix}.json"
                runs[run] = measure(srv, work, f"{run}{suffix}", "--store", "--format", "json", "--output", str(report))
    path = benchlib.RESULTS / f"audit_cli-{args.users}{suffix}.json"
    benchlib.write_json(path, result)
    print(f"wrote {path.relative_to(benchlib.REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
