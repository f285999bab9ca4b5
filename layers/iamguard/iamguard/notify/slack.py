"""Slack: Block Kit messages through an incoming webhook or a bot token (slack_sdk).

How hard a send tries is `iamguard.notify.retry.SlackRetryPolicy`: only failures
in which Slack certainly did not post are retried inside the send; a request whose
answer never came ends the send as "outcome unknown", and the outbox bounds how
many such sends a message may cost. The webhook URL and the token are secrets:
they are never logged, and slack_sdk's own logger is kept quiet and scrubbed.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iamguard.domain.messages import Channel, Message, MessageKind
from iamguard.notify.base import DeliveryError, read_secret
from iamguard.notify.redact import scrub
from iamguard.notify.retry import SlackRetryPolicy

if TYPE_CHECKING:
    from iamguard.notify.slack_transport import SlackTransport

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class SlackCredentials:
    """Where to post: a webhook URL, or a bot token and a channel. Never printed."""

    webhook_url: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    channel: str | None = None

    def secrets(self) -> tuple[str, ...]:
        return tuple(value for value in (self.webhook_url, self.token) if value)


def check_webhook_url(url: str) -> str:
    """A webhook URL must be https (plain http only to this machine). Errors never repeat the URL."""
    parsed = urllib.parse.urlparse(url.strip())
    if parsed.scheme == "https" and parsed.hostname:
        return url.strip()
    if parsed.scheme == "http" and (parsed.hostname or "") in LOOPBACK:
        return url.strip()
    raise ValueError("the Slack webhook must be an https:// URL (http:// only for a receiver on 127.0.0.1)")


# -- the channel ------------------------------------------------------------------
class SlackNotifier:
    """Posts to Slack with the credentials a callable returns (a cached secret, or a fixed URL)."""

    def __init__(
        self,
        credentials: Callable[[], SlackCredentials],
        *,
        policy: SlackRetryPolicy | None = None,
        api_base_url: str | None = None,
    ) -> None:
        self._credentials = credentials
        self.policy = policy or SlackRetryPolicy()
        self._api_base_url = api_base_url
        self._transport: SlackTransport | None = None

    @classmethod
    def from_webhook(cls, url: str, *, policy: SlackRetryPolicy | None = None) -> SlackNotifier:
        """A fixed webhook (the CLI's --slack-webhook); raises ValueError for an unusable URL."""
        fixed = SlackCredentials(webhook_url=check_webhook_url(url))
        return cls(lambda: fixed, policy=policy)

    @property
    def channel(self) -> Channel:
        return Channel.SLACK

    @property
    def max_posts(self) -> int | None:
        return self.policy.max_posts

    def accepts(self, message: Message) -> bool:
        return message.kind is not MessageKind.FINDINGS_SYNC

    def send(self, message: Message) -> None:
        credentials = read_secret(self._credentials, "the Slack credentials")
        from iamguard.notify.slack_blocks import payload  # slack_sdk, on the first send: slow to import

        try:
            body = payload(message)
            if credentials.webhook_url:
                self.transport().post_webhook(check_webhook_url(credentials.webhook_url), body)
            elif credentials.token and credentials.channel:
                self.transport().post_api(credentials.token, credentials.channel, body)
            else:
                raise DeliveryError(
                    "the Slack secret has neither a webhook URL nor a bot token and channel", permanent=True
                )
        except DeliveryError as exc:
            raise DeliveryError(
                scrub(str(exc), *credentials.secrets()), permanent=exc.permanent, unknown=exc.unknown
            ) from None
        except ValueError as exc:
            raise DeliveryError(str(exc), permanent=True) from None

    def transport(self) -> SlackTransport:
        """slack_sdk, imported on the first send."""
        if self._transport is None:
            from iamguard.notify.slack_transport import SlackTransport

            self._transport = SlackTransport(self.policy, api_base_url=self._api_base_url)
        return self._transport
