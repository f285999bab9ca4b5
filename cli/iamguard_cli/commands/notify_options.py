"""Notification flags shared by `iamguard audit` and `iamguard events replay`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from iamguard_cli.commands.common import EXIT_USAGE, CliError

if TYPE_CHECKING:  # iamguard.notify is imported only when a notification is asked for
    from iamguard.aws import AwsContext
    from iamguard.notify.dispatcher import DeliveryReport, Dispatcher
    from iamguard.persistence.findings import FindingsStore
    from iamguard.settings import Settings


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("notifications")
    group.add_argument(
        "--slack-webhook",
        metavar="URL",
        help="post notifications to this Slack incoming webhook (https://, or http:// on 127.0.0.1 for the "
        "local receiver); each change is announced once when findings are stored",
    )
    group.add_argument(
        "--language",
        choices=["en", "ko"],
        default=None,
        help="language of the notifications (default: $LANGUAGE or en)",
    )


def announcer_from_args(
    args: argparse.Namespace, settings: Settings, aws: AwsContext, *, store: FindingsStore | None = None
) -> Dispatcher | None:
    """A dispatcher posting to --slack-webhook (plus channels configured in the environment), or None."""
    url = getattr(args, "slack_webhook", None)
    if not url:
        return None
    from iamguard.notify.factory import build_dispatcher
    from iamguard.notify.slack import SlackNotifier

    try:
        slack = SlackNotifier.from_webhook(url)
    except ValueError as exc:
        raise CliError(f"--slack-webhook: {exc}", exit_code=EXIT_USAGE) from exc
    return build_dispatcher(settings, aws, store=store, extra=[slack], language=getattr(args, "language", None))


def report_delivery(report: DeliveryReport) -> None:
    """One line on stderr: what the notifications did."""
    sys.stderr.write(f"notifications: {report.describe()}\n")
