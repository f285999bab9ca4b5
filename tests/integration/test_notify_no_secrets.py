"""The webhook URL, Slack tokens and MFA seeds never appear in a log line or a message - whatever fails."""

from __future__ import annotations

import json
import logging
from typing import Any

import iamguard.notify.slack_transport  # noqa: F401 - configure slack_sdk's logger first; the test then opens it
import pytest
from iamguard.aws import AwsContext
from iamguard.domain.alerts import Action, Detection
from iamguard.domain.findings import Severity
from iamguard.notify.dispatcher import DeadLetterQueue
from iamguard.notify.secrets import SlackSecret
from iamguard.notify.slack import SlackCredentials, SlackNotifier
from iamguard.notify.sns import SnsNotifier
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.integration.notify_support import (
    ACCOUNT,
    NOW,
    SEED,
    Clock,
    alert,
    drain,
    fast_policy,
    finding,
    make_dispatcher,
    opened,
    slack_fixture,  # noqa: F401 - the `slack` fixture
    topic_with_queue,
)

OTPAUTH = f"otpauth://totp/Amazon%20Web%20Services:alice@{ACCOUNT}?secret={SEED}&issuer=Amazon%20Web%20Services"


def everything_logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """Every log record (message, arguments and structured extras) and everything printed."""
    records = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    printed = capsys.readouterr()
    return "\n".join([*records, printed.out, printed.err])


def test_no_secret_reaches_logs_or_messages(
    aws: AwsContext,
    store: FindingsStore,
    slack: SlackReceiver,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Everything at DEBUG: iamguard, slack_sdk's logger, botocore's wire logs.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="iamguard.notify.slack_sdk")
    secrets_manager = aws.client("secretsmanager")
    webhook_arn = secrets_manager.create_secret(Name="slack-webhook", SecretString=slack.url)["ARN"]
    token = "xoxb-000000000-111111111-ABCDEFGHIJKLMNOPQRSTUVWX"
    topic, subscriber = topic_with_queue(aws)
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="notify-dlq")["QueueUrl"]
    clock = Clock()
    channels = [
        SlackNotifier(SlackSecret(webhook_arn, aws), policy=fast_policy(max_retry_after=1)),
        SnsNotifier(aws.client("sns"), topic),
    ]
    notify = make_dispatcher(channels, store, clock=clock, routing="critical=slack,high=slack", max_attempts=3)
    impatient = make_dispatcher(
        channels, store, clock=clock, routing="critical=slack", max_attempts=1, dead_letters=DeadLetterQueue(sqs, dlq)
    )

    # Alerts and findings whose free text carries an MFA seed (a careless event path could put it there)
    leaky_alert = alert(
        detection=Detection.MFA_REMOVED,
        summary=f"MFA re-enrolled from {OTPAUTH}",
        actor=f"alice (seed {SEED})",
        extra={"responseElements": {"virtualMFADevice": {"base32StringSeed": SEED}}},
    )
    leaky_finding = finding(
        "user_admin_without_mfa",
        "alice",
        severity=Severity.CRITICAL,
        detail=f"User alice has no MFA device (pending seed {SEED}).",
    )
    leaky_action = Action(
        action="attach_guardrail_policy",
        user_name="alice",
        policy_arn=f"arn:aws:iam::{ACCOUNT}:policy/guardrail",
        performed=False,
        reason=f"seed {SEED} seen",
        error=f"AccessDenied while holding {SEED}",
        at=NOW,
    )

    # When Slack fails in every way, then recovers; and a token-based Slack is refused
    slack.fail(500, times=3)
    notify.announce(alerts=[leaky_alert], changes=[], actions=[])
    slack.fail(429, times=3, retry_after=1)
    notify.announce(alerts=[], changes=[opened(leaky_finding)], actions=[leaky_action])
    slack.heal()
    slack.go_down()
    clock.advance(minutes=5)
    notify.flush()
    slack.come_up()
    clock.advance(minutes=5)
    notify.flush()
    slack.fail(404)  # revoked: this one is given up on at once and dead-lettered
    clock.advance(minutes=5)
    impatient.announce(alerts=[leaky_alert.model_copy(update={"event_id": "revoked"})], changes=[], actions=[])
    slack.heal()
    refused = make_dispatcher(
        [
            SlackNotifier(
                lambda: SlackCredentials(token=token, channel="#sec"), policy=fast_policy(), api_base_url=slack.api_url
            )
        ],
        None,
        routing="critical=slack",
    )
    refused.announce(alerts=[alert(event_id="another-event")], changes=[], actions=[])

    # Then: delivered somewhere (so the test saw real traffic) …
    assert slack.messages, "nothing reached Slack"
    email = drain(aws, subscriber)
    assert email, "nothing fell back to the topic"
    dead = drain(aws, dlq)
    assert dead, "nothing was dead-lettered"

    # … and no secret anywhere: logs, stdout/stderr, Slack payloads, SNS deliveries, the DLQ, the outbox
    path_secret = slack.path.rsplit("/", 1)[-1]
    stored: list[dict[str, Any]] = []
    for page in store.client.get_paginator("scan").paginate(TableName=store.table):
        stored.extend(page["Items"])
    places = {
        "logs": everything_logged(caplog, capsys),
        "slack": json.dumps([r.payload for r in slack.requests], ensure_ascii=False),
        "email": json.dumps(email, ensure_ascii=False),
        "dlq": json.dumps(dead, ensure_ascii=False),
        "outbox": json.dumps(stored, ensure_ascii=False),
    }
    assert "GetSecretValue" in places["logs"]  # botocore's DEBUG wire log really was captured
    for place, text in places.items():
        for secret in (slack.url, path_secret, token, SEED, "secret=" + SEED[:8]):
            assert secret not in text, f"{secret[:12]}… found in {place}"
