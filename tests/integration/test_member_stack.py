"""The member stack as the local runtime provisions it, and moto's cross-account event forwarding made AWS-like."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from iamguard.aws import AwsContext
from iamguard_cli.local import moto_ext
from iamguard_cli.local.organization import default_member_template
from iamguard_cli.local.provision import Provisioner
from iamguard_cli.local.routing import Template

HUB = "123456789012"
MEMBER = "222233334444"


def in_account(hub: AwsContext, account_id: str) -> AwsContext:
    """An AwsContext acting in another moto account (an assumed role there)."""
    moto_ext.organization_access_role(account_id, HUB)  # AssumeRole needs the role to exist, as on AWS
    credentials = hub.sts().assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{moto_ext.ORGANIZATION_ACCESS_ROLE}", RoleSessionName="test"
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )
    return AwsContext(region="us-east-1", retry_mode="standard", max_attempts=2, _session=session)


def hub_bus_with_queue(hub: AwsContext) -> tuple[str, str]:
    """The hub's bus with a rule delivering everything from aws.iam to a queue: (bus ARN, queue URL)."""
    events, sqs = hub.client("events"), hub.client("sqs")
    bus_arn: str = events.create_event_bus(Name="iamguard-hub")["EventBusArn"]
    url: str = sqs.create_queue(QueueName="hub")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="to-queue", EventBusName="iamguard-hub", EventPattern=json.dumps({"source": ["aws.iam"]}))
    events.put_targets(Rule="to-queue", EventBusName="iamguard-hub", Targets=[{"Id": "q", "Arn": queue_arn}])
    return bus_arn, url


def provision_member(member: AwsContext, bus_arn: str, **parameters: str) -> Any:
    return Provisioner(
        Template.load(default_member_template()),
        member,
        {
            "HubAccountId": HUB,
            "HubStackName": "iamguard",
            "HubEventBusArn": bus_arn,
            "OrganizationId": "o-abcdef1234",
            **parameters,
        },
        stack_name="StackSet-iamguard-member-x",
        account_id=MEMBER,
        roles_and_rules=True,
    ).run()


def test_an_event_forwarded_to_another_accounts_bus_keeps_the_source_account(aws: AwsContext) -> None:
    # Given the hub's bus and a member whose member stack forwards IAM events to it
    bus_arn, url = hub_bus_with_queue(aws)
    member = in_account(aws, MEMBER)
    provision_member(member, bus_arn)
    # When an IAM event lands on the member's default bus
    detail = {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "recipientAccountId": MEMBER}
    member.client("events").put_events(
        Entries=[{"Source": "aws.iam", "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(detail)}]
    )
    # Then the hub's rule delivers it once, as the member's event (AWS keeps `account`; moto re-stamped it)
    messages = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    (event,) = [json.loads(m["Body"]) for m in messages]
    assert event["account"] == MEMBER
    assert event["detail"] == detail
    assert event["detail-type"] == "AWS API Call via CloudTrail"


def test_an_event_the_rule_does_not_select_is_not_forwarded(aws: AwsContext) -> None:
    bus_arn, url = hub_bus_with_queue(aws)
    member = in_account(aws, MEMBER)
    provision_member(member, bus_arn)
    detail = {"eventSource": "iam.amazonaws.com", "eventName": "CreateRole"}  # not in the event map
    member.client("events").put_events(
        Entries=[{"Source": "aws.iam", "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(detail)}]
    )
    assert aws.client("sqs").receive_message(QueueUrl=url).get("Messages", []) == []


@pytest.mark.parametrize("mode", ["monitor", "enforce"])
def test_the_enforcement_role_exists_in_enforce_mode_only_and_writes_nothing_else(aws: AwsContext, mode: str) -> None:
    member = in_account(aws, MEMBER)
    provisioned = provision_member(
        member, f"arn:aws:events:us-east-1:{HUB}:event-bus/iamguard-hub", Mode=mode, RequiredPolicyArns=""
    )
    iam = member.iam()
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert "iamguard-member-audit" in roles
    if mode == "monitor":
        assert "iamguard-member-enforce" not in roles
        return
    guardrail = provisioned.refs["GuardrailPolicy"]
    assert guardrail == f"arn:aws:iam::{MEMBER}:policy/iamguard-mfa-guardrail"
    document = iam.get_role_policy(RoleName="iamguard-member-enforce", PolicyName="iamguard-enforce")["PolicyDocument"]
    statements = {s["Action"]: s for s in document["Statement"]}
    assert set(statements) == {"iam:AttachUserPolicy", "iam:DetachUserPolicy"}
    for statement in statements.values():
        assert statement["Condition"] == {"ArnEquals": {"iam:PolicyARN": [guardrail]}}
        assert statement["Resource"] == f"arn:aws:iam::{MEMBER}:user/*"


def test_organization_access_role_is_the_one_organizations_creates(aws: AwsContext) -> None:
    arn = moto_ext.organization_access_role(MEMBER, HUB)
    assert moto_ext.organization_access_role(MEMBER, HUB) == arn  # idempotent
    iam = in_account(aws, MEMBER).iam()
    role = iam.get_role(RoleName="OrganizationAccountAccessRole")["Role"]
    assert role["Arn"] == arn == f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole"
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{HUB}:root"}
    attached = iam.list_attached_role_policies(RoleName="OrganizationAccountAccessRole")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == ["arn:aws:iam::aws:policy/AdministratorAccess"]


def test_rules_forwarding_in_a_circle_stop(aws: AwsContext) -> None:
    # Given two buses whose rules forward everything to each other, and one of them to a queue
    events, sqs = aws.client("events"), aws.client("sqs")
    arns = {name: events.create_event_bus(Name=name)["EventBusArn"] for name in ("a", "b")}
    url = sqs.create_queue(QueueName="b-seen")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for bus, other in (("a", "b"), ("b", "a")):
        events.put_rule(Name="loop", EventBusName=bus, EventPattern=json.dumps({"source": ["aws.iam"]}))
        targets = [{"Id": "other", "Arn": arns[other]}] + ([{"Id": "q", "Arn": queue_arn}] if bus == "b" else [])
        events.put_targets(Rule="loop", EventBusName=bus, Targets=targets)
    # When an event arrives on the first one
    events.put_events(Entries=[{"Source": "aws.iam", "DetailType": "x", "Detail": "{}", "EventBusName": "a"}])
    # Then forwarding stops after a few hops instead of recursing for ever
    seen = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert 1 <= len(seen) <= moto_ext.MAX_BUS_HOPS


def test_a_disabled_rule_delivers_nothing(aws: AwsContext) -> None:
    # moto delivers to a DISABLED rule's targets; EventBridge does not (moto_ext makes moto agree)
    events, sqs = aws.client("events"), aws.client("sqs")
    url = sqs.create_queue(QueueName="disabled-rule")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for name, state in (("off", "DISABLED"), ("on", "ENABLED")):
        pattern = json.dumps({"source": ["aws.iam"], "detail-type": [name]})
        events.put_rule(Name=name, EventPattern=pattern, State=state)
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn}])
    events.put_events(Entries=[{"Source": "aws.iam", "DetailType": kind, "Detail": "{}"} for kind in ("off", "on")])
    seen = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["detail-type"] for m in seen] == ["on"]
