"""Teams, PagerDuty and the signed webhook over real HTTP on 127.0.0.1, through the outbox on moto DynamoDB:
each message once, nothing lost in an outage, PagerDuty resolving what it opened."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.domain.findings import Change, Severity, Status, Transition
from iamguard.domain.messages import Channel
from iamguard.notify.base import DeliveryError
from iamguard.notify.factory import build_dispatcher
from iamguard.notify.pagerduty import PagerDutyNotifier, dedup_key
from iamguard.notify.teams import TeamsNotifier
from iamguard.notify.webhook import KEY_HEADER, SIGNATURE_HEADER, WebhookNotifier
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings
from iamguard_cli.local.channel_receivers import PagerDutyReceiver, TeamsReceiver, WebhookReceiver
from iamguard_cli.local.seed import seed_walkthrough

from tests.integration.notify_support import (
    ACCOUNT,
    Clock,
    alert,
    fast_policy,
    finding,
    make_dispatcher,
    opened,
)
from tests.integration.test_notify_dispatch import audit, enable_mfa

ALL = "critical=teams+pagerduty+webhook,high=teams+pagerduty+webhook,medium=teams+webhook"
ROOT_ALERT = "🔴 Critical · Root signed in to the console"


@pytest.fixture(name="teams")
def teams_fixture() -> Iterator[TeamsReceiver]:
    with TeamsReceiver() as receiver:
        yield receiver


@pytest.fixture(name="pagerduty")
def pagerduty_fixture() -> Iterator[PagerDutyReceiver]:
    with PagerDutyReceiver() as receiver:
        yield receiver


@pytest.fixture(name="webhook")
def webhook_fixture() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def to_teams(receiver: TeamsReceiver, **options: Any) -> TeamsNotifier:
    return TeamsNotifier(lambda: receiver.url, policy=fast_policy(**options))


def to_pagerduty(receiver: PagerDutyReceiver, **options: Any) -> PagerDutyNotifier:
    secret = json.dumps({"routing_key": receiver.routing_key, "url": receiver.url})
    return PagerDutyNotifier(lambda: secret, policy=fast_policy(**options))


def to_webhook(receiver: WebhookReceiver, **options: Any) -> WebhookNotifier:
    secret = {"url": receiver.url, "signing_key": receiver.signing_key}
    return WebhookNotifier(lambda: secret, policy=fast_policy(**options))


def all_three(teams: TeamsReceiver, pagerduty: PagerDutyReceiver, webhook: WebhookReceiver) -> list[Any]:
    return [to_teams(teams), to_pagerduty(pagerduty), to_webhook(webhook)]


# -- the formats, as the services take them ------------------------------------------------
def test_teams_gets_an_adaptive_card_in_the_chosen_language(teams: TeamsReceiver) -> None:
    # Given a Korean dispatcher without a store (the CLI's), posting to Teams
    notify = make_dispatcher([to_teams(teams)], None, routing="high=teams", language="ko")

    # When a high finding is announced
    report = notify.announce(alerts=[], changes=[opened(finding())], actions=[])

    # Then Teams accepted one Adaptive Card (202) with the headline, the facts and the fix, in Korean
    assert report.sent == 1 and [r.status for r in teams.requests] == [202]
    card = teams.card(teams.messages[0])
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0]["text"] == "🟠 [높음] 새 보안 문제: bob"
    facts = {
        fact["title"]: fact["value"] for block in card["body"] if block["type"] == "FactSet" for fact in block["facts"]
    }
    assert facts["리소스"] == "bob" and facts["계정"] == ACCOUNT
    assert any(block.get("fontType") == "Monospace" and "bob" in block["text"] for block in card["body"])


def test_pagerduty_pages_for_an_opened_finding_and_resolves_it_when_it_passes(
    aws: AwsContext, store: FindingsStore, pagerduty: PagerDutyReceiver
) -> None:
    # Given the walkthrough account and PagerDuty for critical and high
    seed_walkthrough(aws.iam())
    clock = Clock()
    notify = make_dispatcher([to_pagerduty(pagerduty)], store, clock=clock, routing="critical=pagerduty,high=pagerduty")

    # When the audit runs (twice: the second finds nothing new)
    first = notify.announce(alerts=[], changes=audit(aws, store), actions=[])
    clock.advance(hours=1)
    notify.announce(alerts=[], changes=audit(aws, store), actions=[])

    # Then each critical/high failure opened one alert, keyed by its check and resource
    wonjun = f"arn:aws:iam::{ACCOUNT}:user/wonjun_admin"
    console_mfa = f"iamguard:user_console_mfa:{wonjun}"
    assert first.sent == 6 and pagerduty.incidents == 6 and len(pagerduty.messages) == 6
    assert console_mfa in pagerduty.open_alerts()
    [trigger] = [m for m in pagerduty.messages if m["dedup_key"] == console_mfa]
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "error"  # high
    assert trigger["payload"]["source"] == wonjun
    assert trigger["payload"]["summary"] == (
        "Every user with a console password has MFA: User wonjun_admin has a console password but no MFA device."
    )
    assert {m["payload"]["severity"] for m in pagerduty.messages} == {"critical", "error"}

    # When wonjun_admin gets MFA and the next audit runs
    enable_mfa(aws, "wonjun_admin")
    clock.advance(hours=1)
    fixed = notify.announce(alerts=[], changes=audit(aws, store), actions=[])

    # Then exactly the two findings that pass now are resolved, with the same keys; the rest stay open
    resolves = [m for m in pagerduty.messages if m["event_action"] == "resolve"]
    assert fixed.sent == 2
    assert sorted(m["dedup_key"] for m in resolves) == sorted(
        [console_mfa, f"iamguard:user_admin_without_mfa:{wonjun}"]
    )
    assert pagerduty.alerts[console_mfa] == "resolved" and len(pagerduty.open_alerts()) == 4


def test_the_webhook_is_signed_over_the_exact_body_and_carries_the_message_key(webhook: WebhookReceiver) -> None:
    notify = make_dispatcher([to_webhook(webhook)], None, routing="critical=webhook")
    report = notify.announce(alerts=[alert()], changes=[], actions=[])

    assert report.sent == 1 and [r.status for r in webhook.requests] == [200]  # the receiver checked the signature
    [body] = webhook.messages
    assert body["schema"] == "iamguard.notification/1"
    assert body["message"]["headline"] == ROOT_ALERT and body["message"]["severity"] == "critical"
    assert body["text"].startswith(ROOT_ALERT + "\n")
    headers = webhook.requests[0].headers
    assert headers[KEY_HEADER.lower()] == body["message"]["key"]
    assert headers[SIGNATURE_HEADER.lower()].startswith("t=")


def test_a_webhook_signed_with_another_key_is_refused_and_stays_pending(
    store: FindingsStore, webhook: WebhookReceiver
) -> None:
    wrong = WebhookNotifier(lambda: {"url": webhook.url, "signing_key": "x" * 40}, policy=fast_policy())
    notify = make_dispatcher([wrong], store, routing="critical=webhook")
    report = notify.announce(alerts=[alert()], changes=[], actions=[])
    assert report.pending == 1 and webhook.messages == []
    assert [r.status for r in webhook.requests] == [401]  # permanent: not retried inside the send


# -- outages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limits_and_server_errors_are_retried_to_exactly_one_delivery(
    status: int, teams: TeamsReceiver, pagerduty: PagerDutyReceiver, webhook: WebhookReceiver
) -> None:
    for receiver in (teams, pagerduty, webhook):
        receiver.fail(status, times=2, retry_after=1 if status == 429 else None)
    notify = make_dispatcher(all_three(teams, pagerduty, webhook), None, routing=ALL)

    report = notify.announce(alerts=[alert()], changes=[], actions=[])

    assert report.sent == 1
    for receiver, ok in ((teams, 202), (pagerduty, 202), (webhook, 200)):
        assert [r.status for r in receiver.requests] == [status, status, ok]
        assert len(receiver.messages) == 1


def test_receivers_down_lose_nothing_and_duplicate_nothing(
    store: FindingsStore, teams: TeamsReceiver, pagerduty: PagerDutyReceiver, webhook: WebhookReceiver
) -> None:
    # Given all three channels down
    clock = Clock()
    notify = make_dispatcher(all_three(teams, pagerduty, webhook), store, clock=clock, routing=ALL)
    for receiver in (teams, pagerduty, webhook):
        receiver.go_down()

    # When an alert and a finding are announced, and the next run finds them still down
    down = notify.announce(alerts=[alert()], changes=[opened(finding(severity=Severity.CRITICAL))], actions=[])
    clock.advance(minutes=5)
    still = notify.flush()

    # Then both wait in the outbox
    assert (down.sent, down.pending) == (0, 2) and still.sent == 0
    assert notify.outbox is not None and {e.targets for e in notify.outbox.due(clock() + timedelta_minutes(5))} == {
        frozenset({Channel.TEAMS, Channel.PAGERDUTY, Channel.WEBHOOK})
    }

    # When they come back, later runs deliver each message once
    for receiver in (teams, pagerduty, webhook):
        receiver.come_up()
    clock.advance(minutes=5)
    back = notify.flush()
    clock.advance(minutes=5)
    after = notify.flush()
    assert (back.sent, after.sent) == (2, 0)
    assert sorted(teams.headlines) == sorted([ROOT_ALERT, "🔴 Critical · New finding: bob"])
    assert len(pagerduty.messages) == 2 and pagerduty.incidents == 2
    assert len(webhook.keys) == len(set(webhook.keys)) == 2
    assert all(any("Delayed delivery" in b.get("text", "") for b in teams.card(m)["body"]) for m in teams.messages)


def test_a_duplicate_event_is_posted_once_per_channel_even_by_two_instances(
    store: FindingsStore, teams: TeamsReceiver, pagerduty: PagerDutyReceiver, webhook: WebhookReceiver
) -> None:
    one = make_dispatcher(all_three(teams, pagerduty, webhook), store, routing=ALL)
    other = make_dispatcher(all_three(teams, pagerduty, webhook), FindingsStore(store.client, store.table), routing=ALL)

    first = one.announce(alerts=[alert()], changes=[], actions=[])
    second = other.announce(alerts=[alert()], changes=[], actions=[])  # EventBridge delivered it again

    assert (first.sent, second.duplicates) == (1, 1)
    assert teams.headlines == [ROOT_ALERT]
    assert len(pagerduty.messages) == 1 and len(webhook.messages) == 1


def test_a_teams_post_answered_too_late_is_not_repeated_inside_the_send(
    store: FindingsStore, teams: TeamsReceiver
) -> None:
    # Given Teams posts at once but answers after the client gave up (outcome unknown)
    teams.slow(2, times=1)
    clock = Clock()
    notify = make_dispatcher([to_teams(teams)], store, clock=clock, routing="critical=teams")

    report = notify.announce(alerts=[alert()], changes=[], actions=[])

    # Then it is one request, kept pending (it may have posted): a later run sends it at most max_posts times
    assert report.pending == 1 and len(teams.requests) == 1
    assert notify.outbox is not None and notify.outbox.due(clock() + timedelta_minutes(5))[0].posts == {
        Channel.TEAMS: 1
    }


def test_a_pagerduty_trigger_whose_answer_was_lost_is_sent_again_and_folded_into_one_alert(
    store: FindingsStore, pagerduty: PagerDutyReceiver
) -> None:
    pagerduty.slow(2, times=1)
    clock = Clock()
    notify = make_dispatcher([to_pagerduty(pagerduty)], store, clock=clock, routing="critical=pagerduty")
    first = notify.announce(alerts=[alert()], changes=[], actions=[])
    clock.advance(minutes=5)
    later = notify.flush()
    assert (first.pending, later.sent) == (1, 1)
    assert len(pagerduty.messages) == 2 and pagerduty.incidents == 1  # the dedup key made the repeat harmless
    assert len({m["dedup_key"] for m in pagerduty.messages}) == 1


# -- routing, digest, secrets ------------------------------------------------------------------
def test_severity_routing_decides_who_pages_and_the_digest_skips_pagerduty(
    store: FindingsStore, teams: TeamsReceiver, pagerduty: PagerDutyReceiver, webhook: WebhookReceiver
) -> None:
    notify = make_dispatcher(all_three(teams, pagerduty, webhook), store, routing=ALL)
    medium = finding("user_access_keys_rotated", "carol", severity=Severity.MEDIUM)
    store.record([medium, finding()])  # bob's high finding is open: the digest reminds of it

    notify.announce(alerts=[], changes=[opened(medium)], actions=[])
    notify.send_digest(store.findings(), account_id=ACCOUNT, ref="2026-06-02T00:00:00Z")

    assert pagerduty.messages == []  # medium does not page, and a digest is not a page
    assert teams.headlines[0] == "🟡 Medium · New finding: carol"
    assert teams.headlines[1].startswith("📋 iamguard digest")
    assert [m["message"]["kind"] for m in webhook.messages] == ["finding", "digest"]


def test_the_secrets_come_from_secrets_manager_and_never_reach_a_log(
    aws: AwsContext,
    store: FindingsStore,
    teams: TeamsReceiver,
    pagerduty: PagerDutyReceiver,
    webhook: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the three secrets in Secrets Manager and the stack's environment naming them
    secrets = aws.client("secretsmanager")
    values = {
        "TEAMS_SECRET_ARN": json.dumps({"url": teams.url}),
        "PAGERDUTY_SECRET_ARN": json.dumps({"routing_key": pagerduty.routing_key, "url": pagerduty.url}),
        "WEBHOOK_SECRET_ARN": json.dumps({"url": webhook.url, "signing_key": webhook.signing_key}),
    }
    for variable, value in values.items():
        monkeypatch.setenv(variable, secrets.create_secret(Name=variable.lower(), SecretString=value)["ARN"])
    monkeypatch.setenv("SEVERITY_ROUTING", ALL)
    monkeypatch.setenv("FINDINGS_TABLE", store.table)
    notify = build_dispatcher(Settings.from_env(), aws, store=store)
    assert set(notify.notifiers) == {Channel.TEAMS, Channel.PAGERDUTY, Channel.WEBHOOK}

    # When one delivery succeeds and one fails with the URL in the service's error
    caplog.set_level(logging.DEBUG)
    notify.announce(alerts=[alert()], changes=[], actions=[])
    teams.fail(404, times=1)
    notify.announce(alerts=[alert(event_id="another")], changes=[], actions=[])

    # Then all three delivered the first, and no log line holds a URL path, the routing key or the signing key
    assert teams.headlines == [ROOT_ALERT] and len(pagerduty.messages) == len(webhook.messages) == 2
    assert [r.status for r in teams.requests] == [202, 404]
    for record in caplog.records:
        text = record.getMessage() + json.dumps(record.__dict__, default=str)
        for secret in (teams.path, pagerduty.routing_key, webhook.signing_key):
            assert secret not in text, (record.name, text[:600])


@pytest.mark.parametrize(
    ("notifier", "error"),
    [
        (TeamsNotifier(lambda: "http://teams.example.com/hook"), "the Teams URL must be an https:// URL"),
        (PagerDutyNotifier(lambda: "{}"), "the PagerDuty secret holds no routing key"),
        (
            WebhookNotifier(lambda: {"url": "https://h.example.com", "signing_key": "short"}),
            "signing_key of at least 32",
        ),
    ],
)
def test_an_unusable_secret_is_a_permanent_error_that_names_no_secret(notifier: Any, error: str) -> None:
    with pytest.raises(DeliveryError) as raised:
        notifier.send(make_dispatcher([], None).builder.alert_message(alert()))
    assert error in str(raised.value) and raised.value.permanent
    assert "teams.example.com" not in str(raised.value)


def timedelta_minutes(minutes: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=minutes)


def test_a_resolved_finding_that_never_paged_still_resolves_nothing_else(pagerduty: PagerDutyReceiver) -> None:
    notify = make_dispatcher([to_pagerduty(pagerduty)], None, routing="high=pagerduty")
    failed = finding()
    passed = failed.model_copy(update={"status": Status.PASS})
    notify.announce(alerts=[], changes=[Change(passed, failed, Transition.RESOLVED)], actions=[])
    assert [(m["event_action"], m["dedup_key"]) for m in pagerduty.messages] == [("resolve", dedup_key(failed))]
    assert pagerduty.open_alerts() == set()
