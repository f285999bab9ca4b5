"""Build the dispatcher a Lambda function (or the CLI) uses, from the one settings model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iamguard.aws import AwsContext
from iamguard.domain.messages import Language
from iamguard.notify.base import Notifier
from iamguard.notify.dispatcher import DeadLetterQueue, Dispatcher, MetricsSink
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import Outbox
from iamguard.settings import Settings


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
    """Channels from settings.notify (Slack secret, SNS topic, Security Hub), plus `extra` ones.

    Clients are created here, once (module scope in a handler); the Slack secret
    is read lazily at the first send and cached by Powertools.
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


def announcer_factory(aws: AwsContext, metrics: MetricsSink | None = None) -> Callable[[Settings, Any], Dispatcher]:
    """For `iamguard.realtime.handler.EventHandler(announcer_factory=...)`: a dispatcher on the findings table."""

    def make(settings: Settings, logger: Any) -> Dispatcher:
        store = FindingsStore(aws.dynamodb(), settings.findings_table)
        return build_dispatcher(settings, aws, store=store, metrics=metrics, logger=logger)

    return make
