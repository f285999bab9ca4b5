"""The dispatcher on moto DynamoDB with a real local Slack: once per change, never lost, fallback, dead letters."""

from __future__ import annotations

import json
from datetime import timedelta

from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.findings import Change, Severity
from iamguard.domain.messages import Channel
from iamguard.iam.inventory import Inventory
from iamguard.notify.dispatcher import UNDELIVERED_METRIC, DeadLetterQueue
from iamguard.notify.sns import SnsNotifier
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import OutboxState
from iamguard.settings import Settings
from iamguard_cli.local.seed import seed_walkthrough
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.integration.notify_support import (
    Clock,
    MetricsRecorder,
    alert,
    drain,
    fast_slack,
    finding,
    headers,
    make_dispatcher,
    opened,
    slack_fixture,  # noqa: F401 - the `slack` fixture
    topic_with_queue,
)

WALKTHROUGH_ANNOUNCED = [  # critical and high failures of the walkthrough account, worst first
    "🔴 Critical · New finding: root",  # root_mfa_enabled
    "🔴 Critical · New finding: wonjun_admin",  # user_admin_without_mfa
    "🟠 High · New finding: root",  # root_hardware_mfa
    "🟠 High · New finding: root",  # root_not_used_recently
    "🟠 High · New finding: wonjun_admin",  # user_admin_access
    "🟠 High · New finding: wonjun_admin",  # user_console_mfa
]


def audit(aws: AwsContext, store: FindingsStore) -> list[Change]:
    return store_audit(run_audit(Inventory(aws), Settings()), store)


def enable_mfa(aws: AwsContext, user: str) -> None:
    iam = aws.iam()
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=user, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )


def test_repeated_audits_announce_each_change_once_and_a_fix_once(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    # Given the walkthrough account and a dispatcher posting to Slack
    seed_walkthrough(aws.iam())
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)

    # When the audit runs twice against the unchanged account
    first = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    clock.advance(hours=1)
    second = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    second += notify.flush()

    # Then the critical/high failures were sent once, the rest held for the digest, nothing twice
    assert headers(slack) == WALKTHROUGH_ANNOUNCED
    assert (first.sent, first.held, first.pending) == (6, 4, 0)
    assert second.sent == second.pending == second.held == 0

    # When wonjun_admin gets MFA, the next audit says so, once
    enable_mfa(aws, "wonjun_admin")
    clock.advance(hours=1)
    fixed = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    clock.advance(hours=1)
    again = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    new = headers(slack)[len(WALKTHROUGH_ANNOUNCED) :]
    assert new == ["✅ Resolved: wonjun_admin", "✅ Resolved: wonjun_admin"]
    assert {m["blocks"][-1]["elements"][-1]["text"].rsplit(" · ", 1)[-1] for m in slack.messages[-2:]} == {
        "user_admin_without_mfa",
        "user_console_mfa",
    }
    assert (fixed.sent, fixed.held) == (2, 1)  # user_mfa (low) resolved: digest only
    assert again.sent == again.held == 0
    assert store.pending_changes() == []


def test_a_duplicate_alert_is_sent_once_even_by_two_instances(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    one = make_dispatcher([fast_slack(slack)], store)
    other = make_dispatcher([fast_slack(slack)], FindingsStore(store.client, store.table))  # another Lambda
    first = one.announce(alerts=[alert()], changes=[], actions=[])
    second = other.announce(alerts=[alert()], changes=[], actions=[])  # EventBridge delivered it again
    third = one.announce(alerts=[alert()], changes=[], actions=[])
    assert headers(slack) == ["🔴 Critical · Root signed in to the console"]
    assert (first.sent, second.duplicates, third.duplicates) == (1, 1, 1)


def test_when_slack_fails_email_gets_it_and_slack_gets_it_later(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    # Given critical alerts routed to Slack only, and an SNS topic with a queue subscribed
    topic, queue = topic_with_queue(aws)
    clock = Clock()
    notify = make_dispatcher(
        [fast_slack(slack), SnsNotifier(aws.client("sns"), topic)], store, clock=clock, routing="critical=slack"
    )
    slack.go_down()

    # When an alert is announced while Slack is down
    report = notify.announce(alerts=[alert()], changes=[], actions=[])

    # Then it went to the topic instead, saying why, and stays pending for Slack
    assert (report.sent, report.fallbacks, report.pending) == (0, 1, 1)
    [envelope] = drain(aws, queue)
    assert envelope["Subject"] == "[iamguard] Critical · Root signed in to the console"
    document = json.loads(envelope["Message"])  # subscribers other than e-mail get the message as JSON
    assert document["headline"] == "🔴 Critical · Root signed in to the console"
    assert document["notes"] == ["Sent by email because Slack could not deliver it."]
    assert envelope["MessageAttributes"]["iamguard.detection"]["Value"] == "root_console_sign_in"
    assert envelope["MessageAttributes"]["iamguard.severity"]["Value"] == "critical"

    # When Slack is back and a later run flushes
    slack.come_up()
    clock.advance(minutes=5)
    later = notify.flush()
    clock.advance(minutes=5)
    after = notify.flush()

    # Then Slack got it exactly once, marked as delayed, and e-mail did not get it twice
    assert later.sent == 1 and after.sent == 0
    assert headers(slack) == ["🔴 Critical · Root signed in to the console"]
    notes = slack.messages[0]["blocks"][-1]["elements"]
    assert notes[0]["text"] == "Delayed delivery: first attempted 2026-06-01 12:00 UTC."
    assert drain(aws, queue) == []


def test_an_outage_loses_nothing_and_duplicates_nothing(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    seed_walkthrough(aws.iam())
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)

    slack.go_down()
    down = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    assert (down.sent, down.pending) == (0, 6)
    assert len(slack.requests) == 0
    assert store.pending_changes() == []  # the announcements left the findings for the outbox
    assert notify.outbox is not None
    assert any(f.check_id == "user_admin_without_mfa" for e in notify.outbox.due(clock()) for f in e.message.findings)

    clock.advance(minutes=10)
    still_down = notify.flush()  # the next run, Slack still down: one failed try, the rest left for later
    assert still_down.pending == 1
    assert notify.outbox is not None and len(notify.outbox.due(clock() + timedelta(minutes=10))) == 6

    slack.come_up()
    clock.advance(hours=1)
    back = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    back += notify.flush()
    clock.advance(hours=1)
    later = notify.flush()

    assert (back.sent, back.pending, later.sent) == (6, 0, 0)
    assert sorted(headers(slack)) == sorted(WALKTHROUGH_ANNOUNCED)
    assert headers(slack)[:2] == WALKTHROUGH_ANNOUNCED[:2]  # the worst first
    assert store.pending_changes() == []


def test_a_message_that_can_never_be_delivered_is_dead_lettered_with_a_metric(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="iamguard-notify-dlq")["QueueUrl"]
    metrics = MetricsRecorder()
    clock = Clock()
    notify = make_dispatcher(
        [fast_slack(slack)], store, clock=clock, max_attempts=2, metrics=metrics, dead_letters=DeadLetterQueue(sqs, dlq)
    )
    slack.fail(404)  # a revoked webhook: no retry will ever help

    first = notify.announce(alerts=[alert()], changes=[], actions=[])
    clock.advance(minutes=5)
    second = notify.flush()
    clock.advance(minutes=5)
    third = notify.flush()

    assert (first.pending, second.dead_lettered, third.dead_lettered + third.sent) == (1, 1, 0)
    assert metrics.total(UNDELIVERED_METRIC) == 1
    [dead] = drain(aws, dlq)
    assert dead["message"]["headline"] == "🔴 Critical · Root signed in to the console"
    assert dead["targets"] == ["slack"] and dead["delivered"] == [] and dead["attempts"] == 2
    assert "slack: Slack webhook answered HTTP 404" in dead["reason"]
    entry = notify.outbox.get(dead["message"]["key"]) if notify.outbox else None
    assert entry is not None and entry.state is OutboxState.DEAD
    slack.heal()
    clock.advance(minutes=5)
    assert notify.flush().sent == 0 and slack.messages == []


def test_a_message_older_than_the_limit_is_dead_lettered(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    metrics = MetricsRecorder()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock, max_age_hours=1, metrics=metrics)
    slack.go_down()
    assert notify.announce(alerts=[alert()], changes=[], actions=[]).pending == 1
    clock.advance(hours=2)
    assert notify.flush().dead_lettered == 1
    assert metrics.total(UNDELIVERED_METRIC) == 1


def test_without_a_dead_letter_queue_reachable_the_message_stays_pending(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    broken = DeadLetterQueue(aws.client("sqs"), "https://sqs.us-east-1.amazonaws.com/123456789012/missing")
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock, max_attempts=1, dead_letters=broken)
    slack.go_down()
    report = notify.announce(alerts=[alert()], changes=[], actions=[])
    assert (report.dead_lettered, report.pending) == (0, 1)
    slack.come_up()
    clock.advance(minutes=5)
    assert notify.flush().sent == 1


def test_two_runs_flushing_at_once_send_a_pending_message_once(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)
    slack.go_down()
    notify.announce(alerts=[alert()], changes=[], actions=[])
    slack.come_up()
    clock.advance(minutes=5)
    assert notify.outbox is not None
    [entry] = notify.outbox.due(clock())
    assert notify.outbox.lease(entry.message.key, clock())  # another run took it and is sending

    assert notify.flush().sent == 0  # so this run leaves it alone
    clock.advance(minutes=6)  # the other run died: its lease runs out
    assert notify.flush().sent == 1
    assert len(slack.messages) == 1


def test_a_run_that_died_after_claiming_is_finished_by_a_later_flush(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)
    message = notify.builder.alert_message(alert())
    assert notify.outbox is not None and notify.outbox.claim(message, notify.targets(message), clock())
    # (the run crashed here, before sending: the claim holds no lease, so the next run may send it at once)
    again = notify.announce(alerts=[alert()], changes=[], actions=[])  # EventBridge's retry of the same event
    assert (again.duplicates, again.sent) == (1, 1)
    clock.advance(minutes=6)
    assert notify.flush().sent == 0
    assert len(slack.messages) == 1


def test_a_run_that_died_while_sending_is_finished_once_its_lease_runs_out(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)
    message = notify.builder.alert_message(alert())
    assert notify.outbox is not None and notify.outbox.claim(message, notify.targets(message), clock())
    assert notify.outbox.lease(message.key, clock(), {Channel.SLACK: 3})  # (and crashed before its post)
    assert notify.flush().sent == 0  # its answer may still come: nobody else sends it meanwhile
    clock.advance(minutes=6)
    assert notify.flush().sent == 1
    entry = notify.outbox.get(message.key)
    assert entry is not None and entry.state is OutboxState.SENT and entry.posts == {Channel.SLACK: 2}
    assert len(slack.messages) == 1


def test_low_severity_changes_wait_for_the_digest_which_is_sent_once(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)
    serious = finding("user_admin_without_mfa", "wonjun_admin", severity=Severity.CRITICAL)
    low = finding("user_mfa", "bob_ci", severity=Severity.LOW)
    store.record([serious, low])
    held = notify.announce(alerts=[], changes=[opened(low)], actions=[])
    assert (held.held, held.sent) == (1, 0) and slack.messages == []

    findings = store.findings()
    first = notify.send_digest(findings, account_id="123456789012", ref="2026-06-02T00:00:00Z")
    retried = notify.send_digest(findings, account_id="123456789012", ref="2026-06-02T00:00:00Z")
    next_day = notify.send_digest(findings, account_id="123456789012", ref="2026-06-03T00:00:00Z")

    assert (first.sent, retried.duplicates, next_day.sent) == (1, 1, 1)
    texts = [json.dumps(m, ensure_ascii=False) for m in slack.messages]
    assert "Also since the last digest" in texts[0] and "🔵 Low · New finding: bob_ci" in texts[0]
    assert "Also since the last digest" not in texts[1]  # held messages are reported once
    assert "wonjun_admin — No administrator works without MFA" in texts[1]


def test_in_a_long_outage_every_expired_message_is_dead_lettered_not_just_the_first(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    metrics = MetricsRecorder()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock, max_age_hours=1, metrics=metrics)
    slack.go_down()
    alerts = [alert(event_id=f"event-{i}") for i in range(3)]
    assert notify.announce(alerts=alerts, changes=[], actions=[]).pending == 3
    clock.advance(hours=2)
    assert notify.flush().dead_lettered == 3  # one real try fails; the other two are expired all the same
    assert metrics.total(UNDELIVERED_METRIC) == 3
