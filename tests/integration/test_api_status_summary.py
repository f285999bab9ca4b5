"""GET /status over HTTP answers from the account summary: three reads at any size, a full read's numbers.

The account: USERS users' findings as a finished audit left them (loaded in bulk, then the
audit's own write path recorded them and wrote the summary), then events that move users
between standings through the event path's transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from iamguard.api.service import StatusService
from iamguard.aws import AwsContext
from iamguard.domain.findings import Finding, Severity, Status, Transition
from iamguard.iam.inventory import CallCounter
from iamguard.persistence.findings import FindingsStore, finding_to_item
from iamguard.persistence.summary import SUMMARY_PK, SUMMARY_SK
from iamguard.persistence.table import item_key, to_ddb
from iamguard.settings.api import ApiSettings
from iamguard_cli.local.api_server import ApiServer
from iamguard_cli.local.bootstrap import ensure_findings_table

from tests.factories import NOW, finding
from tests.integration.api_support import call
from tests.integration.test_api_service import ACCOUNT

TABLE = "api-status-summary"
USERS = 400
READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
LATER = NOW + timedelta(minutes=10)


def user_findings(index: int, at=NOW) -> list[Finding]:  # type: ignore[no-untyped-def]
    name = f"user{index:05d}"
    mfa = Status.FAIL if index % 3 == 0 else Status.PASS
    admin = Status.FAIL if index % 7 == 0 else Status.EXEMPT if index % 11 == 0 else Status.PASS
    keys = Status.ERROR if index % 13 == 0 else Status.PASS
    return [
        finding("user_console_mfa", status=mfa, user=name, at=at),
        finding("user_mfa", status=mfa, user=name, at=at, severity=Severity.LOW),
        finding("user_admin_access", status=admin, user=name, at=at),
        finding("user_access_keys_rotated", status=keys, user=name, at=at, severity=Severity.MEDIUM),
    ]


def account_findings(at=NOW) -> list[Finding]:  # type: ignore[no-untyped-def]
    return [
        finding("root_mfa_enabled", user=None, status=Status.FAIL, at=at, severity=Severity.CRITICAL),
        finding("root_no_access_keys", user=None, status=Status.PASS, at=at),
        finding("password_policy", user=None, status=Status.FAIL, at=at, severity=Severity.MEDIUM),
        finding("account_alias_set", user=None, status=Status.PASS, at=at, severity=Severity.INFORMATIONAL),
    ]


def bulk_load(store: FindingsStore, findings: list[Finding]) -> None:
    """What earlier runs stored, written 25 items a request (the audit then re-observes it unchanged)."""
    items = [to_ddb(finding_to_item(f, 1, Transition.RECORDED)) for f in findings]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        store.client.batch_write_item(RequestItems={TABLE: batch})  # type: ignore[dict-item]


@pytest.fixture
def audited(server_aws: AwsContext) -> FindingsStore:
    store = FindingsStore(server_aws.dynamodb(), TABLE)
    ensure_findings_table(store)
    everything = [f for i in range(USERS) for f in user_findings(i)] + account_findings()
    bulk_load(store, everything)
    store.record(everything, full_audit_account=ACCOUNT)  # the audit's write path: the summary is rewritten
    store.record_audit_run(
        started_at=NOW, finished_at=NOW + timedelta(seconds=3), account_id=ACCOUNT, summary={}, errors={}, api_calls=9
    )
    return store


@pytest.fixture
def counted_api(server_aws: AwsContext, audited: FindingsStore) -> Iterator[tuple[ApiServer, CallCounter]]:
    counter = CallCounter()
    store = FindingsStore(counter.attach(server_aws.dynamodb()), TABLE)
    server = ApiServer(StatusService(store, ApiSettings(), clock=lambda: LATER + timedelta(minutes=1))).start()
    yield server, counter
    server.stop()


def full_answer(store: FindingsStore) -> dict[str, Any]:
    service = StatusService(store, ApiSettings(), clock=lambda: LATER + timedelta(minutes=1))
    return service.computed_status(store.latest_audit()).model_dump(mode="json")


def reads(counter: CallCounter) -> dict[str, int]:
    return {name: count for name, count in counter.calls.items() if name in READS}


def test_status_reads_the_summary_not_every_finding(
    counted_api: tuple[ApiServer, CallCounter], audited: FindingsStore
) -> None:
    # Given events after the audit: user 0 enrols MFA (non-compliant -> compliant), user 1 loses
    # it (compliant -> non-compliant), a new user appears failing, and root's finding escalates
    events = [f.model_copy(update={"status": Status.PASS}) for f in user_findings(0, LATER)]
    events += [f.model_copy(update={"status": Status.FAIL}) for f in user_findings(1, LATER)[:2]]
    events += [finding("user_console_mfa", status=Status.FAIL, user="newcomer", at=LATER)]
    events += [finding("user_mfa", status=Status.PASS, user="newcomer", at=LATER, severity=Severity.LOW)]
    changes = audited.record_resources(events)
    assert {c.finding.resource_name for c in changes if c.transition is Transition.OPENED} == {"user00001", "newcomer"}
    server, counter = counted_api

    # When GET /status is asked over HTTP
    counter.calls.clear()
    reply = call(server.url, "/status")

    # Then it made at most three reads, none of them a scan, and says what a full read says
    assert reply.status == 200, reply.text
    assert sum(reads(counter).values()) <= 3, reads(counter)
    assert "Scan" not in counter.calls
    expected = full_answer(audited)
    body = dict(reply.body)
    assert {k: v for k, v in body.items() if k != "generated_at"} == {
        k: v for k, v in expected.items() if k != "generated_at"
    }
    assert body["users"]["total"] == USERS + 1
    assert body["verdict"] == "non_compliant"
    assert [c["check_id"] for c in body["root"]] == ["root_mfa_enabled", "root_no_access_keys"]


def test_drift_is_healed_by_the_next_audit(counted_api: tuple[ApiServer, CallCounter], audited: FindingsStore) -> None:
    # Given a summary that drifted (say, a transaction that committed between the audit's read and its rewrite)
    audited.client.update_item(
        TableName=TABLE,
        Key=item_key(SUMMARY_PK, SUMMARY_SK),
        UpdateExpression="ADD findings_FAIL :n, users_compliant :n",
        ExpressionAttributeValues={":n": {"N": "5"}},
    )
    server, _ = counted_api
    assert call(server.url, "/status").body["findings"] != full_answer(audited)["findings"]

    # When the next audit records the account
    again = [f for i in range(USERS) for f in user_findings(i)] + account_findings()
    audited.record(again, full_audit_account=ACCOUNT)

    # Then the answer is a full read's again
    body = call(server.url, "/status").body
    expected = full_answer(audited)
    assert (body["findings"], body["users"], body["failed_by_severity"]) == (
        expected["findings"],
        expected["users"],
        expected["failed_by_severity"],
    )
