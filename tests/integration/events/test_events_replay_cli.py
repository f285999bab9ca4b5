"""`iamguard events replay` as a user runs it: another process, real HTTP to a moto server, the samples in events/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from iamguard.domain.alerts import Detection
from iamguard_cli.local.samples import IAMGUARD_SAMPLE_ROLE_ARN
from iamguard_cli.local.server import MotoServer

from tests.conftest import EVENTS_DIR
from tests.integration.events.support import CHANGE_PASSWORD, GUARDRAIL

# What DESIGN.md's detection table promises for each sample, replayed in file-name order against the
# sample account (`iamguard events seed`), with IAMUserChangePassword required and a burst threshold of 1.
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "add_user_to_group_admin": ("evaluated", {"admin_access_granted"}),
    "assume_root": ("evaluated", {"root_session_assumed"}),
    "attach_user_policy_admin": ("evaluated", {"admin_access_granted"}),
    "attach_user_policy_by_iamguard": ("ignored", set()),
    "check_mfa": ("ignored", set()),
    "console_login_assumed_role": ("ignored", set()),
    "console_login_failure": ("evaluated", {"console_sign_in_failures"}),
    "console_login_failure_hidden_user": ("evaluated", {"console_sign_in_failures"}),
    "console_login_failure_mfa": ("evaluated", {"console_sign_in_failures"}),
    "console_login_failure_root": ("evaluated", {"console_sign_in_failures"}),
    "console_login_federated_user": ("ignored", set()),
    "console_login_root_mfa": ("evaluated", {"root_console_sign_in"}),
    "console_login_root_no_mfa": ("evaluated", {"root_console_sign_in"}),
    "console_login_saml": ("ignored", set()),
    "console_login_saml_iam_user_type": ("ignored", set()),
    "console_login_signin_spelling": ("evaluated", {"console_sign_in_without_mfa"}),
    "console_login_sso": ("ignored", set()),
    "console_login_user_mfa": ("evaluated", set()),
    "console_login_user_no_mfa": ("evaluated", {"console_sign_in_without_mfa"}),
    "console_login_user_security_key": ("evaluated", set()),
    "console_login_web_identity": ("ignored", set()),
    "create_access_key_root": ("evaluated", {"root_access_key_created"}),
    "create_access_key_root_for_user": ("evaluated", set()),
    "create_account_alias": ("evaluated", set()),
    "create_login_profile": ("evaluated", {"console_access_granted"}),
    "create_policy_version_admin": ("evaluated", {"admin_access_granted"}),
    "create_policy_version_not_default": ("ignored", set()),
    "create_user": ("evaluated", {"user_created"}),
    "create_user_access_denied": ("ignored", set()),
    "deactivate_mfa_device": ("evaluated", {"mfa_removed"}),
    "deactivate_mfa_device_root": ("evaluated", {"mfa_removed"}),
    "deactivate_mfa_device_root_custom_name": ("evaluated", {"mfa_removed"}),
    "delete_account_password_policy": ("evaluated", {"password_policy_weakened"}),
    "delete_user_permissions_boundary": ("evaluated", {"admin_access_granted"}),
    "detach_user_policy_required": ("evaluated", {"required_policy_removed"}),
    "enable_mfa_device": ("evaluated", set()),
    "get_user_read_only": ("ignored", set()),
    "identity_center_credential_verification_failure": ("ignored", set()),
    "identity_center_user_authentication": ("ignored", set()),
    "put_user_permissions_boundary": ("evaluated", set()),
    "set_default_policy_version": ("evaluated", {"admin_access_granted"}),
    "update_account_password_policy": ("evaluated", {"password_policy_weakened"}),
}
FLAGS = ["--required-policy", CHANGE_PASSWORD, "--iamguard-role", IAMGUARD_SAMPLE_ROLE_ARN]


def iamguard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iamguard_cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SIGNIN_FAILURE_THRESHOLD": "1", "MODE": "monitor", **env},
        check=False,
    )


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


@pytest.fixture
def seeded(moto_server: MotoServer) -> str:
    done = iamguard("events", "seed", "--endpoint-url", moto_server.url)
    assert done.returncode == 0, done.stderr
    return moto_server.url


def samples() -> list[str]:
    return [str(EVENTS_DIR / f"{name}.json") for name in sorted(EXPECTED)]


def test_replaying_the_samples_produces_what_the_detection_table_promises(seeded: str) -> None:
    # When every sample is replayed against the sample account
    done = iamguard("events", "replay", *samples(), "--endpoint-url", seeded, *FLAGS)

    # Then each prints one JSON line with the promised outcome and detections
    assert done.returncode == 0, done.stderr
    results = lines(done.stdout)
    assert len(results) == len(EXPECTED)
    got = {
        Path(path).stem: (r["outcome"], {a["detection"] for a in r["alerts"]})
        for path, r in zip(samples(), results, strict=True)
    }
    assert got == EXPECTED
    for result in results:
        assert set(result) >= {"event_id", "event_name", "outcome", "reason", "findings", "alerts", "actions"}
        assert result["reason"]
        for alert in result["alerts"]:
            assert set(alert) == {"detection", "severity", "resource_name", "summary"}
    # Every row of the detection table is covered by a sample
    raised = {detection for _, detections in EXPECTED.values() for detection in detections}
    assert raised == {detection.value for detection in Detection}


def test_a_bad_file_or_event_is_rejected_and_the_replay_goes_on(seeded: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    several = tmp_path / "several.json"
    several.write_text(
        json.dumps(
            [{"detail-type": "AWS API Call via CloudTrail"}, json.loads((EVENTS_DIR / "create_user.json").read_text())]
        )
    )
    done = iamguard(
        "events", "replay", str(broken), str(tmp_path / "missing.json"), str(several), "--endpoint-url", seeded, *FLAGS
    )
    assert done.returncode == 0, done.stderr
    results = lines(done.stdout)
    assert [r["outcome"] for r in results] == ["rejected", "rejected", "rejected", "evaluated"]
    assert "broken.json is not usable JSON" in results[0]["reason"]
    assert "cannot read" in results[1]["reason"] and "missing.json" in results[1]["reason"]
    assert "not a CloudTrail event via EventBridge — version: Field required" in results[2]["reason"]
    assert results[3]["event_name"] == "CreateUser"


def test_a_second_replay_is_recognised_as_duplicate_delivery(seeded: str) -> None:
    event = str(EVENTS_DIR / "create_user.json")
    first = lines(iamguard("events", "replay", event, "--endpoint-url", seeded, *FLAGS).stdout)
    second = lines(iamguard("events", "replay", event, "--endpoint-url", seeded, *FLAGS).stdout)
    assert (first[0]["duplicate"], second[0]["duplicate"]) == (False, True)
    assert second[0]["alerts"] == first[0]["alerts"]


def test_enforce_mode_replay_attaches_the_guardrail_it_created(seeded: str) -> None:
    done = iamguard(
        "events",
        "replay",
        str(EVENTS_DIR / "console_login_user_no_mfa.json"),
        "--endpoint-url",
        seeded,
        "--mode",
        "enforce",
    )
    [result] = lines(done.stdout)
    assert [(a["action"], a["policy_arn"], a["performed"]) for a in result["actions"]] == [
        ("attach_guardrail_policy", GUARDRAIL, True)
    ]


def test_text_format_is_readable(seeded: str) -> None:
    done = iamguard(
        "events",
        "replay",
        str(EVENTS_DIR / "console_login_root_no_mfa.json"),
        "--endpoint-url",
        seeded,
        "--format",
        "text",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("evaluated ConsoleLogin ")
    assert (
        "ALERT  critical      root_console_sign_in: The root user signed in to the console without MFA" in done.stdout
    )


def test_seed_refuses_anything_but_a_local_endpoint() -> None:
    done = iamguard("events", "seed", "--endpoint-url", "https://iam.amazonaws.com")
    assert done.returncode == 2
    assert "seed only writes to a local emulator" in done.stderr
