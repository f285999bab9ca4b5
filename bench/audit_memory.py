"""Benchmark: where the audit's memory goes, phase by phase, for N users on a moto server.

Seeds N users (bench/seeding.py) on a moto server in its own process, then runs the audit
in-process under tracemalloc and reports, in MB of Python allocations:

* the response body of each API call (botocore's before-parse hook), the largest being
  GetAccountAuthorizationDetails, which moto returns in ONE page whatever the account size
  (AWS pages it at MaxItems ≤ 1000, default 100);
* the peak while reading the account, and what stays allocated after it (the AccountState);
* the peak while running the checks, and what the findings keep;
* the peak while rendering the JSON report, and the report's size;
* first, in a pass without tracemalloc, the process's peak RSS (ru_maxrss) after each
  phase, for comparison with audit_users.py (RSS counts what tracemalloc does not see:
  allocator overhead and fragmentation, memory allocated outside Python's allocator).

tracemalloc slows Python down several times: the seconds it reports are not timings.
Results: bench/results/audit_memory-N.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from typing import Any

import benchlib
import seeding

MB = 1024 * 1024


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_pass(url: str) -> dict[str, float]:
    """The audit without tracemalloc: the process's peak RSS after each phase (it only grows)."""
    from iamguard.audit.report import render_json
    from iamguard.audit.run import AuditResult
    from iamguard.aws import AwsContext
    from iamguard.checks import run_checks
    from iamguard.iam.inventory import Inventory
    from iamguard.settings import Settings

    rss = {"before (interpreter, seeding, imports)": _peak_rss_mb()}
    inventory = Inventory(AwsContext(region=benchlib.REGION, endpoint_url=url))
    state = inventory.read_account()
    rss["after read_account"] = _peak_rss_mb()
    findings = run_checks(state, Settings.from_env({}), state.read_at)
    rss["after run_checks"] = _peak_rss_mb()
    audit = AuditResult(
        account_id=state.account_id, generated_at=state.read_at, findings=findings, errors={}, api_calls=0
    )
    render_json(audit, findings)
    rss["after render_json"] = _peak_rss_mb()
    return rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)

    for key, value in benchlib.local_aws_env().items():
        if key.startswith("AWS_"):
            os.environ[key] = value
    from iamguard.audit.report import render_json
    from iamguard.audit.run import AuditResult
    from iamguard.aws import AwsContext
    from iamguard.checks import run_checks
    from iamguard.iam.inventory import Inventory
    from iamguard.settings import Settings

    result: dict[str, Any] = {
        "benchmark": "audit_memory",
        "users": args.users,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
    }
    with benchlib.MotoProcess() as srv:
        users = seeding.plan(args.users)
        seeding.seed_account(srv.url, users, workers=args.workers)
        srv.sign_in(seeding.sign_ins(users))
        seeding.iam_client(srv.url).generate_credential_report()

        result["rss_mb"] = rss_pass(srv.url)  # first, so that the process's peak RSS is this pass's

        bodies: dict[str, list[float]] = {}

        def body_size(operation_model: Any, response_dict: Any, **_: Any) -> None:
            body = response_dict.get("body") or b""
            bodies.setdefault(operation_model.name, []).append(round(len(body) / MB, 2))

        inventory = Inventory(AwsContext(region=benchlib.REGION, endpoint_url=srv.url))
        inventory.iam.meta.events.register("before-parse.iam.*", body_size)
        settings = Settings.from_env({})

        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        state = inventory.read_account()
        after_read, peak_read = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        findings = run_checks(state, settings, state.read_at)
        after_checks, peak_checks = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        audit = AuditResult(
            account_id=state.account_id,
            generated_at=state.read_at,
            findings=findings,
            errors={},
            api_calls=inventory.counter.total,
        )
        text = render_json(audit, findings)
        after_render, peak_render = tracemalloc.get_traced_memory()
        elapsed = time.perf_counter() - started
        tracemalloc.stop()

    result["response_body_mb_by_operation"] = {
        name: {"calls": len(sizes), "largest": max(sizes), "total": round(sum(sizes), 2)}
        for name, sizes in sorted(bodies.items(), key=lambda kv: -max(kv[1]))
    }
    result["traced_mb"] = {
        "read_account_peak": round((peak_read - base) / MB, 1),
        "after_read_account (AccountState kept)": round((after_read - base) / MB, 1),
        "run_checks_peak": round((peak_checks - base) / MB, 1),
        "after_run_checks (state + findings kept)": round((after_checks - base) / MB, 1),
        "render_json_peak": round((peak_render - base) / MB, 1),
        "after_render_json (+ report string)": round((after_render - base) / MB, 1),
    }
    result["findings"] = len(findings)
    result["report_mb"] = round(len(text.encode()) / MB, 1)
    result["seconds_under_tracemalloc"] = round(elapsed, 1)
    path = benchlib.RESULTS / f"audit_memory-{args.users}.json"
    benchlib.write_json(path, result)
    for key, value in result["traced_mb"].items():
        print(f"{key}: {value} MB", file=sys.stderr)
    print(f"wrote {path.relative_to(benchlib.REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
