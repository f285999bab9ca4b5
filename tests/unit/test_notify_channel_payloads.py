"""The request bodies of Teams, PagerDuty and the signed webhook, and the routing words: the services' limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from iamguard.domain.findings import Severity
from iamguard.domain.messages import Channel, Message, MessageKind, Section
from iamguard.notify.pagerduty import DEDUP_LIMIT, SUMMARY_LIMIT, dedup_key, events
from iamguard.notify.render import MessageBuilder
from iamguard.notify.teams import SIZE_LIMIT, payload
from iamguard.notify.webhook import signature, verify
from iamguard.settings.notify import DEFAULT_ROUTING, parse_routing

from tests.integration.notify_support import finding, opened

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def huge_message(language: str = "en") -> Message:
    return Message(
        key="finding:x",
        kind=MessageKind.FINDING,
        severity=Severity.CRITICAL,
        language=language,  # type: ignore[arg-type]
        account_id="123456789012",
        created_at=NOW,
        headline="🔴 Critical · New finding: " + "u" * 5000,
        summary="s" * 5000,
        sections=tuple(Section(title=f"part {n}", lines=("한국어 " * 400,)) for n in range(30)),
    )


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_teams_card_stays_under_28_kb_and_says_what_it_left_out(language: str) -> None:
    body = payload(huge_message(language))
    assert len(json.dumps(body).encode()) <= SIZE_LIMIT
    card = body["attachments"][0]["content"]
    assert all(len(block.get("text", "")) <= 2000 for block in card["body"])
    note = {"en": "more sections left out", "ko": "항목을 생략했습니다"}[language]
    assert any(note in block.get("text", "") for block in card["body"])


def test_pagerduty_events_keep_to_the_api_limits() -> None:
    long = finding(user="a" * 64).model_copy(update={"resource_arn": "arn:aws:iam::123456789012:user/" + "p/" * 200})
    [message] = MessageBuilder("en").finding_messages([opened(long)])
    [event] = events(message, "R" * 32)
    assert event["event_action"] == "trigger" and event["routing_key"] == "R" * 32
    assert len(event["dedup_key"]) <= DEDUP_LIMIT and event["dedup_key"] == dedup_key(long)
    assert len(event["payload"]["summary"]) <= SUMMARY_LIMIT
    assert event["payload"]["severity"] in {"critical", "error", "warning", "info"}
    assert dedup_key(long) == dedup_key(long.model_copy(update={"observed_at": NOW}))  # stable across runs


def test_pagerduty_severity_follows_the_finding() -> None:
    mapping = {}
    for severity in Severity:
        [message] = MessageBuilder("ko").finding_messages([opened(finding(severity=severity))])
        mapping[severity] = events(message, "k")[0]["payload"]["severity"]
    assert mapping == {
        Severity.CRITICAL: "critical",
        Severity.HIGH: "error",
        Severity.MEDIUM: "warning",
        Severity.LOW: "info",
        Severity.INFORMATIONAL: "info",
    }


def test_a_grouped_message_is_one_pagerduty_alert_per_finding() -> None:
    changes = [opened(finding(user=name)) for name in ("ann", "bob", "cy")]
    [message] = MessageBuilder("en").finding_messages(changes)
    assert [e["dedup_key"] for e in events(message, "k")] == [dedup_key(c.finding) for c in changes]


def test_the_signature_covers_body_and_time_and_expires() -> None:
    key, body = "k" * 32, b'{"schema": "iamguard.notification/1"}'
    header = signature(key, 1_780_000_000, body)
    assert verify(key, header, body, now=1_780_000_100)
    assert not verify(key, header, body + b" ", now=1_780_000_100)  # tampered body
    assert not verify("j" * 32, header, body, now=1_780_000_100)  # another key
    assert not verify(key, header, body, now=1_780_000_000 + 301)  # a replay after five minutes
    assert not verify(key, header.replace("t=1780000000", "t=1780000100"), body, now=1_780_000_100)  # moved time
    assert not verify(key, "v1=abc", body) and not verify(key, "", body)


def test_routing_names_every_channel_and_refuses_others() -> None:
    routes = parse_routing(DEFAULT_ROUTING)
    assert routes[Severity.CRITICAL] == {
        Channel.SLACK,
        Channel.EMAIL,
        Channel.TEAMS,
        Channel.PAGERDUTY,
        Channel.WEBHOOK,
    }
    assert routes[Severity.MEDIUM] == frozenset()
    with pytest.raises(ValueError, match="use slack, email, teams, pagerduty, webhook or digest"):
        parse_routing("critical=securityhub")
