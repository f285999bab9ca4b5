"""template.yaml is complete: logs, tracing, dead letters, alarms, tables, parameters, deploy defaults."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from iamguard_cli.local.cfn import Resolver

from tests.support.template import REPO, deployed, functions, sam_template

FUNCTIONS = [f.logical_id for f in functions()]
ASYNC_EVENT_TYPES = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "SNS", "S3"}
ALARM_TOPIC = {"Ref": "AlertTopic"}


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sam_template()["Resources"].items() if v["Type"] == kind}


def props(logical_id: str) -> dict[str, Any]:
    return sam_template()["Resources"][logical_id].get("Properties") or {}


def function_props(logical_id: str) -> dict[str, Any]:
    return {**sam_template().get("Globals", {}).get("Function", {}), **props(logical_id)}


def alarms_on(namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        a["Properties"]
        for a in resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == namespace and a["Properties"].get("MetricName") == metric
    ]


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_logs_to_its_own_log_group_with_retention(logical_id: str) -> None:
    log_group = function_props(logical_id)["LoggingConfig"]["LogGroup"]
    group = sam_template()["Resources"][log_group["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_log_group_keeps_its_first_released_name(logical_id: str) -> None:
    # Written in one Fn::ForEach; the name must not follow the logical id (a rename replaces the group).
    log_group = function_props(logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
    name = Resolver.for_template(sam_template()).resolve(props(log_group)["LogGroupName"])
    kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id.removesuffix("Function")).lower()
    assert name == f"/aws/lambda/iamguard/{kebab}"


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_is_traced_when_the_stack_turns_tracing_on(logical_id: str) -> None:
    # X-Ray is opt-in (parameter Tracing): its SDK costs every cold start ~120 ms
    assert function_props(logical_id)["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_asynchronously_invoked_function_keeps_failed_events(logical_id: str) -> None:
    p = function_props(logical_id)
    kinds = {e["Type"] for e in (p.get("Events") or {}).values()}
    if not kinds & ASYNC_EVENT_TYPES:
        # Then it must be what API Gateway invokes (synchronously: failures go to the caller)
        invokers = [
            r["Properties"]["Principal"]
            for r in resources("AWS::Lambda::Permission").values()
            if r["Properties"]["FunctionName"] == {"Ref": logical_id}
        ]
        assert invokers == ["apigateway.amazonaws.com"], f"{logical_id}: no asynchronous event and no API"
        return
    on_failure = (p.get("EventInvokeConfig") or {}).get("DestinationConfig", {}).get("OnFailure")
    assert p.get("DeadLetterQueue") or on_failure, f"{logical_id}: no DLQ and no on-failure destination"
    for event in (p.get("Events") or {}).values():
        if event["Type"] == "EventBridgeRule":  # delivery to the function can fail too
            assert "DeadLetterConfig" in event["Properties"], f"{logical_id}: rule without a DLQ"


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_errors_raise_an_alarm_to_the_topic(logical_id: str) -> None:
    alarms = [
        a
        for a in alarms_on("AWS/Lambda", "Errors")
        if {"Name": "FunctionName", "Value": {"Ref": logical_id}} in a.get("Dimensions", [])
    ]
    assert alarms, f"{logical_id}: no Errors alarm"
    assert all(ALARM_TOPIC in a["AlarmActions"] for a in alarms)


def test_every_dead_letter_queue_is_watched() -> None:
    # Each queue has a depth alarm, or (the notify DLQ) the UndeliveredAlerts metric alarm
    # that the code raises when it dead-letters a notification.
    depth = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    }
    # A work queue (the organization audit's) holds messages normally: its alarm is on their age.
    depth |= {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
    }
    for queue in resources("AWS::SQS::Queue"):
        if queue == "NotifyDeadLetterQueue":
            assert alarms_on("iamguard", "UndeliveredAlerts")
            continue
        assert queue in depth, f"{queue}: no alarm on its depth"


def test_every_alarm_goes_to_the_alert_topic() -> None:
    for logical_id, alarm in resources("AWS::CloudWatch::Alarm").items():
        assert ALARM_TOPIC in alarm["Properties"].get("AlarmActions", []), f"{logical_id} notifies nobody"


def test_stale_audit_alarm_watches_a_metric_the_audit_emits() -> None:
    (stale,) = [a["Properties"] for k, a in resources("AWS::CloudWatch::Alarm").items() if "StaleAudit" in k]
    # Then it fires on silence, over the configured number of hours
    assert stale["TreatMissingData"] == "breaching"
    assert stale["ComparisonOperator"] == "LessThanThreshold"
    assert stale["EvaluationPeriods"] == {"Ref": "StaleAuditAlarmHours"}
    assert stale["Namespace"] == "iamguard"
    # and the audit handler's core emits that metric, in that namespace, once per completed audit
    handler = (REPO / "functions" / "audit_account" / "app.py").read_text()
    core = (REPO / "layers" / "iamguard" / "iamguard" / "audit" / "run.py").read_text()
    assert "report_audit(" in handler
    assert f'name="{stale["MetricName"]}"' in core
    assert 'Metrics(namespace="iamguard")' in handler


@pytest.mark.parametrize("logical_id", sorted(resources("AWS::DynamoDB::Table")))
def test_tables_are_encrypted_recoverable_and_expire_old_items(logical_id: str) -> None:
    p = props(logical_id)
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["TimeToLiveSpecification"]["Enabled"] is True
    assert p["BillingMode"] == "PAY_PER_REQUEST"


def test_findings_survive_the_stack() -> None:
    table = sam_template()["Resources"]["FindingsTable"]
    assert table["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("name", sorted(sam_template()["Parameters"]))
def test_every_parameter_is_described_and_has_a_default(name: str) -> None:
    spec = sam_template()["Parameters"][name]
    assert len(str(spec.get("Description", ""))) >= 20, f"{name}: no description"
    assert "Default" in spec, f"{name}: no default - `sam deploy` would have to ask"


def test_every_parameter_is_in_a_group() -> None:
    groups = sam_template()["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = {name for group in groups for name in group["Parameters"]}
    assert grouped == set(sam_template()["Parameters"])


@pytest.mark.parametrize(
    "name",
    [
        "Mode",
        "Language",
        "RequiredPolicyArns",
        "ExemptUsers",
        "AccessKeyMaxAgeDays",
        "SlackSecretArn",
        "AlertEmail",
        "AuditSchedule",
        "DigestSchedule",
        "SeverityRouting",
    ],
)
def test_the_documented_knobs_exist(name: str) -> None:
    assert name in sam_template()["Parameters"]


def test_runtime_matches_the_build_and_the_powertools_layer() -> None:
    globals_ = sam_template()["Globals"]["Function"]
    runtime, (arch,) = globals_["Runtime"], globals_["Architectures"]
    powertools = [layer for layer in globals_["Layers"] if isinstance(layer, str) and "powertools" in layer]
    assert powertools == [f"{{{{resolve:ssm:/aws/service/powertools/python/{arch}/{runtime}/latest}}}}"]
    layer = sam_template()["Resources"]["IamguardLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": arch}
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    # the layer's Makefile installs wheels for this runtime and architecture
    layer_makefile = (REPO / "layers" / "iamguard" / "Makefile").read_text()
    assert re.search(rf"^PYTHON \?= {runtime}$", layer_makefile, re.M)
    assert f"--python-version {runtime.removeprefix('python')}" in layer_makefile
    assert {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}[arch] in layer_makefile
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf"^LAMBDA_PYTHON := {runtime}$", makefile, re.M), "make build must use the runtime's Python"


def test_samconfig_deploys_safely_to_us_east_1() -> None:
    config = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]
    assert config["global"]["parameters"]["region"] == "us-east-1"
    deploy = config["deploy"]["parameters"]
    assert deploy["confirm_changeset"] is True
    assert "parameter_overrides" not in deploy, "Mode must stay at the template default (monitor)"
    capabilities = set(deploy["capabilities"].split())
    named = [
        k
        for k, v in deployed()["Resources"].items()
        if v["Type"].startswith("AWS::IAM::")
        and any(n in (v.get("Properties") or {}) for n in ("RoleName", "ManagedPolicyName", "UserName", "GroupName"))
    ]
    if named:
        assert "CAPABILITY_NAMED_IAM" in capabilities, f"named IAM resources {named} need CAPABILITY_NAMED_IAM"
    assert "CAPABILITY_IAM" in capabilities


def test_organization_mode_moves_the_schedule_to_the_planner_and_fans_out_through_sqs() -> None:
    template = sam_template()
    assert template["Conditions"]["OrganizationMode"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]}
    resources = template["Resources"]
    # Single-account mode: the schedule calls the audit function, as before; organization mode: the planner
    schedule = resources["AuditAccountFunction"]["Properties"]["Events"]["Audit"]["Properties"]
    assert schedule["State"] == {"Fn::If": ["OrganizationMode", "DISABLED", "ENABLED"]}
    planner = resources["PlanAuditFunction"]
    assert planner["Condition"] == "OrganizationMode"
    assert planner["Properties"]["Events"]["Plan"]["Properties"]["Schedule"] == {"Ref": "AuditSchedule"}
    mapping = resources["AuditQueueMapping"]
    assert mapping["Condition"] == "OrganizationMode"
    assert mapping["Properties"]["BatchSize"] == 1
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "AuditConcurrency"}}
    queue = resources["AuditQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["AuditDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * template["Globals"]["Function"]["Timeout"]
    stale = resources["StaleAccountsAlarm"]["Properties"]
    assert (stale["MetricName"], stale["TreatMissingData"]) == ("StaleAccounts", "breaching")
