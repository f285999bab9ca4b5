"""A generic webhook: every message as JSON to any HTTPS endpoint, signed with HMAC-SHA256.

The secret is a JSON object: {"url": "https://…", "signing_key": "<at least 32 characters>"}.

Each request carries

    X-Iamguard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
    X-Iamguard-Key: <the message's key: the same for every delivery of one message>

where v1 is HMAC-SHA256(signing_key, "<t>." + the raw request body). A receiver
recomputes it over the bytes it received, compares in constant time, and
refuses a timestamp older than a few minutes (a replayed request); `verify`
below is that check, and docs/notifications.md shows it standalone. The key
header lets a receiver drop a repeat: like Slack's, a delivery whose answer was
lost may be sent again (at most `max_posts` times).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from typing import Any

from iamguard.domain.messages import Channel, Message, MessageKind
from iamguard.notify.base import DeliveryError
from iamguard.notify.http_channel import HttpChannel, Request
from iamguard.notify.secrets import secret_fields
from iamguard.notify.sns import machine_document

SIGNATURE_HEADER = "X-Iamguard-Signature"
KEY_HEADER = "X-Iamguard-Key"
SCHEMA = "iamguard.notification/1"
MIN_KEY_LENGTH = 32
TOLERANCE_SECONDS = 300


def document(message: Message) -> dict[str, Any]:
    """The JSON body: the same machine document SNS subscribers get, and the readable text."""
    return {"schema": SCHEMA, "message": machine_document(message), "text": message.plain_text()}


def signature(key: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for one request."""
    mac = hmac.new(key.encode("utf-8"), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(key: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Whether `header` signs `body` with `key` and is at most `tolerance` seconds old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(key, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def webhook_target(secret: Any) -> tuple[str, str]:
    """(URL, signing key) from the secret."""
    fields = secret_fields(secret, "the webhook secret")
    url, key = fields.get("url"), fields.get("signing_key")
    if not isinstance(url, str) or not url:
        raise DeliveryError("the webhook secret holds no url", permanent=True)
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise DeliveryError(
            f"the webhook secret needs a signing_key of at least {MIN_KEY_LENGTH} characters", permanent=True
        )
    return url, key


class WebhookNotifier(HttpChannel):
    """Posts each message, signed, to one endpoint."""

    channel = Channel.WEBHOOK
    name = "the webhook"

    def __init__(self, secret: Callable[[], Any], *, clock: Callable[[], float] = time.time, **options: Any) -> None:
        super().__init__(secret, **options)
        self._clock = clock

    def accepts(self, message: Message) -> bool:
        return message.kind is not MessageKind.FINDINGS_SYNC

    def requests(self, message: Message, secret: Any) -> Sequence[Request]:
        from iamguard.notify.http_transport import encoded

        url, key = webhook_target(secret)
        body = document(message)
        headers = {SIGNATURE_HEADER: signature(key, int(self._clock()), encoded(body)), KEY_HEADER: message.key}
        return [Request(url, body, headers)]
