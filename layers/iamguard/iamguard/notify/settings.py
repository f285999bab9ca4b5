"""Notification settings: channels, severity routing, retry limits (part of `iamguard.config.Settings`).

Secrets are never settings: `SLACK_SECRET_ARN` names where the webhook URL or bot
token is kept (Secrets Manager, or an SSM SecureString); the value itself is
read at send time through Powertools' parameters utility.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from iamguard.findings import Severity


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"  # the SNS topic (email subscription, or any other subscriber)
    SECURITY_HUB = "securityhub"


PERSON_CHANNELS: tuple[Channel, ...] = (Channel.SLACK, Channel.EMAIL)
DEFAULT_ROUTING = "critical=slack+email,high=slack+email"


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
            if word not in {c.value for c in PERSON_CHANNELS}:
                raise ValueError(f"unknown channel {word!r} (use slack, email or digest)")
            chosen.add(Channel(word))
        routes[severity] = frozenset(chosen)
    return routes


class NotifySettings(BaseModel):
    """Where announcements go and how hard iamguard tries before a message is dead-lettered."""

    model_config = ConfigDict(frozen=True)

    routing: dict[Severity, frozenset[Channel]] = Field(default_factory=lambda: parse_routing(DEFAULT_ROUTING))
    slack_secret: str | None = None  # Secrets Manager ARN/name, or SSM parameter name/ARN (SecureString)
    slack_channel: str | None = None  # for bot tokens, when the secret does not name the channel
    topic_arn: str | None = None
    security_hub: bool = False
    dlq_url: str | None = None
    max_attempts: int = Field(default=12, ge=1, le=1000)
    max_age_hours: int = Field(default=24, ge=1, le=24 * 14)
    digest_min_severity: Severity = Severity.HIGH
    secret_max_age_seconds: int = Field(default=300, ge=0)

    @field_validator("routing", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_routing(value) if isinstance(value, str) else value

    def channels_for(self, severity: Severity) -> frozenset[Channel]:
        return self.routing.get(severity, frozenset())


def notify_env(env: Mapping[str, str]) -> dict[str, object]:
    """The raw notify settings from environment variables (validated by `Settings`)."""
    names = {
        "routing": "SEVERITY_ROUTING",
        "slack_secret": "SLACK_SECRET_ARN",
        "slack_channel": "SLACK_CHANNEL",
        "topic_arn": "ALERT_TOPIC_ARN",
        "security_hub": "SECURITY_HUB_ENABLED",
        "dlq_url": "NOTIFY_DLQ_URL",
        "max_attempts": "NOTIFY_MAX_ATTEMPTS",
        "max_age_hours": "NOTIFY_MAX_AGE_HOURS",
        "digest_min_severity": "DIGEST_MIN_SEVERITY",
    }
    raw: dict[str, object] = {field: env[var].strip() for field, var in names.items() if env.get(var, "").strip()}
    if isinstance(raw.get("digest_min_severity"), str):
        with contextlib.suppress(ValueError):  # left as is: validation reports it
            raw["digest_min_severity"] = Severity.parse(str(raw["digest_min_severity"]))
    return raw
