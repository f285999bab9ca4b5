"""`iamguard audit --compliance` as a user runs it: a separate process talking HTTP to a moto server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from iamguard.aws import AwsContext
from iamguard_cli.local.seed import seed_designed_account
from iamguard_cli.local.server import MotoServer


def iamguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iamguard_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def test_cis_v7_table_and_json_control_by_control(
    server_aws: AwsContext, moto_server: MotoServer, tmp_path: Path
) -> None:
    seed_designed_account(server_aws.iam())
    table = iamguard("audit", "--endpoint-url", moto_server.url, "--compliance", "cis-7.0")
    assert table.returncode == 3, table.stderr  # failures present, as without --compliance
    out = table.stdout
    assert out.startswith(
        "CIS Amazon Web Services Foundations Benchmark 7.0.0: compliance view\naccount 123456789012\n"
    )
    assert "26 controls: 4 passed, 7 failed, 0 exempt, 0 not evaluated, 0 without data, " in out
    assert "15 not covered by iamguard (manual)" in out
    failed_ids = re.findall(r"^\[failed\] +(\S+) ", out, re.M)
    assert failed_ids == ["2.5", "2.6", "2.8", "2.9", "2.10", "2.13", "2.14"]  # in the benchmark's order
    assert re.findall(r"^\[passed\] +(\S+) ", out, re.M) == ["2.4", "2.7", "2.11", "2.12"]
    assert re.search(r"^\[manual\] +2\.1\.1 +Ensure centralized root access in AWS Organizations$", out, re.M)
    assert "bob_ci (user_single_active_key)" not in out  # v7.0 has no one-active-key control

    target = tmp_path / "cis7.json"
    written = iamguard(
        "audit",
        "--endpoint-url",
        moto_server.url,
        "--compliance",
        "cis-7.0",
        "--format",
        "json",
        "--output",
        str(target),
    )
    assert written.returncode == 3 and written.stdout == ""
    report = json.loads(target.read_text(encoding="utf-8"))
    assert report["framework"]["id"] == "cis-7.0"
    controls = {c["id"]: c for c in report["controls"]}
    assert {cid for cid, c in controls.items() if c["status"] == "FAIL"} == set(failed_ids)
    assert [(r["resource_name"], r["check_id"]) for r in controls["2.13"]["resources"]] == [
        ("dave_new", "user_no_direct_policies")
    ]
    assert controls["2.10"]["coverage"] == "full" and controls["2.14"]["coverage"] == "partial"


def test_korean_words_for_isms_p(server_aws: AwsContext, moto_server: MotoServer) -> None:
    seed_designed_account(server_aws.iam())
    result = iamguard("audit", "--endpoint-url", moto_server.url, "--compliance", "isms-p", "--language", "ko")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "정보보호 및 개인정보보호 관리체계 인증(ISMS-P) 인증기준 2023: 준수 현황"
    assert lines[2] == "통제 6개: 통과 1, 실패 4, 예외 0, 평가 불가 0, 데이터 없음 0, iamguard 미점검(수동 확인) 1"
    assert "대상 bob_ci (user_mfa): 사용자 bob_ci에게 MFA 장치가 없습니다." in [line.strip() for line in lines]
    assert any(re.fullmatch(r"\s+대상 erin_contractor \(user_console_mfa\): .+\(예외\)", line) for line in lines)
    assert result.stdout.rstrip().splitlines()[-1].startswith("출처: KISA(한국인터넷진흥원)")


def test_unknown_framework_and_unsupported_format_are_usage_errors(moto_server: MotoServer) -> None:
    unknown = iamguard("audit", "--endpoint-url", moto_server.url, "--compliance", "cis-9.9")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "invalid choice: 'cis-9.9' (choose from 'cis-3.0', 'cis-5.0', 'cis-7.0', 'fsbp', 'isms-p')" in unknown.stderr
    csv = iamguard("audit", "--endpoint-url", moto_server.url, "--compliance", "fsbp", "--format", "csv")
    assert csv.returncode == 2 and csv.stdout == ""
    assert "--compliance reports as table or json, not csv" in csv.stderr
