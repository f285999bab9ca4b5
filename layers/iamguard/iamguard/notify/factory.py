"""Build the dispatcher a Lambda function (or the CLI) uses, from the one settings model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iamguard.aws import AwsContext
from iamguard.domain.messages import Channel, Language
from iamguard.notify.base import Notifier
from iamguard.notify.dispatcher import DeadLetterQueue, Dispatcher, MetricsSink
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import Outbox
from iamguard.settings import Settings
from iamguard.settings.notify import NotifySettings


def build_dispatcher(
    settings: Settings,
    aws: AwsContext,
    *,
    store: FindingsStore | None,
    metrics: MetricsSink | None = None,
    logger: Any = None,
    extra: list[Notifier] | None = None,
    language: Language | None = None,
) -> Dispatcher:
    """Channels from settings.notify (Slack, Teams, PagerDuty, webhook secrets, SNS topic, Security Hub),
    plus `extra` ones.

    Clients are created here, once (module scope in a handler); the channel secrets
    are read lazily at the first send and cached by Powertools.
    """
    notify = settings.notify
    notifiers: list[Notifier] = list(extra or [])
    channels = {n.channel for n in notifiers}
    if notify.slack_secret and "slack" not in channels:
        from iamguard.notify.secrets import SlackSecret
        from iamguard.notify.slack import SlackNotifier

        secret = SlackSecret(
            notify.slack_secret, aws, channel=notify.slack_channel, max_age=notify.secret_max_age_seconds
        )
        notifiers.append(SlackNotifier(secret))
    notifiers += _http_channels(notify, aws, channels)
    if notify.topic_arn and "email" not in channels:
        from iamguard.notify.sns import SnsNotifier

        notifiers.append(SnsNotifier(aws.client("sns"), notify.topic_arn))
    if notify.security_hub and "securityhub" not in channels:
        from iamguard.notify.securityhub import SecurityHubNotifier

        notifiers.append(
            SecurityHubNotifier(aws.client("securityhub"), aws.region, language=language or settings.language)
        )
    return Dispatcher(
        notifiers,
        settings=notify,
        language=language or settings.language,
        outbox=Outbox(store.client, store.table) if store is not None else None,
        store=store,
        dead_letters=DeadLetterQueue(aws.client("sqs"), notify.dlq_url) if notify.dlq_url else None,
        metrics=metrics,
        logger=logger,
    )


def _http_channels(notify: NotifySettings, aws: AwsContext, configured: set[Channel]) -> list[Notifier]:
    """Teams, PagerDuty and the webhook, for each secret that is set."""
    from iamguard.notify.pagerduty import PagerDutyNotifier
    from iamguard.notify.secrets import StoredSecret
    from iamguard.notify.teams import TeamsNotifier
    from iamguard.notify.webhook import WebhookNotifier

    out: list[Notifier] = []
    for reference, kind, what in (
        (notify.teams_secret, TeamsNotifier, "the Teams secret"),
        (notify.pagerduty_secret, PagerDutyNotifier, "the PagerDuty secret"),
        (notify.webhook_secret, WebhookNotifier, "the webhook secret"),
    ):
        if reference and kind.channel not in configured:
            out.append(kind(StoredSecret(reference, aws, what=what, max_age=notify.secret_max_age_seconds)))
    return out


def announcer_factory(aws: AwsContext, metrics: MetricsSink | None = None) -> Callable[[Settings, Any], Dispatcher]:
    """For `iamguard.realtime.handler.EventHandler(announcer_factory=...)`: a dispatcher on the findings table."""

    def make(settings: Settings, logger: Any) -> Dispatcher:
        store = FindingsStore(aws.dynamodb(), settings.findings_table)
        return build_dispatcher(settings, aws, store=store, metrics=metrics, logger=logger)

    return make
