"""Settings from the environment, credential-report parsing and policy evaluation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from iamguard.domain.findings import Severity
from iamguard.iam import evaluation as policy
from iamguard.iam.inventory import parse_credential_report
from iamguard.realtime.handler import EventHandler
from iamguard.settings import DEFAULT_FINDINGS_TABLE, ConfigError, Settings

from tests.factories import ADMIN, CHANGE_PASSWORD, DOCUMENTS, group, user

REPORT = """user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2026-05-31T10:00:00+00:00,not_supported,not_supported,false,true,2021-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
bob,arn:aws:iam::123456789012:user/bob,2024-01-01T00:00:00+00:00,true,no_information,2024-01-01T00:00:00+00:00,N/A,true,true,2024-01-02T00:00:00+00:00,2026-05-30T00:00:00+00:00,us-east-1,s3,false,2024-02-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A
"""


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env({})
    assert settings.mode == "monitor"
    assert (settings.root_usage_days, settings.access_key_max_age_days, settings.unused_credentials_days) == (1, 90, 45)
    assert settings.pending_first_sign_in_days == 7
    assert (settings.password_baseline.minimum_length, settings.password_baseline.password_reuse_prevention) == (14, 24)


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "MODE": "enforce",
            "LANGUAGE": "ko",
            "ACCESS_KEY_MAX_AGE_DAYS": "30",
            "PASSWORD_MIN_LENGTH": "16",
            "PASSWORD_REQUIRE_SYMBOLS": "true",
            "REQUIRED_POLICY_ARNS": "arn:aws:iam::aws:policy/ReadOnlyAccess, arn:aws:iam::123456789012:policy/Base",
            "EXEMPT_USERS": "breakglass,,ci ",
        }
    )
    assert settings.mode == "enforce" and settings.language == "ko"
    assert settings.access_key_max_age_days == 30
    assert settings.password_baseline.minimum_length == 16 and settings.password_baseline.require_symbols
    assert settings.required_policy_arns[1] == "arn:aws:iam::123456789012:policy/Base"
    assert settings.exempt_users == frozenset({"breakglass", "ci"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODE": "destroy"}, "mode"),
        ({"ACCESS_KEY_MAX_AGE_DAYS": "soon"}, "access_key_max_age_days"),
        ({"PASSWORD_MIN_LENGTH": "4"}, "minimum_length"),
        ({"REQUIRED_POLICY_ARNS": "ReadOnlyAccess"}, "not an IAM policy ARN"),
    ],
)
def test_invalid_settings_fail_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_credential_report_parsing_handles_root_and_placeholders() -> None:
    report = parse_credential_report(REPORT.encode())
    root = report["<root_account>"]
    assert root.password_enabled and not root.mfa_active
    assert root.password_last_used is not None and root.password_last_used.day == 31
    assert [k.active for k in root.access_keys] == [True]
    bob = report["bob"]
    assert bob.password_last_used is None  # no_information
    assert bob.mfa_active
    assert [(k.slot, k.active) for k in bob.access_keys] == [(1, True), (2, False)]
    assert bob.access_keys[0].last_used is not None and bob.access_keys[1].last_used is None


def test_change_password_via_managed_policy_group_or_wildcards() -> None:
    groups = {"pw": group("pw", CHANGE_PASSWORD)}
    assert policy.can_change_own_password(user("a", attached_policies=(CHANGE_PASSWORD,)), {}, DOCUMENTS)
    assert policy.can_change_own_password(user("b", group_names=("pw",)), groups, DOCUMENTS)
    assert policy.can_change_own_password(user("c", attached_policies=(ADMIN,)), {}, DOCUMENTS)
    assert not policy.can_change_own_password(user("d"), {}, DOCUMENTS)
    iam_star = {"Statement": {"Effect": "Allow", "Action": "iam:Change*", "Resource": "*"}}
    from iamguard.domain.account import InlinePolicy

    assert policy.can_change_own_password(user("e", inline_policies=(InlinePolicy("x", iam_star),)), {}, {})


def test_settings_read_the_process_environment_and_keywords_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODE", "enforce")
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", " 20 ")
    monkeypatch.setenv("NOTIFY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AUDIT_INTERVAL_MINUTES", "30")
    monkeypatch.setenv("EXEMPT_USERS", "")  # blank: the default
    settings = Settings()
    assert settings == Settings.from_env()
    assert settings.mode == "enforce" and settings.password_baseline.minimum_length == 20
    assert settings.notify.max_attempts == 3 and settings.api.stale_after == timedelta(hours=1)
    assert settings.exempt_users == frozenset()
    assert Settings(mode="monitor", findings_table="t").mode == "monitor"
    assert Settings.from_env({}).mode == "monitor"  # a given mapping is all that is read


def test_each_variable_has_one_default() -> None:
    defaults = Settings.from_env({})
    assert defaults.findings_table == DEFAULT_FINDINGS_TABLE == "iamguard-findings"
    assert defaults.idempotency_table is None  # the event functions refuse to start without it
    assert defaults.notify.digest_min_severity is Severity.HIGH and defaults.api.audit_function_name is None
    assert Settings.from_env({"FINDINGS_TABLE": "  "}).findings_table == DEFAULT_FINDINGS_TABLE


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NOTIFY_MAX_ATTEMPTS": "many"}, r"notify\.max_attempts \(NOTIFY_MAX_ATTEMPTS\)"),
        ({"SEVERITY_ROUTING": "critical=pager"}, r"notify\.routing \(SEVERITY_ROUTING\): .*unknown channel 'pager'"),
        ({"DIGEST_MIN_SEVERITY": "huge"}, r"DIGEST_MIN_SEVERITY"),
        ({"PASSWORD_REQUIRE_SYMBOLS": "maybe"}, r"password_baseline\.require_symbols \(PASSWORD_REQUIRE_SYMBOLS\)"),
        ({"IAMGUARD_ROLE_ARNS": "arn:aws:iam::1:policy/p"}, r"iamguard_role_arns\.0 \(IAMGUARD_ROLE_ARNS\).*role ARN"),
        ({"GUARDRAIL_POLICY_ARN": "arn:aws:iam::1:role/r"}, r"GUARDRAIL_POLICY_ARN.*not an IAM policy ARN"),
    ],
)
def test_errors_name_the_variable_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_severities_and_booleans_parse_as_before() -> None:
    settings = Settings.from_env(
        {"DIGEST_MIN_SEVERITY": " Critical ", "SECURITY_HUB_ENABLED": "TRUE", "PASSWORD_REQUIRE_NUMBERS": "yes"}
    )
    assert settings.notify.digest_min_severity is Severity.CRITICAL and settings.notify.security_hub
    assert settings.password_baseline.require_numbers
    assert Settings.from_env({"DIGEST_MIN_SEVERITY": "info"}).notify.digest_min_severity is Severity.INFORMATIONAL


def test_event_sources_name_what_each_event_function_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env({"EVENT_SOURCES": "aws.iam, aws.sts"}).event_sources == ("aws.iam", "aws.sts")
    with pytest.raises(ConfigError, match="EVENT_SOURCES"):
        Settings.from_env({"EVENT_SOURCES": "aws.iam,aws.s3"})
    # The shared handler module refuses a cold start that does not say which sources it takes
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "iamguard-idempotency")
    monkeypatch.delenv("EVENT_SOURCES", raising=False)
    with pytest.raises(ConfigError, match="EVENT_SOURCES must name"):
        EventHandler.from_env(logger=None, metrics=None)
