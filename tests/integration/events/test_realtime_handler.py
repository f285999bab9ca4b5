"""The event handlers as Lambda runs them: ignore rules, idempotency, malformed input, throttling, metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iamguard.aws import AwsContext
from iamguard.settings import ConfigError

from tests.conftest import ACCOUNT_ID, load_event
from tests.integration.events.support import (
    Bot,
    BotFactory,
    sample,
)


@pytest.fixture
def bot(account: AwsContext, make_bot: BotFactory) -> Bot:
    return make_bot()


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    """What the handlers log (their Powertools logger is the standard logger named after the service)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    service = logging.getLogger("iamguard")
    service.addHandler(handler)
    yield records
    service.removeHandler(handler)


def metrics_emitted(output: str) -> dict[str, float]:
    """Metric values from the EMF lines Powertools prints (one JSON object per invocation)."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                value = blob[metric["Name"]]
                found[metric["Name"]] = found.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return found


# ---------------------------------------------------------------- ignored, with the reason
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("create_user_access_denied", "the call failed (AccessDenied): nothing changed"),
        ("get_user_read_only", "GetUser is a read-only call"),
        ("attach_user_policy_by_iamguard", "caused by iamguard's own role"),
        ("check_mfa", "CheckMfa is a step of the console sign-in"),
        ("console_login_sso", "not a root or IAM user password sign-in"),
    ],
)
def test_events_to_ignore_are_ignored_with_their_reason_and_touch_nothing(bot: Bot, name: str, reason: str) -> None:
    result = bot(sample(name))
    assert result["outcome"] == "ignored"
    assert reason in result["reason"]
    assert result["findings"] == [] and result["alerts"] == [] and result["actions"] == []
    assert bot.store.findings() == []
    assert bot.announcer.calls == []


def test_events_from_another_account_are_rejected_without_organization_mode(
    bot: Bot, capsys: pytest.CaptureFixture[str]
) -> None:
    event = sample("create_user", recipientAccountId="210987654321")
    event["account"] = "210987654321"
    result = bot(event)
    assert result["outcome"] == "rejected"
    assert "from account 210987654321; this deployment watches 123456789012 only" in result["reason"]
    assert "organization mode is off" in result["reason"]
    assert bot.store.findings() == [] and bot.announcer.calls == []
    assert '"reason":"organization_mode_off","EventsRejected":[1.0]' in capsys.readouterr().out


def test_an_envelope_and_record_of_different_accounts_are_rejected(bot: Bot) -> None:
    result = bot(sample("create_user", recipientAccountId="210987654321"))
    assert result["outcome"] == "rejected"
    assert "envelope names account 123456789012 but its CloudTrail record account 210987654321" in result["reason"]


def test_an_own_role_is_recognised_by_its_assumed_role_arn_too(bot: Bot) -> None:
    event = sample("attach_user_policy_by_iamguard")
    event["detail"]["userIdentity"].pop("sessionContext")
    assert bot(event)["outcome"] == "ignored"


def test_a_failed_sign_in_is_evaluated_although_it_carries_an_error(bot: Bot) -> None:
    event = sample("console_login_failure", errorCode="Failed authentication")
    assert bot(event)["outcome"] == "evaluated"


def test_an_event_for_the_other_function_is_rejected(bot: Bot) -> None:
    handler = bot.handlers["on_iam_event"]
    result = handler.lambda_handler(sample("console_login_user_no_mfa"), bot.context)
    assert result["outcome"] == "rejected"
    assert "source aws.signin is not handled here (this function takes aws.iam, aws.sts)" in result["reason"]


# ---------------------------------------------------------------- idempotency
def test_a_duplicate_delivery_changes_nothing_and_notifies_nobody_twice(bot: Bot) -> None:
    # Given an event processed once
    event = sample("create_user")
    first = bot(event)
    assert first["outcome"] == "evaluated" and first["duplicate"] is False
    findings_before = {(f.check_id, f.resource_name): f for f in bot.store.findings()}
    activity_before = bot.store.recent_activity(days=400)
    announced_before = len(bot.announcer.calls)
    assert announced_before == 1

    # When EventBridge delivers it again, to another execution environment
    second = bot.restart()(event)

    # Then the stored result comes back, marked, and nothing is written or announced again
    assert second["duplicate"] is True
    assert second["reason"].startswith("duplicate delivery, already processed: ")
    assert second["alerts"] == first["alerts"] and second["findings"] == first["findings"]
    assert {(f.check_id, f.resource_name): f for f in bot.store.findings()} == findings_before
    assert bot.store.recent_activity(days=400) == activity_before
    assert len(bot.announcer.calls) == announced_before
    assert [record["status"]["S"] for record in bot.idempotency_records()] == ["COMPLETED"]


def test_the_idempotency_key_is_the_cloudtrail_event_id(bot: Bot) -> None:
    # The same CloudTrail record re-wrapped by EventBridge (new envelope id) is still a duplicate
    event = sample("create_user")
    bot(event)
    rewrapped = dict(event, id="00000000-0000-0000-0000-000000000000")
    assert bot(rewrapped)["duplicate"] is True
    # A different CloudTrail event is not
    assert bot(sample("create_user", new_id=True))["duplicate"] is False


def test_ignored_and_rejected_events_leave_no_idempotency_record(bot: Bot) -> None:
    bot(sample("get_user_read_only"))
    bot({"not": "an event"})
    assert bot.idempotency_records() == []


# ---------------------------------------------------------------- malformed input never raises
def _event_without(*path: str) -> dict[str, Any]:
    event = load_event("create_user.json")
    node = event
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return event


MALFORMED: list[tuple[str, Any]] = [
    ("not-a-dict-list", [1, 2, 3]),
    ("not-a-dict-string", "CreateUser"),
    ("not-a-dict-none", None),
    ("empty", {}),
    ("missing-detail", _event_without("detail")),
    ("missing-event-id", _event_without("detail", "eventID")),
    ("missing-user-identity", _event_without("detail", "userIdentity")),
    ("detail-is-a-string", {**load_event("create_user.json"), "detail": "{}"}),
    ("event-time-not-a-time", sample("create_user", eventTime="yesterday-ish")),
    ("request-parameters-a-list", sample("create_user", requestParameters=["userName", "x"])),
    ("user-name-a-number", sample("create_user", requestParameters={"userName": 12345})),
    ("user-name-huge", sample("create_user", requestParameters={"userName": "u" * 100_000})),
    ("user-name-not-iam", sample("create_user", requestParameters={"userName": "../../etc/passwd"})),
    ("event-name-huge", sample("create_user", eventName="Create" * 20_000)),
    ("detail-type-unknown", {**load_event("create_user.json"), "detail-type": "Object Created"}),
    ("serial-number-a-dict", sample("deactivate_mfa_device", requestParameters={"serialNumber": {"a": 1}})),
]


@pytest.mark.parametrize(("case", "event"), MALFORMED, ids=[case for case, _ in MALFORMED])
def test_malformed_events_are_rejected_with_a_reason_and_a_metric(
    bot: Bot, capsys: pytest.CaptureFixture[str], log_records: list[logging.LogRecord], case: str, event: Any
) -> None:
    result = bot(event)
    assert result["outcome"] == "rejected", result
    assert result["reason"]
    assert len(result["reason"]) < 2_000  # a bounded, readable reason, not the payload echoed back
    assert result["findings"] == [] and result["alerts"] == [] and result["actions"] == []
    assert metrics_emitted(capsys.readouterr().out).get("RejectedEvents") == 1
    # One structured warning that says why
    rejected = [r for r in log_records if r.getMessage() == "event rejected"]
    assert len(rejected) == 1
    assert rejected[0].levelname == "WARNING" and rejected[0].__dict__["reason"] == result["reason"]


def test_unknown_event_names_are_ignored_not_rejected(bot: Bot) -> None:
    result = bot(sample("create_user", eventName="CreateServiceLinkedRole"))
    assert result["outcome"] == "ignored"
    assert "CreateServiceLinkedRole from iam.amazonaws.com is not an event iamguard acts on" in result["reason"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(
        ["detail", "detail-type", "source", "time", "userIdentity", "requestParameters", "eventName", "eventTime"]
    ),
    value=json_values,
)
def test_any_value_in_any_field_never_raises_out_of_the_handler(bot: Bot, field: str, value: Any) -> None:
    event = load_event("create_user.json")
    if field in event:
        event[field] = value
    else:
        event["detail"][field] = value
    result = bot(event)
    assert result["outcome"] in {"evaluated", "ignored", "rejected"}


# ---------------------------------------------------------------- throttling and infrastructure failures
class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body

    def read(self, *_: Any, **__: Any) -> bytes:
        return self.body


THROTTLED = (
    b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


def throttle_iam(bot: Bot, operation: str, times: int) -> dict[str, int]:
    """Make the handler's IAM client answer `operation` with Throttling `times` times (then reach moto)."""
    handler = bot.handlers["on_iam_event"]
    processor = handler.HANDLER.processor(ACCOUNT_ID)
    seen = {"throttled": 0}

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if seen["throttled"] < times:
            seen["throttled"] += 1
            return AWSResponse(request.url, 400, {}, _Body(THROTTLED))
        return None

    processor.iam.meta.events.register_first(f"before-send.iam.{operation}", answer)
    return seen


def test_iam_throttling_is_retried_and_the_event_evaluated(bot: Bot) -> None:
    seen = throttle_iam(bot, "GetUser", times=1)
    result = bot(sample("create_user"))
    assert seen["throttled"] == 1
    assert result["outcome"] == "evaluated"
    assert result["alerts"][0]["detection"] == "user_created"


def test_persistent_throttling_fails_the_invocation_and_a_redelivery_succeeds(bot: Bot) -> None:
    # Given IAM throttling beyond botocore's retries
    throttle_iam(bot, "GetUser", times=5)
    event = sample("create_user")

    # Then the invocation fails (Lambda retries it; the on-failure destination keeps it)
    with pytest.raises(ClientError, match="Throttling"):
        bot(event)
    assert bot.announcer.calls == []
    assert bot.idempotency_records() == []  # no "in progress" left behind to block the retry

    # And the redelivered event is processed normally
    result = bot.restart()(event)
    assert result["outcome"] == "evaluated" and result["duplicate"] is False
    assert len(bot.announcer.calls) == 1


def test_outcome_metrics(bot: Bot, capsys: pytest.CaptureFixture[str]) -> None:
    bot(sample("create_user"))
    bot(sample("get_user_read_only"))
    bot(sample("create_user"))
    emitted = metrics_emitted(capsys.readouterr().out)
    assert emitted["EvaluatedEvents"] == 2 and emitted["IgnoredEvents"] == 1
    assert emitted["DuplicateEvents"] == 1
    assert emitted["Alerts"] == 1  # the duplicate's stored alert is not a new one
    assert emitted["EventApiCalls"] > 0


# ---------------------------------------------------------------- cold start
def test_settings_are_validated_at_cold_start(make_bot: BotFactory) -> None:
    with pytest.raises(ConfigError, match="IDEMPOTENCY_TABLE must be set"):
        make_bot(IDEMPOTENCY_TABLE="")
    with pytest.raises(ConfigError, match="guardrail_policy_arn"):
        make_bot(GUARDRAIL_POLICY_ARN="not-an-arn")


def test_api_calls_are_counted_per_event_in_a_warm_environment(bot: Bot) -> None:
    # The same work twice in one execution environment costs a handful of calls; the second
    # reuses the managed policy documents the first read (a warm function keeps them)
    first = bot(sample("create_user", new_id=True))["api_calls"]
    second = bot(sample("create_user", new_id=True))["api_calls"]
    assert 0 < second < first <= 15  # one user's live state, not an audit
