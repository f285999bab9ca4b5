"""`iamguard demo --organization` (make demo-org) end to end, as a process: what it says, and its exit code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from iamguard_cli.local.organization import default_member_template

pytestmark = pytest.mark.e2e
STEPS = 7


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iamguard_cli", "demo", "--organization", "--accounts", "1", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_new_account_is_named_and_fails_and_so_does_the_organization() -> None:
    done = demo()
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    assert re.findall(r"^\[(\d)/7\] ", out, flags=re.MULTILINE) == [str(n) for n in range(1, STEPS + 1)]
    new = re.search(r"Organizations CreateAccount payments-sandbox: account (\d{12})", out)
    assert new, out
    account = new.group(1)
    # the member stack, seen from inside the new account, forwarding to the hub's bus
    assert f"audit role arn:aws:iam::{account}:role/iamguard-member-audit" in out
    assert "IamForwardRule" in out and "target the hub's bus arn:aws:events:us-east-1:123456789012:" in out
    # the hub's Slack messages about the admin without MFA name the account by id and alias
    assert re.search(rf"(\d+) of these \d+ messages name the account: {account} \(acme-payments-sandbox\)", out)
    assert "New finding: dev_admin — User dev_admin has full administrator access but no MFA device." in out
    # both organization audits went through the audit queue, the second one to the new account too
    assert "queued 2 of 2 audits" in out and "queued 3 of 3 audits" in out
    assert re.search(rf"3 audited \([\d, ]*{account}[\d, ]*\)", out)
    # GET /accounts and GET /status over HTTP
    assert re.search(rf"✗ {account} payments-sandbox: non-compliant; users 1 of 1 non-compliant", out)
    assert re.search(r"organization o-[a-z0-9]+: non-compliant; accounts 3: 3 non-compliant", out)
    assert out.count("  check     ✓ ") == out.count("  check     ") >= STEPS  # every check met, none missed
    assert "iamguard watched the new account from the moment it joined." in out
    assert "Demo-Walkthrough-Password-1!" not in out


def test_a_step_that_does_not_happen_fails_the_demo(tmp_path: Path) -> None:
    # A member stack whose forward rules are disabled: the new account's events never reach the hub
    text = default_member_template().read_text()
    assert text.count("      State: ENABLED\n") == 2  # the two forward rules
    broken = tmp_path / "member.yaml"
    broken.write_text(text.replace("      State: ENABLED\n", "      State: DISABLED\n"))
    done = demo("--member-template", str(broken))
    out = done.stdout
    assert done.returncode == 1, out[-4000:] + done.stderr[-3000:]
    assert "  check     ✗ the new account's events reached the hub's handler" in out
    assert "✗ Slack named the account (id and alias)" in out
    assert "Some of what the walkthrough expects did not happen (see the marks above)." in out
    # what does not depend on forwarding still holds
    assert "✓ the organization audit covered the new account too" in out
