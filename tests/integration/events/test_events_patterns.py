"""template.yaml routes exactly the events the event map names: its patterns are `event_patterns()`,
and moto's EventBridge, given those patterns, delivers every mapped sample and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.enforcement.guardrail import guardrail_document
from iamguard.realtime.event_map import event_patterns
from iamguard_cli.local.routing import function_name

from tests.conftest import EVENTS_DIR
from tests.support.template import load_handler, sam_template

# Sample → the function whose rule must deliver it (None: no rule may deliver it).
ROUTES: dict[str, str | None] = {
    "add_user_to_group_admin": "on_iam_event",
    "attach_user_policy_admin": "on_iam_event",
    "attach_user_policy_by_iamguard": "on_iam_event",  # delivered, then ignored by the handler
    "create_access_key_root": "on_iam_event",
    "create_access_key_root_for_user": "on_iam_event",
    "create_account_alias": "on_iam_event",
    "create_login_profile": "on_iam_event",
    "create_policy_version_admin": "on_iam_event",
    "create_policy_version_not_default": "on_iam_event",  # delivered, then ignored: not the default version
    "create_user": "on_iam_event",
    "deactivate_mfa_device": "on_iam_event",
    "deactivate_mfa_device_root": "on_iam_event",
    "deactivate_mfa_device_root_custom_name": "on_iam_event",
    "assume_root": "on_iam_event",  # sts, regional: the us-east-1 rule (other regions: a forwarder)
    "delete_account_password_policy": "on_iam_event",
    "delete_user_permissions_boundary": "on_iam_event",
    "detach_user_policy_required": "on_iam_event",
    "enable_mfa_device": "on_iam_event",
    "put_user_permissions_boundary": "on_iam_event",
    "set_default_policy_version": "on_iam_event",
    "update_account_password_policy": "on_iam_event",
    "console_login_failure": "on_signin_event",
    "console_login_failure_hidden_user": "on_signin_event",
    "console_login_root_mfa": "on_signin_event",
    "console_login_root_no_mfa": "on_signin_event",
    "console_login_sso": "on_signin_event",  # delivered, then ignored by the handler
    "console_login_user_mfa": "on_signin_event",
    "console_login_user_no_mfa": "on_signin_event",
    "console_login_user_security_key": "on_signin_event",
    "console_login_failure_mfa": "on_signin_event",
    "console_login_failure_root": "on_signin_event",
    "console_login_signin_spelling": "on_signin_event",  # the EventBridge User Guide's detail-type
    # Federated sign-ins: delivered, then ignored by the handler (MFA is the identity provider's).
    "console_login_saml": "on_signin_event",
    "console_login_saml_iam_user_type": "on_signin_event",
    "console_login_web_identity": "on_signin_event",
    "console_login_federated_user": "on_signin_event",
    "console_login_assumed_role": "on_signin_event",
    "check_mfa": None,  # another sign-in step, not a sign-in
    # IAM Identity Center's sign-in steps come as "AWS Service Event via CloudTrail".
    "identity_center_user_authentication": None,
    "identity_center_credential_verification_failure": None,
    "create_user_access_denied": None,  # failed call: errorCode
    "get_user_read_only": None,  # read-only call
}


def template_functions() -> dict[str, dict[str, Any]]:
    """The function's name (on_iam_event for OnIamEventFunction) → its SAM resource."""
    return {
        function_name(logical_id): resource
        for logical_id, resource in sam_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def template_pattern(handler: str) -> dict[str, Any]:
    events = template_functions()[handler]["Properties"]["Events"]
    [rule] = [event for event in events.values() if event["Type"] == "EventBridgeRule"]
    pattern: dict[str, Any] = rule["Properties"]["Pattern"]
    return pattern


def test_every_sample_is_routed_in_this_table() -> None:
    mine = {
        path.stem
        for path in EVENTS_DIR.glob("*.json")
        if json.loads(path.read_text()).get("source") in {"aws.iam", "aws.signin", "aws.sts"}
    }
    assert mine == set(ROUTES)


@pytest.mark.parametrize("handler", sorted(event_patterns()))
def test_template_patterns_are_the_event_maps(handler: str) -> None:
    assert template_pattern(handler) == event_patterns()[handler]


@pytest.mark.parametrize("handler", sorted(event_patterns()))
def test_each_handler_accepts_exactly_the_sources_its_rule_delivers(
    handler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "iamguard-idempotency-test")
    assert load_handler(handler).HANDLER.sources == frozenset(event_patterns()[handler]["source"])


def test_the_template_guardrail_is_the_shipped_document() -> None:
    policy = sam_template()["Resources"]["GuardrailPolicy"]["Properties"]["PolicyDocument"]
    assert policy == guardrail_document()


def deliver(aws: AwsContext, pattern: dict[str, Any], events: dict[str, dict[str, Any]]) -> set[str]:
    """Put each event on a moto bus with one rule (the pattern) targeting SQS; return the names delivered."""
    sqs, bridge = aws.client("sqs"), aws.client("events")
    queue = sqs.create_queue(QueueName="delivered")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bridge.put_rule(Name="under-test", EventPattern=json.dumps(pattern), State="ENABLED")
    bridge.put_targets(Rule="under-test", Targets=[{"Id": "queue", "Arn": arn}])
    for event in events.values():
        entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}
        assert bridge.put_events(Entries=[entry])["FailedEntryCount"] == 0
    delivered: set[str] = set()
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for message in messages:
            event_id = json.loads(message["Body"])["detail"]["eventID"]
            delivered.update(name for name, event in events.items() if event["detail"]["eventID"] == event_id)
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    bridge.remove_targets(Rule="under-test", Ids=["queue"])
    bridge.delete_rule(Name="under-test")
    sqs.delete_queue(QueueUrl=queue)
    return delivered


@pytest.mark.parametrize("handler", ["on_iam_event", "on_signin_event"])
def test_the_deployed_pattern_delivers_every_mapped_event_and_nothing_else(aws: AwsContext, handler: str) -> None:
    samples = {name: json.loads((EVENTS_DIR / f"{name}.json").read_text()) for name in ROUTES}
    unrelated = {
        "scheduled": {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {"eventID": "sched-1"}},
        "s3-api-call": {
            "source": "aws.s3",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "s3.amazonaws.com", "eventName": "CreateUser", "eventID": "s3-1"},
        },
        "iam-source-other-name": {
            "source": "aws.iam",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "iam.amazonaws.com", "eventName": "CreateRole", "eventID": "iam-1"},
        },
        "sts-assume-role": {
            "source": "aws.sts",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "eventID": "sts-1"},
        },
        "failed-assume-root": {
            "source": "aws.sts",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {
                "eventSource": "sts.amazonaws.com",
                "eventName": "AssumeRoot",
                "errorCode": "AccessDenied",
                "eventID": "sts-2",
            },
        },
    }
    delivered = deliver(aws, template_pattern(handler), {**samples, **unrelated})
    assert delivered == {name for name, to in ROUTES.items() if to == handler}


# Organization mode: the hub bus's rules carry the same patterns to the same functions.
HUB_RULES = {
    "on_iam_event": ("HubIamEventsRule", "OnIamEventFunction"),
    "on_signin_event": ("HubSignInEventsRule", "OnSigninEventFunction"),
}


@pytest.mark.parametrize("handler", sorted(event_patterns()))
def test_hub_bus_rules_are_the_event_maps_and_target_their_function(handler: str) -> None:
    rule_id, function_id = HUB_RULES[handler]
    resources = sam_template()["Resources"]
    rule = resources[rule_id]
    assert rule["Condition"] == "OrganizationMode"
    assert json.dumps(rule["Properties"]["EventBusName"]) == json.dumps({"Ref": "HubEventBus"})
    assert rule["Properties"]["EventPattern"] == event_patterns()[handler]
    [target] = rule["Properties"]["Targets"]
    assert function_id in json.dumps(target["Arn"]) and "EventsDeadLetterQueue" in json.dumps(
        target["DeadLetterConfig"]
    )
    [permission] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and rule_id in json.dumps(r["Properties"])
    ]
    assert permission["Condition"] == "OrganizationMode" and function_id in json.dumps(permission["Properties"])


def test_a_single_account_deployment_has_nothing_of_organization_mode() -> None:
    # Every resource organization mode adds exists only with OrganizationId set.
    resources = sam_template()["Resources"]
    organization = {name for name, r in resources.items() if r.get("Condition") == "OrganizationMode"}
    assert organization == {
        "HubEventBus",
        "HubIamEventsRule",
        "HubIamEventsPermission",
        "HubSignInEventsRule",
        "HubSignInEventsPermission",
        "OrganizationPolicy",
        "EventPathOrganizationPolicy",
        # the audit's fan-out: planner, queue, its alarms, the member-audit grants
        "PlanAuditFunction",
        "PlanAuditLogGroup",
        "PlanAuditErrorsAlarm",
        "AuditQueue",
        "AuditQueueMapping",
        "AuditQueueBacklogAlarm",
        "AuditDeadLetterQueue",
        "AuditDeadLetterAlarm",
        "StaleAccountsAlarm",
        "MemberAuditPolicy",
    }
    bus = resources["HubEventBus"]["Properties"]
    [statement] = bus["Policy"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert json.dumps(statement["Condition"]) == json.dumps(
        {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    )
    assert sam_template()["Parameters"]["OrganizationId"]["Default"] == ""
