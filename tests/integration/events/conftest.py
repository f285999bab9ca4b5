"""Fixtures of the event-path tests: one moto per module, emptied before each test (see support.wipe_account)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local import moto_ext
from iamguard_cli.local.bootstrap import ensure_findings_table, ensure_guardrail_policy, ensure_idempotency_table
from iamguard_cli.local.samples import IAMGUARD_SAMPLE_ROLE_ARN, seed_sample_account
from moto import mock_aws

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import (
    IDEMPOTENCY_TABLE,
    Bot,
    BotFactory,
    RecordingAnnouncer,
    load_both,
    wipe_account,
)


@pytest.fixture(scope="module")
def _module_moto() -> Iterator[AwsContext]:
    with mock_aws():
        moto_ext.install()
        yield AwsContext(region="us-east-1", retry_mode="standard", max_attempts=2)
    moto_ext.reset()


@pytest.fixture
def aws(_module_moto: AwsContext) -> AwsContext:
    """In-process moto shared by the module's tests, emptied before each (overrides the conftest fixture)."""
    wipe_account(_module_moto)
    return _module_moto


@pytest.fixture
def store(aws: AwsContext) -> FindingsStore:
    findings = FindingsStore(aws.dynamodb(), os.environ["FINDINGS_TABLE"])
    ensure_findings_table(findings)
    return findings


@pytest.fixture
def make_bot(aws: AwsContext, store: FindingsStore, monkeypatch: pytest.MonkeyPatch) -> BotFactory:
    """Deploy the two event functions with the given settings (environment variables, as template.yaml sets)."""
    ensure_idempotency_table(aws.dynamodb(), IDEMPOTENCY_TABLE)
    guardrail = ensure_guardrail_policy(aws.iam(), ACCOUNT_ID)

    def deploy(**env: str) -> Bot:
        defaults = {
            "MODE": "monitor",
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "GUARDRAIL_POLICY_ARN": guardrail,
            "IAMGUARD_ROLE_ARNS": IAMGUARD_SAMPLE_ROLE_ARN,
            "REQUIRED_POLICY_ARNS": "",
            "EXEMPT_USERS": "",
        }
        for name, value in {**defaults, **env}.items():
            monkeypatch.setenv(name, value)
        announcer = RecordingAnnouncer()
        return Bot(load_both(announcer), announcer, store, aws)

    return deploy


@pytest.fixture
def account(aws: AwsContext) -> AwsContext:
    """The account the samples in events/ describe (designed account + wonjun_admin + mina_dev)."""
    seed_sample_account(aws.iam())
    return aws
