"""Benchmark: the organization audit end to end on moto — the planner, the SQS fan-out, one audit per account.

One moto server in its own process (bench/moto_server.py) holds the whole organization:
Organizations with the hub as management account, N member accounts each created with
CreateAccount, its OrganizationAccountAccessRole (what AWS creates; the server's control hook
adds it, as iamguard's moto extension does for the local runtime) and the member stack
(member/template.yaml, provisioned through that role by the local runtime's Provisioner, as the
StackSet would), and USERS users per member (bench/seeding.py, the "current" shape).

Then, per round, as AWS runs it:

1. the real planner (functions/plan_audit/app.py, loaded as Lambda loads it, in a process of its
   own) lists the ACTIVE accounts and sends one message per account to the audit queue;
2. CONCURRENCY consumer processes — Lambda's SQS event source mapping with batch size 1 and
   MaximumConcurrency = AuditConcurrency, each process one warm function instance — take one
   message at a time (ReceiveMessage), hand it to the real audit function
   (functions/audit_account/app.py) as an SQS event, and delete it unless the handler reported it
   as a batch item failure.

Measured: the wall time end to end (planner started → queue drained), the planner's own time, each
account's audit time (the handler's invocation), the API calls the server received by operation
(IAM, STS, DynamoDB, SQS, Organizations: whoever sent them, as bench/audit_users.py counts them),
and per invocation the calls the handler made by service and the DynamoDB items it read
(ScannedCount of its Scans, Count of its Queries), counted in the consumer process.

`--accounts 10 --accounts 30 --accounts 100` grows one organization (the table keeps what earlier
counts stored) and runs two rounds at each count: "first" (the accounts that just joined are
audited for the first time: every finding is new) and "steady" (every account audited before and
unchanged: a scheduled run's normal case). The steady rounds show whether an account's audit costs
the same whatever the number of accounts.

`--model-users 2000` then measures one member account of that many users on a fresh server, with
each network model (`--model-delay-ms`, default 0 and 30: the moto server holds every request that
long, bench/moto_server.py), first and steady round each on a fresh table: the per-account numbers
bench/org_model.py scales to 100 accounts on AWS.

Results: bench/results/org_audit-<users>.json and org_audit_account-<users>.json; render them
with bench/report.py --write. One command runs it all (`make bench-org`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import benchlib
import seeding

PLANNER = benchlib.REPO / "functions" / "plan_audit" / "app.py"
AUDITOR = benchlib.REPO / "functions" / "audit_account" / "app.py"
MEMBER_TEMPLATE = benchlib.REPO / "member" / "template.yaml"
HUB_STACK = "iamguard"
QUEUE_NAME = "iamguard-audit"
# template.yaml: AuditQueue's VisibilityTimeout (six times the audit function's timeout).
VISIBILITY_TIMEOUT = 1800
# template.yaml's AuditConcurrency default (the event source mapping's MaximumConcurrency).
AUDIT_CONCURRENCY = 10
DEFAULT_ACCOUNTS = (10, 30, 100)
ROUND_BUDGET = 900.0  # one 15-minute scheduled window (issue #14's target)
SERVICES = ("iam", "sts", "dynamodb", "sqs", "organizations")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0.95: the value 95 % of the values are at or below)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def distribution(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(percentile(values, 0.95), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


def by_service(calls: dict[str, int] | Counter[str]) -> dict[str, int]:
    """{"iam:GetUser": 3, "dynamodb:Scan": 2, ...} → {"iam": 3, "dynamodb": 2, ...} (every service listed)."""
    totals: Counter[str] = Counter({service: 0 for service in SERVICES})
    for key, count in calls.items():
        totals[key.split(":", 1)[0]] += count
    return dict(totals)


# ----------------------------------------------------------------------------- the functions' processes
def hub_env(url: str, organization_id: str, table: str, queue_url: str) -> dict[str, str]:
    """template.yaml's environment of the planner and the audit function in organization mode, on the server."""
    env = benchlib.local_aws_env(url)
    env.update(
        POWERTOOLS_SERVICE_NAME="iamguard",
        POWERTOOLS_METRICS_NAMESPACE="iamguard",
        LOG_LEVEL="WARNING",
        MODE="monitor",
        LANGUAGE="en",
        FINDINGS_TABLE=table,
        ORGANIZATION_ID=organization_id,
        HUB_ACCOUNT_ID=benchlib.ACCOUNT_ID,  # the hub is moto's default account
        AUDIT_QUEUE_URL=queue_url,
    )
    return env


# iamguard's clients wait 30 s for a response (iamguard.aws). A DynamoDB Scan page comes back in
# milliseconds; moto serializes a 1 MB page in Python, which on a loaded machine took longer than that (and
# again on every retry, until the audit failed), so the functions' clients here wait up to this long: the
# bench measures the audit, not moto against that timeout.
READ_TIMEOUT_SECONDS = 900


def load_function(path: Path) -> Any:
    """A function's app.py loaded as the Lambda runtime loads it (its directory and the layer on sys.path)."""
    sys.path[:0] = [str(path.parent), str(benchlib.REPO / "layers" / "iamguard")]
    import iamguard.aws
    from botocore.config import Config

    def patient(**options: Any) -> Config:
        return Config(**{**options, "read_timeout": READ_TIMEOUT_SECONDS})

    setattr(iamguard.aws, "Config", patient)  # noqa: B010 (the clients it makes from now on)
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CallCounter:
    """Counts every botocore call made in this process while `active`, by service:Operation, and the
    DynamoDB items the calls read (a Scan's ScannedCount, a Query's Count; every page)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = False
        self.calls: Counter[str] = Counter()
        self.items_read: Counter[str] = Counter()

    def install(self) -> None:
        from botocore.client import BaseClient

        original = getattr(BaseClient, "_make_api_call")  # noqa: B009 (private: mypy's stubs leave it out)
        counter = self

        def counted(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if not counter.active:
                return original(client, operation_name, api_params)
            model = client.meta.service_model
            key = f"{model.signing_name or model.endpoint_prefix}:{operation_name}"
            response: dict[str, Any] = {}
            try:
                response = original(client, operation_name, api_params)
                return response
            finally:
                with counter.lock:
                    counter.calls[key] += 1
                    if operation_name == "Scan":
                        counter.items_read["scanned"] += int(response.get("ScannedCount", 0))
                    elif operation_name == "Query":
                        counter.items_read["queried"] += int(response.get("Count", 0))

        setattr(BaseClient, "_make_api_call", counted)  # noqa: B010

    def start(self) -> None:
        with self.lock:
            self.calls.clear()
            self.items_read.clear()
            self.active = True

    def stop(self) -> tuple[dict[str, int], dict[str, int]]:
        with self.lock:
            self.active = False
            return dict(self.calls), dict(self.items_read)


def planner_child(url: str, out: Path) -> int:
    """In a process of its own: the planner's import (cold start) and one scheduled invocation."""
    from iamguard_cli.local.lambda_context import LambdaContext

    counter = CallCounter()
    counter.install()
    started = time.perf_counter()
    module = load_function(PLANNER)
    import_ms = (time.perf_counter() - started) * 1000
    context = LambdaContext.for_function("iamguard-plan-audit", benchlib.ACCOUNT_ID)
    counter.start()
    started = time.perf_counter()
    answer = module.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)
    seconds = time.perf_counter() - started
    calls, _ = counter.stop()
    out.write_text(json.dumps({"import_ms": import_ms, "seconds": seconds, "answer": answer, "calls": calls}))
    return 0


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received message as Lambda's SQS event source mapping hands it to the function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": benchlib.REGION,
    }


def consumer_child(url: str, out: Path, go: Path, stop: Path) -> int:
    """In a process of its own: one warm instance of the audit function behind the event source mapping.

    Imports the function (its cold start, timed), waits for `go`, then takes one message at a time
    until the queue is empty (or `stop` exists: the round's time budget is over), timing each
    invocation and counting its calls.
    """
    from iamguard_cli.local.lambda_context import LambdaContext

    counter = CallCounter()
    counter.install()
    started = time.perf_counter()
    module = load_function(AUDITOR)
    import_ms = (time.perf_counter() - started) * 1000
    context = LambdaContext.for_function("iamguard-audit-account", benchlib.ACCOUNT_ID, timeout_seconds=300)
    sqs = module.AWS.client("sqs")
    queue_url = os.environ["AUDIT_QUEUE_URL"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    profile = os.environ.get("BENCH_PROFILE") == "1"  # --profile: cProfile each invocation (slower)
    out.with_suffix(".ready").write_text("ready")
    while not go.exists():
        time.sleep(0.02)
    invocations = []
    poller: Counter[str] = Counter()
    while not stop.exists():
        poller["ReceiveMessage"] += 1
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            break  # the planner queued everything before the consumers started: empty means drained
        message = messages[0]
        account_id = json.loads(message["Body"]).get("account_id")
        event = {"Records": [sqs_record(message, queue_arn)]}
        counter.start()
        started = time.perf_counter()
        cpu_started = time.process_time()  # the function's own CPU: this process (moto runs in the server's)
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            answer = profiler.runcall(module.lambda_handler, event, context)
            profiler.dump_stats(out.with_name(f"{out.stem}-{account_id}.prof"))
        else:
            answer = module.lambda_handler(event, context)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        calls, items = counter.stop()
        failed = bool(answer.get("batchItemFailures"))
        if not failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            poller["DeleteMessage"] += 1
        invocations.append(
            {
                "account_id": account_id,
                "seconds": round(seconds, 4),
                "cpu_seconds": round(cpu_seconds, 4),
                "finished_at": time.time(),
                "calls": calls,
                "dynamodb_items_read": items,
                "failed": failed,
            }
        )
    import resource

    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    out.write_text(
        json.dumps(
            {
                "import_ms": import_ms,
                "invocations": invocations,
                "poller_calls": dict(poller),
                "max_rss_mb": round(max_rss_mb, 1),
            }
        )
    )
    return 0


# ----------------------------------------------------------------------------- the organization
class Organization:
    """The hub (moto's default account, the management account) and its members on one bench server."""

    def __init__(self, srv: benchlib.MotoProcess, users: list[seeding.PlannedUser], workers: int) -> None:
        from iamguard.aws import AwsContext

        self.srv = srv
        self.users = users
        self.workers = workers
        self.hub = AwsContext(region=benchlib.REGION, endpoint_url=srv.url)
        organizations = self.hub.client("organizations")
        self.id = str(organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"])
        self.members: list[str] = []
        sqs = self.hub.client("sqs")
        self.queue_url = str(
            sqs.create_queue(QueueName=QUEUE_NAME, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)})[
                "QueueUrl"
            ]
        )
        self.seed_calls = 0
        self.seed_seconds = 0.0
        self._lock = threading.Lock()

    def new_table(self, name: str) -> str:
        from iamguard.persistence.findings import FindingsStore
        from iamguard_cli.local.bootstrap import ensure_findings_table

        ensure_findings_table(FindingsStore(self.hub.dynamodb(), name))
        return name

    def grow(self, members: int) -> list[str]:
        """Join accounts until there are `members`, concurrently; returns the new account ids."""
        wanted = members - len(self.members)
        if wanted <= 0:
            return []
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, min(4, wanted))) as pool:
            joined = list(pool.map(self._join, range(len(self.members), members)))
        self.members.extend(joined)
        self.seed_seconds += time.perf_counter() - started
        return joined

    def _join(self, n: int) -> str:
        """CreateAccount, OrganizationAccountAccessRole, the member stack, the users (as the org would have them)."""
        import boto3
        from iamguard.aws import AwsContext
        from iamguard_cli.local.provision import Provisioner
        from iamguard_cli.local.routing import Template

        organizations = self.hub.client("organizations")
        status = organizations.create_account(Email=f"member-{n:03d}@example.com", AccountName=f"member-{n:03d}")
        account_id = str(status["CreateAccountStatus"]["AccountId"])
        role_arn = self.srv.organization_access_role(account_id)
        credentials = self.hub.sts().assume_role(RoleArn=role_arn, RoleSessionName="bench-seeding")["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=benchlib.REGION,
        )
        member = AwsContext(region=benchlib.REGION, endpoint_url=self.srv.url, _session=session)
        Provisioner(
            Template.load(MEMBER_TEMPLATE),
            member,
            {
                "HubAccountId": benchlib.ACCOUNT_ID,
                "HubStackName": HUB_STACK,
                "HubEventBusArn": f"arn:aws:events:{benchlib.REGION}:{benchlib.ACCOUNT_ID}:event-bus/iamguard-hub",
                "OrganizationId": self.id,
                "Mode": "monitor",
            },
            stack_name=f"StackSet-iamguard-member-{account_id}",
            account_id=account_id,
            roles_and_rules=True,
        ).run()
        # Each account its own user names: the findings table keys users by name alone (USER#<name>, the
        # open "one user name in two member accounts shares one record"), so shared names would make the
        # accounts overwrite each other's findings and this would measure that instead of the audit.
        users = seeding.renamed(self.users, f"m{n:03d}-u")
        calls = seeding.seed_account(
            self.srv.url, users, workers=self.workers, account_id=account_id, credentials=credentials
        )
        self.srv.sign_in(seeding.sign_ins(users), account_id=account_id)
        seeding.iam_client(self.srv.url, credentials=credentials).generate_credential_report()
        with self._lock:
            self.seed_calls += calls
        log(f"joined {account_id} (member-{n:03d}): {calls} IAM calls")
        return account_id


# ----------------------------------------------------------------------------- one round
def run_round(
    org: Organization,
    table: str,
    concurrency: int,
    work: Path,
    label: str,
    new_accounts: set[str],
    budget: float = math.inf,
) -> dict[str, Any]:
    """The planner, then `concurrency` consumers until the queue is drained (or `budget` seconds have passed
    since the planner's invocation: then no audit starts any more); everything measured."""
    work.mkdir(parents=True, exist_ok=True)
    env = hub_env(org.srv.url, org.id, table, org.queue_url)
    script = str(Path(__file__).resolve())
    go, stop = work / "go", work / "stop"
    go.unlink(missing_ok=True)
    stop.unlink(missing_ok=True)
    outs = [work / f"consumer-{i}.json" for i in range(concurrency)]
    for out in outs:
        out.unlink(missing_ok=True)
        out.with_suffix(".ready").unlink(missing_ok=True)
    consumers = []
    for i, out in enumerate(outs):
        with (work / f"consumer-{i}.log").open("wb") as sink:
            consumers.append(
                subprocess.Popen(
                    [sys.executable, script, "--consumer-child", org.srv.url, str(out), str(go), str(stop)],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
    while not all(out.with_suffix(".ready").exists() for out in outs):  # every instance warm before the schedule
        if any(p.poll() is not None for p in consumers):
            raise RuntimeError(f"a consumer died at start: see {work}/consumer-*.log")
        time.sleep(0.1)
    result: dict[str, Any] = {
        "round": label,
        "started_at": benchlib.now(),
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }
    org.srv.reset_calls()
    server_cpu = org.srv.cpu_seconds()
    planner_out = work / "planner.json"
    started = time.perf_counter()
    with (work / "planner.log").open("wb") as sink:
        done = subprocess.run(
            [sys.executable, script, "--planner-child", org.srv.url, str(planner_out)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=False,
        )
    planner_process = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the planner failed (exit {done.returncode}): see {work}/planner.log")
    planner = json.loads(planner_out.read_text())
    # The schedule fires the planner; its cold start is not the fan-out's: end to end runs from its invocation.
    planner_invoked = started + (planner_process - planner["seconds"])
    invoked_epoch = time.time() - (time.perf_counter() - planner_invoked)
    go.write_text("go")
    stopped = False
    while any(p.poll() is None for p in consumers):
        if not stopped and time.perf_counter() - planner_invoked > budget:
            stop.write_text("stop")  # the audits in flight finish; the rest stay queued
            stopped = True
            log(f"[{label}] the round's budget of {budget:g} s is over: no new audits")
        time.sleep(0.2)
    finished = time.perf_counter()
    if stopped:
        org.hub.client("sqs").purge_queue(QueueUrl=org.queue_url)
    server_calls = org.srv.reset_calls()
    result["server_cpu_seconds"] = round(org.srv.cpu_seconds() - server_cpu, 1)
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    if any(p.returncode for p in consumers):
        raise RuntimeError(f"a consumer failed: see {work}/consumer-*.log")
    outputs = [json.loads(out.read_text()) for out in outs]
    invocations = [inv for output in outputs for inv in output["invocations"]]
    audited = [inv for inv in invocations if inv["account_id"] != benchlib.ACCOUNT_ID]
    members = len(org.members)
    handler_calls: Counter[str] = Counter()
    for inv in audited:
        handler_calls.update(inv["calls"])
    poller: Counter[str] = Counter()
    for output in outputs:
        poller.update(output["poller_calls"])
    last_done = max((inv["finished_at"] for inv in invocations), default=invoked_epoch)
    result.update(
        {
            "accounts": members,
            "accounts_planned": planner["answer"]["queued"],
            "budget_seconds": None if math.isinf(budget) else budget,
            # Stopped: the budget ran out with accounts still queued (they were not audited in this round).
            "stopped_at_budget": stopped and len(invocations) < planner["answer"]["queued"],
            "over_budget": last_done - invoked_epoch > budget,
            "accounts_audited": len(audited),
            "accounts_audited_within_budget": sum(1 for inv in audited if inv["finished_at"] - invoked_epoch <= budget),
            "invocations": len(invocations),
            "failed_invocations": sum(1 for inv in invocations if inv["failed"]),
            "concurrency": concurrency,
            # The planner's invocation → the last account's audit done (the consumers then find the queue empty).
            "wall_seconds": round(last_done - invoked_epoch, 2),
            "wall_seconds_until_consumers_exited": round(finished - planner_invoked, 2),
            "planner": {
                "seconds": round(planner["seconds"], 3),
                "import_ms": round(planner["import_ms"]),
                "calls": planner["calls"],
                "answer": {k: v for k, v in planner["answer"].items() if k != "stale"},
                "stale": len(planner["answer"].get("stale", [])),
            },
            "consumer_import_ms": distribution([o["import_ms"] for o in outputs]),
            "account_seconds": distribution([inv["seconds"] for inv in audited]),
            # The audit function's own CPU per account (client side: iamguard and botocore, not moto's server),
            # and the largest consumer process's peak memory: what a Lambda instance would need.
            "account_cpu_seconds": distribution([inv.get("cpu_seconds", 0.0) for inv in audited]),
            "consumer_max_rss_mb": max((o.get("max_rss_mb", 0.0) for o in outputs), default=0.0),
            "new_account_seconds": distribution(
                [inv["seconds"] for inv in audited if inv["account_id"] in new_accounts]
            ),
            "hub_account_seconds": next(
                (inv["seconds"] for inv in invocations if inv["account_id"] == benchlib.ACCOUNT_ID), None
            ),
            "handler_calls_per_account": {
                "by_service": {k: round(v / max(1, len(audited)), 1) for k, v in by_service(handler_calls).items()},
                "by_operation": {k: round(v / max(1, len(audited)), 1) for k, v in handler_calls.most_common()},
                "total": distribution([float(sum(inv["calls"].values())) for inv in audited]),
            },
            "dynamodb_items_read_per_account": distribution(
                [float(sum(inv["dynamodb_items_read"].values())) for inv in audited]
            ),
            "dynamodb_items_scanned_per_account": distribution(
                [float(inv["dynamodb_items_read"].get("scanned", 0)) for inv in audited]
            ),
            "event_source_mapping_calls": dict(poller),
            "server_calls": sum(server_calls.values()),
            "server_calls_by_service": by_service(server_calls),
            "server_calls_per_account_by_service": {
                k: round(v / max(1, members), 1) for k, v in by_service(server_calls).items()
            },
            "server_calls_by_operation": dict(sorted(server_calls.items(), key=lambda kv: -kv[1])),
            "per_account": [
                {
                    "account_id": inv["account_id"],
                    "seconds": inv["seconds"],
                    "calls": sum(inv["calls"].values()),
                    "dynamodb_items_read": sum(inv["dynamodb_items_read"].values()),
                    "first": inv["account_id"] in new_accounts,
                }
                for inv in sorted(audited, key=lambda inv: inv["finished_at"])
            ],
        }
    )
    log(
        f"[{label}] {members} accounts: {result['wall_seconds']} s end to end, per account "
        f"{result['account_seconds'].get('median')} s median / {result['account_seconds'].get('max')} s max, "
        f"{result['dynamodb_items_read_per_account'].get('median')} DynamoDB items read per account"
    )
    return result


# ----------------------------------------------------------------------------- the two benchmarks
def bench_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """One organization grown through --accounts, a first and a steady round at each count."""
    users = seeding.plan(args.users, args.seed)
    work = benchlib.RESULTS / "work" / f"org-{args.users}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = benchlib.RESULTS / f"org_audit-{args.users}.json"
    result: dict[str, Any] = {
        "benchmark": "org_audit",
        "users_per_account": args.users,
        "shape": seeding.CURRENT,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "delay_ms": 0.0,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "account": seeding.describe(users),
        "counts": [],
        "complete": False,
    }
    with benchlib.MotoProcess(log=work / "moto-server.log") as srv:
        org = Organization(srv, users, args.workers)
        table = org.new_table("iamguard-org-findings")
        for count in sorted(set(args.accounts)):
            log(f"growing the organization to {count} members of {args.users} users")
            new = set(org.grow(count))
            entry: dict[str, Any] = {
                "accounts": count,
                "seeded_seconds_so_far": round(org.seed_seconds, 1),
                "rounds": [],
            }
            result["counts"].append(entry)
            for label in ("first", "steady"):
                round_work = work / f"{count}-{label}"
                entry["rounds"].append(
                    run_round(org, table, args.concurrency, round_work, label, new, args.round_budget)
                )
                benchlib.write_json(path, result)
                if entry["rounds"][-1]["stopped_at_budget"]:
                    entry["not_measured"] = (
                        f"the {label} round did not finish within {args.round_budget:g} s: "
                        "later rounds and counts would start from accounts never audited"
                    )
                    break
                new = set()
            if "not_measured" in entry:
                break
        result["seeding"] = {"seconds": round(org.seed_seconds, 1), "iam_calls": org.seed_calls}
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    result["finished_at"] = benchlib.now()
    result["complete"] = True
    benchlib.write_json(path, result)
    log(f"wrote {path.relative_to(benchlib.REPO)}")
    return result


def bench_account(args: argparse.Namespace) -> dict[str, Any]:
    """One member account of --model-users users, each network model on its own table: first and steady round."""
    users = seeding.plan(args.model_users, args.seed)
    work = benchlib.RESULTS / "work" / f"org-account-{args.model_users}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = benchlib.RESULTS / f"org_audit_account-{args.model_users}.json"
    result: dict[str, Any] = {
        "benchmark": "org_audit_account",
        "users": args.model_users,
        "shape": seeding.CURRENT,
        "seed": args.seed,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "account": seeding.describe(users),
        "networks": [],
        "complete": False,
    }
    with benchlib.MotoProcess(log=work / "moto-server.log") as srv:
        org = Organization(srv, users, args.workers)
        new = set(org.grow(1))
        result["seeding"] = {"seconds": round(org.seed_seconds, 1), "iam_calls": org.seed_calls}
        for delay_ms in args.model_delay_ms:
            srv.set_delay(delay_ms / 1000)
            table = org.new_table(f"iamguard-findings-{delay_ms:g}ms")
            network: dict[str, Any] = {"delay_ms": delay_ms, "network": benchlib.network_label(delay_ms), "rounds": []}
            result["networks"].append(network)
            for label in ("first", "steady"):
                network["rounds"].append(
                    run_round(
                        org, table, 1, work / f"{delay_ms:g}ms-{label}", label, new if label == "first" else set()
                    )
                )
                benchlib.write_json(path, result)
        srv.set_delay(0)
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    result["finished_at"] = benchlib.now()
    result["complete"] = True
    benchlib.write_json(path, result)
    log(f"wrote {path.relative_to(benchlib.REPO)}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--accounts",
        type=int,
        action="append",
        help=f"member accounts (repeatable, grown in order; default {', '.join(map(str, DEFAULT_ACCOUNTS))}; 0: skip)",
    )
    parser.add_argument("--users", type=int, default=200, help="users per member account (default 200)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=AUDIT_CONCURRENCY,
        help=f"audit function instances at once: AuditConcurrency (default {AUDIT_CONCURRENCY}, the template's)",
    )
    parser.add_argument(
        "--model-users", type=int, default=2000, help="users of the one account measured for the model (0: skip)"
    )
    parser.add_argument(
        "--model-delay-ms",
        type=float,
        action="append",
        help="network models of the model's account, ms per request (repeatable; default 0 and 30)",
    )
    parser.add_argument(
        "--round-budget",
        type=float,
        default=ROUND_BUDGET,
        help=f"seconds after the planner's invocation when a round of the sweep starts no more audits "
        f"(default {ROUND_BUDGET:g}: the schedule's window)",
    )
    parser.add_argument("--workers", type=int, default=4, help="seeding threads per account (4 accounts at once)")
    parser.add_argument("--seed", type=int, default=2, help="random seed of the account plan (default 2)")
    parser.add_argument("--planner-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--consumer-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.planner_child:
        return planner_child(args.planner_child[0], Path(args.planner_child[1]))
    if args.consumer_child:
        url, out, go, stop = args.consumer_child
        return consumer_child(url, Path(out), Path(go), Path(stop))
    # This process acts as the hub's administrator (moto's default account): dummy keys, the local server only.
    os.environ.update({k: v for k, v in benchlib.local_aws_env().items() if k.startswith("AWS_")})
    args.accounts = [a for a in (args.accounts or list(DEFAULT_ACCOUNTS)) if a > 0]
    args.model_delay_ms = args.model_delay_ms if args.model_delay_ms is not None else list(benchlib.DEFAULT_DELAYS_MS)
    ok = True
    if args.accounts:
        sweep = bench_sweep(args)
        ok = all(not r["failed_invocations"] for c in sweep["counts"] for r in c["rounds"])
    if args.model_users:
        account = bench_account(args)
        ok = ok and all(not r["failed_invocations"] for n in account["networks"] for r in n["rounds"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
