"""Routing by account or organizational unit: one channel, a destination per account (ACCOUNT_ROUTING).

`AccountRoutedNotifier` is the Slack (or e-mail) channel of a dispatcher whose messages go to the
destination `NotifySettings.route_for(account, its OUs)` names, else to the stack's own one. The
dispatcher still sees one channel: severity routing, the outbox, retries and the Slack ⇄ e-mail
fallback work as before; only where a message lands depends on `Message.account_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from iamguard.domain.messages import Channel, Message
from iamguard.notify.base import DeliveryError, Notifier
from iamguard.settings.notify import NotifySettings


class AccountRoutedNotifier:
    """One channel (Slack or e-mail) whose destination depends on the message's account."""

    def __init__(
        self,
        channel: Channel,
        *,
        default: Notifier | None,
        routes: Mapping[str, Notifier],
        settings: NotifySettings,
        organizational_units: Callable[[str], tuple[str, ...]] | None = None,
    ) -> None:
        self._channel = channel
        self._default = default
        self._routes = dict(routes)
        self._settings = settings
        self._units = organizational_units
        self._needs_units = any(target.startswith("ou-") for target in self._routes)

    @property
    def channel(self) -> Channel:
        return self._channel

    @property
    def max_posts(self) -> int | None:
        first = self._default or next(iter(self._routes.values()))
        return first.max_posts

    def destination(self, account_id: str) -> Notifier | None:
        """The notifier of the account's route (its own, else its nearest OU's), else the stack's own."""
        units = (
            self._units(account_id)
            if self._needs_units and self._units is not None and account_id not in self._routes
            else ()
        )
        route = self._settings.route_for(account_id, units)
        if route is not None and route.target in self._routes:
            return self._routes[route.target]
        return self._default

    def accepts(self, message: Message) -> bool:
        notifier = self.destination(message.account_id)
        return notifier is not None and notifier.accepts(message)

    def send(self, message: Message) -> None:
        notifier = self.destination(message.account_id)
        if notifier is None:
            raise DeliveryError(
                f"no {self._channel.value} destination for account {message.account_id}", permanent=True
            )
        notifier.send(message)
