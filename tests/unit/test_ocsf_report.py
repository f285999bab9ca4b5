"""`--format ocsf`: iamguard's findings as OCSF Compliance Findings, valid against the published schema."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from iamguard.audit.ocsf import OCSF_VERSION, finding_uid, ocsf_finding
from iamguard.audit.report import render_ocsf
from iamguard.checks import CATALOG
from iamguard.domain.findings import Severity, Status

from tests.factories import ACCOUNT, NOW, finding
from tests.support.ocsf import ocsf_errors


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("check_id", sorted(CATALOG))
def test_every_check_in_every_status_is_a_valid_compliance_finding(check_id: str, status: Status) -> None:
    # Given a finding of each check (root, account and user scopes) in each status
    user = "bob" if CATALOG[check_id].scope == "user" else None
    event = ocsf_finding(finding(check_id, user=user, status=status, severity=CATALOG[check_id].severity))
    # Then it is an OCSF 1.5.0 Compliance Finding the published schema accepts
    assert event["metadata"]["version"] == OCSF_VERSION == "1.5.0"
    assert (event["class_uid"], event["category_uid"], event["type_uid"]) == (2003, 2, 200301)
    assert ocsf_errors(event) == []


def test_a_finding_maps_to_the_ocsf_fields() -> None:
    f = finding("user_console_mfa", user="bob", status=Status.FAIL, severity=Severity.HIGH)
    event = ocsf_finding(f)
    assert (event["severity_id"], event["severity"]) == (4, "High")
    assert (event["status_id"], event["status"], event["status_code"]) == (1, "New", "FAIL")
    assert event["compliance"] == {
        "control": "user_console_mfa",
        "status_id": 3,
        "status": "Fail",
        "status_detail": "User bob has a console password but no MFA device.",
        "standards": ["CIS AWS Foundations Benchmark v3.0.0", "AWS Foundational Security Best Practices v1.0.0"],
        "requirements": ["CIS 1.10", "IAM.5"],
    }
    assert event["resources"] == [
        {"uid": f"arn:aws:iam::{ACCOUNT}:user/bob", "name": "bob", "type": "AwsIamUser", "cloud_partition": "aws"}
    ]
    assert event["cloud"] == {
        "provider": "AWS",
        "cloud_partition": "aws",
        "account": {"uid": ACCOUNT, "type_id": 10, "type": "AWS Account"},
    }
    assert event["time"] == int(NOW.timestamp() * 1000)
    assert event["finding_info"]["title"] == CATALOG["user_console_mfa"].title
    assert event["finding_info"]["desc"] == CATALOG["user_console_mfa"].risk
    assert event["finding_info"]["first_seen_time"] == int(NOW.timestamp() * 1000)
    # the fix names the user, as the JSON report's remediation does
    assert "Open IAM > Users > bob > Security credentials" in event["remediation"]["desc"]
    assert "--virtual-mfa-device-name bob" in event["remediation"]["desc"]


@pytest.mark.parametrize(
    ("status", "finding_status", "compliance_status"),
    [
        (Status.PASS, (4, "Resolved"), (1, "Pass")),
        (Status.FAIL, (1, "New"), (3, "Fail")),
        (Status.EXEMPT, (3, "Suppressed"), (3, "Fail")),
        (Status.ERROR, (1, "New"), (2, "Warning")),
    ],
)
def test_status_mapping(status: Status, finding_status: tuple[int, str], compliance_status: tuple[int, str]) -> None:
    event = ocsf_finding(finding(status=status))
    assert (event["status_id"], event["status"]) == finding_status
    assert (event["compliance"]["status_id"], event["compliance"]["status"]) == compliance_status
    assert event["status_code"] == status.value


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.CRITICAL, (5, "Critical")),
        (Severity.HIGH, (4, "High")),
        (Severity.MEDIUM, (3, "Medium")),
        (Severity.LOW, (2, "Low")),
        (Severity.INFORMATIONAL, (1, "Informational")),
    ],
)
def test_severity_mapping(severity: Severity, expected: tuple[int, str]) -> None:
    event = ocsf_finding(finding(severity=severity))
    assert (event["severity_id"], event["severity"]) == expected


def test_finding_uid_is_stable_per_account_resource_and_check() -> None:
    first = finding("user_mfa", user="bob", status=Status.FAIL)
    later = finding("user_mfa", user="bob", status=Status.PASS, at=NOW + timedelta(days=3), detail="fixed")
    assert ocsf_finding(first)["finding_info"]["uid"] == ocsf_finding(later)["finding_info"]["uid"]
    assert finding_uid(first) == f"iamguard:{ACCOUNT}:user_mfa:arn:aws:iam::{ACCOUNT}:user/bob"
    others = {
        finding_uid(finding("user_mfa", user="alice")),
        finding_uid(finding("user_console_mfa", user="bob")),
        finding_uid(first.model_copy(update={"account_id": "210987654321"})),
    }
    assert finding_uid(first) not in others and len(others) == 3


def test_root_and_account_findings_name_their_resource_and_split_multiple_controls() -> None:
    root = ocsf_finding(finding("root_mfa_enabled", user=None, severity=Severity.CRITICAL))
    assert root["resources"][0] == {
        "uid": f"arn:aws:iam::{ACCOUNT}:root",
        "name": "root",
        "type": "AwsAccount",
        "cloud_partition": "aws",
    }
    policy = ocsf_finding(finding("password_policy", user=None, severity=Severity.MEDIUM))
    assert policy["resources"][0]["uid"] == f"arn:aws:iam::{ACCOUNT}:account"
    assert policy["compliance"]["requirements"] == ["CIS 1.8", "CIS 1.9", "IAM.7", "IAM.15", "IAM.16"]


def test_a_check_without_standards_has_no_empty_lists() -> None:
    without = CATALOG["user_privilege_escalation"]
    assert not without.standards.cis and not without.standards.security_hub
    event = ocsf_finding(finding(without.id, user="bob" if without.scope == "user" else None))
    assert "standards" not in event["compliance"] and "requirements" not in event["compliance"]
    assert ocsf_errors(event) == []


def test_other_partitions_are_named() -> None:
    f = finding().model_copy(update={"resource_arn": f"arn:aws-cn:iam::{ACCOUNT}:user/bob"})
    event = ocsf_finding(f)
    assert event["cloud"]["cloud_partition"] == event["resources"][0]["cloud_partition"] == "aws-cn"


def test_render_ocsf_writes_one_valid_object_per_line_worst_first() -> None:
    findings = [
        finding("user_mfa", user="alice", status=Status.PASS, severity=Severity.LOW),
        finding("root_mfa_enabled", user=None, status=Status.FAIL, severity=Severity.CRITICAL),
        finding("user_console_mfa", user="명수", status=Status.EXEMPT, detail="사용자 명수 (exempt: tagged)"),
    ]
    lines = render_ocsf(findings).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["status_code"] for e in events] == ["FAIL", "EXEMPT", "PASS"]
    assert "명수" in lines[1]  # UTF-8, not \\u escapes
    assert all(ocsf_errors(e) == [] for e in events)


BREAKAGES = {
    "no cloud provider (required by the cloud profile)": lambda e: e["cloud"].pop("provider"),
    "severity_id outside its enum": lambda e: e.update(severity_id=7),
    "status_id outside its enum": lambda e: e.update(status_id=6),
    "compliance.status_id outside its enum": lambda e: e["compliance"].update(status_id=4),
    "type_uid of another class": lambda e: e.update(type_uid=200401),
    "time as a string": lambda e: e.update(time="2026-11-30T00:00:00Z"),
    "a field OCSF does not define": lambda e: e.update(risk="high"),
    "finding_info without its uid": lambda e: e["finding_info"].pop("uid"),
    "metadata without the product": lambda e: e["metadata"].pop("product"),
    "standards as a string": lambda e: e["compliance"].update(standards="CIS"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_schema_rejects_a_broken_finding(breakage: str) -> None:
    event = copy.deepcopy(ocsf_finding(finding()))
    assert ocsf_errors(event) == []
    BREAKAGES[breakage](event)
    assert ocsf_errors(event) != []
