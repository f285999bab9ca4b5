"""The status API against its OpenAPI contract: the committed file, and schemathesis over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from iamguard.api import openapi_document, openapi_json
from iamguard.aws import AwsContext
from iamguard_cli.local.api_server import serve_in_thread
from iamguard_cli.local.server import MotoServer
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.conftest import REPO
from tests.integration.api_support import audit, reset_moto, seed_account

TABLE = "api-contract"
COMMITTED = REPO / "docs" / "openapi.json"
schema = schemathesis.openapi.from_dict(openapi_document())


def test_committed_openapi_is_what_the_resolver_generates() -> None:
    assert COMMITTED.read_text() == openapi_json(), "regenerate: iamguard api openapi > docs/openapi.json"
    printed = subprocess.run(
        [sys.executable, "-m", "iamguard_cli", "api", "openapi"], capture_output=True, text=True, check=True
    )
    assert printed.stdout == COMMITTED.read_text()
    document = json.loads(printed.stdout)
    assert document["openapi"].startswith("3.1")
    assert {path: sorted(ops) for path, ops in document["paths"].items()} == {
        "/status": ["get"],
        "/users": ["get"],
        "/users/{name}": ["get"],
        "/findings": ["get"],
        "/events": ["get"],
        "/trend": ["get"],
        "/audit": ["post"],
        "/compliance/{framework}": ["get"],
        "/accounts": ["get"],
        "/accounts/{account_id}/status": ["get"],
        "/exceptions": ["get"],
        "/exceptions/{check_id}/{resource}": ["delete", "put"],
    }


@pytest.fixture(scope="module")
def base_url(_moto_server: MotoServer) -> Iterator[str]:
    """The seeded, audited account served on 127.0.0.1 for the whole property-based run."""
    reset_moto(_moto_server)
    aws = AwsContext(region="us-east-1", endpoint_url=_moto_server.url, retry_mode="standard", max_attempts=2)
    seed_account(aws)
    audit(_moto_server.url, TABLE)
    server = serve_in_thread(aws, TABLE)
    yield server.url
    server.stop()


def valid_requests_are_answered(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' positive_data_acceptance, knowing that an opaque next_token can be well formed yet unknown.

    A request the schema allows must get 2xx, or 404 for a user, framework or account that does not exist; 400 only
    for a next_token this API did not issue, which a schema cannot describe.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 400 and "next_token" in (case.query or {}):
        assert response.json()["message"] == "next_token is not a token this API issued"
        return
    named = case.operation.path in {"/users/{name}", "/compliance/{framework}", "/accounts/{account_id}/status"}
    allowed = {200, 202} | ({404} if named else set())  # an unknown name is a 404
    if case.operation.path == "/exceptions/{check_id}/{resource}":
        # What a schema cannot say: the check id must be in the catalog (and fit the resource), expires must be
        # within EXCEPTION_MAX_DAYS of today; DELETE of an exception that does not exist is 404.
        if response.status_code == 400:
            assert re.search(
                r"Unknown check id|check of the account|expires .* (in the past|too far)|must not be blank",
                response.text,
            )
            return
        allowed |= {201} if case.method.upper() == "PUT" else {404}
    assert response.status_code in allowed, f"valid request answered {response.status_code}: {response.text}"


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_honours_its_contract(case: Any, base_url: str) -> None:
    # Authorization is API Gateway's job (AWS_IAM or an API key); the local server has none,
    # so schemathesis' ignored_auth check does not apply here.
    case.call_and_validate(
        base_url=base_url,
        excluded_checks=[ignored_auth, positive_data_acceptance],
        additional_checks=[valid_requests_are_answered],
    )
