"""The event functions' handler: settings checked at cold start, one processor, metrics per outcome.

Both event functions run functions/on_event/app.py: three Powertools objects,
`EventHandler.from_env(...)` and a one-line `lambda_handler`; each function's
EVENT_SOURCES says which sources its rule delivers. Malformed input is answered with a "rejected"
result (and the `RejectedEvents` metric) instead of an exception, so
EventBridge does not retry it; only infrastructure failures raise, and the
function's on-failure destination keeps those events.

Organization mode (ORGANIZATION_ID): an event from another account — delivered by the hub
bus's rules — is evaluated in that account (`iamguard.realtime.accounts`), or rejected
with its reason and the `EventsRejected` metric (dimension `reason`), never retried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from iamguard.aws import AwsContext
from iamguard.domain.alerts import Action, Alert, Announcer, LogOnlyAnnouncer
from iamguard.domain.findings import Change
from iamguard.persistence.exemptions import CachedExemptions, ExemptionStore
from iamguard.persistence.findings import FindingsStore
from iamguard.realtime.accounts import MemberRouter, Rejection
from iamguard.realtime.processor import EventProcessor, EventResult
from iamguard.settings import ConfigError, Settings

AnnouncerFactory = Callable[[Settings, Any], Announcer]

_OUTCOME_METRICS = {"evaluated": "EvaluatedEvents", "ignored": "IgnoredEvents", "rejected": "RejectedEvents"}


def required_settings(settings: Settings) -> Settings:
    """The event path needs its idempotency table; a deployment without it fails at cold start, loudly."""
    if not settings.idempotency_table:
        raise ConfigError("invalid iamguard settings: IDEMPOTENCY_TABLE must be set for the event functions")
    return settings


class DeferredAnnouncer:
    """The stack's channels, built at the first announcement.

    Most events have nothing to tell: they never import iamguard.notify (Slack's Block Kit,
    the outbox, the renderer), which keeps it out of the cold start. The settings of the
    channels are still validated at cold start (`Settings.notify`).
    """

    def __init__(self, build: Callable[[], Announcer]) -> None:
        self._build = build
        self._announcer: Announcer | None = None

    def announce(self, *, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> object:
        if self._announcer is None:
            self._announcer = self._build()
        return self._announcer.announce(alerts=alerts, changes=changes, actions=actions)


def stack_announcer_factory(aws: AwsContext, metrics: Any) -> AnnouncerFactory:
    """Slack, the SNS topic, Security Hub - whatever the stack configured - on first use."""

    def make(settings: Settings, logger: Any) -> Announcer:
        def build() -> Announcer:
            from iamguard.notify.factory import announcer_factory

            return announcer_factory(aws, metrics)(settings, logger)

        return DeferredAnnouncer(build)

    return make


class EventHandler:
    """Builds the processor on first use (the account comes from the invoked function's ARN) and runs it."""

    def __init__(
        self,
        *,
        sources: Iterable[str],
        settings: Settings,
        logger: Any,
        metrics: Any,
        aws: AwsContext | None = None,
        announcer_factory: AnnouncerFactory | None = None,
    ) -> None:
        self.sources = frozenset(sources)
        self.settings = required_settings(settings)
        self.logger = logger
        self.metrics = metrics
        self.aws = aws or AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
        self.announcer_factory = announcer_factory or (lambda _settings, log: LogOnlyAnnouncer(log))
        self._processors: dict[str, EventProcessor] = {}
        self._shared_announcer: Announcer | None = None  # one dispatcher for every account's processor
        self._shared_exemptions: CachedExemptions | None = (
            None  # one read of the exceptions a minute, not one per account
        )
        self.members = MemberRouter(self.settings, self.aws, self._member_processor, logger=logger)

    @classmethod
    def from_env(cls, *, logger: Any, metrics: Any) -> EventHandler:
        """What a function builds at cold start: its settings (invalid ones fail loudly), one AWS context,
        the sources of EVENT_SOURCES, and Slack, the SNS topic, Security Hub - whatever the stack configured."""
        settings = Settings.from_env()
        if not settings.event_sources:
            raise ConfigError("invalid iamguard settings: EVENT_SOURCES must name the sources this function takes")
        aws = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
        return cls(
            sources=settings.event_sources,
            settings=settings,
            logger=logger,
            metrics=metrics,
            aws=aws,
            announcer_factory=stack_announcer_factory(aws, metrics),
        )

    def processor(self, account_id: str) -> EventProcessor:
        if account_id not in self._processors:
            store = self._store()
            self._processors[account_id] = EventProcessor(
                self.aws,
                self.settings,
                account_id=account_id,
                store=store,
                announcer=self._announcer(),
                accept_sources=self.sources,
                logger=self.logger,
                exemptions=self._exemptions(store),
            )
        return self._processors[account_id]

    def _store(self) -> FindingsStore:
        return FindingsStore.for_settings(self.aws.dynamodb(), self.settings)

    def _exemptions(self, store: FindingsStore) -> CachedExemptions:
        """The container's one cache of the API's exceptions (they are one partition; each processor filters
        them to its own account)."""
        if self._shared_exemptions is None:
            self._shared_exemptions = CachedExemptions(ExemptionStore.of(store))
        return self._shared_exemptions

    def _announcer(self) -> Announcer:
        if self._shared_announcer is None:
            self._shared_announcer = self.announcer_factory(self.settings, self.logger)
        return self._shared_announcer

    def _member_processor(
        self, account_id: str, settings: Settings, audit: AwsContext, enforce: AwsContext | None
    ) -> EventProcessor:
        """A processor acting in a member account: reads through `audit`, enforces through `enforce`."""
        store = self._store()
        return EventProcessor(
            self.aws,
            settings,
            account_id=account_id,
            store=store,
            announcer=self._announcer(),
            accept_sources=self.sources,
            logger=self.logger,
            iam_client=audit.iam(),
            enforce_iam=enforce.iam() if enforce is not None else None,
            exemptions=self._exemptions(store),
        )

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        hub_account = str(context.invoked_function_arn).split(":")[4]
        chosen = self.members.route(event, hub_account, hub=self.processor)
        if isinstance(chosen, Rejection):
            result = chosen.result(event)
            self.members.log_rejection(result, chosen)
            self.record_metrics(result, rejection=chosen)
            return result.line()
        chosen.register_lambda_context(context)
        result = chosen.process(event)
        self.record_metrics(result)
        return result.line()

    def record_metrics(self, result: EventResult, rejection: Rejection | None = None) -> None:
        self.metrics.add_metric(name=_OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
        if rejection is not None:
            rejection.emit_metric(self.metrics)
        if result.duplicate:  # its alerts and actions were counted when it was first processed
            self.metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
            return
        if result.alerts:
            self.metrics.add_metric(name="Alerts", unit=MetricUnit.Count, value=len(result.alerts))
        performed = sum(1 for action in result.actions if action.performed)
        if performed:
            self.metrics.add_metric(name="EnforcementActions", unit=MetricUnit.Count, value=performed)
        if result.api_calls:
            self.metrics.add_metric(name="EventApiCalls", unit=MetricUnit.Count, value=result.api_calls)
