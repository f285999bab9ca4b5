"""The audit's fast paths (issue #13) report exactly what the plain ones did.

Three of them: responses' timestamps parsed by `datetime.fromisoformat` instead of botocore's
dateutil parser, findings built without pydantic's `model_construct` loop, and the JSON report
written 500 lines at a time. Each test below compares the fast path with the plain one on a
moto account that has every kind of finding (FAIL, PASS, EXEMPT, an expired exception), and
fails if a single field, value or byte differs.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from iamguard.audit.report import _sorted, render_json
from iamguard.audit.run import AuditResult, finding_dict, run_audit
from iamguard.aws import AwsContext, parse_timestamp
from iamguard.checks import base
from iamguard.domain.findings import Finding
from iamguard.iam.inventory import Inventory
from iamguard.settings import Settings
from iamguard_cli.local.seed import seed_designed_account

NO_WAIT: dict[str, Any] = {"sleep": lambda _s: None}


def _seed(aws: AwsContext) -> None:
    """The designed account plus 45 users (one with an expired exception tag): over 500 findings."""
    iam = aws.iam()
    seed_designed_account(iam)
    for n in range(45):
        iam.create_user(UserName=f"batch{n:02d}")
        iam.create_login_profile(UserName=f"batch{n:02d}", Password="Long-Enough-Password-1!")
        if n % 3 == 0:
            iam.create_access_key(UserName=f"batch{n:02d}")
    iam.tag_user(
        UserName="batch01",
        Tags=[
            {"Key": "iamguard:exempt", "Value": "true"},
            {"Key": "iamguard:exempt-until", "Value": (date.today() - timedelta(days=2)).isoformat()},
        ],
    )


def _plain_iam(aws: AwsContext) -> Any:
    """An IAM client with botocore's own timestamp parser (what every client had before)."""
    return boto3.session.Session(region_name=aws.region).client("iam", region_name=aws.region)


def _as_tuple(finding: Finding) -> tuple[Any, ...]:
    return tuple(finding.model_dump().items())


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-30T06:52:13Z",
        "2026-11-30T06:52:13.123Z",
        "2026-11-30T06:52:13.123456Z",
        "2026-11-30T06:52:13+00:00",
        "2026-11-30T15:52:13+09:00",
        "2026-11-30T06:52:13.1234567Z",
    ],
)
def test_iso_timestamps_are_the_same_instant_botocore_parses(value: str) -> None:
    fast = parse_timestamp(value)
    assert fast.tzinfo is not None
    assert fast == botocore_parse_timestamp(value)
    assert fast.utcoffset() == botocore_parse_timestamp(value).utcoffset()


@pytest.mark.parametrize("value", [1_700_000_000, 1_700_000_000.5, "1700000000", "Thu, 30 Nov 2026 06:52:13 GMT"])
def test_anything_else_is_parsed_by_botocore_itself(value: Any) -> None:
    assert parse_timestamp(value) == botocore_parse_timestamp(value)


def test_a_timestamp_without_a_zone_keeps_botocores_reading() -> None:
    # fromisoformat would say "naive"; botocore decides how such a value is read, so it still does.
    assert parse_timestamp("2026-11-30T06:52:13") == botocore_parse_timestamp("2026-11-30T06:52:13")


def test_every_client_of_the_context_parses_timestamps_the_fast_way(aws: AwsContext) -> None:
    aws.iam().create_user(UserName="alice")
    created = aws.iam().get_user(UserName="alice")["User"]["CreateDate"]
    assert created.tzinfo is UTC  # fromisoformat's zone, not dateutil's tzutc()/tzlocal()
    plain = _plain_iam(aws).get_user(UserName="alice")["User"]["CreateDate"]
    assert created == plain and type(plain.tzinfo) is not timezone


def test_the_audit_finds_exactly_what_it_found_with_botocores_parser(aws: AwsContext) -> None:
    _seed(aws)
    settings = Settings.from_env({})
    now = datetime.now(UTC)
    fast = run_audit(Inventory(aws, **NO_WAIT), settings, now)
    plain = run_audit(Inventory(aws, iam_client=_plain_iam(aws), **NO_WAIT), settings, now)

    assert len(fast.findings) > 500
    assert {f.status.value for f in fast.findings} >= {"PASS", "FAIL", "EXEMPT"}
    assert [_as_tuple(f) for f in fast.findings] == [_as_tuple(f) for f in plain.findings]
    assert render_json(fast, fast.findings) == render_json(plain, plain.findings)


def test_findings_are_what_model_construct_makes(aws: AwsContext) -> None:
    _seed(aws)
    result = run_audit(Inventory(aws, **NO_WAIT), Settings.from_env({}))
    exempt = [f for f in result.findings if f.exempt_source is not None]
    assert exempt and any(f.status.value == "FAIL" for f in exempt)  # the expired exception rides on a FAIL
    for finding in result.findings:
        values = {name: getattr(finding, name) for name in finding.model_fields_set}
        reference = Finding.model_construct(set(finding.model_fields_set), **values)
        assert finding.__dict__ == reference.__dict__
        assert list(finding.__dict__) == list(reference.__dict__)  # same field order
        assert finding.model_fields_set == reference.model_fields_set
        assert finding == reference and hash(finding.key) == hash(reference.key)
        assert finding.model_dump(mode="json") == reference.model_dump(mode="json")
    # a finding still copies like any other (the store's model_copy), without touching the shared field set
    first = result.findings[0]
    copied = first.model_copy(update={"first_seen": first.observed_at})
    assert copied.first_seen == first.observed_at and "first_seen" not in first.model_fields_set


def test_every_finding_field_is_set_by_the_checks() -> None:
    required = {name for name, info in Finding.model_fields.items() if info.is_required()}
    assert required == base._FINDING_FIELDS  # a new required field must be set by _finding, not left unset
    assert list(base._UNSET) == list(Finding.model_fields)


def _reference_json(result: AuditResult, findings: list[Finding]) -> str:
    """The report as write_json wrote it before: one json.dumps and two writes per finding."""
    out = io.StringIO()
    head = {
        "account_id": result.account_id,
        "generated_at": result.generated_at.isoformat(timespec="seconds"),
        "summary": result.summary(),
        "errors": result.errors,
    }
    out.write(json.dumps(head, indent=2, ensure_ascii=False)[:-2])
    out.write(',\n  "findings": [')
    separator = "\n    "
    for finding in _sorted(findings):
        out.write(separator)
        out.write(json.dumps(finding_dict(finding), ensure_ascii=False))
        separator = ",\n    "
    out.write("\n  ]\n}" if findings else "]\n}")
    return out.getvalue()


@pytest.mark.parametrize("count", [0, 1, 499, 500, 501, 1000, None])
def test_the_json_report_is_byte_for_byte_what_it_was(aws: AwsContext, count: int | None) -> None:
    _seed(aws)
    result = run_audit(Inventory(aws, **NO_WAIT), Settings.from_env({}))
    findings = result.findings if count is None else (result.findings * 2)[:count]
    text = render_json(result, findings)
    assert text == _reference_json(result, findings)
    assert len(json.loads(text)["findings"]) == len(findings)


def test_audit_imports_neither_the_status_api_nor_the_html_page_nor_notify() -> None:
    code = (
        "import sys; from iamguard_cli.main import build_parser; build_parser('audit'); "
        "print(sorted(m for m in sys.modules if m.startswith(('iamguard.api', 'iamguard_cli.report', 'jinja2', "
        "'iamguard.notify.factory', 'iamguard.notify.slack', 'iamguard_cli.commands.serve'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_parser_still_knows_every_subcommand() -> None:
    from iamguard_cli.main import SUBCOMMANDS, _command_of, build_parser

    assert _command_of(["audit", "--format", "json"]) == "audit"
    assert _command_of(["--version"]) is None
    every = build_parser(None).format_help()
    assert all(name in every for name in SUBCOMMANDS)
    assert build_parser("nonsense").format_help() == every  # a mistyped name: argparse lists them all
    only = build_parser("audit")
    assert only.parse_args(["audit", "--format", "csv"]).format == "csv"
