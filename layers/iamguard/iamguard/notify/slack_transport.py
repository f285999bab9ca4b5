"""slack_sdk behind iamguard's Slack channel: clients, the retry policy as slack_sdk handlers, DeliveryError.

Imported on the first send, not at cold start: slack_sdk costs a few hundred
milliseconds to import, and most event-path invocations send nothing.
"""

from __future__ import annotations

import logging
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from iamguard.notify.base import DeliveryError
from iamguard.notify.redact import ScrubFilter, scrub
from iamguard.notify.retry import NOT_POSTED_STATUSES, UNKNOWN_STATUSES, SlackRetryPolicy, request_not_sent

# Webhook / Web API errors that retrying the same request cannot fix.
PERMANENT_ERRORS = {
    "invalid_token",
    "invalid_auth",
    "token_revoked",
    "account_inactive",
    "no_service",
    "no_team",
    "channel_not_found",
    "channel_is_archived",
    "is_archived",
    "not_in_channel",
    "action_prohibited",
    "posting_to_general_channel_denied",
    "invalid_payload",
    "invalid_blocks",
    "missing_scope",
}

_sdk_logger = logging.getLogger("iamguard.notify.slack_sdk")
_sdk_logger.setLevel(logging.ERROR)  # slack_sdk logs request URLs at INFO/DEBUG
_sdk_logger.addFilter(ScrubFilter())


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries 429 after its Retry-After, but only when that wait is short; longer waits go to a later run."""

    def __init__(self, max_retry_count: int, max_wait_seconds: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = {k.lower(): v for k, v in response.headers.items()}.get("retry-after") or ["1"]
        try:
            wait = float(values[0])
        except (TypeError, ValueError):
            wait = 1.0
        return wait <= self.max_wait_seconds


class NotPostedServerErrorRetryHandler(ServerErrorRetryHandler):
    """Retries the 5xx answers in which Slack says it did not post; never a gateway's 502/504."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        return response is not None and int(response.status_code) in NOT_POSTED_STATUSES - {429}


class NotSentRetryHandler(ConnectionErrorRetryHandler):
    """Retries a request that never reached Slack; a request whose answer timed out may have posted."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        return response is None and error is not None and request_not_sent(error)


def retry_handlers(policy: SlackRetryPolicy) -> list[RetryHandler]:
    """The handlers both Slack clients use: only failures that did not post are retried (iamguard.notify.retry)."""
    interval = BackoffRetryIntervalCalculator(backoff_factor=policy.backoff)
    return [
        NotSentRetryHandler(max_retry_count=policy.retries, interval_calculator=interval),
        NotPostedServerErrorRetryHandler(max_retry_count=policy.retries, interval_calculator=interval),
        CappedRateLimitRetryHandler(max_retry_count=policy.retries, max_wait_seconds=policy.max_retry_after),
    ]


class SlackTransport:
    """Posts one payload through a webhook or chat.postMessage; at most one request per call may post."""

    def __init__(self, policy: SlackRetryPolicy, *, api_base_url: str | None) -> None:
        self._timeout = policy.timeout
        self._handlers = retry_handlers(policy)
        self._api_base_url = api_base_url

    def post_webhook(self, url: str, body: dict[str, Any]) -> None:
        client = WebhookClient(
            url,
            timeout=self._timeout,
            retry_handlers=self._handlers,
            logger=_sdk_logger,
        )
        try:
            response = client.send_dict(body)
        except (OSError, HTTPException, SlackClientError) as exc:
            raise _unreachable("Slack webhook", exc) from None
        if response.status_code != 200:
            text = str(response.body or "").strip()[:200]
            permanent = response.status_code != 429 and response.status_code < 500 and text in PERMANENT_ERRORS
            raise DeliveryError(
                f"Slack webhook answered HTTP {response.status_code} {text}".strip(),
                permanent=permanent,
                unknown=response.status_code in UNKNOWN_STATUSES,
            )

    def post_api(self, token: str, channel: str, body: dict[str, Any]) -> None:
        options: dict[str, Any] = {"base_url": self._api_base_url} if self._api_base_url else {}
        client = WebClient(
            token=token,
            timeout=self._timeout,
            retry_handlers=self._handlers,
            logger=_sdk_logger,
            **options,
        )
        try:
            client.chat_postMessage(channel=channel, text=body["text"], blocks=body["blocks"])
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            status = getattr(exc.response, "status_code", 0)
            raise DeliveryError(
                f"Slack API answered HTTP {status} {error}".strip(),
                permanent=error in PERMANENT_ERRORS,
                unknown=status in UNKNOWN_STATUSES,
            ) from None
        except (OSError, HTTPException, SlackClientError) as exc:
            raise _unreachable("Slack API", exc) from None


def _unreachable(what: str, exc: BaseException) -> DeliveryError:
    if request_not_sent(exc) or isinstance(exc, SlackClientError):
        return DeliveryError(f"{what} unreachable: {_reason(exc)}")
    return DeliveryError(f"{what} sent no answer (it may have posted): {_reason(exc)}", unknown=True)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return scrub(f"{type(exc).__name__}: {reason}")
