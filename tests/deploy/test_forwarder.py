"""The forwarder (forwarder/signin-forwarder.yaml): sign-ins and root sessions, where, and with what rights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]
from iamguard.realtime.cloudtrail import CONSOLE_SIGN_IN_TYPES
from iamguard.realtime.event_map import RULES as EVENT_MAP
from iamguard.realtime.event_map import event_patterns

from tests.support.template import REPO, branches, evaluate_condition, sam_template

FORWARDER = REPO / "forwarder" / "signin-forwarder.yaml"


@cache
def forwarder() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(FORWARDER))
    return loaded


def resources(kind: str) -> list[dict[str, Any]]:
    return [r for r in forwarder()["Resources"].values() if r["Type"] == kind]


def rule(name: str = "SignInForwardRule") -> dict[str, Any]:
    found: dict[str, Any] = forwarder()["Resources"][name]
    assert found["Type"] == "AWS::Events::Rule"
    return found


RULES = ("SignInForwardRule", "RootSessionForwardRule")


def signin_patterns_of_main_template() -> list[dict[str, Any]]:
    """Patterns of template.yaml's EventBridge rules for aws.signin (SAM events or plain rules)."""
    found: list[dict[str, Any]] = []
    for resource in sam_template()["Resources"].values():
        props = resource.get("Properties") or {}
        candidates = [props.get("EventPattern")] if resource["Type"] == "AWS::Events::Rule" else []
        for event in (props.get("Events") or {}).values():
            if event.get("Type") in {"EventBridgeRule", "CloudWatchEvent"}:
                candidates.append(event["Properties"].get("Pattern"))
        found.extend(p for p in candidates if isinstance(p, dict) and "aws.signin" in p.get("source", []))
    return found


def test_it_is_plain_cloudformation_for_stacksets() -> None:
    assert "Transform" not in forwarder()


def test_it_forwards_console_sign_ins() -> None:
    assert {name for name, r in forwarder()["Resources"].items() if r["Type"] == "AWS::Events::Rule"} == set(RULES)
    pattern = rule()["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.signin"]
    # Both spellings of the sign-in detail-type that AWS documents.
    assert pattern["detail-type"] == list(CONSOLE_SIGN_IN_TYPES)
    assert pattern["detail"]["eventName"] == ["ConsoleLogin"]
    assert rule()["Properties"]["State"] == "ENABLED"


def test_it_forwards_what_iamguards_sign_in_rule_receives() -> None:
    # Given iamguard's own sign-in rule(s) in template.yaml
    main = signin_patterns_of_main_template()
    assert main, "template.yaml has no EventBridge rule for aws.signin events"
    # Then the forwarder selects exactly what they select (no more, so nothing is sent for nothing)
    for pattern in main:
        assert rule()["Properties"]["EventPattern"] == pattern


def test_it_forwards_the_root_sessions_iamguards_iam_rule_receives() -> None:
    # sts:AssumeRoot is regional (the global STS endpoint refuses it): recorded where it was called
    main = event_patterns()["on_iam_event"]
    sts_names = sorted(name for name, row in EVENT_MAP.items() if row.source == "sts.amazonaws.com")
    assert sts_names == ["AssumeRoot"] and "aws.sts" in main["source"]
    assert rule("RootSessionForwardRule")["Properties"]["EventPattern"] == {
        "source": ["aws.sts"],
        "detail-type": main["detail-type"],
        "detail": {"eventSource": ["sts.amazonaws.com"], "eventName": sts_names, "errorCode": [{"exists": False}]},
    }


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("use_default_bus", [True, False])
def test_target_is_the_main_bus_through_a_role_with_a_dead_letter_queue(use_default_bus: bool, name: str) -> None:
    (target,) = rule(name)["Properties"]["Targets"]
    arns = dict((guard[-1][1], arn) for arn, guard in branches(target["Arn"]))
    assert arns[True] == {"Fn::Sub": "arn:${AWS::Partition}:events:${MainRegion}:${AWS::AccountId}:event-bus/default"}
    assert arns[False] == {"Ref": "TargetEventBusArn"}
    params = {"TargetEventBusArn": "" if use_default_bus else "arn:aws:events:us-east-1:111122223333:event-bus/sec"}
    assert evaluate_condition(forwarder(), {"Condition": "UseDefaultBus"}, params) is use_default_bus
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    assert "DeadLetterConfig" in target


def test_role_may_only_put_events_on_that_bus() -> None:
    role = forwarder()["Resources"]["ForwarderRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert [(s["Effect"], s["Action"]) for s in statements] == [("Allow", "events:PutEvents")]
    for name in RULES:
        assert statements[0]["Resource"] == rule(name)["Properties"]["Targets"][0]["Arn"]
    assert "ManagedPolicyArns" not in role


def test_dead_letter_queue_accepts_only_this_rule() -> None:
    (policy,) = resources("AWS::SQS::QueuePolicy")
    allow = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in allow] == [
        [{"Fn::GetAtt": [name, "Arn"]} for name in RULES]
    ]


def test_it_refuses_to_deploy_in_the_main_region() -> None:
    (assertion,) = forwarder()["Rules"]["NotInMainRegion"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "MainRegion"}]}]}
    assert forwarder()["Parameters"]["MainRegion"]["Default"] == "us-east-1"


@pytest.mark.parametrize(
    ("region", "allowed"),
    [("us-east-1", False), ("us-east-2", True), ("eu-north-1", True), ("ap-southeast-2", True), ("me-central-1", True)],
)
def test_it_deploys_in_any_region_but_the_main_one(region: str, allowed: bool) -> None:
    (assertion,) = forwarder()["Rules"]["NotInMainRegion"]["Assertions"]
    assert evaluate_condition(forwarder(), assertion["Assert"], {"AWS::Region": region, "MainRegion": "us-east-1"}) is (
        allowed
    )


def test_every_parameter_has_a_default_so_one_command_covers_every_region() -> None:
    # The script and StackSet instances pass nothing region-specific.
    assert all("Default" in parameter for parameter in forwarder()["Parameters"].values())


# ---------------------------------------------------------------- forwarder/deploy-all-regions.sh
SCRIPT = REPO / "forwarder" / "deploy-all-regions.sh"
# What `aws ec2 describe-regions --query 'Regions[].RegionName' --output text` prints: tab-separated.
ENABLED = "\t".join(["ap-southeast-2", "eu-north-1", "us-east-1", "us-east-2", "me-central-1", "sa-east-1"])
OTHERS = ["ap-southeast-2", "eu-north-1", "us-east-2", "me-central-1", "sa-east-1"]
# A stand-in for the AWS CLI: records each call, answers describe-regions, fails where told to.
FAKE_AWS = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["ec2", "describe-regions"]:
    print(os.environ["FAKE_AWS_REGIONS"])
    sys.exit(int(os.environ.get("FAKE_AWS_DESCRIBE_RC", "0")))
region = args[args.index("--region") + 1] if "--region" in args else ""
sys.exit(1 if region in os.environ.get("FAKE_AWS_FAIL", "").split() else 0)
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]


def run_script(tmp_path: Path, *args: str, **env: str) -> Run:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "aws"
    fake.write_text(FAKE_AWS.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in {"MAIN_REGION", "STACK_NAME", "TARGET_EVENT_BUS_ARN"}}
    done = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **base,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_AWS_LOG": str(log),
            "FAKE_AWS_REGIONS": ENABLED,
            **env,
        },
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Run(done.returncode, done.stdout, done.stderr, calls)


def deploy_call(region: str, *overrides: str) -> list[str]:
    return [
        "cloudformation",
        "deploy",
        "--region",
        region,
        "--stack-name",
        "iamguard-signin-forwarder",
        "--template-file",
        str(FORWARDER),
        "--capabilities",
        "CAPABILITY_IAM",
        "--no-fail-on-empty-changeset",
        "--parameter-overrides",
        "MainRegion=us-east-1",
        *overrides,
    ]


def test_one_command_deploys_the_forwarder_in_every_enabled_region_but_the_main_one(tmp_path: Path) -> None:
    # When the script runs with the account's enabled regions
    run = run_script(tmp_path)

    # Then it asked for the enabled regions, and deployed everywhere but us-east-1
    assert run.returncode == 0, run.stderr
    describe, *deploys = run.calls
    query = ["--query", "Regions[].RegionName", "--output", "text"]
    assert describe == ["ec2", "describe-regions", "--region", "us-east-1", *query]
    assert deploys == [deploy_call(region) for region in OTHERS]
    assert "deploy done in: " + " ".join(OTHERS) in run.stdout


def test_a_failing_region_does_not_stop_the_others_and_fails_the_run(tmp_path: Path) -> None:
    run = run_script(tmp_path, FAKE_AWS_FAIL="eu-north-1")
    assert run.returncode == 1
    assert run.calls[1:] == [deploy_call(region) for region in OTHERS]
    assert "deploy FAILED in: eu-north-1" in run.stderr


def test_the_target_bus_and_main_region_are_passed_to_every_stack(tmp_path: Path) -> None:
    bus = "arn:aws:events:us-east-1:111122223333:event-bus/security"
    run = run_script(tmp_path, TARGET_EVENT_BUS_ARN=bus)
    assert run.returncode == 0, run.stderr
    assert run.calls[1:] == [deploy_call(region, f"TargetEventBusArn={bus}") for region in OTHERS]


def test_delete_removes_the_stack_from_every_region_but_the_main_one(tmp_path: Path) -> None:
    run = run_script(tmp_path, "--delete")
    assert run.returncode == 0, run.stderr
    stack = ["--stack-name", "iamguard-signin-forwarder"]
    expected = []
    for region in OTHERS:
        expected.append(["cloudformation", "delete-stack", "--region", region, *stack])
        expected.append(["cloudformation", "wait", "stack-delete-complete", "--region", region, *stack])
    assert run.calls[1:] == expected


@pytest.mark.parametrize(
    "env", [{"FAKE_AWS_REGIONS": ""}, {"FAKE_AWS_DESCRIBE_RC": "254"}], ids=["no-regions", "cli-error"]
)
def test_without_the_region_list_nothing_is_deployed_and_the_run_fails(tmp_path: Path, env: dict[str, str]) -> None:
    run = run_script(tmp_path, **env)
    assert run.returncode != 0
    assert [call[:2] for call in run.calls] == [["ec2", "describe-regions"]]


def test_an_unknown_argument_is_refused(tmp_path: Path) -> None:
    run = run_script(tmp_path, "--regions=us-east-2")
    assert run.returncode == 2
    assert "usage:" in run.stderr
    assert run.calls == []
