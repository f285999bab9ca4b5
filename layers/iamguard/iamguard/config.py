"""One settings model, read from the environment once and validated at cold start.

The Lambda functions get these variables from template.yaml; the CLI builds the
same model from its flags. Defaults follow DESIGN.md (CIS benchmark baseline).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iamguard.notify.settings import NotifySettings, notify_env

Mode = Literal["monitor", "enforce"]
Language = Literal["en", "ko"]

EXEMPT_TAG_KEY = "iamguard:exempt"


class ConfigError(ValueError):
    """Raised when the environment holds an invalid setting (reported at cold start)."""


class PasswordBaseline(BaseModel):
    """The password policy an account must meet (CIS 1.8/1.9 by default)."""

    model_config = ConfigDict(frozen=True)

    minimum_length: int = Field(default=14, ge=6, le=128)
    password_reuse_prevention: int = Field(default=24, ge=0, le=24)
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    max_password_age_days: int | None = Field(default=None, ge=1, le=1095)


class Settings(BaseModel):
    """Everything an iamguard run can be configured with."""

    model_config = ConfigDict(frozen=True)

    mode: Mode = "monitor"
    language: Language = "en"
    root_usage_days: int = Field(default=1, ge=0)
    access_key_max_age_days: int = Field(default=90, ge=1)
    unused_credentials_days: int = Field(default=45, ge=1)
    pending_first_sign_in_days: int = Field(default=7, ge=0)
    password_baseline: PasswordBaseline = PasswordBaseline()
    required_policy_arns: tuple[str, ...] = ()
    exempt_users: frozenset[str] = frozenset()
    findings_table: str | None = None
    # Notifications (iamguard.notify): channels, severity routing, retry limits.
    notify: NotifySettings = NotifySettings()
    # Event path (iamguard.realtime): the stack's MFA guardrail policy, the roles
    # iamguard itself runs as (their CloudTrail events are ignored: no loops), the
    # idempotency table, and what counts as a burst of failed console sign-ins.
    guardrail_policy_arn: str | None = None
    # Enforcement: hours a console user without MFA is given before the guardrail is attached
    # (0 = at once); the scheduled audit attaches it when the grace period is over.
    guardrail_grace_hours: int = Field(default=0, ge=0, le=720)
    iamguard_role_arns: tuple[str, ...] = ()
    idempotency_table: str | None = None
    signin_failure_threshold: int = Field(default=5, ge=1, le=1000)
    signin_failure_window_minutes: int = Field(default=10, ge=1, le=1440)

    @field_validator("required_policy_arns")
    @classmethod
    def _policy_arns_look_like_arns(cls, arns: tuple[str, ...]) -> tuple[str, ...]:
        for arn in arns:
            if not arn.startswith("arn:aws") or ":policy/" not in arn:
                raise ValueError(f"not an IAM policy ARN: {arn!r}")
        return arns

    @field_validator("guardrail_policy_arn")
    @classmethod
    def _guardrail_is_a_policy_arn(cls, arn: str | None) -> str | None:
        if arn is not None and (not arn.startswith("arn:aws") or ":policy/" not in arn):
            raise ValueError(f"not an IAM policy ARN: {arn!r}")
        return arn

    @field_validator("iamguard_role_arns")
    @classmethod
    def _role_arns_look_like_arns(cls, arns: tuple[str, ...]) -> tuple[str, ...]:
        for arn in arns:
            if not arn.startswith("arn:aws") or ":role/" not in arn:
                raise ValueError(f"not an IAM role ARN: {arn!r}")
        return arns

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (the names template.yaml sets)."""
        env = os.environ if environ is None else environ

        def ints(**names: str) -> dict[str, str]:
            return {field: env[var] for field, var in names.items() if env.get(var, "").strip()}

        baseline = ints(
            minimum_length="PASSWORD_MIN_LENGTH",
            password_reuse_prevention="PASSWORD_REUSE_PREVENTION",
            max_password_age_days="PASSWORD_MAX_AGE_DAYS",
        )
        for flag, var in (
            ("require_symbols", "PASSWORD_REQUIRE_SYMBOLS"),
            ("require_numbers", "PASSWORD_REQUIRE_NUMBERS"),
            ("require_uppercase", "PASSWORD_REQUIRE_UPPERCASE"),
            ("require_lowercase", "PASSWORD_REQUIRE_LOWERCASE"),
        ):
            if env.get(var, "").strip():
                baseline[flag] = env[var].strip().lower()
        raw: dict[str, object] = {
            **ints(
                root_usage_days="ROOT_USAGE_DAYS",
                access_key_max_age_days="ACCESS_KEY_MAX_AGE_DAYS",
                unused_credentials_days="UNUSED_CREDENTIALS_DAYS",
                pending_first_sign_in_days="PENDING_FIRST_SIGN_IN_DAYS",
                signin_failure_threshold="SIGNIN_FAILURE_THRESHOLD",
                signin_failure_window_minutes="SIGNIN_FAILURE_WINDOW_MINUTES",
                guardrail_grace_hours="GUARDRAIL_GRACE_HOURS",
            ),
            "password_baseline": baseline,
            "required_policy_arns": _split(env.get("REQUIRED_POLICY_ARNS", "")),
            "exempt_users": _split(env.get("EXEMPT_USERS", "")),
            "notify": notify_env(env),
            "iamguard_role_arns": _split(env.get("IAMGUARD_ROLE_ARNS", "")),
        }
        for field, var in (
            ("mode", "MODE"),
            ("language", "LANGUAGE"),
            ("findings_table", "FINDINGS_TABLE"),
            ("guardrail_policy_arn", "GUARDRAIL_POLICY_ARN"),
            ("idempotency_table", "IDEMPOTENCY_TABLE"),
        ):
            if env.get(var, "").strip():
                raw[field] = env[var].strip()
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
            raise ConfigError(f"invalid iamguard settings: {problems}") from exc


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())
