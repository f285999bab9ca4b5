"""The sign-in forwarder (forwarder/signin-forwarder.yaml): what it forwards, where, and with what rights."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

from tests.support.template import REPO, branches, evaluate_condition, sam_template

FORWARDER = REPO / "forwarder" / "signin-forwarder.yaml"


@cache
def forwarder() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(FORWARDER))
    return loaded


def resources(kind: str) -> list[dict[str, Any]]:
    return [r for r in forwarder()["Resources"].values() if r["Type"] == kind]


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
    (rule,) = resources("AWS::Events::Rule")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.signin"]
    assert pattern["detail"]["eventName"] == ["ConsoleLogin"]
    assert rule["Properties"]["State"] == "ENABLED"


def test_it_forwards_what_iamguards_sign_in_rule_receives() -> None:
    # Given iamguard's own sign-in rule(s) in template.yaml
    main = signin_patterns_of_main_template()
    assert main, "template.yaml has no EventBridge rule for aws.signin events"
    (rule,) = resources("AWS::Events::Rule")
    # Then the forwarder selects exactly what they select (no more, so nothing is sent for nothing)
    for pattern in main:
        assert rule["Properties"]["EventPattern"] == pattern


@pytest.mark.parametrize("use_default_bus", [True, False])
def test_target_is_the_main_bus_through_a_role_with_a_dead_letter_queue(use_default_bus: bool) -> None:
    (rule,) = resources("AWS::Events::Rule")
    (target,) = rule["Properties"]["Targets"]
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
    (rule,) = resources("AWS::Events::Rule")
    assert statements[0]["Resource"] == rule["Properties"]["Targets"][0]["Arn"]
    assert "ManagedPolicyArns" not in role


def test_dead_letter_queue_accepts_only_this_rule() -> None:
    (policy,) = resources("AWS::SQS::QueuePolicy")
    allow = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in allow] == [
        {"Fn::GetAtt": ["SignInForwardRule", "Arn"]}
    ]


def test_it_refuses_to_deploy_in_the_main_region() -> None:
    (assertion,) = forwarder()["Rules"]["NotInMainRegion"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "MainRegion"}]}]}
    assert forwarder()["Parameters"]["MainRegion"]["Default"] == "us-east-1"
