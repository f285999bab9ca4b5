"""Creates, in the local account, the resources of template.yaml that the functions use.

Tables, queues and topics get the template's own definitions (key schemas,
indexes, TTL; a queue's visibility timeout, retention and redrive policy);
managed policies their documents (the MFA guardrail is the stack's, not a
copy); each function an execution role and a role session, whose
credentials its handler runs with — so the CloudTrail events of the bot's own
calls carry its role, exactly as in AWS. What the functions never call
(log groups, alarms, API Gateway, KMS keys) is not created; Ref and Fn::GetAtt
of those resolve to stable placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from iamguard.aws import AwsContext

from iamguard_cli.local.cfn import Resolver
from iamguard_cli.local.routing import Template

LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

# What of a queue's properties shapes its behaviour here (encryption and tags do not).
_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


@dataclass(frozen=True)
class RoleSession:
    """Temporary credentials of a function's execution role (what Lambda puts in the environment)."""

    role_arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


@dataclass
class Provisioned:
    """What was created: the values of Ref / Fn::GetAtt for those resources, and the role sessions."""

    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[tuple[str, str], str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # logical id → table name
    queues: dict[str, str] = field(default_factory=dict)  # logical id → queue URL
    topics: dict[str, str] = field(default_factory=dict)  # logical id → topic ARN
    sessions: dict[str, RoleSession] = field(default_factory=dict)  # function logical id → its role's session


class Provisioner:
    """Creates the template's resources through the local endpoint (as root).

    `roles_and_rules` also creates the template's own IAM roles (trust, inline policies,
    managed policies) and EventBridge rules with their targets: what the member template is
    made of. The hub's stack leaves them out (its roles are the functions' roles, made here,
    and its rules are the functions' routes, which the dispatcher installs).
    """

    def __init__(
        self,
        template: Template,
        aws: AwsContext,
        parameters: Mapping[str, str],
        *,
        stack_name: str,
        account_id: str,
        roles_and_rules: bool = False,
    ) -> None:
        self.template = template
        self.aws = aws
        self.parameters = dict(parameters)
        self.stack_name = stack_name
        self.account_id = account_id
        self.roles_and_rules = roles_and_rules
        self.done = Provisioned()

    def resolver(self) -> Resolver:
        return self.template.resolver(
            self.parameters,
            refs=self.done.refs,
            attrs=self.done.attrs,
            stack_name=self.stack_name,
            account_id=self.account_id,
            region=self.aws.region,
        )

    def _of_type(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        resolver = self.resolver()
        return [
            (logical_id, resource.get("Properties") or {})
            for logical_id, resource in self.template.resources.items()
            if resource.get("Type") == kind and self.template.included(logical_id, resolver)
        ]

    def run(self) -> Provisioned:
        queues = self._of_type("AWS::SQS::Queue")
        for logical_id, properties in queues:
            self._queue(logical_id, self.resolver().resolve(properties))
        for logical_id, properties in queues:  # once every queue exists: a redrive policy names its DLQ's ARN
            self._redrive(logical_id, self.resolver().resolve(properties))
        for logical_id, properties in self._of_type("AWS::SNS::Topic"):
            self._topic(logical_id, self.resolver().resolve(properties))
        for logical_id, properties in self._of_type("AWS::DynamoDB::Table"):
            self._table(logical_id, self.resolver().resolve(properties))
        for logical_id, properties in self._of_type("AWS::Events::EventBus"):
            self._event_bus(logical_id, self.resolver().resolve(properties))
        for logical_id, properties in self._of_type("AWS::IAM::ManagedPolicy"):
            self._managed_policy(logical_id, self.resolver().resolve(properties))
        for logical_id, properties in self._of_type("AWS::Serverless::Function"):
            self._function(logical_id, properties)
        if self.roles_and_rules:
            for logical_id, properties in self._of_type("AWS::IAM::Role"):
                self._role(logical_id, self.resolver().resolve(properties))
            for logical_id, properties in self._of_type("AWS::Events::Rule"):
                self._rule(logical_id, self.resolver().resolve(properties))
        return self.done

    def _default_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def _queue(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        sqs = self.aws.client("sqs")
        name = str(properties.get("QueueName") or self._default_name(logical_id))
        attributes = {key: str(properties[key]) for key in _QUEUE_ATTRIBUTES if properties.get(key) is not None}
        url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.done.queues[logical_id] = url
        self.done.refs[logical_id] = url
        self.done.attrs[(logical_id, "Arn")] = arn
        self.done.attrs[(logical_id, "QueueName")] = name
        self.done.attrs[(logical_id, "QueueUrl")] = url

    def _redrive(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        policy = properties.get("RedrivePolicy")
        if policy:
            self.aws.client("sqs").set_queue_attributes(
                QueueUrl=self.done.queues[logical_id], Attributes={"RedrivePolicy": json.dumps(policy)}
            )

    def _topic(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        name = str(properties.get("TopicName") or self._default_name(logical_id))
        arn: str = self.aws.client("sns").create_topic(Name=name)["TopicArn"]
        self.done.topics[logical_id] = arn
        self.done.refs[logical_id] = arn
        self.done.attrs[(logical_id, "TopicArn")] = arn
        self.done.attrs[(logical_id, "TopicName")] = name

    def _table(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        dynamodb = self.aws.dynamodb()
        name = str(properties.get("TableName") or self._default_name(logical_id))
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if properties.get(index_kind):
                request[index_kind] = [
                    {key: value for key, value in index.items() if key in {"IndexName", "KeySchema", "Projection"}}
                    for index in properties[index_kind]
                ]
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
        description = dynamodb.create_table(**request)["TableDescription"]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        self.done.tables[logical_id] = name
        self.done.refs[logical_id] = name
        self.done.attrs[(logical_id, "Arn")] = description["TableArn"]

    def _managed_policy(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        name = str(properties.get("ManagedPolicyName") or self._default_name(logical_id))
        arn: str = self.aws.iam().create_policy(
            PolicyName=name,
            Path=str(properties.get("Path", "/")),
            PolicyDocument=json.dumps(properties["PolicyDocument"]),
            Description=str(properties.get("Description", ""))[:1000],
        )["Policy"]["Arn"]
        self.done.refs[logical_id] = arn
        self.done.attrs[(logical_id, "PolicyArn")] = arn

    def _event_bus(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        name = str(properties.get("Name") or self._default_name(logical_id))
        arn: str = self.aws.client("events").create_event_bus(Name=name)["EventBusArn"]
        self.done.refs[logical_id] = name
        self.done.attrs[(logical_id, "Arn")] = arn
        self.done.attrs[(logical_id, "Name")] = name

    def _role(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        iam = self.aws.iam()
        name = str(properties.get("RoleName") or self._default_name(logical_id))[:64]
        role = iam.create_role(
            RoleName=name,
            Path=str(properties.get("Path", "/")),
            AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]),
            Description=str(properties.get("Description", ""))[:1000],
            MaxSessionDuration=int(properties.get("MaxSessionDuration", 3600)),
        )["Role"]
        for policy in properties.get("Policies") or []:
            iam.put_role_policy(
                RoleName=name, PolicyName=str(policy["PolicyName"]), PolicyDocument=json.dumps(policy["PolicyDocument"])
            )
        for arn in properties.get("ManagedPolicyArns") or []:
            iam.attach_role_policy(RoleName=name, PolicyArn=str(arn))
        self.done.refs[logical_id] = name
        self.done.attrs[(logical_id, "Arn")] = str(role["Arn"])
        self.done.attrs[(logical_id, "RoleId")] = str(role["RoleId"])

    def _rule(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        events = self.aws.client("events")
        name = str(properties.get("Name") or self._default_name(logical_id))[:64]
        bus = str(properties.get("EventBusName", "default"))
        request: dict[str, Any] = {
            "Name": name,
            "EventBusName": bus,
            "State": str(properties.get("State", "ENABLED")),
            "Description": str(properties.get("Description", ""))[:512],
        }
        if properties.get("EventPattern") is not None:
            request["EventPattern"] = json.dumps(properties["EventPattern"])
        if properties.get("ScheduleExpression"):
            request["ScheduleExpression"] = str(properties["ScheduleExpression"])
        arn: str = events.put_rule(**request)["RuleArn"]
        targets = [
            {key: value for key, value in target.items() if key in {"Id", "Arn", "RoleArn", "DeadLetterConfig"}}
            for target in properties.get("Targets") or []
        ]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self.done.refs[logical_id] = name
        self.done.attrs[(logical_id, "Arn")] = arn

    def _function(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        name = str(self.resolver().resolve(properties.get("FunctionName") or self._default_name(logical_id)))
        self.done.refs[logical_id] = name
        self.done.attrs[(logical_id, "Arn")] = f"arn:aws:lambda:{self.aws.region}:{self.account_id}:function:{name}"
        if properties.get("Role"):
            return  # a role of the template's own: resolved like any other resource
        role_id = f"{logical_id}Role"
        role_name = self._default_name(role_id)[:64]
        iam = self.aws.iam()
        role_arn: str = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))[
            "Role"
        ]["Arn"]
        credentials = self.aws.sts().assume_role(RoleArn=role_arn, RoleSessionName=name[:64])["Credentials"]
        self.done.refs[role_id] = role_name
        self.done.attrs[(role_id, "Arn")] = role_arn
        self.done.sessions[logical_id] = RoleSession(
            role_arn, credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
        )
