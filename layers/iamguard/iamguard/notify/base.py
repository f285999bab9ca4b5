"""The one interface every channel implements, and how a channel reports failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from iamguard.domain.messages import Channel, Message


class DeliveryError(Exception):
    """A channel could not deliver a message (after its own retries).

    `permanent` means retrying the same request cannot help (a revoked token, a
    deleted topic); the message still stays pending, so fixing the configuration
    lets a later run deliver it. `unknown` means the request was sent and its answer
    never came: the channel may have delivered it (see iamguard.notify.retry).
    """

    def __init__(self, message: str, *, permanent: bool = False, unknown: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unknown = unknown


_Secret = TypeVar("_Secret")


def read_secret(read: Callable[[], _Secret], what: str) -> _Secret:
    """A channel's secret; whatever the secret store raised becomes a DeliveryError, so the message stays pending."""
    try:
        return read()
    except DeliveryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the store: retried by a later run
        raise DeliveryError(f"cannot read {what}: {type(exc).__name__}") from None


class Notifier(Protocol):
    """One delivery channel (Slack, the SNS topic, Security Hub)."""

    @property
    def channel(self) -> Channel: ...

    @property
    def max_posts(self) -> int | None:
        """Sends per message that may have delivered it before iamguard stops trying (None: no limit,
        for channels where a repeat is harmless or that the outbox does not bound)."""
        ...

    def accepts(self, message: Message) -> bool:
        """Whether this channel carries this kind of message."""
        ...

    def send(self, message: Message) -> None:
        """Deliver or raise DeliveryError. Must be safe to call again with the same message."""
        ...
