"""Build the dispatcher a Lambda function (or the CLI) uses, from the one settings model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iamguard.aws import AwsContext
from iamguard.domain.messages import Channel, Language
from iamguard.notify.base import Notifier
from iamguard.notify.dispatcher import DeadLetterQueue, Dispatcher, MetricsSink
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import Outbox
from iamguard.settings import Settings
from iamguard.settings.notify import NotifySettings

if TYPE_CHECKING:
    from iamguard.organization.directory import AccountDirectory


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
    directory = _directory(settings, aws, logger)
    if (notify.slack_secret or _routed(notify, "slack")) and "slack" not in channels:
        notifiers.append(
            _routed_channel(Channel.SLACK, notify, aws, directory, _slack(notify.slack_secret, notify, aws))
        )
    notifiers += _http_channels(notify, aws, channels)
    if (notify.topic_arn or _routed(notify, "email")) and "email" not in channels:
        notifiers.append(_routed_channel(Channel.EMAIL, notify, aws, directory, _sns(notify.topic_arn, aws)))
    if notify.security_hub and "securityhub" not in channels:
        from iamguard.notify.securityhub import SecurityHubNotifier

        notifiers.append(
            SecurityHubNotifier(
                aws.client("securityhub"),
                aws.region,
                language=language or settings.language,
                member_client=_member_security_hub(directory) if directory is not None else None,
            )
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
        account_alias=directory.alias if directory is not None else None,
    )


def _directory(settings: Settings, aws: AwsContext, logger: Any) -> AccountDirectory | None:
    """Organization mode: what messages need to know about member accounts (alias, OUs, their Security Hub)."""
    if not settings.organization.enabled:
        return None
    from iamguard.organization.directory import AccountDirectory

    return AccountDirectory(aws, settings.organization, logger=logger)


def _slack(reference: str | None, notify: NotifySettings, aws: AwsContext) -> Notifier | None:
    if not reference:
        return None
    from iamguard.notify.secrets import SlackSecret
    from iamguard.notify.slack import SlackNotifier

    return SlackNotifier(
        SlackSecret(reference, aws, channel=notify.slack_channel, max_age=notify.secret_max_age_seconds)
    )


def _sns(topic_arn: str | None, aws: AwsContext) -> Notifier | None:
    if not topic_arn:
        return None
    from iamguard.notify.sns import SnsNotifier

    return SnsNotifier(aws.client("sns"), topic_arn)


def _routed(notify: NotifySettings, channel: str) -> bool:
    return any((route.slack_secret if channel == "slack" else route.topic_arn) for route in notify.account_routing)


def _routed_channel(
    channel: Channel,
    notify: NotifySettings,
    aws: AwsContext,
    directory: AccountDirectory | None,
    default: Notifier | None,
) -> Notifier:
    """The stack's own Slack / e-mail channel, or (with ACCOUNT_ROUTING) one that picks it per account."""
    routes: dict[str, Notifier] = {}
    for route in notify.account_routing:
        notifier = _slack(route.slack_secret, notify, aws) if channel is Channel.SLACK else _sns(route.topic_arn, aws)
        if notifier is not None:
            routes[route.target] = notifier
    if not routes:
        assert default is not None
        return default
    from iamguard.notify.routing import AccountRoutedNotifier

    return AccountRoutedNotifier(
        channel,
        default=default,
        routes=routes,
        settings=notify,
        organizational_units=directory.organizational_units if directory is not None else None,
    )


def _member_security_hub(directory: AccountDirectory) -> Callable[[str], Any]:
    """Security Hub of the finding's own account: the hub's own client there, the member audit role's elsewhere."""

    def client_for(account_id: str) -> Any:
        if account_id == directory.hub_account_id():
            return directory.hub.client("securityhub")
        return directory.audit.context(account_id).client("securityhub")

    return client_for


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
        store = FindingsStore.for_settings(aws.dynamodb(), settings)
        return build_dispatcher(settings, aws, store=store, metrics=metrics, logger=logger)

    return make
