"""Notifications: Slack, e-mail (SNS) and Security Hub behind one interface, never lost, never twice.

- `message`   the channel-neutral `Message`; `render` builds it from changes, alerts, actions, digests
- `catalog`   every word said to people, in `messages/en.json` and `messages/ko.json`
- `slack`, `sns`, `securityhub`   one class per channel (`base.Notifier`)
- `dispatcher`  the `Announcer`: routing, dedup, retries, fallback, outbox, dead letters
- `factory.build_dispatcher`   what handlers call; `cli` the shared --slack-webhook / --language flags

Kept free of imports so that `iamguard.config` can use `notify.settings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iamguard.notify.cli import add_notify_arguments, announcer_from_args
    from iamguard.notify.factory import build_dispatcher

__all__ = ["add_notify_arguments", "announcer_from_args", "build_dispatcher"]


def __getattr__(name: str) -> Any:
    if name in {"add_notify_arguments", "announcer_from_args"}:
        from iamguard.notify import cli

        return getattr(cli, name)
    if name == "build_dispatcher":
        from iamguard.notify.factory import build_dispatcher

        return build_dispatcher
    raise AttributeError(name)
