"""Hostile or corrupt events through the real handlers: rejected with a reason, never a crash into retries.

Each of these raised out of the handler before the event model was bounded (an
OverflowError, a naive/aware comparison, the idempotency serializer's depth limit),
so Lambda retried them and the Errors alarm went off.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.events.support import Bot, BotFactory, sample
from tests.integration.events.test_realtime_handler import metrics_emitted


@pytest.fixture
def bot(make_bot: BotFactory) -> Bot:
    # An empty account: nothing here gets as far as reading IAM, except the failed sign-ins.
    return make_bot(SIGNIN_FAILURE_THRESHOLD="2")


def deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["k"] = {}
        node = node["k"]
    return root


def failed_sign_in(**detail: Any) -> dict[str, Any]:
    return sample("console_login_failure", new_id=True, **detail)


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    (
        "deeply-nested-request-parameters",
        sample("create_user", new_id=True, requestParameters={"userName": "wonjun_admin", "tags": deep(300)}),
        "detail.requestParameters.tags.k.k",
    ),
    ("create-user-in-year-1", sample("create_user", new_id=True, eventTime="0001-01-01T00:00:00Z"), "eventTime"),
    ("create-user-in-year-9999", sample("create_user", new_id=True, eventTime="9999-12-31T23:59:59Z"), "eventTime"),
    ("failed-sign-in-in-year-1", failed_sign_in(eventTime="0001-01-01T00:00:00Z"), "is not between 2010-01-01"),
    ("failed-sign-in-in-year-9999", failed_sign_in(eventTime="9999-12-31T23:59:59Z"), "is not between 2010-01-01"),
    ("failed-sign-in-naive-time", failed_sign_in(eventTime="2026-06-01T10:07:00"), "eventTime has no timezone"),
    ("lone-surrogate-event-id", sample("create_user", eventID="\udc00" + "x" * 30), "not valid Unicode text"),
    (
        "lone-surrogate-event-name",
        sample("create_user", new_id=True, eventName="Create\ud800User"),
        "not valid Unicode",
    ),
    (
        "integer-past-64-bits",
        sample("create_user", new_id=True, requestParameters={"userName": "bob", "n": 10**300}),
        "a number beyond 64 bits",
    ),
]


@pytest.mark.parametrize(("case", "event", "reason"), HOSTILE, ids=[case for case, _, _ in HOSTILE])
def test_hostile_events_are_rejected_with_a_reason(
    bot: Bot, capsys: pytest.CaptureFixture[str], case: str, event: dict[str, Any], reason: str
) -> None:
    # When the hostile event reaches its function (twice: EventBridge would retry a crash)
    results = [bot(event), bot(event)]

    # Then it is answered "rejected", with a printable reason, and counted
    for result in results:
        assert result["outcome"] == "rejected", result
        assert reason in result["reason"]
        result["reason"].encode("utf-8")
        (result["event_id"] or "").encode("utf-8")
        assert result["findings"] == [] and result["alerts"] == []
    assert metrics_emitted(capsys.readouterr().out).get("RejectedEvents") == 2
    # And nothing was stored, claimed or announced
    assert bot.idempotency_records() == []
    assert bot.store.findings() == []
    assert bot.announcer.calls == []


def test_a_rejected_surrogate_event_id_is_reported_in_a_printable_form(bot: Bot) -> None:
    result = bot(sample("create_user", eventID="abc\ud800def"))
    assert result["outcome"] == "rejected"
    assert result["event_id"] == "abc?def"


def test_failed_sign_ins_with_an_offset_count_in_the_same_burst_as_utc_ones(bot: Bot) -> None:
    # Given a failed sign-in at 10:00 UTC written with a +09:00 offset, then one at 10:01 UTC
    first = bot(failed_sign_in(eventTime="2026-06-01T19:00:00+09:00"))
    second = bot(failed_sign_in(eventTime="2026-06-01T10:01:00Z"))

    # Then both are one burst of two (threshold 2): the time was compared in UTC
    assert first["outcome"] == "evaluated" and first["alerts"] == []
    assert [a["detection"] for a in second["alerts"]] == ["console_sign_in_failures"]
    assert "2 within" in second["reason"]
