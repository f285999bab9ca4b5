"""The bounds of the event model: size, depth, JSON-representable values, sane and timezone-aware times."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from iamguard.realtime.cloudtrail import (
    MAX_EVENT_CHARS,
    MAX_EVENT_DEPTH,
    MAX_EVENT_VALUES,
    EventBoundsError,
    check_bounds,
    parse_event,
    printable,
)
from iamguard.realtime.event_map import RULES, Subject, SubjectError, locate_subject
from pydantic import ValidationError

from tests.conftest import load_event


def event(name: str = "create_user.json", **detail: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load_event(name))
    raw["detail"].update(detail)
    return raw


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return root


def test_a_real_event_is_within_every_bound() -> None:
    check_bounds(load_event("create_user.json"))
    check_bounds(load_event("console_login_failure.json"))


def test_depth_is_bounded_and_the_reason_says_where() -> None:
    # The envelope and detail are two levels; requestParameters a third
    fits = event(requestParameters={"userName": "bob", "deep": nested(MAX_EVENT_DEPTH - 3)})
    parse_event(fits)
    too_deep = event(requestParameters={"userName": "bob", "deep": nested(MAX_EVENT_DEPTH - 2)})
    with pytest.raises(EventBoundsError, match=r"^detail\.requestParameters\.deep\.a\.a.* is nested more than 32"):
        parse_event(too_deep)


def test_nesting_far_past_the_serializer_limit_is_rejected_without_recursion() -> None:
    # 100,000 levels: deeper than Python's recursion limit and pydantic's serializer (255)
    with pytest.raises(EventBoundsError, match="nested more than"):
        parse_event(event(requestParameters=nested(100_000)))


def test_size_and_value_count_are_bounded() -> None:
    with pytest.raises(EventBoundsError, match="larger than 256 KB"):
        parse_event(event(requestParameters={"policyDocument": "x" * (MAX_EVENT_CHARS + 1)}))
    with pytest.raises(EventBoundsError, match=f"more than {MAX_EVENT_VALUES} values"):
        parse_event(event(requestParameters={"tags": [0] * MAX_EVENT_VALUES}))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("\ud800", r"detail\.requestParameters\.userName is not valid Unicode text"),
        (10**400, r"detail\.requestParameters\.userName is a number beyond 64 bits"),
        (-(2**63) - 1, "beyond 64 bits"),
        (float("nan"), "not a finite number"),
        (float("inf"), "not a finite number"),
        (b"bytes", "is a bytes, not a JSON value"),
    ],
)
def test_values_json_cannot_carry_are_rejected(value: Any, reason: str) -> None:
    with pytest.raises(EventBoundsError, match=reason):
        parse_event(event(requestParameters={"userName": value}))


def test_a_lone_surrogate_in_a_key_or_an_id_is_rejected_and_the_reason_is_printable() -> None:
    with pytest.raises(EventBoundsError) as caught:
        parse_event(event(requestParameters={"user\udc80Name": "bob"}))
    assert "has a key that is not valid Unicode text" in str(caught.value)
    with pytest.raises(EventBoundsError) as caught:
        parse_event(event(eventID="\ud83d-abc"))
    str(caught.value).encode("utf-8")  # printable: no surrogate echoed back


def test_limits_at_their_edge_are_accepted() -> None:
    parse_event(event(requestParameters={"userName": "bob", "n": 2**63 - 1, "m": -(2**63), "f": 1.5, "e": "é🙂"}))


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("0001-01-01T00:00:00Z", "is not between 2010-01-01 and a day from now"),
        ("9999-12-31T23:59:59Z", "is not between"),
        ("0001-01-01T00:00:00+05:00", "is not between"),
        ("9999-12-31T23:59:59-05:00", "is not between"),
        ("2009-12-31T23:59:59Z", "is not between"),
        ("2026-06-01T10:07:00", "eventTime has no timezone"),
    ],
)
def test_event_times_outside_the_sane_range_or_without_timezone_are_rejected(when: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        parse_event(event("console_login_failure.json", eventTime=when))


def test_the_future_is_allowed_only_within_a_day_of_clock_skew() -> None:
    soon = datetime.now(UTC) + timedelta(hours=23)
    assert parse_event(event(eventTime=soon.isoformat())).detail.event_time == soon
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(ValidationError, match="is not between"):
        parse_event(event(eventTime=later.isoformat()))


def test_event_times_with_an_offset_are_normalised_to_utc() -> None:
    parsed = parse_event(event(eventTime="2026-06-01T19:00:00+09:00")).detail.event_time
    assert parsed == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0) and parsed.tzinfo is UTC


def test_printable_shortens_and_replaces_lone_surrogates() -> None:
    assert printable("a" * 100, 10) == "a" * 10 + "…"
    assert printable("x\ud800y") == "x?y"
    assert printable("é") == "é"


# ---------------------------------------------------------------- IAM names in the event map
@pytest.mark.parametrize(
    "name", ["bob", "a" * 64, "ci+bot=1,x.y@example.com_z-9", "A", "1"], ids=["plain", "64", "symbols", "one", "digit"]
)
def test_valid_iam_user_names_are_subjects(name: str) -> None:
    parsed = parse_event(event(requestParameters={"userName": name}))
    assert locate_subject(parsed, RULES["CreateUser"]) == Subject("user", name)


@pytest.mark.parametrize(
    "name",
    ["josé", "bob\n", "bob\r\n", "\nbob", "Ωmega", "\uff42\uff4f\uff42", "a" * 65, "", "bob smith", "bob/admin", "٣"],
    ids=[
        "accent",
        "newline",
        "crlf",
        "leading-newline",
        "greek",
        "fullwidth",
        "65",
        "empty",
        "space",
        "slash",
        "digit",
    ],
)
def test_names_iam_cannot_have_are_rejected(name: str) -> None:
    parsed = parse_event(event(requestParameters={"userName": name}))
    with pytest.raises(SubjectError, match="is not a valid IAM name"):
        locate_subject(parsed, RULES["CreateUser"])


def test_group_names_may_be_128_characters() -> None:
    rule = RULES["AttachGroupPolicy"]
    parsed = parse_event(event(eventName="AttachGroupPolicy", requestParameters={"groupName": "g" * 128}))
    assert locate_subject(parsed, rule) == Subject("group", "g" * 128)
    parsed = parse_event(event(eventName="AttachGroupPolicy", requestParameters={"groupName": "g" * 129}))
    with pytest.raises(SubjectError):
        locate_subject(parsed, rule)
