"""PUT, GET and DELETE /exceptions over real HTTP (`iamguard serve`'s server on moto), and what audits make of them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from iamguard.api.app import create_app
from iamguard.aws import AwsContext
from iamguard.persistence.table import to_ddb
from iamguard_cli.local.api_server import ApiServer, proxy_event, serve_in_thread
from iamguard_cli.local.lambda_context import LambdaContext
from iamguard_cli.local.server import MotoServer

from tests.integration.api_support import Reply, audit, call, seed_account

TABLE = "api-exceptions"
TODAY = datetime.now(UTC).date()
CONSOLE = "/exceptions/user_console_mfa/dave_new"


def send(base_url: str, path: str, method: str, body: Any) -> Reply:
    """One request with a JSON body (bytes are sent as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    text = raw.decode()
    return Reply(status, headers, json.loads(text) if text else None, text)


def body(days: int = 30, **overrides: Any) -> dict[str, Any]:
    return {
        "owner": "secops@example.com",
        "reason": "dave's token is on its way",
        "expires": (TODAY + timedelta(days=days)).isoformat(),
        **overrides,
    }


@pytest.fixture
def api(server_aws: AwsContext, moto_server: MotoServer) -> Iterator[ApiServer]:
    seed_account(server_aws)
    audit(moto_server.url, TABLE)
    server = serve_in_thread(server_aws, TABLE)
    yield server
    server.stop()


@pytest.fixture
def empty_api(server_aws: AwsContext, moto_server: MotoServer) -> Iterator[ApiServer]:
    """The API over an empty table: what the rules refuse needs no account."""
    server = serve_in_thread(server_aws, TABLE, create_table=True)
    yield server
    server.stop()


def console_finding(report: dict[str, Any]) -> dict[str, Any]:
    [found] = [
        f for f in report["findings"] if f["resource_name"] == "dave_new" and f["check_id"] == "user_console_mfa"
    ]
    return found


def test_an_exception_is_made_applied_listed_and_ended_over_http(api: ApiServer, moto_server: MotoServer) -> None:
    made = send(api.url, CONSOLE, "PUT", body())
    assert made.status == 201, made.text
    assert made.body == {
        "check_id": "user_console_mfa",
        "resource": "dave_new",
        "owner": "secops@example.com",
        "reason": "dave's token is on its way",
        "expires": (TODAY + timedelta(days=30)).isoformat(),
        "live": True,
        "created_at": made.body["created_at"],
        "created_by": "unauthenticated caller at 127.0.0.1",  # the local server has no IAM; API Gateway's does
        "account_id": None,  # a single-account deployment: it holds in its one account
    }
    replaced = send(api.url, CONSOLE, "PUT", body(days=10, reason="token shipped"))
    assert replaced.status == 200 and replaced.body["reason"] == "token shipped"

    listed = call(api.url, "/exceptions")
    assert listed.status == 200
    assert listed.body["max_days"] == 90
    assert [(e["check_id"], e["resource"], e["reason"], e["live"]) for e in listed.body["exceptions"]] == [
        ("user_console_mfa", "dave_new", "token shipped", True)
    ]

    exempt = console_finding(audit(moto_server.url, TABLE))  # the next audit applies it
    assert exempt["status"] == "EXEMPT"
    assert (exempt["exempt_source"], exempt["exempt_owner"], exempt["exempt_reason"], exempt["exempt_until"]) == (
        "api",
        "secops@example.com",
        "token shipped",
        (TODAY + timedelta(days=10)).isoformat(),
    )
    user = call(api.url, "/users/dave_new").body
    [stored] = [f for f in user["findings"] if f["check_id"] == "user_console_mfa"]
    assert stored["status"] == "EXEMPT" and stored["exempt_owner"] == "secops@example.com"
    assert user["status"] == "non_compliant"  # its other failing checks are not excepted
    page = call(api.url, "/findings?check_id=user_console_mfa&status=EXEMPT").body["findings"]
    assert "dave_new" in {f["resource_name"] for f in page}

    ended = send(api.url, CONSOLE, "DELETE", b"")
    assert ended.status == 200 and ended.body["reason"] == "token shipped"
    assert send(api.url, CONSOLE, "DELETE", b"").status == 404
    assert call(api.url, "/exceptions").body["exceptions"] == []
    assert console_finding(audit(moto_server.url, TABLE))["status"] == "FAIL"


def test_an_exception_of_the_account_is_named_account(api: ApiServer, moto_server: MotoServer) -> None:
    made = send(api.url, "/exceptions/root_hardware_mfa/account", "PUT", body(days=90))
    assert made.status == 201, made.text
    report = audit(moto_server.url, TABLE)
    [root] = [f for f in report["findings"] if f["check_id"] == "root_hardware_mfa"]
    assert root["status"] == "EXEMPT" and root["exempt_until"] == (TODAY + timedelta(days=90)).isoformat()
    [shown] = [c for c in call(api.url, "/status").body["root"] if c["check_id"] == "root_hardware_mfa"]
    assert (shown["status"], shown["exempt_owner"], shown["exempt_until"]) == (
        "EXEMPT",
        "secops@example.com",
        (TODAY + timedelta(days=90)).isoformat(),
    )


@pytest.mark.parametrize(
    ("path", "payload", "message"),
    [
        (CONSOLE, body(days=91), "at most 90 days"),
        (CONSOLE, body(days=-1), "is in the past"),
        ("/exceptions/user_console_mfx/dave_new", body(), "Unknown check id 'user_console_mfx'"),
        ("/exceptions/root_mfa_enabled/dave_new", body(), "its resource is 'account'"),
        (CONSOLE, body(owner=" \t "), "owner must not be blank"),
    ],
    ids=["too-long", "in-the-past", "unknown-check", "account-check-on-a-user", "blank-owner"],
)
def test_an_exception_the_rules_refuse_is_400_with_the_reason(
    empty_api: ApiServer, path: str, payload: dict[str, Any], message: str
) -> None:
    reply = send(empty_api.url, path, "PUT", payload)
    assert reply.status == 400, reply.text
    assert message in reply.body["message"]
    assert call(empty_api.url, "/exceptions").body["exceptions"] == []


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({"owner": "x", "reason": "y"}, "body.expires"),  # no open-ended exception
        (body(expires=None), "body.expires"),
        (body(expires="31/12/2026"), "body.expires"),
        (body(expires=1893456000), "body.expires"),  # seconds since 1970 are not a date here
        (body(owner=""), "body.owner"),
        (body(reason="x" * 513), "body.reason"),
        (body(owner=None), "body.owner"),
        (body(until="2026-12-31"), "body.until"),  # a misspelt field is not silently dropped
    ],
    ids=["no-expiry", "null-expiry", "day-first", "epoch", "empty-owner", "long-reason", "no-owner", "unknown-field"],
)
def test_a_malformed_body_is_400_naming_the_field(empty_api: ApiServer, payload: dict[str, Any], location: str) -> None:
    reply = send(empty_api.url, CONSOLE, "PUT", payload)
    assert reply.status == 400, reply.text
    assert location in {d["location"] for d in reply.body["details"]}
    assert call(empty_api.url, "/exceptions").body["exceptions"] == []


def test_a_body_that_is_not_json_is_refused(empty_api: ApiServer) -> None:
    assert send(empty_api.url, CONSOLE, "PUT", b"{owner: secops").status == 400
    data = json.dumps(body()).encode()
    for content_type, status in (("text/plain", 415), ("multipart/form-data", 400)):
        request = urllib.request.Request(
            empty_api.url + CONSOLE, data=data, method="PUT", headers={"Content-Type": content_type}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == status, content_type
    assert call(empty_api.url, "/exceptions").body["exceptions"] == []


def test_created_by_is_the_callers_iam_identity(empty_api: ApiServer) -> None:
    """Behind API Gateway with AWS_IAM, the request context names the signed caller."""
    app = create_app(lambda: empty_api.service)
    event = proxy_event("PUT", CONSOLE, [("Content-Type", "application/json")], json.dumps(body()).encode())
    event["requestContext"]["identity"].update(
        userArn="arn:aws:iam::123456789012:user/lead", caller="AIDALEAD", accessKey="ASIALEAD"
    )
    answer = app.resolve(event, LambdaContext.for_function("status-api", "123456789012", timeout_seconds=30))
    assert answer["statusCode"] == 201, answer["body"]
    assert json.loads(answer["body"])["created_by"] == "arn:aws:iam::123456789012:user/lead"


def test_an_exception_stored_before_accounts_existed_still_exempts(api: ApiServer, moto_server: MotoServer) -> None:
    """An item of the earlier layout (today's sort key, no account) in a single-account table, written by hand."""
    expires = (TODAY + timedelta(days=5)).isoformat()
    item = {
        "pk": "EXCEPTIONS",
        "sk": "user_console_mfa#dave_new",
        "kind": "exception",
        "check_id": "user_console_mfa",
        "resource": "dave_new",
        "owner": "secops@example.com",
        "reason": "written by an earlier version",
        "expires": expires,
        "created_at": "2026-11-01T00:00:00Z",
        "created_by": "arn:aws:iam::123456789012:user/lead",
        "expires_at": 1900000000,
    }
    api.service.store.client.put_item(TableName=TABLE, Item=to_ddb(item))

    exempt = console_finding(audit(moto_server.url, TABLE))
    assert (exempt["status"], exempt["exempt_reason"], exempt["exempt_until"]) == (
        "EXEMPT",
        "written by an earlier version",
        expires,
    )
    [listed] = call(api.url, "/exceptions").body["exceptions"]
    assert (listed["reason"], listed["account_id"]) == ("written by an earlier version", None)
    # ?account= names the one account of a single-account deployment: the same item, replaced and ended
    assert [e["reason"] for e in call(api.url, "/exceptions?account=123456789012").body["exceptions"]] == [
        "written by an earlier version"
    ]
    replaced = send(api.url, CONSOLE + "?account=123456789012", "PUT", body(reason="renewed"))
    assert replaced.status == 200 and replaced.body["account_id"] is None
    assert send(api.url, CONSOLE + "?account=123456789012", "DELETE", b"").status == 200
    assert call(api.url, "/exceptions").body["exceptions"] == []


@pytest.mark.parametrize(
    "account", ["12345678901", "1234567890123", "12345678901x", "%20123456789012", "123456789012%0A"]
)
def test_a_malformed_account_is_400(empty_api: ApiServer, account: str) -> None:
    for method, payload in (("PUT", body()), ("DELETE", b"")):
        reply = send(empty_api.url, f"{CONSOLE}?account={account}", method, payload)
        assert reply.status == 400, reply.text
        assert "query.account" in {d["location"] for d in reply.body["details"]}
    assert call(empty_api.url, f"/exceptions?account={account}").status == 400
    assert call(empty_api.url, "/exceptions").body["exceptions"] == []
