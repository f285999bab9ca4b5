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
   handler_delayed (--delay-ms, default 30): the same with every AWS request held that long at
   the server (the network model "moto + 30 ms"). The server also reports each event's rounds:
   its requests that overlapped in time (sent together, waited for together) are one round.
2. handler_in_process: the same handler and events with moto in the handler's own process
   (`mock_aws`, the moto extension installed as the tests do), no HTTP: what the handler's
   warm time is when a call costs moto's work only (`--skip-in-process` leaves it out).
3. package: the same work split into its parts, in-process — `Inventory(ctx)` (new IAM
   client), `read_user` + `password_policy`, `run_user_checks`, `FindingsStore.record` —
   to show where the milliseconds go.

Notifications: the stack's announcer with no channel configured, so each event's messages are
claimed in the outbox and held for the digest (a transaction and the outbox's Query); nothing is
sent over HTTP.
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
import threading
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


def handler_child(url: str, events: int, out: Path, prefix: str = "event_user") -> int:
    """In the child process: load the handler as Lambda does, feed it `events` CreateUser events, time each."""
    module, import_ms = _load_handler()
    iam = seeding.iam_client(url)
    from iamguard_cli.local.lambda_context import LambdaContext

    context = LambdaContext.for_function("iamguard-on-iam-event", benchlib.ACCOUNT_ID)
    runs = []
    for i in range(events):
        name = f"{prefix}_{i:03d}"
        create_event_user(iam, name)
        event = create_user_event(name)
        benchlib.control(url, "calls/reset", {})
        benchlib.control(url, "waits/reset", {})
        started = time.perf_counter()
        line = module.lambda_handler(event, context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        calls = benchlib.control(url, "calls/reset", {})
        waits = benchlib.control(url, "waits/reset", {})
        runs.append({"ms": elapsed_ms, "result": line, "server_calls": calls, "waits": waits})
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
        split = CallCpu()
        runs = []
        for i in range(events):
            name = f"event_user_{i:03d}"
            create_event_user(iam, name)
            event = create_user_event(name)
            split.reset()
            started, cpu = time.perf_counter(), time.process_time()
            line = module.lambda_handler(event, context)
            elapsed_ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
            runs.append(
                {"ms": elapsed_ms, "cpu_ms": cpu_ms, "split": split.taken(), "result": line, "server_calls": {}}
            )
    out.write_text(json.dumps({"import_ms": import_ms, "runs": runs}, default=str))
    return 0


class CallCpu:
    """The CPU an in-process event spends inside AWS calls: botocore's `_make_api_call` and, within it, moto.

    Each call is timed with its own thread's CPU clock (`time.thread_time`), so calls made from
    worker threads count too; the handler's process CPU minus the calls' is iamguard's own code
    with the libraries it calls itself (Powertools, pydantic).
    """

    def __init__(self) -> None:
        from botocore.client import BaseClient
        from moto.core.botocore_stubber import BotocoreStubber

        self.lock = threading.Lock()
        self.calls = self.calls_cpu = self.moto_cpu = 0.0
        make_api_call, answer = BaseClient._make_api_call, BotocoreStubber.__call__  # type: ignore[attr-defined]

        def timed_call(client: Any, operation: str, params: Any) -> Any:
            started = time.thread_time()
            try:
                return make_api_call(client, operation, params)
            finally:
                self._add("calls_cpu", time.thread_time() - started, count=True)

        def timed_answer(stubber: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return answer(stubber, *args, **kwargs)
            finally:
                self._add("moto_cpu", time.thread_time() - started)

        BaseClient._make_api_call = timed_call  # type: ignore[attr-defined]
        BotocoreStubber.__call__ = timed_answer  # type: ignore[method-assign,assignment]

    def _add(self, what: str, seconds: float, count: bool = False) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + seconds)
            self.calls += count

    def reset(self) -> None:
        with self.lock:
            self.calls = self.calls_cpu = self.moto_cpu = 0.0

    def taken(self) -> dict[str, float]:
        with self.lock:
            return {"calls": self.calls, "calls_cpu_ms": self.calls_cpu * 1000, "moto_cpu_ms": self.moto_cpu * 1000}


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


def handler_benchmark(
    srv: benchlib.MotoProcess, events: int, work: Path, name: str = "event-handler", prefix: str = "event_user"
) -> dict[str, Any]:
    out = work / f"{name}-runs.json"
    log = work / f"{name}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--handler-child", srv.url, str(events), str(out), prefix]
    return _summary(command, handler_env(srv.url), out, log)


def delayed_handler_benchmark(srv: benchlib.MotoProcess, events: int, work: Path, delay_ms: float) -> dict[str, Any]:
    """The handler again with every AWS request held `delay_ms` (the network model "moto + 30 ms"):
    each round of calls (`rounds_per_warm_event`: calls sent together are waited for together) costs it once."""
    srv.set_delay(delay_ms / 1000)
    try:
        delayed = handler_benchmark(srv, events, work, name="event-handler-delayed", prefix="delayed_user")
    finally:
        srv.set_delay(0)
    delayed["delay_ms"] = delay_ms
    return delayed


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
        **({"warm_cpu_split": _cpu_split(warm)} if "split" in warm[0] else {}),
        "result_of_last_event": _brief(warm[-1]["result"]),
        "api_calls_per_warm_event": round(sum(calls.values()) / len(warm), 1),
        "server_calls_per_warm_event": {k: round(v / len(warm), 2) for k, v in calls.most_common()},
        "server_calls_first_event": first["server_calls"],
        **(
            {"rounds_per_warm_event": statistics.median(r["waits"]["rounds"] for r in warm)}  # the server's view
            if "waits" in warm[0]
            else {}
        ),
        "log": str(log.relative_to(benchlib.REPO)),
    }


def _cpu_split(warm: list[dict[str, Any]]) -> dict[str, float]:
    """Medians of the warm events' CPU ms: in AWS calls (moto; botocore and the rest of the call), and outside them."""
    calls = statistics.median(r["split"]["calls_cpu_ms"] for r in warm)
    moto = statistics.median(r["split"]["moto_cpu_ms"] for r in warm)
    total = statistics.median(r["cpu_ms"] for r in warm)
    return {
        "calls_per_event": statistics.median(r["split"]["calls"] for r in warm),
        "in_calls_ms": round(calls, 1),
        "moto_ms": round(moto, 1),
        "botocore_ms": round(calls - moto, 1),
        "outside_calls_ms": round(total - calls, 1),
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
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=30,
        help="also time the handler with every AWS request held this long (network model; default 30, 0 to skip)",
    )
    parser.add_argument("--handler-child", nargs=4, metavar=("URL", "EVENTS", "OUT", "PREFIX"), help=argparse.SUPPRESS)
    parser.add_argument("--in-process-child", nargs=3, metavar=("USERS", "EVENTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.handler_child:
        url, events, out, prefix = args.handler_child
        return handler_child(url, int(events), Path(out), prefix)
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
            if args.delay_ms:
                result["handler_delayed"] = delayed_handler_benchmark(srv, args.repeat + 1, work, args.delay_ms)
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
