"""Settings of the status API, read from the environment that template.yaml sets."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from iamguard.config import ConfigError

DEFAULT_AUDIT_INTERVAL = timedelta(hours=1)
CRON_AUDIT_INTERVAL = timedelta(days=1)  # assumed for cron(...) schedules unless AUDIT_INTERVAL_MINUTES says otherwise
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNITS = {"minute": "minutes", "hour": "hours", "day": "days"}


class ApiSettings(BaseModel):
    """What the status API needs besides the findings table."""

    model_config = ConfigDict(frozen=True)

    findings_table: str = "iamguard-findings"
    audit_interval: timedelta = DEFAULT_AUDIT_INTERVAL
    audit_function_name: str | None = None
    page_size_max: int = Field(default=100, ge=1)

    @property
    def stale_after(self) -> timedelta:
        """The last audit is stale when older than twice the audit interval."""
        return 2 * self.audit_interval

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """FINDINGS_TABLE, AUDIT_SCHEDULE (or AUDIT_INTERVAL_MINUTES) and AUDIT_FUNCTION_NAME."""
        env = os.environ if environ is None else environ
        minutes = env.get("AUDIT_INTERVAL_MINUTES", "").strip()
        if minutes:
            if not minutes.isdigit() or int(minutes) < 1:
                raise ConfigError(f"AUDIT_INTERVAL_MINUTES must be a positive integer, not {minutes!r}")
            interval = timedelta(minutes=int(minutes))
        else:
            interval = schedule_interval(env.get("AUDIT_SCHEDULE", ""))
        return cls(
            findings_table=env.get("FINDINGS_TABLE", "").strip() or "iamguard-findings",
            audit_interval=interval,
            audit_function_name=env.get("AUDIT_FUNCTION_NAME", "").strip() or None,
        )


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
