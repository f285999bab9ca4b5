"""Benchmark: iamguard's full account audit of N users on a moto server, with Prowler and Cloud Custodian as peers.

For each --users N, in one run and against one moto server (a separate process, see
bench/moto_server.py):

1. seed N users with a realistic mix (bench/seeding.py) through the IAM API, pre-generate
   the credential report (as in any account audited within the last 4 hours);
2. run `iamguard audit --endpoint-url URL --format json` as a subprocess --repeat times:
   wall time, CPU time, peak RSS (wait4 of that process) and the API calls the server
   received, by operation;
3. run the same audit in-process (`Inventory` + `run_checks`, as `run_audit` does) for
   the phases (read the account / run the checks / render JSON) and `Inventory.counter`;
4. verify the findings against what the seeded account must produce, check by check
   (e.g. user_console_mfa FAILs == console users without MFA), and the GetLoginProfile
   reads against the users who need one;
5. run the peers, each from its own venv in bench/.peers/ (bash bench/setup_peers.sh):
   Prowler's IAM service scan and five Cloud Custodian iam-user policies
   (bench/peers/custodian-iam-users.yml), with AWS_ENDPOINT_URL pointing at the same
   server; wall time, peak RSS, API calls, and their counts of the comparable findings.

With --profile, the CLI audit is sampled with py-spy (client with idle time, and the
moto server), and the in-process audit with cProfile; summaries go into the results.

Results: bench/results/audit_users-N.json (and the reports and peer outputs under
bench/results/work/, gitignored). Summarise them with bench/report.py.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib
import seeding

PROWLER = benchlib.PEERS / "prowler" / "bin" / "prowler"
CUSTODIAN = benchlib.PEERS / "c7n" / "bin" / "custodian"
PY_SPY = benchlib.PEERS / "tools" / "bin" / "py-spy"
CUSTODIAN_POLICIES = benchlib.BENCH / "peers" / "custodian-iam-users.yml"

# Peer findings comparable to iamguard's checks: (peer check or policy, iamguard check, what counts).
PROWLER_COMPARABLE = {
    "iam_user_mfa_enabled_console_access": "user_console_mfa",
    "iam_user_two_active_access_key": "user_single_active_key",
    "iam_user_administrator_access_policy": "user_admin_access (AdministratorAccess attached directly)",
}
CUSTODIAN_COMPARABLE = {
    "iam-user-console-without-mfa": "user_console_mfa",
    "iam-user-admin-access": "user_admin_access (AdministratorAccess directly or via group)",
    "iam-user-inline-policy": "user_no_direct_policies (inline part)",
    "iam-user-active-key-older-than-90-days": "user_access_keys_rotated",
    "iam-user-password-unused-45-days": "user_unused_credentials (console part)",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- iamguard
def iamguard_cli(srv: benchlib.MotoProcess, work: Path, run: int, profile: bool) -> dict[str, Any]:
    report = work / f"iamguard-report-{run}.json"
    command = [
        str(benchlib.VENV_BIN / "iamguard"),
        "audit",
        "--endpoint-url",
        srv.url,
        "--format",
        "json",
        "--output",
        str(report),
        "--fail-on",
        "none",
    ]
    samplers: list[subprocess.Popen[bytes]] = []
    if profile:
        server_profile = work / "py-spy-server.txt"
        samplers.append(_py_spy_attach(srv.pid, server_profile))
        command = [
            str(PY_SPY),
            "record",
            "--idle",
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(work / "py-spy-iamguard.txt"),
            "--",
            *command,
        ]
    srv.reset_calls()
    server_cpu = srv.cpu_seconds()
    measured = benchlib.run_measured(command, env=benchlib.local_aws_env(), stdout=work / f"iamguard-{run}.out.txt")
    server_cpu = srv.cpu_seconds() - server_cpu
    for sampler in samplers:
        sampler.send_signal(2)
        sampler.wait(timeout=30)
    calls = srv.reset_calls()
    result = measured.to_dict()
    result["server_cpu_seconds"] = round(server_cpu, 2)
    result["api_calls"] = sum(calls.values())
    result["api_calls_by_operation"] = dict(sorted(calls.items(), key=lambda kv: -kv[1]))
    result["report"] = str(report.relative_to(benchlib.REPO))
    if profile:
        result["profiled_with"] = "py-spy (numbers of this run include sampling overhead)"
    return result


def _py_spy_attach(pid: int, output: Path) -> subprocess.Popen[bytes]:
    sampler = subprocess.Popen(
        [str(PY_SPY), "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach
    return sampler


def run_audit_only(url: str) -> int:
    """The scheduled Lambda's path minus the store: `run_audit(Inventory(ctx), settings)`; prints a JSON summary.

    Run as a subprocess (`audit_users.py --run-audit-only URL`) so that its wall time and
    peak RSS are those of a fresh process doing only that.
    """
    from iamguard.audit.run import run_audit
    from iamguard.aws import AwsContext
    from iamguard.iam.inventory import Inventory
    from iamguard.settings import Settings

    started = time.perf_counter()
    result = run_audit(Inventory(AwsContext(region=benchlib.REGION, endpoint_url=url)), Settings.from_env({}))
    summary = {
        "run_audit_seconds": round(time.perf_counter() - started, 3),
        "duration_seconds": round(result.duration_seconds, 3),
        "findings": len(result.findings),
        "api_calls": result.api_calls,
        "summary": result.summary(),
    }
    print(json.dumps(summary))
    return 0


def iamguard_run_audit(srv: benchlib.MotoProcess, work: Path, run: int) -> dict[str, Any]:
    """`run_audit` alone (read + checks, no report), in a fresh process: the Lambda's work before storing."""
    out = work / f"run-audit-{run}.out.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-audit-only", srv.url]
    srv.reset_calls()
    server_cpu = srv.cpu_seconds()
    measured = benchlib.run_measured(command, env=benchlib.local_aws_env(), stdout=out)
    server_cpu = srv.cpu_seconds() - server_cpu
    calls = srv.reset_calls()
    result = measured.to_dict()
    result["server_cpu_seconds"] = round(server_cpu, 2)
    result["api_calls"] = sum(calls.values())
    if measured.exit_code == 0:
        result["output"] = json.loads(out.read_text().strip().splitlines()[-1])
    return result


def iamguard_in_process(url: str, profile_to: Path | None) -> dict[str, Any]:
    """The audit as run_audit does it, timed phase by phase, with Inventory.counter."""
    from iamguard.audit.report import render_json
    from iamguard.audit.run import AuditResult
    from iamguard.aws import AwsContext
    from iamguard.checks import run_checks
    from iamguard.iam.inventory import Inventory
    from iamguard.settings import Settings

    env = benchlib.local_aws_env()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[key] = env[key]
    settings = Settings.from_env({})
    profiler = cProfile.Profile() if profile_to else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    inventory = Inventory(AwsContext(region=benchlib.REGION, endpoint_url=url))
    made = time.perf_counter()
    state = inventory.read_account()
    read = time.perf_counter()
    findings = run_checks(state, settings, state.read_at)
    checked = time.perf_counter()
    result = AuditResult(
        account_id=state.account_id,
        generated_at=state.read_at,
        findings=findings,
        errors={str(k): v for k, v in state.errors.items()},
        api_calls=inventory.counter.total,
        api_calls_by_operation=dict(inventory.counter.calls),
    )
    text = render_json(result, findings)
    rendered = time.perf_counter()
    if profiler and profile_to:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(45)
        out.write("\n\n==== by internal (self) time\n")
        stats.sort_stats("tottime").print_stats(30)
        profile_to.write_text(out.getvalue(), encoding="utf-8")
    return {
        "phases_seconds": {
            "create_client": round(made - started, 3),
            "read_account": round(read - made, 3),
            "run_checks": round(checked - read, 3),
            "render_json": round(rendered - checked, 3),
            "total": round(rendered - started, 3),
        },
        "findings": len(findings),
        "report_bytes": len(text.encode()),
        "api_calls": inventory.counter.total,
        "api_calls_by_operation": dict(sorted(inventory.counter.calls.items(), key=lambda kv: -kv[1])),
        "errors": result.errors,
        "profiled_with": "cProfile" if profiler else None,
    }


def verify(report_path: Path, users: list[seeding.PlannedUser], calls: dict[str, int]) -> dict[str, Any]:
    """Findings of the report against what the seeded account must produce."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    counts: Counter[tuple[str, str]] = Counter(
        (f["check_id"], f["status"]) for f in report["findings"] if f["resource_type"] == "user"
    )
    checks = []
    for check_id, want in seeding.expected(users).items():
        got = {"FAIL": counts[(check_id, "FAIL")], "EXEMPT": counts[(check_id, "EXEMPT")]}
        checks.append({"check_id": check_id, "expected": want, "reported": got, "ok": got == want})
    users_reported = report["summary"]["users"]
    want_reads = seeding.expected_login_profile_reads(users)
    got_reads = calls.get("iam:GetLoginProfile", 0)
    errors = [f for f in report["findings"] if f["status"] == "ERROR"]
    # The bulk reads leave the audit one GetLoginProfile per user at most for whom they cannot tell
    # whether a password reset is pending; fewer (facts reused, another source) is not an error.
    ok = all(c["ok"] for c in checks) and users_reported == len(users) and got_reads <= want_reads and not errors
    return {
        "ok": ok,
        "users_reported": users_reported,
        "users_seeded": len(users),
        "error_findings": len(errors),
        "get_login_profile_calls": {"expected": want_reads, "made": got_reads},
        "checks": checks,
        "summary": report["summary"],
    }


# ----------------------------------------------------------------------------- peers
def prowler(srv: benchlib.MotoProcess, work: Path, timeout: float) -> dict[str, Any]:
    if not PROWLER.exists():
        return {"skipped": f"{PROWLER.relative_to(benchlib.REPO)} missing: run bash bench/setup_peers.sh"}
    out = work / "prowler"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [
        str(PROWLER),
        "aws",
        "--service",
        "iam",
        "--region",
        benchlib.REGION,
        "--output-formats",
        "json-ocsf",
        "--output-directory",
        str(out),
        "--no-banner",
        "--no-color",
        "--ignore-exit-code-3",
        "--log-level",
        "ERROR",
    ]
    srv.reset_calls()
    server_cpu = srv.cpu_seconds()
    measured = benchlib.run_measured(
        command, env=benchlib.local_aws_env(srv.url), stdout=work / "prowler.out.txt", timeout=timeout
    )
    measured.extra["server_cpu_seconds"] = round(srv.cpu_seconds() - server_cpu, 2)
    calls = srv.reset_calls()
    result = {"version": _installed("prowler"), **measured.to_dict()}
    result.update(_calls(calls))
    reports = sorted(out.glob("*.ocsf.json"))
    if reports:
        findings = json.loads(reports[-1].read_text(encoding="utf-8"))
        by_check: Counter[tuple[str, str]] = Counter((f["metadata"]["event_code"], f["status_code"]) for f in findings)
        result["findings"] = len(findings)
        result["checks_run"] = len({check for check, _ in by_check})
        result["comparable"] = {
            check: {"FAIL": by_check[(check, "FAIL")], "PASS": by_check[(check, "PASS")], "iamguard": ours}
            for check, ours in PROWLER_COMPARABLE.items()
        }
    out_text = (work / "prowler.out.txt").read_text(errors="replace")
    result["problems"] = sorted({line.strip() for line in out_text.splitlines() if "went wrong" in line})
    return result


def custodian(srv: benchlib.MotoProcess, work: Path, timeout: float) -> dict[str, Any]:
    if not CUSTODIAN.exists():
        return {"skipped": f"{CUSTODIAN.relative_to(benchlib.REPO)} missing: run bash bench/setup_peers.sh"}
    out = work / "custodian"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [
        str(CUSTODIAN),
        "run",
        "--output-dir",
        str(out),
        "--cache",
        str(out / "cache.sqlite"),  # fresh cache: no resources from an earlier server
        "--region",
        benchlib.REGION,
        str(CUSTODIAN_POLICIES),
    ]
    srv.reset_calls()
    server_cpu = srv.cpu_seconds()
    measured = benchlib.run_measured(
        command, env=benchlib.local_aws_env(srv.url), stdout=work / "custodian.out.txt", timeout=timeout
    )
    measured.extra["server_cpu_seconds"] = round(srv.cpu_seconds() - server_cpu, 2)
    calls = srv.reset_calls()
    result = {"version": _installed("c7n"), **measured.to_dict()}
    result.update(_calls(calls))
    matched = {}
    for policy, ours in CUSTODIAN_COMPARABLE.items():
        resources = out / policy / "resources.json"
        count = len(json.loads(resources.read_text())) if resources.exists() else None
        matched[policy] = {"matched": count, "iamguard": ours}
    result["comparable"] = matched
    return result


def _installed(peer: str) -> str:
    marker = benchlib.PEERS / peer / ".installed"
    return marker.read_text().strip() if marker.exists() else "unknown"


def _calls(calls: dict[str, int]) -> dict[str, Any]:
    return {
        "api_calls": sum(calls.values()),
        "api_calls_by_operation": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
    }


# ----------------------------------------------------------------------------- profiles
# Where a sample of the CLI process goes: the first category (in this order) with a frame
# anywhere in the sample's stack that contains one of its needles.
CLIENT_CATEGORIES = (
    ("waiting for the moto server (socket)", ("readinto (socket.py", "recv_into")),
    ("imports / interpreter start-up", ("<frozen importlib._bootstrap",)),
    ("botocore response parsing (XML, timestamps)", ("botocore/parsers.py",)),
    ("iamguard JSON report rendering", ("render_json (", "finding_dict (", "json/encoder.py")),
    ("iamguard checks", ("iamguard/checks/",)),
    ("botocore/urllib3 request path (signing, HTTP)", ("botocore/", "urllib3/", "boto3/", "http/client.py")),
    ("iamguard inventory (own code)", ("iamguard/iam/",)),
)
# Where the moto server's busy samples go (idle threads waiting in select/wait are left out).
SERVER_IDLE = ("select (selectors.py", "Condition.wait (threading.py", "accept (socket.py")
SERVER_CATEGORIES = (
    ("moto response serialization (XML)", ("moto/core/serialize.py", "xmltodict", "xml/sax")),
    ("moto IAM backend", ("moto/iam/models.py",)),
    ("moto request parsing and dispatch", ("moto/core/", "moto/moto_server/", "moto/backends.py")),
    ("HTTP serving (werkzeug, flask, socketserver)", ("werkzeug/", "flask/", "socketserver.py", "http/server.py")),
)


def summarise_py_spy(path: Path, categories: tuple[tuple[str, tuple[str, ...]], ...], top: int = 25) -> dict[str, Any]:
    """A py-spy raw (collapsed stacks) file → share of samples by category and the top functions."""
    if not path.exists():
        return {"missing": str(path)}
    total = 0
    idle = 0
    by_category: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    server = categories is SERVER_CATEGORIES
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if server and any(needle in frames[-1] for needle in SERVER_IDLE):
            idle += count
            continue
        total += count
        for name in {_frame_name(frame) for frame in frames}:
            inclusive[name] += count
        own[_frame_name(frames[-1])] += count
        by_category[_categorise(frames, categories)] += count
    summary: dict[str, Any] = {"samples": total}
    if server:
        summary["idle_samples_left_out"] = idle
    summary["share_by_category"] = {k: round(v / total, 3) for k, v in by_category.most_common()}
    summary["top_inclusive"] = {k: round(v / total, 3) for k, v in inclusive.most_common(top)}
    summary["top_self"] = {k: round(v / total, 3) for k, v in own.most_common(top)}
    return summary


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module path after site-packages)"
    if " (" not in frame:
        return frame
    function, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    where = where.split("site-packages/")[-1].split("/layers/iamguard/")[-1]
    return f"{function} ({where})"


def _categorise(frames: list[str], categories: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for label, needles in categories:
        if any(needle in frame for frame in frames for needle in needles):
            return label
    return "other (interpreter, argparse, pydantic, ...)"


# ----------------------------------------------------------------------------- main
def bench_account(n: int, shape: str, args: argparse.Namespace) -> dict[str, Any]:
    """One account (size and shape) on one moto server, measured under each network model in turn."""
    work = benchlib.RESULTS / "work" / f"{shape}-{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    users = seeding.plan(n, args.seed, shape)
    result: dict[str, Any] = {
        "benchmark": "audit_users",
        "users": n,
        "shape": shape,
        "seed": args.seed,
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "account": seeding.describe(users),
    }
    with benchlib.MotoProcess(log=work / "moto-server.log") as srv:
        log(f"{shape}, {n} users: seeding on {srv.url} with {args.workers} threads")
        started = time.perf_counter()
        seed_calls = seeding.seed_account(srv.url, users, workers=args.workers)
        signed_in = srv.sign_in(seeding.sign_ins(users))
        seeding.iam_client(srv.url).generate_credential_report()
        result["seeding"] = {
            "seconds": round(time.perf_counter() - started, 1),
            "iam_calls": seed_calls,
            "users_signed_in": signed_in,
        }
        log(f"seeded in {result['seeding']['seconds']} s ({seed_calls} calls)")
        result["networks"] = []
        path = result_path(shape, n, args.delay_ms)

        def save(network: dict[str, Any]) -> None:
            """Write what is measured so far: a run stopped part way keeps it (marked incomplete)."""
            benchlib.write_json(path, {**result, "networks": [*result["networks"], network], "complete": False})

        for delay_ms in args.delay_ms:
            network_work = work / f"delay-{delay_ms:g}ms"
            network_work.mkdir()
            srv.set_delay(delay_ms / 1000)
            result["networks"].append(bench_network(srv, users, delay_ms, network_work, args, save))
        srv.set_delay(0)
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    result["finished_at"] = benchlib.now()
    result["complete"] = True
    return result


def bench_network(
    srv: benchlib.MotoProcess,
    users: list[seeding.PlannedUser],
    delay_ms: float,
    work: Path,
    args: argparse.Namespace,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """iamguard (CLI, run_audit, in-process) and the peers against the server with `delay_ms` per request."""
    n = len(users)
    label = benchlib.network_label(delay_ms)
    result: dict[str, Any] = {
        "delay_ms": delay_ms,
        "network": label,
        "started_at": benchlib.now(),
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }
    runs = []
    for run in range(args.repeat):
        runs.append(iamguard_cli(srv, work, run, profile=False))
        log(f"[{label}] iamguard audit run {run}: {runs[-1]['wall_seconds']} s, {runs[-1]['api_calls']} calls")
    walls = [r["wall_seconds"] for r in runs]
    result["iamguard_cli"] = {
        "wall_seconds_median": round(statistics.median(walls), 3),
        "wall_seconds_min": min(walls),
        "wall_seconds_max": max(walls),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
        "server_cpu_seconds_median": statistics.median(r["server_cpu_seconds"] for r in runs),
        "api_calls": runs[-1]["api_calls"],
        "api_calls_by_operation": runs[-1]["api_calls_by_operation"],
        "exit_codes": sorted({r["exit_code"] for r in runs}),
        "runs": runs,
    }
    lambda_runs = []
    for run in range(args.repeat):
        lambda_runs.append(iamguard_run_audit(srv, work, run))
        log(f"[{label}] run_audit only, run {run}: {lambda_runs[-1]['wall_seconds']} s")
    walls = [r["wall_seconds"] for r in lambda_runs]
    result["iamguard_run_audit"] = {
        "what": "run_audit(Inventory, Settings) in a fresh process: read + checks, no report (the Lambda's path "
        "before it stores the findings)",
        "wall_seconds_median": round(statistics.median(walls), 3),
        "wall_seconds_min": min(walls),
        "wall_seconds_max": max(walls),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in lambda_runs),
        "server_cpu_seconds_median": statistics.median(r["server_cpu_seconds"] for r in lambda_runs),
        "api_calls": lambda_runs[-1]["api_calls"],
        "exit_codes": sorted({r["exit_code"] for r in lambda_runs}),
        "runs": lambda_runs,
    }
    srv.reset_calls()
    result["iamguard_in_process"] = iamguard_in_process(srv.url, None)
    result["iamguard_in_process"]["server_counted_calls"] = sum(srv.reset_calls().values())
    result["verification"] = verify(Path(runs[-1]["report"]), users, runs[-1]["api_calls_by_operation"])
    log(f"[{label}] verification: {'ok' if result['verification']['ok'] else 'MISMATCH'}")
    for verified in runs:  # identical reports (up to 130 MB each at 10,000 users), verified: not kept
        (benchlib.REPO / verified["report"]).unlink(missing_ok=True)

    if args.profile:
        log(f"[{label}] profiling the audit (py-spy on the CLI and the server, cProfile in-process)")
        profiled = iamguard_cli(srv, work, args.repeat, profile=True)
        (benchlib.REPO / profiled["report"]).unlink(missing_ok=True)
        cprofile_path = work / "cprofile-in-process.txt"
        in_process = iamguard_in_process(srv.url, cprofile_path)
        result["profile"] = {
            "cli_run": {k: profiled[k] for k in ("wall_seconds", "api_calls")},
            "client": summarise_py_spy(work / "py-spy-iamguard.txt", CLIENT_CATEGORIES),
            "server": summarise_py_spy(work / "py-spy-server.txt", SERVER_CATEGORIES),
            "in_process_phases": in_process["phases_seconds"],
            "cprofile_report": str(cprofile_path.relative_to(benchlib.REPO)),
        }

    peers: dict[str, Any] = {}
    result["peers"] = peers
    save(result)
    if n > args.peers_max_users:
        peers["skipped"] = f"--peers-max-users {args.peers_max_users} < {n}"
    elif delay_ms > args.peers_max_delay_ms:
        peers["skipped"] = f"--peers-max-delay-ms {args.peers_max_delay_ms:g} < {delay_ms:g}"
    else:
        for name, runner in (("prowler", prowler), ("custodian", custodian)):
            if name not in args.peers:
                continue
            log(f"[{label}] peer {name}: running")
            peers[name] = runner(srv, work, args.peer_timeout)
            wall = peers[name].get("wall_seconds")
            if wall is not None:
                peers[name]["ratio_to_iamguard"] = round(wall / result["iamguard_cli"]["wall_seconds_median"], 1)
            log(f"[{label}] peer {name}: {wall} s, exit {peers[name].get('exit_code')}")
            save(result)
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    result["finished_at"] = benchlib.now()
    return result


def result_path(shape: str, n: int, delays_ms: list[float]) -> Path:
    """results/audit_users-SHAPE-N.json; a run of other network models than the default names them."""
    suffix = "" if tuple(delays_ms) == benchlib.DEFAULT_DELAYS_MS else "-" + "-".join(f"{d:g}ms" for d in delays_ms)
    return benchlib.RESULTS / f"audit_users-{shape}-{n}{suffix}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, action="append", help="account size (repeatable; default 2000)")
    parser.add_argument(
        "--shape",
        action="append",
        choices=seeding.SHAPES,
        help=f"account shape (repeatable; default all: {', '.join(seeding.SHAPES)})",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        action="append",
        help="network model: delay of every AWS request at the server, in ms (repeatable; default 0 and 30)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="iamguard CLI runs per size (default 5; median reported)")
    parser.add_argument("--workers", type=int, default=8, help="seeding threads (default 8)")
    parser.add_argument("--seed", type=int, default=2, help="random seed of the account plan (default 2)")
    parser.add_argument(
        "--peers",
        default="prowler,custodian",
        type=lambda text: {p for p in text.split(",") if p},
        help="peers to run: prowler,custodian (default both; '' for none)",
    )
    parser.add_argument(
        "--peers-max-users", type=int, default=10**9, help="run peers only up to this many users (default: always)"
    )
    parser.add_argument(
        "--peers-max-delay-ms", type=float, default=10**9, help="run peers only up to this delay (default: always)"
    )
    parser.add_argument("--peer-timeout", type=float, default=3600, help="seconds before a peer is killed")
    parser.add_argument("--profile", action="store_true", help="also profile one audit (py-spy + cProfile)")
    parser.add_argument("--run-audit-only", metavar="URL", help=argparse.SUPPRESS)  # internal: see run_audit_only
    args = parser.parse_args(argv)
    if args.run_audit_only:
        return run_audit_only(args.run_audit_only)
    if args.profile and not PY_SPY.exists():
        parser.error(f"--profile needs {PY_SPY.relative_to(benchlib.REPO)} (bash bench/setup_peers.sh)")
    args.delay_ms = args.delay_ms if args.delay_ms is not None else list(benchlib.DEFAULT_DELAYS_MS)

    ok = True
    for n in args.users or [2000]:
        for shape in args.shape or seeding.SHAPES:
            result = bench_account(n, shape, args)
            path = result_path(shape, n, args.delay_ms)
            benchlib.write_json(path, result)
            log(f"wrote {path.relative_to(benchlib.REPO)}")
            ok = ok and all(network["verification"]["ok"] for network in result["networks"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
