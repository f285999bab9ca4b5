"""Slack's retry policy, decided here and nowhere else (cheap to import: no slack_sdk).

An incoming webhook has no idempotency key, and neither has chat.postMessage, so
a request whose answer never arrived may have been posted. The policy therefore
tells two kinds of failure apart:

- **Not posted** — the connection could not be made or the request could not be
  written (urllib raises URLError before a response is awaited), Slack answered
  429 (rate limited), 500 or 503. These are retried inside one send, `retries`
  times, with backoff (429 after its Retry-After, when that is at most
  `max_retry_after` seconds).
- **Outcome unknown** — the request was sent and no answer came within `timeout`
  (a read timeout, a dropped connection), or a gateway answered for Slack (502,
  504). These are never retried inside the send: it ends with
  `DeliveryError(unknown=True)`.

So one send makes at most one request that may have posted. The outbox counts
every send before it starts (`iamguard.persistence.outbox.Outbox.lease`/`reserve`) and gives
the count back when the send certainly did not post; a message whose count has
reached `max_posts` without a confirmation is not sent again but dead-lettered
(`UndeliveredAlerts`). Hence the guarantee in docs/notifications.md: Slack gets
each message at least once (or it is in the dead-letter queue, with the alarm),
and at most `max_posts` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.error import HTTPError, URLError

NOT_POSTED_STATUSES = frozenset({429, 500, 503})  # Slack answered: it did not post
UNKNOWN_STATUSES = frozenset({502, 504})  # a gateway answered for Slack: it may have posted


@dataclass(frozen=True)
class SlackRetryPolicy:
    """How hard one send tries, and how many posts a message may cost in all."""

    timeout: int = 10  # seconds to wait for Slack's answer to one request
    retries: int = 2  # retries within one send, only after failures that did not post
    backoff: float = 0.5  # seconds, doubled per retry
    max_retry_after: float = 30.0  # longer 429 waits are left to a later run
    max_posts: int = 3  # sends per message that may have posted; then the dead-letter queue

    def __post_init__(self) -> None:
        if self.timeout < 1 or self.retries < 0 or self.max_posts < 1:
            raise ValueError("SlackRetryPolicy needs timeout >= 1, retries >= 0, max_posts >= 1")


def request_not_sent(error: BaseException) -> bool:
    """Whether an exception from urllib proves the request never reached Slack.

    urllib wraps errors of connecting and writing the request in URLError; errors
    while awaiting the answer (a read timeout, a reset) come through unwrapped.
    HTTPError is an answer, not a failure to send.
    """
    return isinstance(error, URLError) and not isinstance(error, HTTPError)
