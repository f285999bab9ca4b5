"""Notification settings: channels, severity and account routing, retry limits (part of `iamguard.settings.Settings`).

Secrets are never settings: `SLACK_SECRET_ARN` names where the webhook URL or bot
token is kept (likewise `TEAMS_SECRET_ARN`, `PAGERDUTY_SECRET_ARN`, `WEBHOOK_SECRET_ARN`)
(Secrets Manager, or an SSM SecureString); the value itself is
read at send time through Powertools' parameters utility.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from iamguard.domain.findings import Severity
from iamguard.domain.messages import ROUTABLE_CHANNELS, Channel

# Every channel for critical and high: a channel without its secret is simply not configured.
DEFAULT_ROUTING = "critical: slack+email+teams+pagerduty+webhook, high: slack+email+teams+pagerduty+webhook"


def parse_routing(value: str) -> dict[Severity, frozenset[Channel]]:
    """`critical=slack+email,high=slack` → severity → person channels; unlisted severities go to the digest."""
    routes: dict[Severity, frozenset[Channel]] = {severity: frozenset() for severity in Severity}
    for part in value.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, channels = part.replace(":", "=").partition("=")
        if not sep:
            raise ValueError(f"routing entry {part.strip()!r} is not severity=channel+channel")
        severity = Severity.parse(name)
        chosen: set[Channel] = set()
        for channel in channels.split("+"):
            word = channel.strip().lower()
            if word in {"", "digest", "none"}:
                continue
            if word not in {c.value for c in ROUTABLE_CHANNELS}:
                names = ", ".join(c.value for c in ROUTABLE_CHANNELS)
                raise ValueError(f"unknown channel {word!r} (use {names} or digest)")
            chosen.add(Channel(word))
        routes[severity] = frozenset(chosen)
    return routes


# Organization mode: an account or an organizational unit → its own Slack secret and/or SNS topic.
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")  # Organizations' OU id pattern
_DESTINATION = re.compile(r"\+(?=(?:slack|email):)")


class AccountRoute(BaseModel):
    """Where one account's (or one OU's) Slack and e-mail messages go instead of the stack's own channels."""

    model_config = ConfigDict(frozen=True)

    target: str  # a 12-digit account id or an OU id (ou-…)
    slack_secret: str | None = None  # Secrets Manager ARN/name or SSM parameter, like SLACK_SECRET_ARN
    topic_arn: str | None = None  # an SNS topic, like ALERT_TOPIC_ARN


def parse_account_routing(value: str) -> tuple[AccountRoute, ...]:
    """`111122223333=slack:<secret>+email:<topic arn>; ou-ab12-cdef3456=slack:<secret>` → routes.

    Entries are separated by `;` (or new lines); the target is an account id or an OU id; each
    destination is `slack:` with a Slack secret (as SLACK_SECRET_ARN) or `email:` with an SNS topic ARN.
    """
    routes: dict[str, AccountRoute] = {}
    for part in value.replace("\n", ";").split(";"):
        entry = part.strip()
        if not entry:
            continue
        target, sep, destinations = entry.partition("=")
        target = target.strip()
        if not sep or not destinations.strip():
            raise ValueError(f"account routing entry {entry!r} is not target=slack:<secret>+email:<topic arn>")
        if not (_ACCOUNT_ID.match(target) or _OU_ID.match(target)):
            raise ValueError(f"account routing target {target!r} is neither a 12-digit account id nor an OU id (ou-…)")
        if target in routes:
            raise ValueError(f"account routing names {target} twice")
        found: dict[str, str] = {}
        for destination in _DESTINATION.split(destinations.strip()):
            channel, colon, reference = destination.strip().partition(":")
            if not colon or channel not in {"slack", "email"} or not reference.strip():
                raise ValueError(
                    f"account routing destination {destination.strip()!r} of {target} is not slack:<secret> "
                    "or email:<topic arn>"
                )
            if channel in found:
                raise ValueError(f"account routing gives {target} two {channel} destinations")
            reference = reference.strip()
            if channel == "email" and not (reference.startswith("arn:") and ":sns:" in reference):
                raise ValueError(f"account routing email destination of {target} is not an SNS topic ARN")
            found[channel] = reference
        routes[target] = AccountRoute(target=target, slack_secret=found.get("slack"), topic_arn=found.get("email"))
    return tuple(routes.values())


def _severity(value: Any) -> Any:
    return Severity.parse(value) if isinstance(value, str) else value


class NotifySettings(BaseModel):
    """Where announcements go and how hard iamguard tries before a message is dead-lettered."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    routing: dict[Severity, frozenset[Channel]] = Field(
        default_factory=lambda: parse_routing(DEFAULT_ROUTING), validation_alias="SEVERITY_ROUTING"
    )
    # Secrets Manager ARN/name, or SSM parameter name/ARN (SecureString)
    slack_secret: str | None = Field(default=None, validation_alias="SLACK_SECRET_ARN")
    # for bot tokens, when the secret does not name the channel
    slack_channel: str | None = Field(default=None, validation_alias="SLACK_CHANNEL")
    # Secrets Manager ARN/name or SSM parameter of each further channel (docs/notifications.md):
    teams_secret: str | None = Field(default=None, validation_alias="TEAMS_SECRET_ARN")  # Workflows URL
    pagerduty_secret: str | None = Field(default=None, validation_alias="PAGERDUTY_SECRET_ARN")  # routing key
    webhook_secret: str | None = Field(default=None, validation_alias="WEBHOOK_SECRET_ARN")  # URL + HMAC key
    topic_arn: str | None = Field(default=None, validation_alias="ALERT_TOPIC_ARN")
    security_hub: bool = Field(default=False, validation_alias="SECURITY_HUB_ENABLED")
    dlq_url: str | None = Field(default=None, validation_alias="NOTIFY_DLQ_URL")
    max_attempts: int = Field(default=12, ge=1, le=1000, validation_alias="NOTIFY_MAX_ATTEMPTS")
    max_age_hours: int = Field(default=24, ge=1, le=24 * 14, validation_alias="NOTIFY_MAX_AGE_HOURS")
    digest_min_severity: Annotated[Severity, BeforeValidator(_severity)] = Field(
        default=Severity.HIGH, validation_alias="DIGEST_MIN_SEVERITY"
    )
    secret_max_age_seconds: int = Field(default=300, ge=0)
    account_routing: tuple[AccountRoute, ...] = Field(default=(), validation_alias="ACCOUNT_ROUTING")

    @field_validator("routing", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_routing(value) if isinstance(value, str) else value

    @field_validator("account_routing", mode="before")
    @classmethod
    def _parse_accounts(cls, value: Any) -> Any:
        return parse_account_routing(value) if isinstance(value, str) else value

    def route_for(self, account_id: str, organizational_units: tuple[str, ...] = ()) -> AccountRoute | None:
        """The account's own route, else its nearest OU's, else None (the stack's own channels)."""
        by_target = {route.target: route for route in self.account_routing}
        for target in (account_id, *organizational_units):
            if target in by_target:
                return by_target[target]
        return None

    def channels_for(self, severity: Severity) -> frozenset[Channel]:
        return self.routing.get(severity, frozenset())
