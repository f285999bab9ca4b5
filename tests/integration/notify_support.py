"""Builders and fixtures for the notification tests: findings, alerts, a clock, the local Slack, an SNS→SQS pair."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.domain.alerts import Alert, Detection
from iamguard.domain.findings import Change, Finding, Severity, Transition
from iamguard.notify.base import Notifier
from iamguard.notify.dispatcher import DeadLetterQueue, Dispatcher
from iamguard.notify.retry import SlackRetryPolicy
from iamguard.notify.slack import SlackNotifier
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import Outbox
from iamguard.settings.notify import NotifySettings
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.factories import finding as finding  # the one factory, re-exported for the notify tests

ACCOUNT = "123456789012"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # a Base32StringSeed-shaped secret


def opened(f: Finding) -> Change:
    return Change(f, None, Transition.OPENED)


def alert(detection: Detection = Detection.ROOT_CONSOLE_SIGN_IN, **overrides: Any) -> Alert:
    values: dict[str, Any] = {
        "detection": detection,
        "severity": Severity.CRITICAL,
        "resource_name": "root",
        "resource_arn": f"arn:aws:iam::{ACCOUNT}:root",
        "summary": "The root user signed in to the console without MFA.",
        "actor": "root",
        "source_ip": "203.0.113.7",
        "event_id": "0f7b6c1e-1111-2222-3333-444455556666",
        "event_name": "ConsoleLogin",
        "event_time": NOW,
        "region": "us-east-1",
        "account_id": ACCOUNT,
    }
    values.update(overrides)
    return Alert(**values)


@dataclass
class Clock:
    """A clock the test moves."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class MetricsRecorder:
    """Stands in for Powertools Metrics: records add_metric calls."""

    calls: list[tuple[str, float]] = field(default_factory=list)

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.calls.append((name, value))

    def total(self, name: str) -> float:
        return sum(value for metric, value in self.calls if metric == name)


@pytest.fixture(name="slack")
def slack_fixture() -> Iterator[SlackReceiver]:
    """The local Slack receiver on 127.0.0.1."""
    with SlackReceiver() as receiver:
        yield receiver


def fast_policy(**options: Any) -> SlackRetryPolicy:
    """The Slack retry policy with test-sized timeouts and backoff."""
    return SlackRetryPolicy(**{"timeout": 1, "retries": 2, "backoff": 0.01, "max_retry_after": 2, **options})


def fast_slack(receiver: SlackReceiver, **options: Any) -> SlackNotifier:
    """A webhook notifier with test-sized timeouts and backoff (the retry handlers are slack_sdk's)."""
    return SlackNotifier.from_webhook(receiver.url, policy=fast_policy(**options))


def make_dispatcher(
    notifiers: Sequence[Notifier],
    store: FindingsStore | None,
    *,
    clock: Clock | None = None,
    routing: str = "critical=slack+email,high=slack+email",
    language: str = "en",
    dead_letters: DeadLetterQueue | None = None,
    metrics: MetricsRecorder | None = None,
    **settings: Any,
) -> Dispatcher:
    return Dispatcher(
        notifiers,
        settings=NotifySettings.model_validate({"routing": routing, **settings}),
        language=language,  # type: ignore[arg-type]
        outbox=Outbox(store.client, store.table) if store is not None else None,
        store=store,
        dead_letters=dead_letters,
        metrics=metrics,
        clock=clock or Clock(),
    )


def topic_with_queue(aws: AwsContext) -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed (what an e-mail subscriber would get, readable by a test)."""
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="iamguard-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


def drain(aws: AwsContext, queue_url: str) -> list[dict[str, Any]]:
    """Every message waiting in a queue, parsed (SNS envelopes stay envelopes)."""
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        messages = batch.get("Messages", [])
        if not messages:
            return out
        for message in messages:
            body = json.loads(message["Body"])
            body["_attributes"] = message.get("MessageAttributes", {})
            out.append(body)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def headers(receiver: SlackReceiver) -> list[str]:
    """The header line of every message the receiver accepted, in order."""
    return [block["text"]["text"] for m in receiver.messages for block in m["blocks"] if block["type"] == "header"]
