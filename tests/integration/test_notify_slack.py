"""The Slack channel over real HTTP to the local receiver: retries, rate limits, timeouts, outages, bot tokens."""

from __future__ import annotations

import threading
import time

import pytest
from iamguard.notify.base import DeliveryError
from iamguard.notify.render import MessageBuilder
from iamguard.notify.slack import SlackCredentials, SlackNotifier, check_webhook_url
from iamguard_cli.local.slack_receiver import SlackReceiver, render

from tests.integration.notify_support import (  # noqa: F401 - the `slack` fixture
    NOW,
    fast_policy,
    fast_slack,
    finding,
    opened,
    slack_fixture,
)

MESSAGE = MessageBuilder("en", clock=lambda: NOW).finding_messages([opened(finding())])[0]


def test_a_message_arrives_as_block_kit(slack: SlackReceiver) -> None:
    fast_slack(slack).send(MESSAGE)
    [received] = slack.messages
    assert received["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🟠 High · New finding: bob", "emoji": True},
    }
    assert render(received).startswith("🟠 High · New finding: bob\n")


def test_server_errors_are_retried_until_delivered_once(slack: SlackReceiver) -> None:
    slack.fail(500, times=1)
    slack.fail(503, times=1)
    fast_slack(slack).send(MESSAGE)
    assert [r.status for r in slack.requests] == [500, 503, 200]
    assert len(slack.messages) == 1


def test_a_server_that_keeps_failing_is_a_delivery_error_after_the_retries(slack: SlackReceiver) -> None:
    slack.fail(500)
    with pytest.raises(DeliveryError, match="HTTP 500") as failure:
        fast_slack(slack, retries=2).send(MESSAGE)
    assert not failure.value.permanent and not failure.value.unknown
    assert len(slack.requests) == 3  # the first try and two retries
    assert slack.messages == []


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_answering_for_slack_is_not_retried_it_may_have_posted(slack: SlackReceiver, status: int) -> None:
    slack.fail(status)
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as failure:
        fast_slack(slack, retries=2).send(MESSAGE)
    assert failure.value.unknown
    assert len(slack.requests) == 1


def test_rate_limits_wait_for_retry_after(slack: SlackReceiver) -> None:
    slack.fail(429, times=1, retry_after=1)
    started = time.monotonic()
    fast_slack(slack).send(MESSAGE)
    assert time.monotonic() - started >= 1.0  # slack_sdk slept Retry-After before the retry
    assert [r.status for r in slack.requests] == [429, 200]


def test_a_long_retry_after_is_left_to_a_later_run(slack: SlackReceiver) -> None:
    slack.fail(429, times=1, retry_after=120)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="HTTP 429"):
        fast_slack(slack, max_retry_after=2).send(MESSAGE)
    assert time.monotonic() - started < 5
    assert len(slack.requests) == 1


def test_a_hanging_slack_times_out_once_and_is_left_to_a_later_run(slack: SlackReceiver) -> None:
    slack.hang(1.5, times=1)  # longer than the 1 s timeout; the request was sent, so it may have posted
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="sent no answer") as failure:
        fast_slack(slack, timeout=1).send(MESSAGE)
    assert time.monotonic() - started < 1.4  # no second request inside the send
    assert failure.value.unknown
    time.sleep(1.0)  # the receiver gives up on the hung request
    assert [r.status for r in slack.requests] == [504]


def test_an_unreachable_slack_is_retried_inside_the_send(slack: SlackReceiver) -> None:
    notifier = fast_slack(slack, retries=2, backoff=0.5)
    notifier.transport()  # slack_sdk imported: the first request goes out at once
    slack.go_down()  # connection refused: the request never left, so a retry cannot post twice
    threading.Timer(0.1, slack.come_up).start()
    started = time.monotonic()
    notifier.send(MESSAGE)
    assert time.monotonic() - started >= 0.4  # refused, waited the backoff, retried
    assert len(slack.messages) == 1


def test_slack_down_is_a_delivery_error_not_a_crash(slack: SlackReceiver) -> None:
    slack.go_down()
    with pytest.raises(DeliveryError, match="unreachable"):
        fast_slack(slack).send(MESSAGE)
    slack.come_up()
    fast_slack(slack).send(MESSAGE)
    assert len(slack.messages) == 1


def test_a_wrong_webhook_is_a_permanent_error(slack: SlackReceiver) -> None:
    wrong = SlackNotifier.from_webhook(slack.url + "-revoked", policy=fast_policy())
    with pytest.raises(DeliveryError) as failure:
        wrong.send(MESSAGE)
    assert failure.value.permanent
    assert "revoked" not in str(failure.value)  # the URL is never repeated


def test_a_bot_token_posts_with_chat_post_message(slack: SlackReceiver) -> None:
    bot = SlackNotifier(
        lambda: SlackCredentials(token=slack.token, channel="#security"),
        policy=fast_policy(),
        api_base_url=slack.api_url,
    )
    bot.send(MESSAGE)
    [received] = slack.messages
    assert received["channel"] == "#security"
    assert received["blocks"][0]["text"]["text"] == "🟠 High · New finding: bob"

    revoked = SlackNotifier(
        lambda: SlackCredentials(token="xoxb-revoked", channel="#security"),
        policy=fast_policy(),
        api_base_url=slack.api_url,
    )
    with pytest.raises(DeliveryError, match="invalid_auth") as failure:
        revoked.send(MESSAGE)
    assert failure.value.permanent and "xoxb-revoked" not in str(failure.value)


def test_bot_token_rate_limits_are_retried_too(slack: SlackReceiver) -> None:
    slack.fail(429, times=1, retry_after=1)
    bot = SlackNotifier(
        lambda: SlackCredentials(token=slack.token, channel="#sec"), policy=fast_policy(), api_base_url=slack.api_url
    )
    bot.send(MESSAGE)
    assert [r.status for r in slack.requests] == [429, 200]


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T/B/x",
        "ftp://127.0.0.1/x",
        "hooks.slack.com/services/T/B/x",
        "https:///services/T/B/x",
    ],
)
def test_webhook_urls_must_be_https_except_on_this_machine(url: str) -> None:
    with pytest.raises(ValueError) as failure:
        check_webhook_url(url)
    assert url not in str(failure.value)


def test_local_http_webhooks_are_allowed() -> None:
    assert check_webhook_url(" http://127.0.0.1:3000/services/T/B/x ") == "http://127.0.0.1:3000/services/T/B/x"


def test_a_bot_token_post_answered_late_is_outcome_unknown_not_retried(slack: SlackReceiver) -> None:
    # chat.postMessage has no idempotency key either: the same policy as the webhook
    slack.slow(1.5)
    bot = SlackNotifier(
        lambda: SlackCredentials(token=slack.token, channel="#sec"), policy=fast_policy(), api_base_url=slack.api_url
    )
    with pytest.raises(DeliveryError, match="Slack API sent no answer") as failure:
        bot.send(MESSAGE)
    assert failure.value.unknown
    assert len(slack.requests) == len(slack.messages) == 1
