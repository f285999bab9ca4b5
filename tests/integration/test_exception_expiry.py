"""An exception that ends during the test: its finding fails again and that is announced exactly once.

The audit and the event path both see the end; the local Slack receives the messages over HTTP.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.exemptions import Exemption
from iamguard.domain.findings import Status
from iamguard.iam.inventory import Inventory
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore
from iamguard.realtime.processor import EventProcessor
from iamguard.settings import Settings
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.conftest import ACCOUNT_ID, load_event
from tests.integration.events.support import RecordingAnnouncer
from tests.integration.notify_support import Clock, fast_slack, headers, make_dispatcher, slack_fixture  # noqa: F401

EXPIRED = "⏰ 🟠 High · Exception expired: erin"


def console_user_without_mfa(aws: AwsContext, name: str = "erin") -> None:
    iam = aws.iam()
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password="Correct-Horse-9-Battery!")


def console_finding(store: FindingsStore) -> tuple[Status, str]:
    [found] = [f for f in store.findings_for_resource("user", "erin", "") if f.check_id == "user_console_mfa"]
    return found.status, found.detail


def test_an_exception_ending_mid_test_reopens_its_finding_announced_once(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver
) -> None:
    console_user_without_mfa(aws)
    today = datetime.now(UTC)
    exceptions = ExemptionStore(store.client, store.table)
    exceptions.put(
        Exemption(
            check_id="user_console_mfa",
            resource="erin",
            owner="secops",
            reason="vendor laptop without a token",
            expires=today.date(),  # its last day is today
            source="api",
            created_at=today,
            created_by="arn:aws:iam::123456789012:user/lead",
        )
    )
    clock = Clock(today)
    dispatcher = make_dispatcher([fast_slack(slack)], store, clock=clock)
    settings = Settings()

    def audit(at: datetime) -> None:
        clock.now = at
        result = run_audit(Inventory(aws), settings, at, exemptions=exceptions.all())
        dispatcher.announce(alerts=[], changes=store_audit(result, store), actions=[])

    audit(today)
    status, detail = console_finding(store)
    assert status is Status.EXEMPT and "owner secops" in detail
    assert EXPIRED not in headers(slack)
    dispatcher.send_digest(store.findings(), account_id=ACCOUNT_ID, ref="today")  # the daily digest warns first
    digest = str(slack.messages[-1])
    assert "Exceptions that end within 7 days" in digest and "erin — " in digest and "owner secops" in digest

    tomorrow = today + timedelta(days=1)
    audit(tomorrow)  # the exception ended last night
    status, detail = console_finding(store)
    assert status is Status.FAIL and f"expired after {today.date()}" in detail
    after_expiry = len(slack.messages)
    audit(tomorrow + timedelta(hours=1))  # the next hourly audit: nothing new to say
    audit(tomorrow + timedelta(hours=2))

    assert headers(slack).count(EXPIRED) == 1
    assert len(slack.messages) == after_expiry
    [message] = [m for m in slack.messages if EXPIRED in str(m)]
    assert "secops" in str(message) and "vendor laptop without a token" in str(message)


def login_profile_event(user: str, at: datetime) -> dict[str, object]:
    event = copy.deepcopy(load_event("create_login_profile.json"))
    event["id"] = str(uuid.uuid4())
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["time"] = stamp
    event["detail"].update(
        eventID=str(uuid.uuid4()), eventTime=stamp, requestParameters={"userName": user, "passwordResetRequired": False}
    )
    return event


def test_the_event_path_sees_the_end_of_an_exception_too(aws: AwsContext, store: FindingsStore) -> None:
    console_user_without_mfa(aws)
    today = datetime.now(UTC)
    ExemptionStore(store.client, store.table).put(
        Exemption(check_id="*", resource="erin", owner="secops", reason="migration", expires=today.date(), source="api")
    )
    clock = Clock(today)
    announcer = RecordingAnnouncer()
    processor = EventProcessor(aws, Settings(), account_id=ACCOUNT_ID, store=store, announcer=announcer, clock=clock)

    processor.process(login_profile_event("erin", today))
    assert console_finding(store)[0] is Status.EXEMPT

    clock.now = today + timedelta(days=1)
    processor.process(login_profile_event("erin", clock.now))
    processor.process(login_profile_event("erin", clock.now + timedelta(minutes=1)))

    status, detail = console_finding(store)
    assert status is Status.FAIL and "expired after" in detail
    reopened = [
        change
        for call in announcer.calls
        for change in call.changes
        if change.finding.check_id == "user_console_mfa" and change.finding.exemption_expired
    ]
    assert len(reopened) == 1 and reopened[0].previous is not None
    assert reopened[0].previous.status is Status.EXEMPT
