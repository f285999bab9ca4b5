"""The benchmark's own machinery (bench/): the latency model, the account shapes, the generated RESULTS.md.

The benchmarks themselves run for an hour (make bench); these check the parts whose mistakes
would make every recorded number wrong without anything failing.
"""

from __future__ import annotations

import io
import json
import sys
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


def test_results_name_files_by_their_repository_path(tmp_path: Path) -> None:
    import benchlib

    # Given a result that mentions files inside the repository by absolute path
    out = tmp_path / "result.json"
    benchlib.write_json(out, {"report": str(benchlib.REPO / "bench" / "results" / "work" / "r.json")})
    # Then it is written by its repository path, and no committed result names this machine's checkout
    assert json.loads(out.read_text())["report"] == "bench/results/work/r.json"
    for committed in benchlib.RESULTS.glob("*.json"):
        assert '"/' not in committed.read_text(), f"{committed.name} names an absolute path"


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
