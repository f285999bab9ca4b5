"""The benchmark's own machinery (bench/): the latency model, the account shapes, the generated RESULTS.md.

The benchmarks themselves run for an hour (make bench); these check the parts whose mistakes
would make every recorded number wrong without anything failing.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import moto_server  # noqa: E402
import report  # noqa: E402
import seeding  # noqa: E402


def _answer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"<ok/>"]


def _call(app: moto_server.CallCounting, path: str = "/", query: str = "", body: bytes = b"", **headers: str) -> Any:
    environ = {
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_METHOD": "POST" if body else "GET",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json" if path.startswith("/__bench__/") else "application/x-www-form-urlencoded",
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    status: list[str] = []
    started = time.perf_counter()
    out = b"".join(app(environ, lambda s, h: status.append(s)))
    return status[0], out, time.perf_counter() - started


SIGNED = "AWS4-HMAC-SHA256 Credential=testing/20261130/us-east-1/iam/aws4_request, SignedHeaders=host"


def test_delay_holds_every_aws_request_and_counts_it_by_operation() -> None:
    app = moto_server.CallCounting(_answer)
    _, _, plain = _call(app, query="Action=GetUser", authorization=SIGNED)
    status, out, _ = _call(app, "/__bench__/delay", body=json.dumps({"seconds": 0.05}).encode())
    assert status.startswith("200") and json.loads(out) == {"delay_seconds": 0.05}

    _, _, delayed = _call(app, body=b"Action=ListUsers&Version=2010-05-08", authorization=SIGNED)
    assert delayed >= 0.05 > plain
    # control requests are answered at once, and the counts are the AWS requests only
    status, out, control = _call(app, "/__bench__/calls")
    assert control < 0.05
    assert json.loads(out) == {"iam:GetUser": 1, "iam:ListUsers": 1}


def test_delay_rejects_nonsense() -> None:
    app = moto_server.CallCounting(_answer)
    status, _, _ = _call(app, "/__bench__/delay", body=json.dumps({"seconds": -1}).encode())
    assert status.startswith("400")
    assert app.delay_seconds == 0


@pytest.mark.parametrize("n", [2000, 10000])
def test_never_signed_in_shape_leaves_most_users_to_a_get_login_profile(n: int) -> None:
    users = seeding.plan(n, 2, seeding.NEVER_SIGNED_IN)
    need = seeding.expected_login_profile_reads(users)
    assert need >= 0.6 * n
    # the batch may not change its password: nothing lets the audit skip its reset question
    batch = [u for u in users if u.console and u.signed_in_days_ago is None and not u.can_change_password]
    assert len(batch) == need and not any(u.admin for u in batch)
    # the current shape is the one the earlier results measured (mostly signed-in console users)
    current = seeding.plan(n, 2, seeding.CURRENT)
    assert seeding.expected_login_profile_reads(current) < 0.02 * n
    assert seeding.plan(n, 2) == current


def _network(delay_ms: float, iamguard: float, prowler: float, custodian: float) -> dict[str, Any]:
    def peer(wall: float) -> dict[str, Any]:
        return {
            "version": "x",
            "wall_seconds": wall,
            "ratio_to_iamguard": round(wall / iamguard, 1),
            "user_cpu_seconds": 1.0,
            "system_cpu_seconds": 0.0,
            "peak_rss_mb": 100.0,
            "api_calls": 14000,
            "api_calls_by_operation": {"iam:GetLoginProfile": 2000},
            "exit_code": 0,
        }

    run = {"wall_seconds": iamguard, "user_cpu_seconds": 1.0, "system_cpu_seconds": 0.1}
    expected = seeding.expected(seeding.plan(50, 2, seeding.NEVER_SIGNED_IN))
    checks = [{"check_id": c, "expected": want, "reported": want, "ok": True} for c, want in expected.items()]
    return {
        "delay_ms": delay_ms,
        "network": moto_server_label(delay_ms),
        "started_at": "2026-11-30T01:00:00+00:00",
        "load_avg_1m_before": 2.0,
        "load_avg_1m_after": 2.5,
        "iamguard_cli": {
            "wall_seconds_median": iamguard,
            "wall_seconds_min": iamguard,
            "wall_seconds_max": iamguard,
            "peak_rss_mb_max": 90.0,
            "server_cpu_seconds_median": 0.2,
            "api_calls": 1300,
            "api_calls_by_operation": {"iam:GetLoginProfile": 1289},
            "exit_codes": [0],
            "runs": [run],
        },
        "iamguard_in_process": {"phases_seconds": {"total": 1.0}, "report_bytes": 10, "findings": 5},
        "verification": {
            "ok": True,
            "checks": checks,
            "users_reported": 2000,
            "error_findings": 0,
            "get_login_profile_calls": {"expected": 1289, "made": 1289},
        },
        "peers": {"prowler": peer(prowler), "custodian": peer(custodian)},
    }


def moto_server_label(delay_ms: float) -> str:
    import benchlib

    return benchlib.network_label(delay_ms)


def test_results_md_and_readme_table_are_generated_from_the_raw_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchlib

    result = {
        "benchmark": "audit_users",
        "users": 2000,
        "shape": "never-signed-in",
        "command": ".venv/bin/python bench/audit_users.py --users 2000",
        "machine": {"date": "2026-11-30T01:00:00+00:00", "git_commit": "abc1234", "nproc": 2, "python": "3.11.7"},
        "account": seeding.describe(seeding.plan(50, 2, seeding.NEVER_SIGNED_IN)),
        "seeding": {"iam_calls": 10, "seconds": 1.0},
        "networks": [_network(0, 2.0, 60.0, 40.0), _network(30, 3.0, 600.0, 120.0)],
    }
    (tmp_path / "audit_users-never-signed-in-2000.json").write_text(json.dumps(result))
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)
    text = report.results_md()
    # moto: 40/2 = 20x Custodian < 25x; moto + 30 ms: 120/3 = 40x < 50x
    run = "2026-11-30 01:00, load 2.0-2.5, `abc1234`"
    assert (
        "| never-signed-in | moto | 2.00 s | 60.0 s (30.0x) | 40.0 s (20.0x) | ≥ 25x | not met (worst 20.0x) | "
        f"{run} |" in text
    )
    assert (
        "| never-signed-in | moto + 30 ms | 3.00 s | 600.0 s (200.0x) | 120.0 s (40.0x) | ≥ 50x | not met (worst 40.0x) "
        f"| {run} |" in text
    )
    assert "commit `abc1234`" in text and "Command: `.venv/bin/python bench/audit_users.py --users 2000`" in text

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.README_START}\nstale\n{report.README_END}\n\n## next\n")
    monkeypatch.setattr(report, "README", readme)
    report.write_readme(report.readme_table())
    written = readme.read_text()
    assert "stale" not in written and written.endswith(f"{report.README_END}\n\n## next\n")
    assert (
        "| 2,000 | never-signed-in | moto + 30 ms | 3.00 s, 1,300 calls | 600.0 s (200.0x), 14,000 calls |" in written
    )


def test_the_readme_shows_each_kind_of_run_once_the_quietest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchlib

    def result(name: str, commit: str, load: float, iamguard: float) -> None:
        network = _network(0, iamguard, 60.0, 40.0)
        network["load_avg_1m_before"] = network["load_avg_1m_after"] = load
        data = {
            "benchmark": "audit_users",
            "users": 2000,
            "shape": "never-signed-in",
            "command": ".venv/bin/python bench/audit_users.py --users 2000",
            "machine": {"date": "2026-11-30T01:00:00+00:00", "git_commit": commit, "nproc": 2},
            "account": seeding.describe(seeding.plan(50, 2, seeding.NEVER_SIGNED_IN)),
            "seeding": {"iam_calls": 10, "seconds": 1.0},
            "networks": [network],
        }
        (tmp_path / f"audit_users-{name}.json").write_text(json.dumps(data))

    # Given the same kind of run recorded on a busy machine and on a quiet one
    result("busy", "busy123", 18.0, 9.0)
    result("quiet", "quiet45", 1.5, 2.0)
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)

    # Then the README's table has one row for it, the quiet run's, and says where the other is
    table = report.readme_table()
    rows = [line for line in table.splitlines() if line.startswith("| 2,000 |")]
    assert rows == [
        "| 2,000 | never-signed-in | moto | 2.00 s, 1,300 calls | 60.0 s (30.0x), 14,000 calls | "
        "40.0 s (20.0x), 14,000 calls | 1.5-1.5 on 2 CPUs |"
    ]
    assert "RESULTS.md has all 2 runs" in table and "`quiet45`" in table and "busy123" not in table
    # ... while RESULTS.md keeps both
    assert "busy123" in report.results_md() and "quiet45" in report.results_md()


def test_results_name_files_by_their_repository_path(tmp_path: Path) -> None:
    import benchlib

    # Given a result that mentions files inside the repository by absolute path
    out = tmp_path / "result.json"
    benchlib.write_json(out, {"report": str(benchlib.REPO / "bench" / "results" / "work" / "r.json")})
    # Then it is written by its repository path, and no committed result names this machine's checkout
    assert json.loads(out.read_text())["report"] == "bench/results/work/r.json"
    for committed in benchlib.RESULTS.glob("*.json"):
        assert '"/' not in committed.read_text(), f"{committed.name} names an absolute path"


# ----------------------------------------------------------------------------- organization (issue #14)
import org_audit  # noqa: E402
import org_model  # noqa: E402


def test_percentiles_are_nearest_rank_and_calls_split_by_service() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert org_audit.distribution(values) == {"median": 10.5, "p95": 19.0, "max": 20.0, "min": 1.0}
    assert org_audit.percentile([5.0], 0.95) == 5.0
    calls = {"iam:GetUser": 3, "iam:ListUsers": 1, "dynamodb:Scan": 2, "sqs:ReceiveMessage": 1}
    assert org_audit.by_service(calls) == {"iam": 4, "sts": 0, "dynamodb": 2, "sqs": 1, "organizations": 0}


def test_the_call_counter_counts_each_call_and_the_items_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.client import BaseClient
    from botocore.stub import Stubber

    monkeypatch.setattr(BaseClient, "_make_api_call", BaseClient._make_api_call)  # put back after the test
    counter = org_audit.CallCounter()
    counter.install()
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("scan", {"Items": [], "Count": 2, "ScannedCount": 700})
        stub.add_response("query", {"Items": [], "Count": 13, "ScannedCount": 13})
        stub.add_response("scan", {"Items": [], "Count": 0, "ScannedCount": 5})
        client.scan(TableName="t")  # not counted: no invocation is being measured
        counter.start()
        client.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "x"}})
        client.scan(TableName="t")
        calls, items = counter.stop()
    assert calls == {"dynamodb:Query": 1, "dynamodb:Scan": 1}
    assert items == {"queried": 13, "scanned": 5}


def test_each_member_account_gets_the_same_plan_under_its_own_names() -> None:
    users = seeding.plan(30, 2)
    renamed = seeding.renamed(users, "m007-u")
    assert [u.name for u in renamed[:2]] == ["m007-u00000", "m007-u00001"]
    assert [u.__class__(**{**u.__dict__, "name": "x"}) for u in renamed] == [
        u.__class__(**{**u.__dict__, "name": "x"}) for u in users
    ]
    assert seeding.describe(renamed) == seeding.describe(users)


class _RecordingIam:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return {"VirtualMFADevice": {"SerialNumber": "arn:mfa"}}

        return call


def test_a_member_account_is_seeded_with_its_own_policy_arns() -> None:
    iam = _RecordingIam()
    seeding.create_groups(iam, "210987654321")
    user = seeding.PlannedUser("u", False, False, None, False, 0, (), ("bench-tooling",), (), False)
    seeding.create_user(iam, user, "210987654321")
    arns = [kw["PolicyArn"] for name, kw in iam.calls if name in {"attach_group_policy", "attach_user_policy"}]
    assert "arn:aws:iam::210987654321:policy/bench-data-read" in arns
    assert "arn:aws:iam::210987654321:policy/bench-tooling" in arns
    assert not any("123456789012" in arn for arn in arns)


def test_the_bench_server_creates_the_role_organizations_creates(aws: Any) -> None:
    app = moto_server.CallCounting(_answer)
    body = json.dumps({"account_id": "210987654321", "management_account_id": "123456789012"}).encode()
    status, out, _ = _call(app, "/__bench__/organization-access-role", body=body)
    assert status.startswith("200")
    assert json.loads(out) == {"role_arn": "arn:aws:iam::210987654321:role/OrganizationAccountAccessRole"}
    # the role is there to assume from the management account, as on AWS
    role = aws.sts().assume_role(RoleArn=json.loads(out)["role_arn"], RoleSessionName="bench")
    assert role["AssumedRoleUser"]["Arn"].startswith("arn:aws:sts::210987654321:assumed-role/")


def _measured(**changes: Any) -> org_model.Measured:
    base = org_model.Measured(
        users=2000,
        latency_seconds=0.03,
        account_seconds_steady=20.0,
        account_seconds_first=60.0,
        calls_steady={"iam": 40.0, "sts": 1.0, "dynamodb": 8.0},
        calls_first={"iam": 40.0, "sts": 1.0, "dynamodb": 26000.0},
        operations_steady={
            "iam:GetAccountAuthorizationDetails": 1.0,
            "iam:GetLoginProfile": 13.0,
            "dynamodb:PutItem": 5.0,
        },
        operations_first={"iam:GetAccountAuthorizationDetails": 1.0, "dynamodb:PutItem": 26000.0},
        planner_seconds=0.5,
        planner_calls=4,
        planner_reads=2,
        findings_per_user=13.0,
        items_per_scan_page=1000.0,
        full_table_read=False,
    )
    return org_model.Measured(**{**base.__dict__, **changes})


def test_the_model_adds_waves_planner_and_poller_ramp() -> None:
    outcome = org_model.model(org_model.Scenario(accounts=100, concurrency=10), _measured())
    # planner: 0.5 s measured + (5 ListAccounts pages + 10 batches + 2 reads - 4 measured calls) x 30 ms = 0.89 s
    assert outcome.planner_seconds == 0.89
    # the poller reaches 10 instances in (10 - 5) / 300 minutes = 1 s
    assert outcome.ramp_seconds == 1.0
    # 10 waves of (20 s + Receive and Delete at 30 ms each)
    assert outcome.waves == 10
    assert outcome.total_seconds == round(0.89 + 1.0 + 10 * 20.06, 1) == 202.5
    assert outcome.fits and outcome.within_lambda_timeout
    # the least concurrency: 2 instances -> 50 waves x 20.06 = 1,003 s > 900 - 0.89; 3 -> 34 x 20.06 = 682 s
    assert outcome.min_concurrency == 3
    assert outcome.iam_requests_per_second_per_account == 2.0  # 40 calls in 20 s
    assert outcome.assume_role_per_second_hub == round(10 / 20.06, 2)


def test_the_model_charges_a_whole_table_read_to_every_account() -> None:
    measured = _measured(full_table_read=True)
    # 100 accounts x 2,000 users x 13 findings = 2.6 M findings, 1,000 a page: 2,600 pages of 30 ms each
    assert org_model.scan_pages(100, measured) == 2600
    outcome = org_model.model(org_model.Scenario(accounts=100, concurrency=10), measured, "steady")
    assert outcome.account_seconds == 20.0 + 2600 * 0.03 == 98.0
    assert outcome.total_seconds == round(0.89 + 1.0 + 10 * (98.0 + 0.06), 1)
    assert outcome.fits is False
    # a first round reads the table as it fills: on average the 49 accounts stored before it (1,274 pages)
    first = org_model.model(org_model.Scenario(accounts=100, concurrency=10), measured, "first")
    assert first.scan_pages_per_account == 1274 and first.account_seconds == round(60.0 + 1274 * 0.03, 2)
    # One audit longer than the window can never fit; longer than Lambda's 300 s timeout fails outright.
    slow = org_model.model(org_model.Scenario(100, 10), _measured(account_seconds_steady=950.0))
    assert slow.min_concurrency is None and not slow.within_lambda_timeout and not slow.fits
    # however many instances: an audit longer than Lambda's 300 s timeout never completes
    timed_out = org_model.model(org_model.Scenario(100, 10), _measured(account_seconds_steady=400.0))
    assert timed_out.min_concurrency is None and not timed_out.within_lambda_timeout


def test_the_latency_floor_counts_the_round_trips_an_audit_waits_for_in_turn() -> None:
    measured = _measured()
    # steady: 1 + ceil(13 / 8) + ceil(5 / 16) = 4 round trips; first: 1 + 26,000 / 16 = 1,626
    assert org_model.latency_floor(measured.operations_steady, 0.03) == pytest.approx(0.12)
    assert org_model.latency_floor(measured.operations_first, 0.03) == pytest.approx(48.78)
    floor = org_model.model(org_model.Scenario(100, 10), measured, "first", basis="floor")
    assert floor.basis == "floor" and floor.account_seconds == 48.78 and floor.fits


def test_the_lambda_estimate_adds_the_functions_cpu_at_its_vcpu_share() -> None:
    measured = _measured(cpu_seconds_steady=3.0, cpu_seconds_first=20.0)
    # 512 MB is 512 / 1,769 of a vCPU: 3 CPU seconds take 3 x 1,769 / 512 = 10.37 s
    assert org_model.lambda_cpu_seconds(3.0) == pytest.approx(10.365, abs=1e-3)
    steady = org_model.model(org_model.Scenario(100, 10), measured, "steady", basis="lambda")
    assert steady.account_seconds == round(0.12 + 3.0 * 1769 / 512, 2)
    first = org_model.model(org_model.Scenario(100, 10), measured, "first", basis="lambda")
    assert first.account_seconds == round(48.78 + 20.0 * 1769 / 512, 2) and first.within_lambda_timeout
    # without a measured CPU there is no estimate, said rather than guessed
    with pytest.raises(ValueError, match="CPU"):
        org_model.model(org_model.Scenario(100, 10), _measured(), "steady", basis="lambda")


def _round(label: str, accounts: int, seconds: float, items: float, **extra: Any) -> dict[str, Any]:
    return {
        "round": label,
        "accounts": accounts,
        "accounts_planned": accounts + 1,
        "accounts_audited": accounts,
        "accounts_audited_within_budget": accounts,
        "invocations": accounts + 1,
        "stopped_at_budget": False,
        "failed_invocations": 0,
        "budget_seconds": 900.0,
        "wall_seconds": seconds * 3,
        "load_avg_1m_before": 2.0,
        "load_avg_1m_after": 2.5,
        "account_seconds": {"median": seconds, "p95": seconds * 1.2, "max": seconds * 1.5, "min": seconds / 2},
        "dynamodb_items_read_per_account": {"median": items, "p95": items, "max": items, "min": items},
        "dynamodb_items_scanned_per_account": {"median": items, "p95": items, "max": items, "min": items},
        "handler_calls_per_account": {
            "by_service": {"iam": 40.0, "sts": 1.0, "dynamodb": 8.0, "sqs": 0.0, "organizations": 0.0},
            "by_operation": {"dynamodb:Scan": items / 1000, "dynamodb:PutItem": 5.0},
        },
        "server_calls_per_account_by_service": {"iam": 40.0, "sts": 1.0, "dynamodb": 9.0, "sqs": 2.1},
        "planner": {"seconds": 0.4, "calls": {"organizations:ListAccounts": 1, "dynamodb:Query": 2}},
        **extra,
    }


def test_the_organization_section_shows_growth_per_account_and_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchlib

    machine = {"date": "2026-11-30T07:00:00+00:00", "git_commit": "abc1234", "nproc": 2, "load_avg_1m": 3.0}
    sweep = {
        "benchmark": "org_audit",
        "users_per_account": 200,
        "concurrency": 2,  # the model still uses the template's AuditConcurrency (10)
        "command": ".venv/bin/python bench/org_audit.py",
        "machine": machine,
        "account": seeding.describe(seeding.plan(200, 2)),
        "complete": False,
        "counts": [
            {
                "accounts": 10,
                "rounds": [
                    # every message taken before the budget ran out, the last audit done after it
                    _round(
                        "first",
                        10,
                        8.0,
                        13000,
                        wall_seconds=933.0,
                        stopped_at_budget=True,
                        accounts_audited_within_budget=9,
                    ),
                    _round(
                        "steady",
                        10,
                        4.0,
                        26000,
                        account_cpu_seconds={"median": 0.9, "p95": 1.0, "max": 1.0, "min": 0.8},
                        server_cpu_seconds=78.0,
                    ),
                ],
            },
            {
                "accounts": 30,
                "rounds": [
                    _round("first", 30, 20.0, 60000, failed_invocations=2),
                    _round("steady", 30, 9.0, 78000),
                ],
            },
            {
                "accounts": 100,
                "rounds": [
                    _round(
                        "first",
                        100,
                        320.0,
                        200000,
                        stopped_at_budget=True,
                        accounts_audited_within_budget=41,
                        invocations=60,
                    )
                ],
                "not_measured": "the first round did not finish within 900 s",
            },
        ],
    }
    # the first audit writes each of 2,000 x 13 findings once (and reads the then nearly empty table)
    first_calls = {
        "handler_calls_per_account": {
            "by_service": {"iam": 40.0, "sts": 1.0, "dynamodb": 26002.0, "sqs": 0.0, "organizations": 0.0},
            "by_operation": {"dynamodb:Scan": 1.0, "dynamodb:PutItem": 26000.0, "iam:GetUser": 40.0},
        }
    }
    account = {
        "benchmark": "org_audit_account",
        "users": 2000,
        "command": ".venv/bin/python bench/org_audit.py --accounts 0",
        "machine": machine,
        "account": seeding.describe(seeding.plan(50, 2)),
        "networks": [
            {
                "delay_ms": 30.0,
                "network": "moto + 30 ms",
                "rounds": [_round("first", 1, 60.0, 19, **first_calls), _round("steady", 1, 20.0, 26000)],
            }
        ],
    }
    (tmp_path / "org_audit-200.json").write_text(json.dumps(sweep))
    (tmp_path / "org_audit_account-2000.json").write_text(json.dumps(account))
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)

    text = report.results_md()
    assert "## Organization (issue #14): the audit of every account, end to end" in text
    assert (
        "| 10 | steady | 12.0 | 4.0 / 4.8 / 6.0 | 10 (of 11) | 40 / 1 / 9 / 2.1 / 0 | 40 / 1 / 8 / 0 / 0 | 26,000 |"
        in text
    )
    assert "| 30 | first | 60.0 | 20.0 / 24.0 / 30.0 | 30 (of 31), **2 failed** |" in text
    # the CPU one account's audit cost: the function's own + its share of the server's (78 s / 10 accounts)
    assert "| 26,000 | 8.7 (0.9 + 7.8) | 0.40 |" in text and "| 78,000 | - | 0.40 |" in text
    assert "100 (of 101) (**stopped** at its 900 s budget; 41 done within it)" in text
    assert "| 10 | first | 933.0 | 8.0 / 9.6 / 12.0 | 10 (of 11) (over its 900 s budget: 9 done within it) |" in text
    assert "not measured: the first round did not finish within 900 s" in text
    # 10 -> 30 accounts: 4 s -> 9 s, 26,000 -> 78,000 items: said plainly, with the cause
    assert "went from 4.0 s to 9.0 s (x2.25) and read 26,000 → 78,000 DynamoDB items (x3.00)" in text
    assert "**Not independent of the number of accounts**" in text
    # the items read say whether the work grows; moto's time is said apart from it
    assert "**Independent of the number of accounts.**" in report.sweep_verdict(3, 30, (7.0, 8.0), (494, 521))
    grown_time = report.sweep_verdict(3, 30, (7.6, 20.0), (494, 521))
    assert "**The work is independent of the number of accounts**" in grown_time
    assert "**The time on moto is not**" in grown_time and "Not independent" not in grown_time
    # ... unless the CPU the audit cost (the function's and the moto server's share) stayed flat: then the
    # wall time grew with the machine's load, and the verdict says so
    loaded = report.sweep_verdict(3, 30, (7.6, 20.0), (494, 521), (8.0, 8.8))
    assert "its CPU (function + moto server) 8.0 s → 8.8 s (x1.10)" in loaded
    assert "**Independent of the number of accounts** in the work (the items read) and in what it costs" in loaded
    assert "**The time on moto is not**" in report.sweep_verdict(3, 30, (7.6, 20.0), (494, 521), (8.0, 16.0))
    assert "(**stopped part way**)" in text
    # the model on the measured account (13 findings a user, 1,000 findings a page from the sweep's largest table)
    measured = org_model.measured_from(account, sweep)
    assert (measured.findings_per_user, measured.items_per_scan_page, measured.full_table_read) == (13.0, 1000.0, True)
    with_scan = org_model.model(org_model.Scenario(100, 10), measured)
    assert f"**{with_scan.total_seconds:,.0f}**" in text
    assert (
        "| if each audit read only its own account's findings | as measured on moto + latency | steady | 20.0 |" in text
    )
    assert "| as measured | round trips only | first |" in text

    readme = report.organization_readme_line()
    assert readme.startswith(
        "Organization (bench/org_audit.py): steady rounds on moto, 10 x 200 users: 12 s end to end, 4.0 s per "
        "account, 26,000 DynamoDB items read per account (load 2.0-2.5), 30 x 200 users: 27 s"
    )
    assert "modelled 100 x 2,000 users on AWS (steady round, this code): " in readme and "does not fit" in readme

    # A steady round that failed (or never ran) is not modelled: the first round still is, and the report says so.
    account["networks"][0]["rounds"][1]["failed_invocations"] = 1
    without_steady = org_model.measured_from(account, sweep)
    assert without_steady.account_seconds_steady is None and without_steady.findings_per_user == 13.0
    with pytest.raises(ValueError, match="no steady round"):
        org_model.model(org_model.Scenario(100, 10), without_steady, "steady")
    (tmp_path / "org_audit_account-2000.json").write_text(json.dumps(account))
    text = report.results_md()
    assert "| as measured | as measured on moto + latency | steady | not modelled: no steady round" in text
    assert "modelled 100 x 2,000 users on AWS (first round, this code)" in report.organization_readme_line()


def _profile_result() -> dict[str, Any]:
    return {
        "benchmark": "audit_profile",
        "users": 2000,
        "shape": "current",
        "command": ".venv/bin/python bench/audit_profile.py --users 2000",
        "machine": {"date": "2026-11-30T07:40:00+00:00", "git_commit": "def5678", "nproc": 2, "python": "3.11.7"},
        "cli": {
            "wall_seconds_median": 3.0,
            "cpu_seconds_median": 2.5,
            "server_cpu_seconds_median": 1.2,
            "api_calls_by_operation": {"iam:GetAccountAuthorizationDetails": 1, "iam:GetLoginProfile": 100},
            "runs": [{}, {}, {}],
        },
        "client_phases_cpu_seconds": {
            "start_up_imports": 0.6,
            "read_account_client": 0.5,
            "run_checks": 0.4,
            "json_report": 0.5,
        },
        "operations": {
            "iam:GetAccountAuthorizationDetails": {"count": 1, "client_cpu_ms": 100.0, "server_cpu_ms": 600.0},
            "iam:GetLoginProfile": {"count": 100, "client_cpu_ms": 2.0, "server_cpu_ms": 5.0},
            "iam:SomethingNew": {"count": 3, "measured": False},
        },
    }


def test_the_profile_splits_the_audits_cpu_between_iamguard_botocore_and_moto() -> None:
    import audit_profile

    split = audit_profile.split(_profile_result())
    # botocore: 1 x 100 ms + 100 x 2 ms; moto: 600 ms + 100 x 5 ms; iamguard's inventory: the read minus botocore
    assert split["botocore: requests and response parsing"] == pytest.approx(0.3)
    assert split["moto server (all calls)"] == pytest.approx(1.1)
    assert split["iamguard: inventory (responses to account state)"] == pytest.approx(0.2)
    assert split["iamguard: start-up (imports)"] == 0.6 and split["iamguard: JSON report"] == 0.5
    # the CLI's CPU the phases do not account for (interpreter start, argparse, exit): 2.5 - 2.0
    assert split["interpreter start, argparse, exit"] == pytest.approx(0.5)


def test_results_md_shows_the_profile_the_status_reads_and_the_stored_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit_profile
    import benchlib

    profile = _profile_result()
    profile["split_cpu_seconds"] = audit_profile.split(profile)
    (tmp_path / "audit_profile-current-2000.json").write_text(json.dumps(profile))
    machine = {"date": "2026-11-30T07:50:00+00:00", "git_commit": "fed4321", "nproc": 2}
    status = {
        "benchmark": "status_reads",
        "command": ".venv/bin/python bench/status_reads.py --users 10000",
        "machine": machine,
        "users": 10000,
        "findings_stored": 40003,
        "status_seconds": 0.4,
        "dynamodb_calls_by_operation": {"BatchGetItem": 1, "Query": 2},
        "dynamodb_reads": 3,
        "same_answer_as_a_full_read": True,
    }
    (tmp_path / "status_reads-10000.json").write_text(json.dumps(status))
    run = {"wall_seconds": 9.0, "peak_rss_mb": 90.0, "iam_calls": 15, "dynamodb_calls": 15}
    stored = {
        "users": 2000,
        "command": ".venv/bin/python bench/audit_cli.py --users 2000",
        "machine": machine,
        "runs": {"store_second": {**run, "iam_calls_by_operation": {"GetPolicy": 4}}},
    }
    (tmp_path / "audit_cli-2000.json").write_text(json.dumps(stored))
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)

    text = report.results_md()
    assert "| moto server (all calls) | 1.10 | 31 % |" in text  # of 3.6 CPU s in all
    assert "| GetLoginProfile | 100 | 2.0 | 5.0 | 0.50 |" in text
    assert "SomethingNew" not in text  # not measured alone: no per-call row
    assert "iamguard's own code: 1.70 s (47 %)" in text  # imports, inventory, checks, report
    assert "**3 DynamoDB reads** (BatchGetItem 1, Query 2)" in text and "40,003 findings" in text
    assert "| store_second | 9.00 | 90 | 15 | 15 | GetPolicy 4 |" in text
    assert "commit `def5678`" in text and "commit `fed4321`" in text


def test_an_unmet_target_is_explained_by_what_the_calls_cost() -> None:
    import audit_profile

    profile = _profile_result()
    profile["shape"] = "never-signed-in"
    # iamguard's own code: 0.6 + 0.2 + 0.4 + 0.5 = 1.7 CPU s; the calls: botocore 0.3 + moto 1.1 + the rest 0.5 = 1.9
    profile["split_cpu_seconds"] = audit_profile.split(profile)
    result = {
        "users": 2000,
        "shape": "never-signed-in",
        "machine": {"nproc": 2},
        # moto: Custodian 40 s / iamguard 2 s = 20x < 25x; moto + 30 ms is not explained (no profile of it)
        "networks": [_network(0, 2.0, 60.0, 40.0), _network(30, 3.0, 600.0, 120.0)],
    }

    # When the target allows 40 / 25 = 1.6 s and the calls alone need 1.9 / 2 CPUs = 0.95 s
    text = report.target_gaps([result], [profile])
    assert text.count("\n* ") == 2, "a line for each network model's unmet target"
    assert "**never-signed-in, moto: 20.0x against Cloud Custodian, 5 iam-user policies (target 25x).**" in text
    assert "leaves iamguard 1.60 s" in text and "1,300 calls to the peer's 14,000 (10.8x fewer)" in text
    assert "those calls alone cost 1.90 CPU s" in text and "at least 0.95 s on 2 CPUs" in text
    # the operation that costs most on the server is named, with why it is made
    assert "GetAccountAuthorizationDetails x 1 is 0.70 s" in text and "every user, group and policy" in text
    assert "reachable only if iamguard's own code (today 1.70 CPU s) fit in about 0.65 s beside the calls" in text
    # at 30 ms a request the calls also wait: 1,300 calls, none of them per user here, one after another
    assert "**never-signed-in, moto + 30 ms: 40.0x against Cloud Custodian" in text
    assert "at 30 ms a request they also wait at least 39.00 s" in text and "at most 3x even if" in text

    # When the peer is faster still, the calls alone exceed what the target allows: out of reach
    result["networks"] = [_network(0, 2.0, 60.0, 20.0)]
    text = report.target_gaps([result], [profile])
    assert "out of reach with these calls on this machine" in text and "at most 21x" in text

    # ... and the per-user calls wait PER_USER_WORKERS at a time
    profile["operations"]["iam:GetLoginProfile"]["server_cpu_ms"] = 50.0
    result["networks"] = [_network(30, 3.0, 600.0, 120.0)]
    assert "wait at least 36.38 s (GetLoginProfile 8 at a time, the other 1,200 one after another)" in (
        report.target_gaps([result], [profile])
    )

    # And a met target, or no profile of the shape, explains nothing
    result["networks"] = [_network(0, 1.0, 60.0, 40.0)]
    assert report.target_gaps([result], [profile]) == ""
    result["networks"] = [_network(0, 2.0, 60.0, 40.0)]
    assert report.target_gaps([result], []) == ""


def test_the_bench_server_counts_requests_sent_together_as_one_round() -> None:
    """The event path's rounds: what a client waited for together is one round trip, whatever its length."""
    assert moto_server.rounds([]) == {"rounds": 0, "busy_ms": 0.0}
    # two requests overlapping, then one after both ended
    assert moto_server.rounds([(0.5, 1.5), (0.0, 1.0), (2.0, 3.0)]) == {"rounds": 2, "busy_ms": 2500.0}

    app = moto_server.CallCounting(_answer)
    _call(app, "/__bench__/delay", body=json.dumps({"seconds": 0.1}).encode())
    together = [
        threading.Thread(target=_call, args=(app,), kwargs={"query": "Action=GetUser", "authorization": SIGNED})
        for _ in range(3)
    ]
    for thread in together:
        thread.start()
    for thread in together:
        thread.join()
    _call(app, query="Action=ListAccessKeys", authorization=SIGNED)  # after the three came back
    status, out, _ = _call(app, "/__bench__/waits/reset", body=b"{}")
    assert status.startswith("200")
    waits = json.loads(out)
    assert (waits["requests"], waits["rounds"]) == (4, 2) and waits["busy_ms"] >= 200
    # reset: the next question starts from nothing
    assert json.loads(_call(app, "/__bench__/waits/reset", body=b"{}")[1])["requests"] == 0


def test_the_cold_start_counts_a_standard_library_import_to_the_package_that_needed_it() -> None:
    import cold_start

    # -X importtime prints a module after what it imported, indented two spaces per level
    importtime = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       300 |        300 |       asyncio.events",
            "import time:       100 |        400 |     asyncio",
            "import time:        50 |         50 |     dotenv",
            "import time:       900 |       1350 |   pydantic_settings",
            "import time:       200 |        200 |     zoneinfo",
            "import time:      4000 |       4200 |   iamguard.settings",
            "import time:       700 |        700 | json.decoder",
            "import time:        10 |         10 | app",
        ]
    )
    own = cold_start._own_time_by_package(importtime)
    assert own["pydantic_settings"] == 1300  # its own 900 + asyncio's 400
    assert own["dotenv"] == 50  # a package of its own, outside the standard library
    assert own["iamguard"] == 4200  # zoneinfo was imported for it
    assert own["json"] == 700  # imported by nothing outside the standard library: its own
    assert "asyncio" not in own and "zoneinfo" not in own


def test_the_event_targets_say_what_the_calls_the_cpu_and_the_import_are_made_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchlib

    machine = {"date": "2026-11-30T18:00:00+00:00", "load_avg_1m": 0.5, "git_commit": "abc1234"}
    event = {
        "machine": machine,
        "handler": {
            "server_calls_per_warm_event": {
                **{f"iam:{op}": 1.0 for op in ("GetUser", "ListAttachedUserPolicies", "ListUserPolicies")},
                "dynamodb:PutItem": 1.0,
                "dynamodb:TransactWriteItems": 2.0,
            }
        },
        "handler_delayed": {"delay_ms": 30, "rounds_per_warm_event": 4, "warm_ms": {"median": 160.0}},
        "handler_in_process": {
            "warm_ms": {"median": 104.0},
            "warm_cpu_ms": {"median": 100.0},
            "warm_cpu_split": {
                "calls_per_event": 6,
                "in_calls_ms": 90.0,
                "moto_ms": 70.0,
                "botocore_ms": 20.0,
                "outside_calls_ms": 10.0,
            },
        },
    }
    cold = {
        "machine": machine,
        "handlers": {
            "on_event": {
                "over_boto3_ms": 380.0,
                "over_boto3_cpu_ms": 370.0,
                "over_boto3_by_package": {
                    "self_ms_by_package": {"iamguard": 150.0, "pydantic": 100.0, "pydantic_settings": 50.0},
                    "iamguard_pydantic_models": 21,
                    "iamguard_dataclasses": 45,
                },
            }
        },
    }
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)
    (tmp_path / "event_path.json").write_text(json.dumps(event))
    (tmp_path / "cold_start.json").write_text(json.dumps(cold))
    assert report.event_readme_line() == (
        "Event path (bench/event_path.py, bench/cold_start.py): a CreateUser for a new user makes 6 AWS calls "
        "(target 8) in 4 rounds, warm 160 ms with every request held 30 ms; warm 104 ms on in-process moto "
        "(target 50 ms; its calls alone take 90 CPU ms there); the handler's import adds 380 ms to boto3's "
        "(target 200 ms)."
    )

    text = report.event_targets_section(event, cold)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    calls = rows["a CreateUser for a new user: ≤ 8 AWS calls"]
    assert "| 6 (server's count) | met |" in calls and "3 IAM reads" in calls
    assert "TransactWriteItems 2: the findings, summary and alert" in calls
    assert "waited for in 4 rounds" in calls and "warm median 160 ms" in calls
    warm = rows["warm handler time on moto: ≤ 50 ms"]
    assert "| 104 ms in process (CPU 100 ms) | not met |" in warm
    assert "6 AWS calls take 90 CPU ms (moto 70, botocore 20)" in warm and "out of reach on moto" in warm
    cold_row = rows["cold start: the event handler's import ≤ 200 ms over `import boto3`"]
    assert "| +380 ms (CPU +370) | not met |" in cold_row
    assert (
        "iamguard 50%" in cold_row
        and "pydantic_settings 17% (Settings" in cold_row
        and "21 pydantic models and 45 dataclasses at import" in cold_row
    )
    assert "commit `abc1234`" in text
    # nothing measured: nothing to say
    assert report.event_targets_section(None, None) == ""

    # The 10,000-user audit: memory within the target, time out of reach where moto alone takes longer
    large = _network(0, 20.0, 400.0, 300.0)
    large["iamguard_cli"].update(peak_rss_mb_max=160.0, server_cpu_seconds_median=8.0, api_calls=80)
    large["iamguard_in_process"] = {"phases_seconds": {"read_account": 12.0, "render_json": 4.0, "total": 16.0}}
    results = [{"users": 10000, "shape": "current", "machine": machine, "networks": [large]}]
    text = report.event_targets_section(None, None, results)
    assert "| 20.0 s, 160 MB (current, load 2.5) | memory met, time not met |" in text
    assert "80 calls; the moto server alone spent 8.0 CPU s answering them, more than the target allows" in text
    assert "read_account 12.0 s, render_json 4.0 s." in text
