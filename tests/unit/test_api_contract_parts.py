"""Pieces of the status API that must stay in step: catalog ids, routes, template, schedule parsing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

import pytest
from cfnlint.decode import decode_str
from iamguard.api import openapi_document
from iamguard.api.app import ROUTES
from iamguard.api.errors import BadRequest
from iamguard.api.models import CheckId
from iamguard.api.pagination import decode_token, encode_token
from iamguard.checks import CATALOG
from iamguard.settings import ConfigError, Settings
from iamguard.settings.api import ApiSettings, schedule_interval

from tests.conftest import REPO


def template() -> dict[str, Any]:
    decoded, matches = decode_str((REPO / "template.yaml").read_text())
    assert not matches and decoded is not None
    return dict(decoded)


def test_check_id_literal_is_the_catalog() -> None:
    assert sorted(get_args(CheckId)) == sorted(CATALOG)


def test_routes_table_is_the_openapi_paths() -> None:
    documented = {path: sorted(m.upper() for m in ops) for path, ops in openapi_document()["paths"].items()}
    assert {path.replace("<", "{").replace(">", "}"): sorted(m) for path, m in ROUTES.items()} == documented


def test_template_exposes_exactly_the_documented_routes_each_authenticated() -> None:
    resources = template()["Resources"]
    body = resources["StatusApi"]["Properties"]["DefinitionBody"]
    deployed = {path: sorted(ops) for path, ops in body["paths"].items()}
    assert deployed == {path: sorted(ops) for path, ops in openapi_document()["paths"].items()}
    for path, ops in body["paths"].items():
        for method, op in ops.items():
            assert op["security"] == {"Fn::If": ["UseApiKey", [{"api_key": []}], [{"sigv4": []}]]}, (path, method)
            assert "StatusApiFunction.Arn" in str(op["x-amazon-apigateway-integration"]["uri"])
    assert template()["Parameters"]["ApiAuth"]["AllowedValues"] == ["AWS_IAM", "API_KEY"]


def test_status_function_may_only_read_the_table_write_its_exceptions_and_start_the_audit() -> None:
    function = template()["Resources"]["StatusApiFunction"]["Properties"]
    statements = function["Policies"][0]["Statement"]
    actions = {
        action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "lambda:InvokeFunction",
    }
    # PUT/DELETE /exceptions: the EXCEPTIONS partition and nothing else of the table
    [write] = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
    assert sorted(write["Action"]) == ["dynamodb:DeleteItem", "dynamodb:PutItem"]
    assert write["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["EXCEPTIONS"]}}
    invoke = next(s for s in statements if s["Action"] == "lambda:InvokeFunction")
    # the account audit; in organization mode the planner, which audits every account
    assert invoke["Resource"] == {
        "Fn::If": [
            "OrganizationMode",
            {"Fn::GetAtt": ["PlanAuditFunction", "Arn"]},
            {"Fn::GetAtt": ["AuditAccountFunction", "Arn"]},
        ]
    }
    assert function["Environment"]["Variables"]["AUDIT_FUNCTION_NAME"] == {
        "Fn::If": ["OrganizationMode", {"Ref": "PlanAuditFunction"}, {"Ref": "AuditAccountFunction"}]
    }


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(30 minutes)", timedelta(minutes=30)),
        ("rate(2 days)", timedelta(days=2)),
        ("cron(0 6 * * ? *)", timedelta(days=1)),
        ("", timedelta(hours=1)),
    ],
)
def test_schedule_interval(expression: str, interval: timedelta) -> None:
    assert schedule_interval(expression) == interval


def test_settings_from_env() -> None:
    settings = Settings.from_env({"FINDINGS_TABLE": "t", "AUDIT_SCHEDULE": "rate(6 hours)", "AUDIT_FUNCTION_NAME": "f"})
    assert settings.findings_table == "t" and settings.api.audit_function_name == "f"
    assert settings.api.stale_after == timedelta(hours=12)
    minutes = {"AUDIT_SCHEDULE": "rate(6 hours)", "AUDIT_INTERVAL_MINUTES": "15"}  # the minutes win
    assert Settings.from_env(minutes).api.stale_after == timedelta(minutes=30)
    assert Settings.from_env({}).api.stale_after == timedelta(hours=2)
    assert ApiSettings(audit_interval=timedelta(hours=3)).stale_after == timedelta(hours=6)
    for bad, variable in (
        ({"AUDIT_SCHEDULE": "every hour"}, "AUDIT_SCHEDULE"),
        ({"AUDIT_SCHEDULE": "rate(0 hours)"}, "AUDIT_SCHEDULE"),
        ({"AUDIT_INTERVAL_MINUTES": "x"}, "AUDIT_INTERVAL_MINUTES"),
        ({"AUDIT_INTERVAL_MINUTES": "0"}, "AUDIT_INTERVAL_MINUTES"),
    ):
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env(bad)


def test_tokens_round_trip_and_are_bound_to_their_query() -> None:
    key = {"pk": "USER#ann", "sk": "CHECK#user_mfa"}
    token = encode_token(key, "q1")
    assert decode_token(token, "q1") == key
    with pytest.raises(BadRequest, match="other filters"):
        decode_token(token, "q2")
    with pytest.raises(BadRequest, match="not a token"):
        decode_token(token, "q1", ("pk", "sk", "gsi1pk", "gsi1sk"))  # a scan key where an index key belongs
