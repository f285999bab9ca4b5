"""What Teams, PagerDuty and the signed webhook share: the secret, the URL rule, the send.

Each channel turns a message and its secret into HTTP requests (`Request`); this
base class reads the secret at send time, checks each URL, posts through
`iamguard.notify.http_transport` (Slack's client and retry policy) and keeps
the secret out of every error.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iamguard.domain.messages import Channel, Message
from iamguard.notify.base import DeliveryError, read_secret
from iamguard.notify.redact import scrub
from iamguard.notify.retry import SlackRetryPolicy
from iamguard.notify.secrets import secret_fields

if TYPE_CHECKING:
    from iamguard.notify.http_transport import Answer, JsonTransport

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_url(url: str, what: str) -> str:
    """https only (plain http only to this machine, for the local receivers). Errors never repeat the URL."""
    parsed = urllib.parse.urlparse(url.strip())
    if parsed.scheme == "https" and parsed.hostname:
        return url.strip()
    if parsed.scheme == "http" and (parsed.hostname or "") in LOOPBACK:
        return url.strip()
    raise DeliveryError(f"{what} must be an https:// URL (http:// only on 127.0.0.1)", permanent=True)


@dataclass(frozen=True)
class Request:
    url: str = field(repr=False)
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict, repr=False)


class HttpChannel:
    """A channel that posts JSON to a URL it learns from a secret."""

    channel: Channel
    name: str  # in errors: "Teams", "PagerDuty", "the webhook"

    def __init__(self, secret: Callable[[], Any], *, policy: SlackRetryPolicy | None = None) -> None:
        self._secret = secret
        self.policy = policy or SlackRetryPolicy()
        self._transport: JsonTransport | None = None

    @property
    def max_posts(self) -> int | None:
        return self.policy.max_posts

    def accepts(self, message: Message) -> bool:
        raise NotImplementedError

    def requests(self, message: Message, secret: Any) -> Sequence[Request]:
        """The requests that deliver `message` (all of them, each safe to repeat as the channel allows)."""
        raise NotImplementedError

    def secrets(self, secret: Any) -> tuple[str, ...]:
        """The secret's values (each field of a JSON secret, and the whole), to scrub from errors."""
        whole = (str(secret),) if isinstance(secret, str | bytes) and secret else ()
        try:
            fields = secret_fields(secret, "the secret")
        except DeliveryError:
            return whole
        return (*whole, *(v for v in fields.values() if isinstance(v, str) and v))

    def send(self, message: Message) -> None:
        secret = read_secret(self._secret, f"the {self.name} secret")
        try:
            for request in self.requests(message, secret):
                self.answered(
                    self.transport().post(check_url(request.url, f"the {self.name} URL"), request.body, request.headers)
                )
        except DeliveryError as exc:
            raise DeliveryError(
                scrub(str(exc), *self.secrets(secret)), permanent=exc.permanent, unknown=exc.unknown
            ) from None

    def answered(self, answer: Answer) -> None:
        """Check a 2xx answer (a channel whose 2xx can still mean failure overrides this)."""

    def transport(self) -> JsonTransport:
        """slack_sdk, imported on the first send."""
        if self._transport is None:
            from iamguard.notify.http_transport import JsonTransport

            self._transport = JsonTransport(self.policy, name=self.name)
        return self._transport
