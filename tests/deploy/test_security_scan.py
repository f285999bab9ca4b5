"""The security scan (`make checkov`): every suppression has a written reason, and the scan can fail."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]
from iamguard_cli.local.cfn import expand_for_each, load_yaml

from tests.support.template import REPO, require

CONFIG = REPO / ".checkov.yaml"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
TEMPLATES = [REPO / "template.yaml", REPO / "forwarder" / "signin-forwarder.yaml", REPO / "member" / "template.yaml"]
MIN_REASON = 40  # characters: a reason, not a placeholder


def global_skips() -> list[tuple[str, str]]:
    """(check id, the comment block right above it) for each skip-check entry of .checkov.yaml."""
    lines = CONFIG.read_text().splitlines()
    skips: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        match = re.fullmatch(r"\s*-\s*(CKV\w+)\s*", line)
        if not match:
            continue
        comment: list[str] = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            comment.insert(0, lines[j].strip().lstrip("#").strip())
            j -= 1
        skips.append((match.group(1), " ".join(comment)))
    return skips


def resource_skips(path: Path) -> list[tuple[str, str, Any]]:
    template: dict[str, Any] = expand_for_each(cfn_yaml.load(str(path)))
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            found.append((logical_id, str(skip.get("id", "")), skip.get("comment")))
    return found


def test_config_is_offline_and_scans_cloudformation() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["skip-download"] is True
    assert config["framework"] == ["cloudformation"]
    assert [s for s, _ in global_skips()] == config["skip-check"]


@pytest.mark.parametrize("check_id,comment", global_skips(), ids=[s for s, _ in global_skips()])
def test_every_account_wide_suppression_says_why(check_id: str, comment: str) -> None:
    assert comment.startswith(check_id), f"{check_id}: the comment above it must name it"
    assert len(comment) - len(check_id) >= MIN_REASON, f"{check_id}: no written reason"


@pytest.mark.parametrize("path", TEMPLATES, ids=[str(p.relative_to(REPO)) for p in TEMPLATES])
def test_every_resource_suppression_says_why(path: Path) -> None:
    for logical_id, check_id, comment in resource_skips(path):
        assert re.fullmatch(r"CKV\w+", check_id), f"{logical_id}: skip without a check id"
        assert isinstance(comment, str) and len(comment.strip()) >= MIN_REASON, (
            f"{path.name} {logical_id} {check_id}: no written reason"
        )


def test_the_scan_fails_on_a_failing_template(tmp_path: Path) -> None:
    # Given a template with an unencrypted queue and a function without a dead-letter queue
    require(CHECKOV.exists(), f"{CHECKOV} is missing: run `make .venv-checkov` (make test does)")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            AWSTemplateFormatVersion: "2010-09-09"
            Resources:
              Queue:
                Type: AWS::SQS::Queue
                Properties: {}
            """
        )
    )
    # When it is scanned with the project's settings, offline
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    done = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "-f", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    # Then the scan fails and names the check
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CKV_AWS_27" in done.stdout


def test_the_resources_the_loops_make_pass_the_scan_too(tmp_path: Path) -> None:
    # checkov does not expand Fn::ForEach: scanning template.yaml alone skips every function's
    # log group and Errors alarm. Given the template as AWS::LanguageExtensions expands it
    require(CHECKOV.exists(), f"{CHECKOV} is missing: run `make .venv-checkov` (make test does)")
    body = load_yaml(REPO / "template.yaml")
    body["Transform"] = [t for t in body["Transform"] if t != "AWS::LanguageExtensions"]
    expanded = tmp_path / "expanded.json"
    expanded.write_text(json.dumps(body))
    # When it is scanned with the project's settings, offline
    done = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "-f", str(expanded), "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        timeout=300,
        check=False,
        cwd=REPO,
    )
    # Then every resource is scanned (the log groups among them) and none fails
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)["summary"]
    assert summary["resource_count"] == len(body["Resources"])
    assert summary["failed"] == 0
    assert {"AuditAccountLogGroup", "OnSigninEventErrorsAlarm"} <= body["Resources"].keys()
