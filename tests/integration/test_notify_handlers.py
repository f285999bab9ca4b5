"""The scheduled handlers with notifications configured as template.yaml configures them (moto + local Slack)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.seed import seed_walkthrough
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.integration.notify_support import drain, headers, slack_fixture, topic_with_queue  # noqa: F401
from tests.support.template import load_handler

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@pytest.fixture
def configured(aws: AwsContext, slack: SlackReceiver, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's notification settings: the webhook in Secrets Manager, the topic, the DLQ. → subscriber queue."""
    secret = aws.client("secretsmanager").create_secret(Name="iamguard/slack", SecretString=slack.url)["ARN"]
    topic, subscriber = topic_with_queue(aws)
    dlq = aws.client("sqs").create_queue(QueueName="iamguard-notify-dlq")["QueueUrl"]
    monkeypatch.setenv("SLACK_SECRET_ARN", secret)
    monkeypatch.setenv("ALERT_TOPIC_ARN", topic)
    monkeypatch.setenv("NOTIFY_DLQ_URL", dlq)
    monkeypatch.setenv("SEVERITY_ROUTING", "critical=slack+email,high=slack+email")
    return subscriber


def metric_names(printed: str) -> set[str]:
    """Metric names in the Embedded Metric Format lines Powertools printed."""
    names: set[str] = set()
    for line in printed.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            names |= {m["Name"] for block in document["_aws"]["CloudWatchMetrics"] for m in block["Metrics"]}
    return names


def test_the_audit_handler_announces_each_change_once(
    aws: AwsContext,
    store: FindingsStore,
    slack: SlackReceiver,
    configured: str,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_walkthrough(aws.iam())
    handler = load_handler("audit_account")

    first = handler.lambda_handler(SCHEDULED, lambda_context)
    second = handler.lambda_handler(SCHEDULED, lambda_context)

    assert first["notifications"]["sent"] == 6 and first["notifications"]["held"] == 4
    assert second["notifications"] == {key: 0 for key in second["notifications"]}
    assert len(slack.messages) == 6
    assert len(drain(aws, configured)) == 6  # e-mail too: critical and high go to both
    printed = capsys.readouterr().out
    assert "NotificationsSent" in metric_names(printed)
    assert slack.url not in printed and slack.path not in printed


def test_the_digest_handler_sends_one_digest_per_schedule_and_flushes(
    aws: AwsContext,
    store: FindingsStore,
    slack: SlackReceiver,
    configured: str,
    lambda_context: Any,
) -> None:
    seed_walkthrough(aws.iam())
    slack.go_down()
    load_handler("audit_account").lambda_handler(SCHEDULED, lambda_context)  # Slack down: all pending for Slack
    slack.come_up()
    digest = load_handler("notify_digest")

    tick = {**SCHEDULED, "time": "2026-06-02T00:00:00Z"}
    first = digest.lambda_handler(tick, lambda_context)
    retried = digest.lambda_handler(tick, lambda_context)  # EventBridge retried the same schedule

    assert first["notifications"]["sent"] == 7  # the six pending announcements, then the digest
    assert retried["notifications"]["duplicates"] == 1 and retried["notifications"]["sent"] == 0
    assert headers(slack)[-1] == "📋 iamguard digest: 6 open critical/high findings"
    assert len(slack.messages) == 7
    digest_text = json.dumps(slack.messages[-1], ensure_ascii=False)
    assert "Also since the last digest" in digest_text  # the medium/low/informational changes held for it
    assert "🟡 Medium · New finding:" in digest_text
