"""JSON over HTTPS for Teams, PagerDuty and the signed webhook, through Slack's machinery.

The same client (slack_sdk's `WebhookClient`, which posts any JSON body to any
URL) and the same retry handlers as Slack (iamguard.notify.retry): inside one
send only failures that certainly did not deliver are retried (connection
refused, 429 with a short Retry-After, 500, 503); a request whose answer never
came, or a gateway's 502/504, ends the send as "outcome unknown". Imported on
the first send, like slack_transport.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from iamguard.notify.base import DeliveryError
from iamguard.notify.retry import UNKNOWN_STATUSES, SlackRetryPolicy
from iamguard.notify.slack_transport import _sdk_logger, _unreachable, retry_handlers


def encoded(body: dict[str, Any]) -> bytes:
    """The exact bytes `post` sends for `body` (WebhookClient serialises with json.dumps' defaults)."""
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode("utf-8")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


class JsonTransport:
    """Posts one JSON body; at most one request per call may have delivered it."""

    def __init__(self, policy: SlackRetryPolicy, *, name: str) -> None:
        self._timeout = policy.timeout
        self._handlers = retry_handlers(policy)
        self._name = name

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
        """POST `body`; a 2xx answer is returned, anything else raises DeliveryError.

        4xx other than 408/429 are permanent (the same request cannot succeed); 502/504
        may have delivered (`unknown`).
        """
        client = WebhookClient(url, timeout=self._timeout, retry_handlers=self._handlers, logger=_sdk_logger)
        try:
            response = client.send_dict(body, headers=dict(headers or {}))
        except (OSError, HTTPException, SlackClientError) as exc:
            raise _unreachable(self._name, exc) from None
        status = int(response.status_code)
        text = str(response.body or "").strip()
        if 200 <= status < 300:
            return Answer(status, text)
        raise DeliveryError(
            f"{self._name} answered HTTP {status} {text[:200]}".strip(),
            permanent=400 <= status < 500 and status not in {408, 429},
            unknown=status in UNKNOWN_STATUSES,
        )
