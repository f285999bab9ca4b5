"""Benchmark: the event path for one CreateUser: event → user read → checks → findings stored.

Two measurements against a moto server in its own process (IAM and DynamoDB), in an
account that already has --background-users users (bench/seeding.py). Each event is a
new user created the way DESIGN.md's walkthrough does (console password with a forced
reset, AdministratorAccess and IAMUserChangePassword attached directly), untimed, then:

1. handler: the real `functions/on_event/app.py` (as OnIamEventFunction runs it), loaded the way the Lambda runtime
   loads it (layer and function directory on sys.path, template.yaml's environment,
   AWS_ENDPOINT_URL pointing at the server), in a child process of its own so that its
   Powertools log and metric lines go to a file. Each event is events/create_user.json
   with a fresh eventID and the new user's name; `lambda_handler(event, context)` is
   timed. Reported: the first invocation after the import (cold: clients and the
   processor are made then) and the warm median, the handler's own `api_calls`, and
   the calls the server received, by operation.
2. handler_in_process: the same handler and events with moto in the handler's own process
   (`mock_aws`, the moto extension installed as the tests do), no HTTP: what the handler's
   warm time is when a call costs moto's work only (`--skip-in-process` leaves it out).
3. package: the same work split into its parts, in-process — `Inventory(ctx)` (new IAM
   client), `read_user` + `password_policy`, `run_user_checks`, `FindingsStore.record` —
   to show where the milliseconds go.

Notification delivery is not included (the handler's default announcer only logs).
Results: bench/results/event_path.json.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchlib
import seeding

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
CHANGE_PASSWORD = "arn:aws:iam::aws:policy/IAMUserChangePassword"
HANDLER = benchlib.REPO / "functions" / "on_event" / "app.py"
FINDINGS_TABLE = "iamguard-findings"
IDEMPOTENCY_TABLE = "iamguard-idempotency"


def create_event_user(iam: Any, name: str) -> None:
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password=seeding.PASSWORD, PasswordResetRequired=True)
    iam.attach_user_policy(UserName=name, PolicyArn=ADMIN)
    iam.attach_user_policy(UserName=name, PolicyArn=CHANGE_PASSWORD)


def create_user_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((benchlib.REPO / "events" / "create_user.json").read_text())
    event = copy.deepcopy(event)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["id"] = str(uuid.uuid4())
    event["time"] = now
    detail = event["detail"]
    detail["eventID"] = str(uuid.uuid4())
    detail["eventTime"] = now
    detail["requestParameters"]["userName"] = name
    detail["responseElements"]["user"]["userName"] = name
    detail["responseElements"]["user"]["arn"] = f"arn:aws:iam::{benchlib.ACCOUNT_ID}:user/{name}"
    return event


def handler_env(url: str) -> dict[str, str]:
    """template.yaml's environment of the event function, pointed at the local server."""
    env = benchlib.local_aws_env(url)
    env.update(
        POWERTOOLS_SERVICE_NAME="iamguard",
        POWERTOOLS_METRICS_NAMESPACE="iamguard",
        LOG_LEVEL="INFO",
        MODE="monitor",
        LANGUAGE="en",
        FINDINGS_TABLE=FINDINGS_TABLE,
        IDEMPOTENCY_TABLE=IDEMPOTENCY_TABLE,
        EVENT_SOURCES="aws.iam,aws.sts",
        GUARDRAIL_POLICY_ARN=f"arn:aws:iam::{benchlib.ACCOUNT_ID}:policy/iamguard-mfa-guardrail",
        IAMGUARD_ROLE_ARNS=f"arn:aws:iam::{benchlib.ACCOUNT_ID}:role/iamguard-on-iam-event",
        AWS_LAMBDA_FUNCTION_NAME="iamguard-on-iam-event",
    )
    return env


def handler_child(url: str, events: int, out: Path) -> int:
    """In the child process: load the handler as Lambda does, feed it `events` CreateUser events, time each."""
    module, import_ms = _load_handler()
    iam = seeding.iam_client(url)
    from iamguard_cli.local.lambda_context import LambdaContext

    context = LambdaContext.for_function("iamguard-on-iam-event", benchlib.ACCOUNT_ID)
    runs = []
    for i in range(events):
        name = f"event_user_{i:03d}"
        create_event_user(iam, name)
        event = create_user_event(name)
        benchlib.control(url, "calls/reset", {})
        started = time.perf_counter()
        line = module.lambda_handler(event, context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        calls = benchlib.control(url, "calls/reset", {})
        runs.append({"ms": elapsed_ms, "result": line, "server_calls": calls})
    out.write_text(json.dumps({"import_ms": import_ms, "runs": runs}, default=str))
    return 0


def in_process_child(background_users: int, events: int, out: Path) -> int:
    """In the child process: moto in-process (mock_aws), the account seeded, the handler fed `events` events."""
    from moto import mock_aws

    with mock_aws():
        from iamguard.aws import AwsContext
        from iamguard.persistence.findings import FindingsStore
        from iamguard_cli.local import moto_ext
        from iamguard_cli.local.bootstrap import ensure_findings_table, ensure_idempotency_table

        moto_ext.install()
        ctx = AwsContext(region=benchlib.REGION)
        iam = ctx.iam()
        seeding.create_groups(iam)
        for user in seeding.plan(background_users):
            seeding.create_user(iam, user)
        ensure_findings_table(FindingsStore(ctx.dynamodb(), FINDINGS_TABLE))
        ensure_idempotency_table(ctx.dynamodb(), IDEMPOTENCY_TABLE)
        module, import_ms = _load_handler()
        from iamguard_cli.local.lambda_context import LambdaContext

        context = LambdaContext.for_function("iamguard-on-iam-event", benchlib.ACCOUNT_ID)
        runs = []
        for i in range(events):
            name = f"event_user_{i:03d}"
            create_event_user(iam, name)
            event = create_user_event(name)
            started, cpu = time.perf_counter(), time.process_time()
            line = module.lambda_handler(event, context)
            elapsed_ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
            runs.append({"ms": elapsed_ms, "cpu_ms": cpu_ms, "result": line, "server_calls": {}})
    out.write_text(json.dumps({"import_ms": import_ms, "runs": runs}, default=str))
    return 0


def _load_handler() -> tuple[Any, float]:
    sys.path[:0] = [str(HANDLER.parent), str(benchlib.REPO / "layers" / "iamguard")]
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("app", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, (time.perf_counter() - started) * 1000


def in_process_benchmark(background_users: int, events: int, work: Path) -> dict[str, Any]:
    out = work / "event-handler-in-process-runs.json"
    log = work / "event-handler-in-process.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--in-process-child",
        str(background_users),
        str(events),
        str(out),
    ]
    env = handler_env("")  # no endpoint: moto's mock_aws answers
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # as the moto server and the tests load them
    return _summary(command, env, out, log)


def handler_benchmark(srv: benchlib.MotoProcess, events: int, work: Path) -> dict[str, Any]:
    out = work / "event-handler-runs.json"
    log = work / "event-handler.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--handler-child", srv.url, str(events), str(out)]
    return _summary(command, handler_env(srv.url), out, log)


def _summary(command: list[str], env: dict[str, str], out: Path, log: Path) -> dict[str, Any]:
    with log.open("wb") as sink:
        done = subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}", "log_tail": log.read_text(errors="replace")[-3000:]}
    data = json.loads(out.read_text())
    runs = data["runs"]
    first, warm = runs[0], runs[1:]
    calls: Counter[str] = Counter()
    for run in warm:
        calls.update(run["server_calls"])
    return {
        "handler": str(HANDLER.relative_to(benchlib.REPO)),
        "module_import_ms": round(data["import_ms"], 1),
        "first_invocation_ms": round(first["ms"], 1),
        "warm_invocations": len(warm),
        "warm_ms": {
            "median": round(statistics.median(r["ms"] for r in warm), 1),
            "min": round(min(r["ms"] for r in warm), 1),
            "max": round(max(r["ms"] for r in warm), 1),
        },
        **(
            {"warm_cpu_ms": _stats([r["cpu_ms"] for r in warm])}  # moto in-process: all of the work, in CPU time
            if "cpu_ms" in warm[0]
            else {}
        ),
        "result_of_last_event": _brief(warm[-1]["result"]),
        "api_calls_per_warm_event": round(sum(calls.values()) / len(warm), 1),
        "server_calls_per_warm_event": {k: round(v / len(warm), 2) for k, v in calls.most_common()},
        "server_calls_first_event": first["server_calls"],
        "log": str(log.relative_to(benchlib.REPO)),
    }


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


def _brief(line: dict[str, Any]) -> dict[str, Any]:
    """The handler's result line without the per-finding details."""
    return {
        "outcome": line.get("outcome"),
        "reason": line.get("reason"),
        "findings": len(line.get("findings", [])),
        "failed": sum(1 for f in line.get("findings", []) if f.get("status") == "FAIL"),
        "transitions": dict(Counter(f.get("transition") for f in line.get("findings", []))),
        "alerts": [f"{a.get('detection')} ({a.get('severity')})" for a in line.get("alerts", [])],
        "actions": [f"{a.get('action')} performed={a.get('performed')}" for a in line.get("actions", [])],
    }


def package_event(ctx: Any, store_client: Any, name: str) -> dict[str, Any]:
    """One event's work split into its package calls, timed part by part."""
    from iamguard.checks import run_user_checks
    from iamguard.checks.base import UserContext
    from iamguard.iam.inventory import CallCounter, Inventory
    from iamguard.persistence.findings import FindingsStore
    from iamguard.settings import Settings

    settings = Settings.from_env({})
    dynamodb_calls = CallCounter()
    marks = [time.perf_counter()]
    inventory = Inventory(ctx)
    marks.append(time.perf_counter())
    user, groups, documents = inventory.read_user(name)
    password_policy = inventory.password_policy()
    marks.append(time.perf_counter())
    context = UserContext(
        settings=settings,
        now=datetime.now(UTC),
        groups=groups,
        policy_documents=documents,
        password_policy=password_policy,
    )
    findings = run_user_checks(user, context, user.arn.split(":")[4])
    marks.append(time.perf_counter())
    changes = FindingsStore(dynamodb_calls.attach(store_client), FINDINGS_TABLE).record(findings)
    marks.append(time.perf_counter())
    phases = ("new_iam_client", "read_user_and_password_policy", "run_user_checks", "store_record")
    ms = {phase: (marks[i + 1] - marks[i]) * 1000 for i, phase in enumerate(phases)}
    ms["total"] = (marks[-1] - marks[0]) * 1000
    return {
        "ms": ms,
        "iam_calls": dict(inventory.counter.calls),
        "dynamodb_calls": dict(dynamodb_calls.calls),
        "findings": len(findings),
        "failed": sum(1 for f in findings if f.status.value == "FAIL"),
        "notable_changes": sum(1 for c in changes if c.notable),
    }


def package_benchmark(srv: benchlib.MotoProcess, events: int) -> dict[str, Any]:
    for key, value in benchlib.local_aws_env().items():
        if key.startswith("AWS_"):
            os.environ[key] = value
    from iamguard.aws import AwsContext

    iam = seeding.iam_client(srv.url)
    ctx = AwsContext(region=benchlib.REGION, endpoint_url=srv.url)
    store_client = ctx.dynamodb()
    runs = []
    for i in range(events + 1):  # the first one warms up; not counted
        name = f"package_user_{i:03d}"
        create_event_user(iam, name)
        measured = package_event(ctx, store_client, name)
        if i:
            runs.append(measured)
    return {
        "events": len(runs),
        "ms": {
            phase: {
                "median": round(statistics.median(r["ms"][phase] for r in runs), 1),
                "min": round(min(r["ms"][phase] for r in runs), 1),
                "max": round(max(r["ms"][phase] for r in runs), 1),
            }
            for phase in runs[0]["ms"]
        },
        "iam_calls_per_event": runs[-1]["iam_calls"],
        "dynamodb_calls_per_event": runs[-1]["dynamodb_calls"],
        "findings_per_event": runs[-1]["findings"],
        "failed_per_event": runs[-1]["failed"],
        "notable_changes_per_event": runs[-1]["notable_changes"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--background-users", type=int, default=2000, help="users already in the account")
    parser.add_argument("--repeat", type=int, default=20, help="events (new users) per measurement (default 20)")
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS / "event_path.json")
    parser.add_argument("--skip-in-process", action="store_true", help="leave out the in-process moto measurement")
    parser.add_argument("--only-in-process", action="store_true", help="only the in-process moto measurement")
    parser.add_argument("--handler-child", nargs=3, metavar=("URL", "EVENTS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--in-process-child", nargs=3, metavar=("USERS", "EVENTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.handler_child:
        url, events, out = args.handler_child
        return handler_child(url, int(events), Path(out))
    if args.in_process_child:
        users, events, out = args.in_process_child
        return in_process_child(int(users), int(events), Path(out))

    work = benchlib.RESULTS / "work" / "event-path"
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "event_path",
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "background_users": args.background_users,
    }
    if args.only_in_process:
        result["handler_in_process"] = in_process_benchmark(args.background_users, args.repeat + 1, work)
        result["load_after"] = os.getloadavg()
        benchlib.write_json(args.out, result)
        print(f"handler on in-process moto: {result['handler_in_process'].get('warm_ms')}", file=sys.stderr)
        return 0
    with benchlib.MotoProcess(log=work / "moto-server.log") as srv:
        seeding.seed_account(srv.url, seeding.plan(args.background_users))
        os.environ.update({k: v for k, v in benchlib.local_aws_env().items() if k.startswith("AWS_")})
        from iamguard.aws import AwsContext
        from iamguard.persistence.findings import FindingsStore
        from iamguard_cli.local.bootstrap import ensure_findings_table, ensure_idempotency_table

        dynamodb = AwsContext(region=benchlib.REGION, endpoint_url=srv.url).dynamodb()
        ensure_findings_table(FindingsStore(dynamodb, FINDINGS_TABLE))
        ensure_idempotency_table(dynamodb, IDEMPOTENCY_TABLE)
        if HANDLER.exists():
            result["handler"] = handler_benchmark(srv, args.repeat + 1, work)
        else:
            result["handler"] = {"skipped": f"{HANDLER.relative_to(benchlib.REPO)} does not exist"}
        result["package"] = package_benchmark(srv, args.repeat)
    if not args.skip_in_process:
        result["handler_in_process"] = in_process_benchmark(args.background_users, args.repeat + 1, work)
    result["load_after"] = os.getloadavg()
    benchlib.write_json(args.out, result)
    handler = result["handler"]
    if "warm_ms" in handler:
        print(
            f"handler: first {handler['first_invocation_ms']} ms, warm median {handler['warm_ms']['median']} ms, "
            f"{handler['api_calls_per_warm_event']} API calls per event",
            file=sys.stderr,
        )
    else:
        print(f"handler: {handler}", file=sys.stderr)
    print(f"package: {result['package']['ms']['total']['median']} ms median", file=sys.stderr)
    in_process = result.get("handler_in_process", {})
    if "warm_ms" in in_process:
        print(f"handler on in-process moto: warm median {in_process['warm_ms']['median']} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
