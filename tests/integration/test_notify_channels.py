"""Channels against moto and botocore's Stubber: SNS, Security Hub (ASFF), the Slack secret."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from iamguard.aws import AwsContext
from iamguard.domain.findings import Change, Severity, Status, Transition
from iamguard.notify.base import DeliveryError
from iamguard.notify.render import MessageBuilder
from iamguard.notify.secrets import SlackSecret, is_ssm_reference, parse_slack_secret
from iamguard.notify.securityhub import SecurityHubNotifier, asff, finding_id, product_arn
from iamguard.notify.slack import SlackNotifier
from iamguard.notify.sns import SnsNotifier
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.integration.notify_support import (
    ACCOUNT,
    NOW,
    drain,
    fast_policy,
    finding,
    make_dispatcher,
    opened,
    slack_fixture,  # noqa: F401 - the `slack` fixture
    topic_with_queue,
)

EN = MessageBuilder("en", clock=lambda: NOW)
PRODUCT = f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"


# -- SNS ----------------------------------------------------------------------------
def test_sns_subscribers_get_subject_text_and_attributes(aws: AwsContext) -> None:
    topic, queue = topic_with_queue(aws)
    [message] = EN.finding_messages(
        [opened(finding("user_admin_without_mfa", "wonjun_admin", severity=Severity.CRITICAL))]
    )
    SnsNotifier(aws.client("sns"), topic).send(message)
    [envelope] = drain(aws, queue)
    assert envelope["Subject"] == "[iamguard] Critical · New finding: wonjun_admin"
    assert json.loads(envelope["Message"])["summary"] == (
        "User wonjun_admin has full administrator access but no MFA device."
    )
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes == {
        "iamguard.kind": "finding",
        "iamguard.severity": "critical",
        "iamguard.account_id": ACCOUNT,
        "iamguard.check_id": "user_admin_without_mfa",
        "iamguard.transition": "opened",
        "iamguard.resource": "wonjun_admin",
        "iamguard.language": "en",
    }


def test_sns_failures_are_delivery_errors(aws: AwsContext) -> None:
    missing = SnsNotifier(aws.client("sns"), f"arn:aws:sns:us-east-1:{ACCOUNT}:deleted-topic")
    with pytest.raises(DeliveryError, match="NotFound") as failure:
        missing.send(EN.finding_messages([opened(finding())])[0])
    assert failure.value.permanent


# -- Security Hub ---------------------------------------------------------------------
def test_asff_of_a_failing_user_finding() -> None:
    f = finding("user_console_mfa", "bob")
    document = asff(f, region="us-east-1")
    assert document["Id"] == f"iamguard/{ACCOUNT}/user_console_mfa/arn:aws:iam::{ACCOUNT}:user/bob"
    assert document["ProductArn"] == product_arn("us-east-1", ACCOUNT) == PRODUCT
    assert document["GeneratorId"] == "iamguard/user_console_mfa"
    assert document["FindingProviderFields"] == {
        "Severity": {"Label": "HIGH", "Original": "high"},
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS Foundations Benchmark"],
    }
    assert document["Compliance"]["Status"] == "FAILED"
    assert "CIS 1.10" in document["Compliance"]["RelatedRequirements"]
    assert document["Resources"] == [
        {
            "Type": "AwsIamUser",
            "Id": f"arn:aws:iam::{ACCOUNT}:user/bob",
            "Partition": "aws",
            "Region": "us-east-1",
            "Details": {"AwsIamUser": {"UserName": "bob"}},
        }
    ]
    assert document["Title"] == "Every user with a console password has MFA"
    assert document["Remediation"]["Recommendation"]["Text"].startswith("Open IAM > Users > bob > Security credentials")
    assert len(document["Remediation"]["Recommendation"]["Text"]) <= 512
    assert document["CreatedAt"] == "2026-06-01T12:00:00.000Z"
    korean = asff(f, region="us-east-1", language="ko")
    assert korean["Title"] == "콘솔 비밀번호가 있는 모든 사용자가 MFA를 사용함"
    assert korean["Description"] == "사용자 bob에게 콘솔 비밀번호는 있지만 MFA 장치가 없습니다."


def sync_message(change: Change) -> Any:
    [message] = EN.sync_messages([change])
    return message


def test_security_hub_imports_then_resolves_with_batch_update(aws: AwsContext) -> None:
    client = aws.client("securityhub")
    hub = SecurityHubNotifier(client, "us-east-1")
    failing = finding()
    passing = finding(status=Status.PASS, at=NOW + timedelta(hours=2), detail="User bob has MFA.")
    identifier = {"Id": finding_id(failing), "ProductArn": PRODUCT}
    with Stubber(client) as stub:
        stub.add_response(
            "batch_import_findings",
            {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []},
            {"Findings": [asff(failing, region="us-east-1")]},
        )
        # the fix: re-imported as PASSED, then the workflow set to RESOLVED (import cannot change it)
        stub.add_response(
            "batch_import_findings",
            {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []},
            {"Findings": [asff(passing, region="us-east-1")]},
        )
        stub.add_response(
            "batch_update_findings",
            {"ProcessedFindings": [identifier], "UnprocessedFindings": []},
            {"FindingIdentifiers": [identifier], "Workflow": {"Status": "RESOLVED"}},
        )
        hub.send(sync_message(opened(failing)))
        hub.send(sync_message(Change(passing, failing, Transition.RESOLVED)))
        stub.assert_no_pending_responses()


def test_a_reopened_finding_goes_back_to_new(aws: AwsContext) -> None:
    client = aws.client("securityhub")
    before = finding(status=Status.PASS)
    again = finding(at=NOW + timedelta(days=1))
    with Stubber(client) as stub:
        stub.add_response(
            "batch_import_findings", {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}, {"Findings": ANY}
        )
        stub.add_response(
            "batch_update_findings",
            {"ProcessedFindings": [], "UnprocessedFindings": []},
            {"FindingIdentifiers": ANY, "Workflow": {"Status": "NEW"}},
        )
        SecurityHubNotifier(client, "us-east-1").send(sync_message(Change(again, before, Transition.OPENED)))
        stub.assert_no_pending_responses()


def test_rejected_findings_are_a_delivery_error(aws: AwsContext) -> None:
    client = aws.client("securityhub")
    with Stubber(client) as stub:
        stub.add_response(
            "batch_import_findings",
            {
                "FailedCount": 1,
                "SuccessCount": 0,
                "FailedFindings": [{"Id": "x", "ErrorCode": "InvalidInput", "ErrorMessage": "Title too long"}],
            },
            {"Findings": ANY},
        )
        with pytest.raises(DeliveryError, match="rejected 1 finding"):
            SecurityHubNotifier(client, "us-east-1").send(sync_message(opened(finding())))


def test_security_hub_gets_every_change_whatever_the_routing(aws: AwsContext, store: FindingsStore) -> None:
    # moto stores imported findings (it has no BatchUpdateFindings; opened findings need none)
    client = aws.client("securityhub")
    client.enable_security_hub()
    notify = make_dispatcher([SecurityHubNotifier(client, "us-east-1")], store, routing="critical=slack")
    changes = [opened(finding("user_mfa", f"user{i}", severity=Severity.LOW)) for i in range(150)]
    report = notify.announce(alerts=[], changes=changes, actions=[])
    assert report.sent == 2  # two batches: Security Hub takes 100 findings per call
    assert report.held == 2  # the people's messages (low: digest only), also 100 findings at most each
    stored = client.get_findings(MaxResults=100)["Findings"]
    assert len(stored) == 100 and stored[0]["ProductArn"] == PRODUCT
    assert notify.announce(alerts=[], changes=changes, actions=[]).duplicates == 4


# -- the Slack secret -------------------------------------------------------------------
def test_the_webhook_comes_from_secrets_manager_and_is_cached(aws: AwsContext, slack: SlackReceiver) -> None:
    secrets = aws.client("secretsmanager")
    arn = secrets.create_secret(Name="iamguard/slack", SecretString=json.dumps({"webhook_url": slack.url}))["ARN"]
    source = SlackSecret(arn, aws, max_age=300)
    reads: list[str] = []
    source._secret._provider.client.meta.events.register(  # count the API calls Powertools makes
        "before-call.secrets-manager.GetSecretValue", lambda **kw: reads.append("read")
    )
    notifier = SlackNotifier(source, policy=fast_policy())
    message = EN.finding_messages([opened(finding())])[0]
    notifier.send(message)
    notifier.send(message)
    assert len(slack.messages) == 2
    assert reads == ["read"]  # the second send used the cached value


def test_the_webhook_can_be_an_ssm_secure_string(aws: AwsContext, slack: SlackReceiver) -> None:
    aws.client("ssm").put_parameter(Name="/iamguard/slack-webhook", Value=slack.url, Type="SecureString")
    SlackNotifier(SlackSecret("/iamguard/slack-webhook", aws), policy=fast_policy()).send(
        EN.finding_messages([opened(finding())])[0]
    )
    assert len(slack.messages) == 1


def test_a_missing_secret_keeps_the_message_pending(aws: AwsContext) -> None:
    notifier = SlackNotifier(SlackSecret(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:gone-AbCdEf", aws))
    with pytest.raises(DeliveryError, match="cannot read the Slack secret") as failure:
        notifier.send(EN.finding_messages([opened(finding())])[0])
    assert not failure.value.permanent


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://hooks.slack.com/services/T/B/x", ("https://hooks.slack.com/services/T/B/x", None, None)),
        (
            '{"webhook_url": "https://hooks.slack.com/services/T/B/y"}',
            ("https://hooks.slack.com/services/T/B/y", None, None),
        ),
        ('{"token": "xoxb-1", "channel": "#sec"}', (None, "xoxb-1", "#sec")),
        ("xoxb-2", (None, "xoxb-2", "#default")),
    ],
)
def test_secret_shapes(value: str, expected: tuple[str | None, str | None, str | None]) -> None:
    creds = parse_slack_secret(value, "#default")
    assert (creds.webhook_url, creds.token, creds.channel) == expected
    assert "xoxb" not in repr(creds) and "hooks" not in repr(creds)


def test_secret_references_are_told_apart() -> None:
    assert is_ssm_reference("/iamguard/slack")
    assert is_ssm_reference(f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/iamguard/slack")
    assert not is_ssm_reference(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:iamguard/slack-AbCdEf")
    with pytest.raises(DeliveryError):
        parse_slack_secret('{"nothing": 1}')
