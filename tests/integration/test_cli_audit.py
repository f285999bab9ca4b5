"""`iamguard audit` as a user runs it: a separate process talking HTTP to a moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard_cli.local.seed import seed_designed_account
from iamguard_cli.local.server import MotoServer

# The designed account (iamguard_cli.local.seed.seed_designed_account) and exactly what must fail in it.
EXPECTED_FAILURES = {
    ("root_mfa_enabled", "root"),
    ("root_hardware_mfa", "root"),
    ("password_policy", "iamguard-example"),
    ("user_mfa", "bob_ci"),
    ("user_single_active_key", "bob_ci"),
    ("user_admin_access", "carol_ops"),
    ("user_admin_without_mfa", "carol_ops"),
    ("user_mfa", "carol_ops"),
    ("user_console_mfa", "dave_new"),
    ("user_mfa", "dave_new"),
    ("user_no_direct_policies", "dave_new"),
    ("user_password_reset_possible", "dave_new"),
}
EXPECTED_EXEMPT = {("user_console_mfa", "erin_contractor"), ("user_mfa", "erin_contractor")}


def iamguard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iamguard_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def failures(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["check_id"], f["resource_name"]) for f in report["findings"] if f["status"] == "FAIL"}


def test_audit_json_reports_exactly_the_expected_findings(server_aws: AwsContext, moto_server: MotoServer) -> None:
    seed_designed_account(server_aws.iam())
    result = iamguard("audit", "--endpoint-url", moto_server.url, "--format", "json")
    assert result.returncode == 3, result.stderr  # failures present → exit 3
    report = json.loads(result.stdout)
    assert report["account_id"] == "123456789012"
    assert failures(report) == EXPECTED_FAILURES
    assert {
        (f["check_id"], f["resource_name"]) for f in report["findings"] if f["status"] == "EXEMPT"
    } == EXPECTED_EXEMPT
    assert report["summary"]["by_status"]["ERROR"] == 0
    assert report["summary"]["failed_by_severity"] == {
        "critical": 2,
        "high": 4,
        "medium": 1,
        "low": 5,
        "informational": 0,
    }
    dave = next(
        f for f in report["findings"] if f["check_id"] == "user_password_reset_possible" and f["status"] == "FAIL"
    )
    assert (
        dave["detail"]
        == "User dave_new must reset the password at first sign-in but is not allowed iam:ChangePassword."
    )
    assert "IAMUserChangePassword" in dave["remediation"]["cli"] and "dave_new" in dave["remediation"]["cli"]
    assert dave["resource_arn"] == "arn:aws:iam::123456789012:user/dave_new"


def test_only_failed_csv_and_output_file(server_aws: AwsContext, moto_server: MotoServer, tmp_path: Path) -> None:
    seed_designed_account(server_aws.iam())
    out = tmp_path / "report.csv"
    result = iamguard(
        "audit", "--endpoint-url", moto_server.url, "--format", "csv", "--only-failed", "--output", str(out)
    )
    assert result.returncode == 3
    assert result.stdout == ""
    lines = out.read_text().splitlines()
    assert lines[0] == (
        "check_id,severity,status,resource_type,resource_name,resource_arn,detail,exempt_owner,exempt_reason,exempt_until"
    )
    assert len(lines) == 1 + len(EXPECTED_FAILURES)


@pytest.mark.parametrize(("fail_on", "code"), [("critical", 3), ("none", 0)])
def test_fail_on_threshold(server_aws: AwsContext, moto_server: MotoServer, fail_on: str, code: int) -> None:
    seed_designed_account(server_aws.iam())
    assert iamguard("audit", "--endpoint-url", moto_server.url, "--fail-on", fail_on).returncode == code


def test_fail_on_high_passes_when_only_lower_severities_fail(server_aws: AwsContext, moto_server: MotoServer) -> None:
    from iamguard_cli.local import moto_ext

    iam = server_aws.iam()
    iam.create_account_alias(AccountAlias="tidy")
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)
    moto_ext.root("123456789012").mfa = "hardware"
    iam.create_user(UserName="ci")  # programmatic user without MFA: low
    result = iamguard("audit", "--endpoint-url", moto_server.url, "--fail-on", "high", "--only-failed")
    assert result.returncode == 0, result.stdout
    assert "user_mfa" in result.stdout and "ci" in result.stdout


def test_store_records_findings_and_a_second_run_changes_nothing(
    server_aws: AwsContext, moto_server: MotoServer
) -> None:
    seed_designed_account(server_aws.iam())
    table = ["--store", "--table", "cli-findings"]
    assert iamguard("audit", "--endpoint-url", moto_server.url, *table).returncode == 3
    from iamguard.persistence.findings import FindingsStore

    store = FindingsStore(server_aws.dynamodb(), "cli-findings")
    stored = store.findings()
    assert {(f.check_id, f.resource_name) for f in stored if f.status.value == "FAIL"} == EXPECTED_FAILURES
    assert iamguard("audit", "--endpoint-url", moto_server.url, *table).returncode == 3
    again = store.findings()
    assert {(f.key, f.status_changed_at) for f in again} == {(f.key, f.status_changed_at) for f in stored}
    runs, complete = store.audit_runs(stored[0].observed_at - timedelta(hours=1), most=10)
    assert complete and len(runs) == 2
    assert [run["summary"]["by_status"]["FAIL"] for run in runs] == [len(EXPECTED_FAILURES)] * 2
    latest = store.latest_audit()
    assert latest is not None and latest["started_at"] == runs[-1]["started_at"] > runs[0]["started_at"]


def test_usage_errors_exit_2() -> None:
    result = iamguard("audit", "--format", "xml")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    result = iamguard("audit", "--fail-on", "severe")
    assert result.returncode == 2


def test_invalid_settings_are_a_usage_error() -> None:
    result = iamguard("audit", "--required-policy", "not-an-arn", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "not an IAM policy ARN" in result.stderr


def test_unreachable_endpoint_is_one_line_exit_1() -> None:
    result = iamguard("audit", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.startswith("iamguard: error: cannot reach http://127.0.0.1:9")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _failing_middleware(status: int, code: str, times: int) -> Callable[[Any], Any]:
    """Answers the first `times` IAM requests with an AWS error, then lets moto answer."""
    remaining = {"n": times}

    def wrap(app: Any) -> Any:
        def middleware(environ: dict[str, Any], start_response: Any) -> Any:
            if remaining["n"] > 0 and "iam" in environ.get("HTTP_AUTHORIZATION", ""):
                remaining["n"] -= 1
                body = (
                    f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} for test</Message>"
                    "</Error><RequestId>1</RequestId></ErrorResponse>"
                ).encode()
                start_response(f"{status} Error", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
                return [body]
            return app(environ, start_response)

        return middleware

    return wrap


def test_throttling_is_retried_by_botocore() -> None:
    with MotoServer(wrap=_failing_middleware(400, "Throttling", 3)) as server:
        result = iamguard("audit", "--endpoint-url", server.url, "--format", "json")
    assert result.returncode == 3, result.stderr  # completed despite three throttled calls
    assert ("root_mfa_enabled", "root") in failures(json.loads(result.stdout))


def test_access_denied_is_one_line_exit_1() -> None:
    with MotoServer(wrap=_failing_middleware(403, "AccessDenied", 100)) as server:
        result = iamguard("audit", "--endpoint-url", server.url)
    assert result.returncode == 1
    assert result.stderr.startswith("iamguard: error: access denied calling GetAccountSummary")
