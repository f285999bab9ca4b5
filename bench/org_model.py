"""A model of the organization audit on AWS, from the measured numbers: does A accounts x U users fit one window?

    .venv/bin/python bench/org_model.py                         # 100 accounts, the measured account size
    .venv/bin/python bench/org_model.py --accounts 300 --concurrency 20

It reads bench/results/org_audit_account-<U>.json (one member account of U users audited by the
real audit function through the SQS fan-out, on moto with each request held 30 ms like a real
region's round trip, bench/org_audit.py) and, for the findings table's reads on the code of the
run, bench/results/org_audit-<users>.json (the account-count sweep). It measures nothing itself.

A scheduled round on AWS, as the template deploys it (template.yaml):

* the planner: ListAccounts pages (at most 20 accounts a page: the API's MaxResults), one
  SendMessageBatch per 10 accounts (SQS's batch limit), and its reads of the stored audits —
  each a round trip at the network model's latency, plus its measured own time;
* the event source mapping: Lambda starts an SQS event source with 5 concurrent invocations and
  adds up to 300 instances a minute (AWS Lambda Developer Guide, "Configuring scaling behavior
  for SQS event source mappings"), up to MaximumConcurrency = AuditConcurrency;
* the audits: each account is one invocation, one at a time per instance, so with C instances
  the accounts go in ceil(A / C) waves of the measured per-account time (at U users, 30 ms per
  request), plus one ReceiveMessage and one DeleteMessage per account (the poller's);
* when the stored audit reads the whole findings table (the "read every finding" step of the
  code that was measured: `FindingsStore.record(..., full_audit_account=...)`), each account's
  audit also pages through every finding of every account: A x U x F items (F findings per user,
  measured), in 1 MB pages (items per page measured by moto, which applies DynamoDB's 1 MB limit),
  one round trip each. That is a lower bound: it leaves out parsing the items and holding them.

What the model cannot know, and says: IAM's and STS's request rate quotas are not published (the
IAM and STS quotas page lists object sizes and counts only; AWS's "How to monitor and query IAM
resources at scale - Part 2" says both throttle with token buckets whose size and refill "depends
on the API", and the re:Post article "How do I resolve API throttling or 'Rate exceeded' errors
for IAM and AWS STS?" that the rates apply per account and cannot be increased). So it reports the
request rate each account sees (one audit per account at a time, whatever A is) and the hub's
AssumeRole rate, to compare with whatever the account already spends; iamguard's clients retry
throttled calls with botocore's adaptive mode (iamguard.aws).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import benchlib

WINDOW_SECONDS = 900.0  # one 15-minute scheduled window (issue #14's target)
LAMBDA_TIMEOUT_SECONDS = 300.0  # template.yaml Globals: Function Timeout
LIST_ACCOUNTS_PAGE = 20  # Organizations ListAccounts: MaxResults 1-20 (the API model botocore ships)
SEND_MESSAGE_BATCH = 10  # SQS SendMessageBatch: up to 10 messages
ESM_INITIAL_CONCURRENCY = 5  # Lambda's SQS event source: starts with five concurrent invocations
ESM_RAMP_PER_MINUTE = 300  # ... and adds up to 300 instances per minute
MODEL_DELAY_MS = 30.0
AUDIT_CONCURRENCY = 10  # template.yaml's AuditConcurrency default
# How many of an operation's calls one audit makes at once (the rest of its calls go one after another):
# FindingsStore writes with 16 threads, the inventory's per-user reads with PER_USER_WORKERS = 8.
PARALLEL_CALLS = {
    "dynamodb:PutItem": 16,
    "dynamodb:TransactWriteItems": 16,  # a large batch: transactions of up to 100 findings, 16 at a time
    "iam:GetLoginProfile": 8,
    "iam:GetPolicy": 8,
    "iam:GetPolicyVersion": 8,
}
LAMBDA_MEMORY_MB = 512  # template.yaml Globals: MemorySize
LAMBDA_MB_PER_VCPU = 1769  # "At 1,769 MB, a function has the equivalent of one vCPU" (Lambda Developer Guide)


@dataclass(frozen=True)
class Measured:
    """The measured numbers the model scales (seconds at the network model's latency)."""

    users: int
    latency_seconds: float
    account_seconds_steady: (
        float | None
    )  # one account's audit invocation, every finding stored before (None: not measured)
    account_seconds_first: float  # ... its first audit: every finding new
    calls_steady: dict[str, float]  # that invocation's API calls by service
    calls_first: dict[str, float]
    operations_steady: dict[str, float]  # ... by service:Operation
    operations_first: dict[str, float]
    planner_seconds: float  # the planner's invocation, measured (its own time at that latency)
    planner_calls: int  # the calls it made then (all round trips)
    planner_reads: int  # of them, its DynamoDB reads (the stale-audit check)
    findings_per_user: float  # stored findings per user (items a full read of one account returns / U)
    items_per_scan_page: float  # findings a 1 MB Scan page holds
    full_table_read: bool  # the measured code read the whole table in each account's audit
    # The audit function's own CPU for one account (iamguard + botocore; None: not measured)
    cpu_seconds_steady: float | None = None
    cpu_seconds_first: float | None = None


@dataclass(frozen=True)
class Scenario:
    accounts: int
    concurrency: int
    window_seconds: float = WINDOW_SECONDS


def ramp_seconds(concurrency: int) -> float:
    """How long Lambda's SQS poller takes to reach `concurrency` instances (5 at once, then +300 a minute)."""
    return max(0, concurrency - ESM_INITIAL_CONCURRENCY) / ESM_RAMP_PER_MINUTE * 60


def planner_seconds(accounts: int, measured: Measured) -> float:
    """The planner's invocation for `accounts`: the measured one plus the round trips more accounts need
    (ListAccounts pages, SendMessageBatch calls; its reads stay as many)."""
    trips = math.ceil(accounts / LIST_ACCOUNTS_PAGE) + math.ceil(accounts / SEND_MESSAGE_BATCH) + measured.planner_reads
    return measured.planner_seconds + max(0, trips - measured.planner_calls) * measured.latency_seconds


def lambda_cpu_seconds(cpu_seconds: float) -> float:
    """CPU seconds measured on one full core, on a Lambda of LAMBDA_MEMORY_MB (a share of one vCPU)."""
    return cpu_seconds * LAMBDA_MB_PER_VCPU / LAMBDA_MEMORY_MB


def latency_floor(operations: dict[str, float], latency_seconds: float) -> float:
    """The least time an audit's calls take at `latency_seconds` each: the round trips it must wait for in turn
    (calls of an operation the code makes N at a time count once per N). No CPU time at all."""
    return sum(math.ceil(n / PARALLEL_CALLS.get(op, 1)) for op, n in operations.items() if n) * latency_seconds


def scan_pages(accounts: int, measured: Measured) -> int:
    """1 MB pages of a read of every finding of `accounts` accounts (0 when the code reads one account's)."""
    if not measured.full_table_read:
        return 0
    return math.ceil(accounts * measured.users * measured.findings_per_user / measured.items_per_scan_page)


@dataclass(frozen=True)
class Outcome:
    accounts: int
    users: int
    concurrency: int
    round: str  # "steady" (every finding stored before) or "first"
    basis: str  # "measured": the audit's time on moto + latency; "floor": its round trips only
    account_seconds: float  # one account's audit on AWS
    account_seconds_base: float
    scan_pages_per_account: int
    waves: int
    planner_seconds: float
    ramp_seconds: float
    delivery_seconds: float
    total_seconds: float
    window_seconds: float
    fits: bool
    within_lambda_timeout: bool
    # The least AuditConcurrency that fits the window (None: none does, or one audit exceeds Lambda's timeout).
    min_concurrency: int | None
    iam_requests_per_second_per_account: float
    assume_role_per_second_hub: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model(scenario: Scenario, measured: Measured, round_: str = "steady", basis: str = "measured") -> Outcome:
    """One scheduled round of `scenario` on AWS, from the measured per-account numbers.

    basis "measured": each account's audit takes what it took on moto with the latency (moto's CPU and
    the machine's load included: an upper estimate); "floor": only its round trips (no CPU: a lower one);
    "lambda": the round trips plus the function's own measured CPU, stretched to the vCPU share of the
    template's memory size (the estimate for AWS: DynamoDB and IAM do their own work, not moto's).
    """
    if round_ == "steady" and measured.account_seconds_steady is None:
        raise ValueError(f"no steady round of the {measured.users}-user account was measured")
    calls = measured.calls_steady if round_ == "steady" else measured.calls_first
    if basis in ("floor", "lambda"):
        operations = measured.operations_steady if round_ == "steady" else measured.operations_first
        base = latency_floor(operations, measured.latency_seconds)
        if basis == "lambda":
            cpu = measured.cpu_seconds_steady if round_ == "steady" else measured.cpu_seconds_first
            if cpu is None:
                raise ValueError(f"the function's CPU in the {round_} round was not measured")
            base += lambda_cpu_seconds(cpu)
    else:
        steady_seconds = measured.account_seconds_steady
        base = steady_seconds if round_ == "steady" and steady_seconds is not None else measured.account_seconds_first
    # A steady round reads the whole table in every audit; in a first round the table fills as the audits
    # store their findings, so the k-th audit reads the k - 1 accounts before it: on average half of the others.
    pages = scan_pages(scenario.accounts if round_ == "steady" else (scenario.accounts - 1) // 2, measured)
    per_account = base + pages * measured.latency_seconds
    # Each message: the poller's ReceiveMessage and DeleteMessage round trips around the invocation.
    per_message = per_account + 2 * measured.latency_seconds
    waves = math.ceil(scenario.accounts / scenario.concurrency)
    planner = planner_seconds(scenario.accounts, measured)
    ramp = ramp_seconds(scenario.concurrency)
    delivery = waves * 2 * measured.latency_seconds
    total = planner + ramp + waves * per_message
    budget = scenario.window_seconds - planner
    min_concurrency: int | None = None
    if per_message < budget and per_account <= LAMBDA_TIMEOUT_SECONDS:
        for c in range(2, 1001):  # MaximumConcurrency's range
            if ramp_seconds(c) + math.ceil(scenario.accounts / c) * per_message <= budget:
                min_concurrency = c
                break
    return Outcome(
        accounts=scenario.accounts,
        users=measured.users,
        concurrency=scenario.concurrency,
        round=round_,
        basis=basis,
        account_seconds=round(per_account, 2),
        account_seconds_base=round(base, 2),
        scan_pages_per_account=pages,
        waves=waves,
        planner_seconds=round(planner, 2),
        ramp_seconds=round(ramp, 2),
        delivery_seconds=round(delivery, 2),
        total_seconds=round(total, 1),
        window_seconds=scenario.window_seconds,
        fits=total <= scenario.window_seconds,
        within_lambda_timeout=per_account <= LAMBDA_TIMEOUT_SECONDS,
        min_concurrency=min_concurrency,
        iam_requests_per_second_per_account=round(calls.get("iam", 0.0) / per_account, 2) if per_account else 0.0,
        assume_role_per_second_hub=round(min(scenario.concurrency, scenario.accounts) / per_message, 2),
    )


# ----------------------------------------------------------------------------- the measured numbers
def measured_from(account: dict[str, Any], sweep: dict[str, Any] | None, delay_ms: float = MODEL_DELAY_MS) -> Measured:
    """The model's inputs from an org_audit_account result (and the sweep's, for the table's reads)."""
    network = next((n for n in account["networks"] if n["delay_ms"] == delay_ms), None)
    if network is None:
        raise ValueError(f"{account['users']}-user account: no run at {delay_ms:g} ms per request")
    rounds = {r["round"]: r for r in network["rounds"] if not r.get("failed_invocations")}
    if "first" not in rounds:
        raise ValueError(f"{account['users']}-user account at {delay_ms:g} ms: no first round without failures")
    first, steady = rounds["first"], rounds.get("steady")  # a steady round may be missing (not measured)
    users = int(account["users"])
    first_ops = dict(first["handler_calls_per_account"]["by_operation"])
    full_table = bool(first_ops.get("dynamodb:Scan")) or bool(
        steady and steady["handler_calls_per_account"]["by_operation"].get("dynamodb:Scan")
    )
    # Findings per user: what a steady audit that reads its own account's findings (the `account` index) read;
    # else what the first audit wrote, when code of then wrote every finding with its own PutItem.
    if steady and not full_table:
        stored = float(steady["dynamodb_items_read_per_account"].get("median") or 0.0)
    else:
        stored = float(first_ops.get("dynamodb:PutItem", 0.0))
    findings_per_user = stored / users if users else 0.0
    per_page = 0.0
    measured_steady = [steady] if steady else []
    sweep_steady = [r for c in sweep["counts"] for r in c["rounds"] if r["round"] == "steady"] if sweep else []
    # Findings per 1 MB Scan page, from the largest table read (items / Scan calls: the last page is partial,
    # so this errs towards more pages).
    biggest = max(
        measured_steady + sweep_steady,
        key=lambda r: r["dynamodb_items_scanned_per_account"].get("median") or 0,
        default=None,
    )
    if biggest is not None:
        scanned = float(biggest["dynamodb_items_scanned_per_account"].get("median") or 0.0)
        pages = float(biggest["handler_calls_per_account"]["by_operation"].get("dynamodb:Scan", 0.0))
        if scanned and pages:
            per_page = scanned / pages
    planner = (steady or first)["planner"]
    return Measured(
        users=users,
        latency_seconds=delay_ms / 1000,
        account_seconds_steady=float(steady["account_seconds"]["median"]) if steady else None,
        account_seconds_first=float(first["account_seconds"]["median"]),
        calls_steady=dict(steady["handler_calls_per_account"]["by_service"]) if steady else {},
        calls_first=dict(first["handler_calls_per_account"]["by_service"]),
        operations_steady=dict(steady["handler_calls_per_account"]["by_operation"]) if steady else {},
        operations_first=first_ops,
        planner_seconds=float(planner["seconds"]),
        planner_calls=int(sum(planner["calls"].values())),
        planner_reads=int(planner["calls"].get("dynamodb:Query", 0)),
        findings_per_user=round(findings_per_user, 2),
        items_per_scan_page=round(per_page, 1) if per_page else 1.0,
        full_table_read=full_table,
        cpu_seconds_steady=_cpu(steady),
        cpu_seconds_first=_cpu(first),
    )


def _cpu(round_: dict[str, Any] | None) -> float | None:
    median = (round_ or {}).get("account_cpu_seconds", {}).get("median")
    return float(median) if median is not None else None


def load_measured(users: int, delay_ms: float = MODEL_DELAY_MS) -> Measured:
    account = json.loads((benchlib.RESULTS / f"org_audit_account-{users}.json").read_text())
    sweeps = [json.loads(path.read_text()) for path in benchlib.RESULTS.glob("org_audit-*.json")]
    sweep = max(sweeps, key=lambda data: data.get("machine", {}).get("date", ""), default=None)
    return measured_from(account, sweep, delay_ms)


def describe(outcome: Outcome) -> str:
    verdict = "fits" if outcome.fits else "does NOT fit"
    lines = [
        f"{outcome.accounts} accounts x {outcome.users:,} users, AuditConcurrency {outcome.concurrency}, "
        f"{outcome.round} round, per-account time {outcome.basis}: {outcome.total_seconds:,.0f} s — "
        f"{verdict} the {outcome.window_seconds:.0f} s window",
        f"  per account {outcome.account_seconds:,.1f} s ({outcome.basis} {outcome.account_seconds_base:,.1f} s"
        + (
            f" + {outcome.scan_pages_per_account:,} Scan pages of the whole table)"
            if outcome.scan_pages_per_account
            else ")"
        )
        + f"; {outcome.waves} waves; planner {outcome.planner_seconds:.1f} s; poller ramp {outcome.ramp_seconds:.1f} s",
        f"  Lambda timeout {LAMBDA_TIMEOUT_SECONDS:.0f} s per account: "
        + ("kept" if outcome.within_lambda_timeout else "EXCEEDED")
        + "; least AuditConcurrency that fits: "
        + (str(outcome.min_concurrency) if outcome.min_concurrency else "none (one account's audit exceeds it)"),
        f"  IAM requests per second in each member account: {outcome.iam_requests_per_second_per_account} "
        "(one audit per account at a time); sts:AssumeRole per second in the hub: "
        f"{outcome.assume_role_per_second_hub}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100, help="member accounts (default 100)")
    parser.add_argument("--users", type=int, default=2000, help="users per account: the measured account (2000)")
    parser.add_argument(
        "--concurrency", type=int, default=AUDIT_CONCURRENCY, help="AuditConcurrency (default 10, the template's)"
    )
    parser.add_argument("--delay-ms", type=float, default=MODEL_DELAY_MS, help="the network model (default 30)")
    args = parser.parse_args(argv)
    try:
        measured = load_measured(args.users, args.delay_ms)
    except (OSError, ValueError, KeyError) as exc:
        print(f"no measured numbers to model: {exc} (run bench/org_audit.py)", file=sys.stderr)
        return 2
    print(f"measured ({args.delay_ms:g} ms per request): {json.dumps(asdict(measured))}")
    for basis in ("measured", "lambda", "floor"):
        for round_ in ("steady", "first"):
            try:
                print(describe(model(Scenario(args.accounts, args.concurrency), measured, round_, basis)))
            except ValueError as exc:
                print(f"{round_} round: not modelled ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
