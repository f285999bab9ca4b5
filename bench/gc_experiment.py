"""Experiment: how much of the audit's CPU is Python's cyclic garbage collector (gc enabled vs disabled).

The profiles of the 10,000-user audit show large self times in small list comprehensions
(policy._as_list, audit.remediation_for): allocation sites where a collection of the whole
heap (hundreds of thousands of findings and dicts) happens to be triggered. This seeds N
users on a moto server in its own process and runs the in-process audit phases (read,
checks, JSON report) alternately with gc enabled and with `gc.disable()`, --repeat times
each, reporting the CPU seconds (time.process_time) of each phase.

Results: bench/results/gc_experiment-N.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from typing import Any

import benchlib
import seeding


def audit_phases(url: str) -> dict[str, float]:
    from iamguard.audit.report import render_json
    from iamguard.audit.run import AuditResult
    from iamguard.aws import AwsContext
    from iamguard.checks import run_checks
    from iamguard.iam.inventory import Inventory
    from iamguard.settings import Settings

    marks = [time.process_time()]
    inventory = Inventory(AwsContext(region=benchlib.REGION, endpoint_url=url))
    state = inventory.read_account()
    marks.append(time.process_time())
    findings = run_checks(state, Settings.from_env({}), state.read_at)
    marks.append(time.process_time())
    audit = AuditResult(
        account_id=state.account_id, generated_at=state.read_at, findings=findings, errors={}, api_calls=0
    )
    render_json(audit, findings)
    marks.append(time.process_time())
    return {
        "read_account": marks[1] - marks[0],
        "run_checks": marks[2] - marks[1],
        "render_json": marks[3] - marks[2],
        "total": marks[3] - marks[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.update({k: v for k, v in benchlib.local_aws_env().items() if k.startswith("AWS_")})

    runs: dict[str, list[dict[str, float]]] = {"gc enabled": [], "gc disabled": []}
    with benchlib.MotoProcess() as srv:
        users = seeding.plan(args.users)
        seeding.seed_account(srv.url, users)
        srv.sign_in(seeding.sign_ins(users))
        seeding.iam_client(srv.url).generate_credential_report()
        for _ in range(args.repeat):
            for mode in runs:
                gc.collect()
                if mode == "gc disabled":
                    gc.disable()
                try:
                    runs[mode].append(audit_phases(srv.url))
                finally:
                    gc.enable()
                print(f"{mode}: {runs[mode][-1]}", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "gc_experiment",
        "users": args.users,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "cpu_seconds_median": {
            mode: {phase: round(statistics.median(r[phase] for r in phase_runs), 2) for phase in phase_runs[0]}
            for mode, phase_runs in runs.items()
        },
        "runs": runs,
    }
    path = benchlib.RESULTS / f"gc_experiment-{args.users}.json"
    benchlib.write_json(path, result)
    print(f"wrote {path.relative_to(benchlib.REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
