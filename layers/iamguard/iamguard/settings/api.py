"""Settings of the status API (part of `iamguard.settings.Settings`): the audit interval, what POST /audit invokes,
how long an exception may last."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt

from iamguard.settings.base import ConfigError

DEFAULT_AUDIT_INTERVAL = timedelta(hours=1)
CRON_AUDIT_INTERVAL = timedelta(days=1)  # assumed for cron(...) schedules unless AUDIT_INTERVAL_MINUTES says otherwise
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNITS = {"minute": "minutes", "hour": "hours", "day": "days"}


def schedule_interval(expression: str) -> timedelta:
    """The period of an EventBridge schedule expression: rate(N unit) exactly, cron(...) as a day."""
    expression = expression.strip()
    if not expression:
        return DEFAULT_AUDIT_INTERVAL
    match = _RATE.match(expression)
    if match:
        count, unit = int(match.group(1)), match.group(2)
        if count < 1:
            raise ConfigError(f"AUDIT_SCHEDULE has a zero rate: {expression!r}")
        return timedelta(**{_UNITS.get(unit, unit): count})
    if expression.startswith("cron(") and expression.endswith(")"):
        return CRON_AUDIT_INTERVAL
    raise ConfigError(f"AUDIT_SCHEDULE is not a rate(...) or cron(...) expression: {expression!r}")


def _schedule(value: Any) -> Any:
    return schedule_interval(value) if isinstance(value, str) else value


class ApiSettings(BaseModel):
    """What the status API needs besides the findings table."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    # AUDIT_SCHEDULE is the EventBridge expression; AUDIT_INTERVAL_MINUTES, when set, overrides its period.
    audit_interval: Annotated[timedelta, BeforeValidator(_schedule)] = Field(
        default=DEFAULT_AUDIT_INTERVAL, validation_alias="AUDIT_SCHEDULE"
    )
    audit_interval_minutes: PositiveInt | None = Field(default=None, validation_alias="AUDIT_INTERVAL_MINUTES")
    audit_function_name: str | None = Field(default=None, validation_alias="AUDIT_FUNCTION_NAME")
    page_size_max: int = Field(default=100, ge=1)
    # How far ahead an exception made through the API may end (PUT /exceptions): none is open-ended.
    exception_max_days: int = Field(default=90, ge=1, le=365, validation_alias="EXCEPTION_MAX_DAYS")

    @property
    def interval(self) -> timedelta:
        """How often the audit runs."""
        return timedelta(minutes=self.audit_interval_minutes) if self.audit_interval_minutes else self.audit_interval

    @property
    def stale_after(self) -> timedelta:
        """The last audit is stale when older than twice the audit interval."""
        return 2 * self.interval
