"""One settings model (pydantic-settings), read from the environment once and validated at cold start.

Every Lambda function, the status API and the CLI build `Settings` from the
variables template.yaml sets; each variable is named once, as its field's
`validation_alias`, and has one default, on that field. Sub-models group the
password baseline, notifications (`notify.py`) and the status API (`api.py`).
Defaults follow DESIGN.md (CIS benchmark baseline).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from iamguard.domain.messages import Language
from iamguard.settings.api import ApiSettings
from iamguard.settings.base import CommaSeparated, ConfigError, EnvironSource, PolicyArn, RoleArn, config_error
from iamguard.settings.notify import NotifySettings
from iamguard.settings.organization import OrganizationSettings

__all__ = [
    "DEFAULT_FINDINGS_TABLE",
    "EXEMPT_TAG_KEY",
    "ConfigError",
    "Mode",
    "OrganizationSettings",
    "PasswordBaseline",
    "Settings",
]

Mode = Literal["monitor", "enforce"]
EventSource = Literal["aws.iam", "aws.sts", "aws.signin"]

EXEMPT_TAG_KEY = "iamguard:exempt"
# The stack always sets FINDINGS_TABLE (its own table); this default is for the CLI and the local runtime.
DEFAULT_FINDINGS_TABLE = "iamguard-findings"

# The environment `Settings()` reads: the process's, unless `Settings.from_env(mapping)` is building one.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("iamguard_settings_environ", default=None)


class PasswordBaseline(BaseModel):
    """The password policy an account must meet (CIS 1.8/1.9 by default)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    minimum_length: int = Field(default=14, ge=6, le=128, validation_alias="PASSWORD_MIN_LENGTH")
    password_reuse_prevention: int = Field(default=24, ge=0, le=24, validation_alias="PASSWORD_REUSE_PREVENTION")
    require_symbols: bool = Field(default=False, validation_alias="PASSWORD_REQUIRE_SYMBOLS")
    require_numbers: bool = Field(default=False, validation_alias="PASSWORD_REQUIRE_NUMBERS")
    require_uppercase: bool = Field(default=False, validation_alias="PASSWORD_REQUIRE_UPPERCASE")
    require_lowercase: bool = Field(default=False, validation_alias="PASSWORD_REQUIRE_LOWERCASE")
    max_password_age_days: int | None = Field(default=None, ge=1, le=1095, validation_alias="PASSWORD_MAX_AGE_DAYS")


class Settings(BaseSettings):
    """Everything an iamguard run can be configured with; `Settings()` reads the process environment."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True)

    mode: Mode = Field(default="monitor", validation_alias="MODE")
    language: Language = Field(default="en", validation_alias="LANGUAGE")
    root_usage_days: int = Field(default=1, ge=0, validation_alias="ROOT_USAGE_DAYS")
    access_key_max_age_days: int = Field(default=90, ge=1, validation_alias="ACCESS_KEY_MAX_AGE_DAYS")
    unused_credentials_days: int = Field(default=45, ge=1, validation_alias="UNUSED_CREDENTIALS_DAYS")
    pending_first_sign_in_days: int = Field(default=7, ge=0, validation_alias="PENDING_FIRST_SIGN_IN_DAYS")
    password_baseline: PasswordBaseline = PasswordBaseline()
    required_policy_arns: Annotated[tuple[PolicyArn, ...], CommaSeparated] = Field(
        default=(), validation_alias="REQUIRED_POLICY_ARNS"
    )
    exempt_users: Annotated[frozenset[str], CommaSeparated] = Field(
        default=frozenset(), validation_alias="EXEMPT_USERS"
    )
    findings_table: str = Field(default=DEFAULT_FINDINGS_TABLE, validation_alias="FINDINGS_TABLE")
    # Notifications (iamguard.notify): channels, severity routing, retry limits.
    notify: NotifySettings = NotifySettings()
    # The status API (iamguard.api): audit interval, the audit function POST /audit invokes.
    api: ApiSettings = ApiSettings()
    # Organization mode (iamguard.organization): the organization and the member accounts' roles.
    organization: OrganizationSettings = OrganizationSettings()
    # Event path (iamguard.realtime): the stack's MFA guardrail policy, the roles
    # iamguard itself runs as (their CloudTrail events are ignored: no loops), the
    # idempotency table, and what counts as a burst of failed console sign-ins.
    guardrail_policy_arn: PolicyArn | None = Field(default=None, validation_alias="GUARDRAIL_POLICY_ARN")
    # Enforcement: hours a console user without MFA is given before the guardrail is attached
    # (0 = at once); the scheduled audit attaches it when the grace period is over.
    guardrail_grace_hours: int = Field(default=0, ge=0, le=720, validation_alias="GUARDRAIL_GRACE_HOURS")
    iamguard_role_arns: Annotated[tuple[RoleArn, ...], CommaSeparated] = Field(
        default=(), validation_alias="IAMGUARD_ROLE_ARNS"
    )
    idempotency_table: str | None = Field(default=None, validation_alias="IDEMPOTENCY_TABLE")
    # The event functions share one handler; each takes the sources its EventBridge rule delivers.
    event_sources: Annotated[tuple[EventSource, ...], CommaSeparated] = Field(
        default=(), validation_alias="EVENT_SOURCES"
    )
    signin_failure_threshold: int = Field(default=5, ge=1, le=1000, validation_alias="SIGNIN_FAILURE_THRESHOLD")
    signin_failure_window_minutes: int = Field(
        default=10, ge=1, le=1440, validation_alias="SIGNIN_FAILURE_WINDOW_MINUTES"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments first, then the variables template.yaml names (flat, blank = default).
        environ = _ENVIRON.get()
        return init_settings, EnvironSource(settings_cls, os.environ if environ is None else environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); invalid values raise `ConfigError`."""
        token = _ENVIRON.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            raise config_error(cls, exc) from exc
        finally:
            _ENVIRON.reset(token)
