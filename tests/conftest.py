"""Shared fixtures: AWS on moto (in-process or a real HTTP server), a findings table, a Lambda context."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

# Set before anything imports boto3 or moto: no real AWS, ever.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "iamguard",
        "POWERTOOLS_SERVICE_NAME": "iamguard",
        "FINDINGS_TABLE": "iamguard-findings-test",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local import moto_ext
from iamguard_cli.local.bootstrap import ensure_findings_table
from iamguard_cli.local.lambda_context import LambdaContext
from iamguard_cli.local.server import MotoServer
from moto import mock_aws

REPO = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO / "events"
ACCOUNT_ID = "123456789012"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `sam local invoke -e` uses)."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return loaded


@pytest.fixture(autouse=True)
def _fresh_powertools_metrics() -> None:
    """Powertools keeps metrics in process-wide state: a test sees only the metrics of its own handler runs."""
    Metrics(namespace="iamguard").clear_metrics()


@pytest.fixture
def aws() -> Iterator[AwsContext]:
    """In-process moto with AWS managed policies and root state; a fresh account per test."""
    with mock_aws():
        moto_ext.install()
        moto_ext.reset()
        yield AwsContext(region="us-east-1", retry_mode="standard", max_attempts=2)
    moto_ext.reset()


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def moto_server(_moto_server: MotoServer) -> Iterator[MotoServer]:
    """A moto server on 127.0.0.1 (real HTTP), reset to an empty account for each test."""
    _moto_server.reset()
    yield _moto_server
    moto_ext.reset()


@pytest.fixture
def server_aws(moto_server: MotoServer) -> AwsContext:
    return AwsContext(region="us-east-1", endpoint_url=moto_server.url, retry_mode="standard", max_attempts=2)


@pytest.fixture
def store(aws: AwsContext) -> FindingsStore:
    findings_store = FindingsStore(aws.dynamodb(), os.environ["FINDINGS_TABLE"])
    ensure_findings_table(findings_store)
    return findings_store


def fake_lambda_context() -> LambdaContext:
    """The context a test hands a handler: the test function, a generous deadline for a loaded machine."""
    return LambdaContext.for_function("iamguard-test", ACCOUNT_ID, timeout_seconds=300)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return fake_lambda_context()
