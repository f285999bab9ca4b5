"""Benchmark: where the CLI audit's time goes - iamguard's own CPU by phase, botocore's, and the moto server's by call.

For one seeded account (bench/seeding.py: --users, --shape) on a moto server in its own
process (bench/moto_server.py), all measured as CPU seconds, which a busy machine inflates
far less than wall time:

1. the CLI audit (`iamguard audit --format json --output FILE`) --repeat times: wall time,
   CPU of the CLI process (GNU time) and of the server process (/proc), API calls by operation;
2. the same audit in a fresh process, phase by phase (`time.process_time`): start-up (the
   CLI's imports), the account read (client side), the checks, the JSON report;
3. each operation the audit made, called alone through an iamguard client --samples times
   (GetLoginProfile through a pool of the audit's size): the client's CPU per call (botocore:
   signing, HTTP, parsing the response) and the server's (moto: dispatch, backend, XML).

The client's read minus botocore's share is iamguard's own inventory code; the server's
per-call CPU times the audit's call count is what moto spends serving the audit.

Results: bench/results/audit_profile-SHAPE-N.json; bench/report.py shows them in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchlib

if TYPE_CHECKING:
    import seeding

# The phases' process measures the CLI's imports: nothing here imports boto3 before they start
# (bench/seeding.py does, so it is imported where an account is seeded).
SHAPES = ("current", "never-signed-in")  # bench/seeding.py's SHAPES
# An AWS managed policy every seeded account attaches (through the developers group).
MANAGED_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def phases(url: str, report: Path) -> dict[str, float]:
    """The CLI audit's work in this (fresh) process, CPU seconds by phase."""
    started = time.process_time()
    from iamguard.audit.report import write_json
    from iamguard.audit.run import AuditResult
    from iamguard.aws import AwsContext
    from iamguard.checks import run_checks
    from iamguard.iam.inventory import Inventory
    from iamguard.settings import Settings
    from iamguard_cli.main import build_parser

    build_parser("audit")
    imported = time.process_time()
    inventory = Inventory(AwsContext(region=benchlib.REGION, endpoint_url=url))
    state = inventory.read_account()
    read = time.process_time()
    settings = Settings.from_env({})
    findings = run_checks(state, settings, state.read_at)
    checked = time.process_time()
    result = AuditResult(
        account_id=state.account_id,
        generated_at=state.read_at,
        findings=findings,
        errors={str(k): v for k, v in state.errors.items()},
        api_calls=inventory.counter.total,
    )
    with report.open("w", encoding="utf-8") as out:
        write_json(out, result, findings)
    written = time.process_time()
    return {
        "start_up_imports": round(imported - started, 3),
        "read_account_client": round(read - imported, 3),
        "run_checks": round(checked - read, 3),
        "json_report": round(written - checked, 3),
        "findings": len(findings),
    }


def operation_calls(iam: Any, users: list[seeding.PlannedUser]) -> dict[str, Callable[[], Any]]:
    """One call of each operation the audit makes, with the audit's arguments."""
    console = [u.name for u in users if u.console] or [users[0].name]
    profile_users = iter(console * 1000)
    big = {"PageSize": 1000}
    version = iam.get_policy(PolicyArn=MANAGED_POLICY)["Policy"]["DefaultVersionId"]
    return {
        "iam:GetAccountSummary": iam.get_account_summary,
        "iam:GenerateCredentialReport": iam.generate_credential_report,
        "iam:GetCredentialReport": iam.get_credential_report,
        "iam:GetAccountAuthorizationDetails": lambda: list(
            iam.get_paginator("get_account_authorization_details").paginate(
                Filter=["User", "Group", "LocalManagedPolicy"], PaginationConfig=big
            )
        ),
        "iam:ListVirtualMFADevices": lambda: list(
            iam.get_paginator("list_virtual_mfa_devices").paginate(AssignmentStatus="Assigned", PaginationConfig=big)
        ),
        "iam:GetAccountPasswordPolicy": iam.get_account_password_policy,
        "iam:ListAccountAliases": iam.list_account_aliases,
        "iam:GetPolicy": lambda: iam.get_policy(PolicyArn=MANAGED_POLICY),
        "iam:GetPolicyVersion": lambda: iam.get_policy_version(PolicyArn=MANAGED_POLICY, VersionId=version),
        "iam:GetLoginProfile": lambda: iam.get_login_profile(UserName=next(profile_users)),
    }


def per_call(srv: benchlib.MotoProcess, call: Callable[[], Any], samples: int, workers: int) -> dict[str, float | int]:
    """Client and server CPU of one call (milliseconds), over `samples` calls made `workers` at a time."""

    def once(_: int) -> None:
        call()

    server = srv.cpu_seconds()
    client = time.process_time()
    started = time.perf_counter()
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(once, range(samples)))
    else:
        for i in range(samples):
            once(i)
    wall = time.perf_counter() - started
    return {
        "samples": samples,
        "workers": workers,
        "client_cpu_ms": round((time.process_time() - client) * 1000 / samples, 2),
        "server_cpu_ms": round((srv.cpu_seconds() - server) * 1000 / samples, 2),
        "wall_ms": round(wall * 1000 / samples, 2),
    }


def profile_account(args: argparse.Namespace) -> dict[str, Any]:
    import seeding
    from iamguard.aws import AwsContext
    from iamguard.iam.inventory import PER_USER_WORKERS

    n, shape = args.users, args.shape
    work = benchlib.RESULTS / "work" / f"profile-{shape}-{n}"
    work.mkdir(parents=True, exist_ok=True)
    users = seeding.plan(n, args.seed, shape)
    result: dict[str, Any] = {
        "benchmark": "audit_profile",
        "users": n,
        "shape": shape,
        "seed": args.seed,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "account": seeding.describe(users),
    }
    with benchlib.MotoProcess(log=work / "moto-server.log") as srv:
        log(f"{shape}, {n} users: seeding on {srv.url}")
        seeding.seed_account(srv.url, users, workers=args.workers)
        srv.sign_in(seeding.sign_ins(users))
        seeding.iam_client(srv.url).generate_credential_report()
        srv.reset_calls()

        runs = []
        for run in range(args.repeat):
            report = work / f"report-{run}.json"
            command = [str(benchlib.VENV_BIN / "iamguard"), "audit", "--endpoint-url", srv.url]
            command += ["--format", "json", "--output", str(report), "--fail-on", "none"]
            server = srv.cpu_seconds()
            measured = benchlib.run_measured(command, env=benchlib.local_aws_env(), stdout=work / f"cli-{run}.txt")
            entry = measured.to_dict()
            entry["server_cpu_seconds"] = round(srv.cpu_seconds() - server, 3)
            entry["api_calls_by_operation"] = srv.reset_calls()
            runs.append(entry)
            report.unlink(missing_ok=True)
            cpu = measured.user_cpu_seconds + measured.system_cpu_seconds
            log(f"CLI run {run}: {entry['wall_seconds']} s, CPU {cpu:.2f} s")
        calls: dict[str, int] = runs[-1]["api_calls_by_operation"]
        result["cli"] = {
            "wall_seconds_median": statistics.median(r["wall_seconds"] for r in runs),
            "cpu_seconds_median": round(
                statistics.median(r["user_cpu_seconds"] + r["system_cpu_seconds"] for r in runs), 3
            ),
            "server_cpu_seconds_median": statistics.median(r["server_cpu_seconds"] for r in runs),
            "api_calls_by_operation": calls,
            "runs": runs,
        }

        phase_runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--phases", srv.url, str(work / "phases.json")],
                env=benchlib.local_aws_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            phase_runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            srv.reset_calls()
        result["client_phases_cpu_seconds"] = {
            key: statistics.median(p[key] for p in phase_runs) for key in phase_runs[0] if key != "findings"
        }
        (work / "phases.json").unlink(missing_ok=True)

        env = benchlib.local_aws_env()
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            os.environ[key] = env[key]
        iam = AwsContext(region=benchlib.REGION, endpoint_url=srv.url).iam()
        callers = operation_calls(iam, users)
        operations: dict[str, Any] = {}
        for operation, count in sorted(calls.items(), key=lambda kv: -kv[1]):
            call = callers.get(operation)
            if call is None:
                operations[operation] = {"count": count, "measured": False}
                continue
            many = operation == "iam:GetLoginProfile"
            samples = min(max(count, 1), args.samples * 20) if many else args.samples
            timed = per_call(srv, _tolerant(iam, call), samples, PER_USER_WORKERS if many else 1)
            operations[operation] = {"count": count, **timed}
            log(f"{operation}: {timed}")
        srv.reset_calls()
        result["operations"] = operations
    result["finished_at"] = benchlib.now()
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def _tolerant(iam: Any, call: Callable[[], Any]) -> Callable[[], Any]:
    """A call whose modeled 'not found' answers (a user without a login profile) count as answers."""

    def run() -> Any:
        try:
            return call()
        except iam.exceptions.NoSuchEntityException:
            return None

    return run


def split(result: dict[str, Any]) -> dict[str, float]:
    """CPU seconds of one audit by where they go (what RESULTS.md shows)."""
    phases = result["client_phases_cpu_seconds"]
    operations = result["operations"]
    botocore = sum(op["count"] * op["client_cpu_ms"] / 1000 for op in operations.values() if op.get("measured", True))
    server = sum(op["count"] * op["server_cpu_ms"] / 1000 for op in operations.values() if op.get("measured", True))
    measured_phases = sum(phases.values())
    return {
        "iamguard: start-up (imports)": phases["start_up_imports"],
        "botocore: requests and response parsing": round(botocore, 3),
        "iamguard: inventory (responses to account state)": round(max(phases["read_account_client"] - botocore, 0), 3),
        "iamguard: checks": phases["run_checks"],
        "iamguard: JSON report": phases["json_report"],
        "interpreter start, argparse, exit": round(max(result["cli"]["cpu_seconds_median"] - measured_phases, 0), 3),
        "moto server (all calls)": round(server, 3),
    }


def result_path(shape: str, n: int) -> Path:
    return benchlib.RESULTS / f"audit_profile-{shape}-{n}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--shape", choices=SHAPES, default=SHAPES[0])
    parser.add_argument("--repeat", type=int, default=3, help="CLI runs and phase runs (median reported)")
    parser.add_argument("--samples", type=int, default=5, help="calls per operation (x20 for GetLoginProfile)")
    parser.add_argument("--workers", type=int, default=8, help="seeding threads")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--phases", nargs=2, metavar=("URL", "REPORT"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.phases:
        print(json.dumps(phases(args.phases[0], Path(args.phases[1]))))
        return 0
    result = profile_account(args)
    result["split_cpu_seconds"] = split(result)
    path = result_path(args.shape, args.users)
    benchlib.write_json(path, result)
    log(f"wrote {path.relative_to(benchlib.REPO)}: {result['split_cpu_seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
