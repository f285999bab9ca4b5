"""Delivery under faults (issue 12): runs killed between storing and posting, a slow Slack, concurrent runs.

A killed run is the real `iamguard` CLI in its own process, ended by `os._exit` at a chosen
point (tests/support/crash.py); the next run is an ordinary one. Slack is the local receiver,
DynamoDB is moto over HTTP (the processes share it) or in-process moto with a test clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.findings import Change, Severity, Transition
from iamguard.domain.messages import Channel
from iamguard.iam.inventory import Inventory
from iamguard.notify.base import DeliveryError
from iamguard.notify.dispatcher import UNDELIVERED_METRIC, DeadLetterQueue, DeliveryReport
from iamguard.notify.retry import SlackRetryPolicy
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import OutboxState
from iamguard.settings import Settings
from iamguard_cli.local.seed import seed_walkthrough
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.conftest import REPO
from tests.integration.notify_support import (
    ACCOUNT,
    NOW,
    Clock,
    MetricsRecorder,
    alert,
    drain,
    fast_slack,
    finding,
    make_dispatcher,
    slack_fixture,  # noqa: F401 - the `slack` fixture
)
from tests.integration.test_cli_audit import iamguard
from tests.support.crash import KILLED

TABLE = "delivery-faults"
# The walkthrough account's critical and high failures: one Slack message each, (headline, check id).
WALKTHROUGH = Counter(
    {
        ("🔴 Critical · New finding: root", "root_mfa_enabled"): 1,
        ("🔴 Critical · New finding: wonjun_admin", "user_admin_without_mfa"): 1,
        ("🟠 High · New finding: root", "root_hardware_mfa"): 1,
        ("🟠 High · New finding: root", "root_not_used_recently"): 1,
        ("🟠 High · New finding: wonjun_admin", "user_admin_access"): 1,
        ("🟠 High · New finding: wonjun_admin", "user_console_mfa"): 1,
    }
)
MAX_POSTS = SlackRetryPolicy().max_posts


def identity(payload: dict[str, Any]) -> tuple[str, str]:
    """(headline, check or detection id): what tells two messages apart in the channel."""
    header = next(b["text"]["text"] for b in payload["blocks"] if b["type"] == "header")
    footer = payload["blocks"][-1]["elements"][-1]["text"]
    return header, footer.rsplit(" · ", 1)[-1]


def posted(slack: SlackReceiver) -> Counter[tuple[str, str]]:
    return Counter(identity(payload) for payload in slack.messages)


def killed_at(point: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `iamguard ARGS` and kill it right after POINT (tests/support/crash.py)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.support.crash", point, "--", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


def audit_args(moto: MotoServer, slack: SlackReceiver) -> tuple[str, ...]:
    return ("audit", "--endpoint-url", moto.url, "--store", "--table", TABLE, "--slack-webhook", slack.url)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


# -- defect 1: a run that dies between storing findings and announcing them -----------------------
@pytest.mark.parametrize(
    ("point", "posted_before", "next_run"),
    [
        ("store", 0, "notifications: 6 sent, 4 held"),  # announcements only on the findings
        ("claim", 0, "notifications: 6 sent"),  # messages in the outbox, none sent
        ("first-post", 1, "notifications: 5 sent"),  # one posted and recorded, five waiting
    ],
)
def test_an_audit_killed_between_storing_and_posting_still_tells_everything_once(
    server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver, point: str, posted_before: int, next_run: str
) -> None:
    # Given the walkthrough account, and an audit process killed at `point`
    seed_walkthrough(server_aws.iam())
    killed = killed_at(point, *audit_args(moto_server, slack))
    assert killed.returncode == KILLED, killed.stderr
    assert len(slack.messages) == posted_before

    # When the next audits run normally
    after = iamguard(*audit_args(moto_server, slack))
    again = iamguard(*audit_args(moto_server, slack))

    # Then every message arrived exactly once, and nothing is left to send
    assert last_line(after) == next_run, after.stderr
    assert last_line(again) == "notifications: nothing to send"
    assert posted(slack) == WALKTHROUGH
    assert FindingsStore(server_aws.dynamodb(), TABLE).pending_changes() == []


def test_an_audit_killed_after_slack_took_a_post_sends_that_one_at_most_once_more(
    server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver
) -> None:
    # Given an audit killed after Slack answered 200 to its first post, before that was recorded
    seed_walkthrough(server_aws.iam())
    killed = killed_at("post", *audit_args(moto_server, slack))
    assert killed.returncode == KILLED, killed.stderr
    [first] = posted(slack)

    # When the next audit runs, the others go out; the first is still leased (its outcome unknown)
    after = iamguard(*audit_args(moto_server, slack))
    assert last_line(after) == "notifications: 5 sent"
    assert posted(slack) == WALKTHROUGH

    # When the lease of the dead run has run out (the table's clock moved on), a later run sends it again
    expire_leases(server_aws, TABLE)
    later = iamguard(*audit_args(moto_server, slack))
    assert last_line(later) == "notifications: 1 sent"

    # Then that one message was posted twice (at least once, at most MAX_POSTS), every other once
    assert posted(slack) == WALKTHROUGH + Counter({first: 1})
    assert max(posted(slack).values()) <= MAX_POSTS
    assert "Delayed delivery" in json.dumps(slack.messages[-1])
    assert last_line(iamguard(*audit_args(moto_server, slack))) == "notifications: nothing to send"


def expire_leases(aws: AwsContext, table: str) -> None:
    """What five minutes do to a lease: it lies in the past."""
    client = aws.dynamodb()
    for item in client.scan(TableName=table, FilterExpression="attribute_exists(lease_until)")["Items"]:
        client.update_item(
            TableName=table,
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET lease_until = :past",
            ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00.000+00:00"}},
        )


def test_an_event_killed_after_storing_is_announced_by_the_next_audit(
    server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    # Given an account whose findings were announced, where a user then gets a console password and no MFA
    seed_walkthrough(server_aws.iam())
    assert last_line(iamguard(*audit_args(moto_server, slack))) == "notifications: 6 sent, 4 held"
    iam = server_aws.iam()
    iam.create_user(UserName="eve")
    iam.create_login_profile(UserName="eve", Password="Correct-Horse-Battery-9")
    event = json.loads((REPO / "events" / "create_login_profile.json").read_text())
    event["detail"]["requestParameters"]["userName"] = "eve"
    event["detail"]["responseElements"]["loginProfile"]["userName"] = "eve"
    event["detail"]["eventID"] = "6c1e0a52-0000-4000-8000-00000000e7e0"
    (tmp_path / "event.json").write_text(json.dumps(event))

    # When the event path stores eve's findings and dies before announcing them
    replay = ("events", "replay", str(tmp_path / "event.json"), "--endpoint-url", moto_server.url,
              "--table", TABLE, "--slack-webhook", slack.url)  # fmt: skip
    killed = killed_at("record", *replay)
    assert killed.returncode == KILLED, killed.stderr
    assert len(slack.messages) == 6

    # Then the next audit announces eve's new finding (the stored state is unchanged), once
    after = iamguard(*audit_args(moto_server, slack))
    assert last_line(after) == "notifications: 1 sent, 1 held", after.stderr
    assert last_line(iamguard(*audit_args(moto_server, slack))) == "notifications: nothing to send"
    assert posted(slack) == WALKTHROUGH + Counter({("🟠 High · New finding: eve", "user_console_mfa"): 1})


def test_the_digest_run_announces_what_a_dead_audit_recorded(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    seed_walkthrough(aws.iam())
    store_audit(run_audit(Inventory(aws), Settings()), store)  # (the audit died here)
    notify = make_dispatcher([fast_slack(slack)], store)
    first = notify.announce(alerts=[], changes=store.pending_changes(), actions=[])  # what the digest does first
    second = notify.announce(alerts=[], changes=store.pending_changes(), actions=[])
    assert (first.sent, first.held) == (6, 4)
    assert (second.sent, second.held, second.duplicates) == (0, 0, 0)
    assert posted(slack) == WALKTHROUGH


def test_an_event_announcement_also_delivers_what_a_dead_audit_left_in_the_outbox(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    seed_walkthrough(aws.iam())
    changes = store_audit(run_audit(Inventory(aws), Settings()), store)
    dead = make_dispatcher([fast_slack(slack)], store)
    dead._claim_all(dead.builder.finding_messages(changes), {c.finding.key: c for c in changes}, DeliveryReport())
    # (the audit died here: six messages claimed, none sent)
    event_path = make_dispatcher([fast_slack(slack)], FindingsStore(store.client, store.table))
    report = event_path.announce(alerts=[alert()], changes=[], actions=[])  # the next CloudTrail event
    assert report.sent == 7
    assert posted(slack) == WALKTHROUGH + Counter(
        {("🔴 Critical · Root signed in to the console", "root_console_sign_in"): 1}
    )


def test_a_large_change_is_claimed_in_transactions_dynamodb_accepts(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    # Given 150 users who opened the same finding in one audit
    changes = store.record([finding(user=f"user{n:03}") for n in range(150)], full_audit_account=ACCOUNT)

    # When they are announced (the claims' transactions counted, not the audit's own writes)
    sizes: list[int] = []
    store.client.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **_: sizes.append(len(params["TransactItems"])),
    )
    report = make_dispatcher([fast_slack(slack)], store).announce(alerts=[], changes=changes, actions=[])

    # Then two messages (99 + 51 users) took every announcement, each claim within DynamoDB's limit
    assert report.sent == 2
    assert sorted(sizes) == [52, 100]
    assert store.pending_changes() == []
    assert [m["blocks"][0]["text"]["text"] for m in slack.messages] == [
        "🟠 High · 99 new findings: Every user with a console password has MFA",
        "🟠 High · 51 new findings: Every user with a console password has MFA",
    ]


def test_an_announcement_whose_message_was_told_before_does_not_stay_pending(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    # Given a finding that escalated to critical, fell back to high, and escalates to critical again:
    # the second escalation is the same message as the first (same transition, severity, status change)
    notify = make_dispatcher([fast_slack(slack)], store)
    hours = iter(range(10))

    def observe(severity: Severity) -> list[Change]:
        return store.record([finding(severity=severity, at=NOW + timedelta(hours=next(hours)))])

    for severity in (Severity.HIGH, Severity.CRITICAL, Severity.HIGH):
        notify.announce(alerts=[], changes=observe(severity), actions=[])
    again = notify.announce(alerts=[], changes=observe(Severity.CRITICAL), actions=[])

    # Then it is not told twice, and its announcement is not left to be handed back by every later run
    assert (again.sent, again.duplicates) == (0, 1)
    assert store.pending_changes() == []
    assert [c.transition for c in observe(Severity.CRITICAL)] == [Transition.UNCHANGED]
    assert [identity(m)[0] for m in slack.messages] == ["🟠 High · New finding: bob", "🔴 Escalated to Critical: bob"]


def test_a_post_killed_before_its_outcome_was_recorded_is_resent_after_the_lease(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    """In-process, with a test clock: the same window as the CLI test above, and its posts counter."""

    class Killed(BaseException):
        """The process died (nothing catches it, as nothing catches os._exit)."""

    class DyingSlack:
        def __init__(self) -> None:
            self.inner = fast_slack(slack)
            self.channel, self.max_posts = self.inner.channel, self.inner.max_posts

        def accepts(self, message: Any) -> bool:
            return True

        def send(self, message: Any) -> None:
            self.inner.send(message)
            raise Killed

    clock = Clock()
    with pytest.raises(Killed):
        make_dispatcher([DyingSlack()], store, clock=clock).announce(alerts=[alert()], changes=[], actions=[])
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)
    assert notify.outbox is not None
    entry = notify.outbox.get(notify.builder.alert_message(alert()).key)
    assert entry is not None and entry.posts == {Channel.SLACK: 1}  # counted before the post, never given back

    assert notify.flush().sent == 0  # leased by the dead run: its answer might still be coming
    clock.advance(minutes=6)
    assert notify.flush().sent == 1
    clock.advance(minutes=6)
    assert notify.flush().sent == 0
    assert [identity(m) for m in slack.messages] == [
        ("🔴 Critical · Root signed in to the console", "root_console_sign_in")
    ] * 2
    final = notify.outbox.get(entry.message.key)
    assert final is not None and final.state is OutboxState.SENT and final.posts == {Channel.SLACK: 2}


# -- defect 2: a slow Slack must not get a message again and again ------------------------------------
def test_a_slack_that_posts_but_answers_late_gets_a_message_at_most_max_posts_times(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    # Given a webhook that posts every message at once but answers after the client's 1 s timeout
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="iamguard-notify-dlq")["QueueUrl"]
    metrics = MetricsRecorder()
    clock = Clock()
    notify = make_dispatcher(
        [fast_slack(slack)], store, clock=clock, metrics=metrics, dead_letters=DeadLetterQueue(sqs, dlq)
    )
    slack.slow(1.5)

    # When the alert is announced and later runs flush, long after every lease and cooldown
    reports = [notify.announce(alerts=[alert()], changes=[], actions=[])]
    for _ in range(5):
        clock.advance(minutes=10)
        reports.append(notify.flush())

    # Then Slack got it exactly MAX_POSTS times (one request per run: a timed-out post is never retried
    # inside a send), then it went to the dead-letter queue, saying it may have arrived
    assert len(slack.requests) == len(slack.messages) == MAX_POSTS == 3
    assert [r.pending for r in reports] == [1, 1, 0, 0, 0, 0]
    assert [r.dead_lettered for r in reports] == [0, 0, 1, 0, 0, 0]
    assert metrics.total(UNDELIVERED_METRIC) == 1
    [dead] = drain(aws, dlq)
    assert "slack: 3 sends without a confirmation (it may have arrived)" in dead["reason"]
    assert "sent no answer (it may have posted)" in dead["reason"]


def test_once_a_post_is_confirmed_no_later_run_sends_it_again(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock)
    slack.slow(1.5, times=1)  # the first post is taken but answered too late; then Slack is quick again

    first = notify.announce(alerts=[alert()], changes=[], actions=[])
    clock.advance(minutes=10)
    second = notify.flush()
    later = []
    for _ in range(3):
        clock.advance(minutes=10)
        later.append(notify.flush().sent)

    assert (first.pending, second.sent, later) == (1, 1, [0, 0, 0])
    assert len(slack.messages) == 2 <= MAX_POSTS  # the late-answered post, then the confirmed one
    assert notify.outbox is not None and notify.outbox.due(clock()) == []


def test_a_post_in_flight_is_not_sent_again_by_a_concurrent_run(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    # Given a pending message, and a run (one Lambda) whose post of it Slack has taken but not answered yet
    clock = Clock()
    first, second = (make_dispatcher([fast_slack(slack)], FindingsStore(store.client, store.table), clock=clock)
                     for _ in "ab")  # fmt: skip
    slack.go_down()
    first.announce(alerts=[alert()], changes=[], actions=[])
    slack.come_up()
    slack.slow(1.5, times=1)
    clock.advance(minutes=5)
    reports: list[Any] = []
    sending = threading.Thread(target=lambda: reports.append(first.flush()))
    sending.start()
    assert len(slack.wait_for(1, timeout=10)) == 1  # the post is in flight

    # When another run (another Lambda) flushes meanwhile
    meanwhile = second.flush()
    sending.join(timeout=30)

    # Then it left the message alone: one request in all, counted once
    assert (meanwhile.sent, meanwhile.pending) == (0, 0)
    assert [r.pending for r in reports] == [1]  # the first run's post timed out: outcome unknown
    assert len(slack.requests) == 1
    assert first.outbox is not None
    [entry] = first.outbox.due(clock())
    assert entry.posts == {Channel.SLACK: 1}


def test_a_channel_that_cannot_have_posted_does_not_use_up_the_posts(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    clock = Clock()
    notify = make_dispatcher([fast_slack(slack)], store, clock=clock, max_attempts=50)
    slack.go_down()  # connection refused: Slack certainly posted nothing
    notify.announce(alerts=[alert()], changes=[], actions=[])
    for _ in range(MAX_POSTS + 2):
        clock.advance(minutes=10)
        assert notify.flush().pending == 1
    assert notify.outbox is not None
    [entry] = notify.outbox.due(clock())
    assert entry.attempts == MAX_POSTS + 3 and entry.posts == {Channel.SLACK: 0}
    slack.come_up()
    clock.advance(minutes=10)
    assert notify.flush().sent == 1
    assert len(slack.messages) == 1


def test_a_timeout_ends_the_send_as_outcome_unknown(slack: SlackReceiver) -> None:
    slack.slow(1.5)
    with pytest.raises(DeliveryError, match="sent no answer") as failure:
        fast_slack(slack).send(make_dispatcher([], None).builder.alert_message(alert()))
    assert failure.value.unknown and not failure.value.permanent
    assert len(slack.requests) == 1  # no retry inside the send
