"""The findings store of an organization hub: member audits at once, and what one member audit reads.

Each account's full audit reads its own findings from the table's `account` index and rewrites only
its own summary item; `GET /status` sums the accounts' items. Audits of several accounts running at
the same moment (threads, each held at its first write until all have read) therefore leave every
account's summary and the organization's exact, and the items one audit reads do not grow with
the findings of the other accounts.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from iamguard.api.errors import BadRequest
from iamguard.api.pagination import encode_token, query_fingerprint
from iamguard.api.service import StatusService
from iamguard.aws import AwsContext
from iamguard.domain.findings import Finding, Severity, Status, Transition
from iamguard.persistence import summary
from iamguard.persistence.findings import FindingsStore, finding_to_item
from iamguard.persistence.table import to_ddb
from iamguard.settings.api import ApiSettings
from iamguard_cli.local.bootstrap import ensure_findings_table

from tests.factories import ACCOUNT, NOW, finding

HUB = "111111111111"
MEMBERS = [f"2000000000{n:02d}" for n in range(6)]
ORGANIZATION = "o-exampleorg1"


def in_account(found: Finding, account: str) -> Finding:
    """The factory's finding, about the same-named resource of `account`."""
    name = account if found.resource_type == "account" else found.resource_name
    arn = found.resource_arn.replace(ACCOUNT, account)
    return found.model_copy(update={"account_id": account, "resource_arn": arn, "resource_name": name})


def audit_of(account: str, users: int, at=NOW) -> list[Finding]:  # type: ignore[no-untyped-def]
    """One account's audit: `users` users (every third without MFA, some admin), root and the account."""
    found = [finding("root_mfa_enabled", user=None, status=Status.FAIL, severity=Severity.CRITICAL, at=at)]
    found.append(finding("password_policy", user=None, status=Status.PASS, severity=Severity.MEDIUM, at=at))
    for n in range(users):
        name = f"user{n:03d}"  # the same names in every account
        found.append(finding("user_console_mfa", user=name, status=Status.FAIL if n % 3 == 0 else Status.PASS, at=at))
        found.append(finding("user_admin_access", user=name, status=Status.FAIL if n % 4 == 1 else Status.PASS, at=at))
    return [in_account(f, account) for f in found]


@pytest.fixture
def hub_store(aws: AwsContext) -> FindingsStore:
    store = FindingsStore(aws.dynamodb(), os.environ["FINDINGS_TABLE"], home_account=HUB)
    ensure_findings_table(store)
    return store


def counters(findings: list[Finding]) -> dict[str, Any]:
    by_status, failed, users = summary.counters(summary.tally(findings))
    return {"findings": by_status, "failed_by_severity": failed, "users": users}


def reported(report: dict[str, Any]) -> dict[str, Any]:
    users = {name: report["users"][name] for name in summary.STANDINGS}
    return {"findings": report["findings"], "failed_by_severity": report["failed_by_severity"], "users": users}


def test_concurrent_member_audits_leave_the_organization_summary_equal_to_the_sum_of_the_accounts(
    aws: AwsContext, hub_store: FindingsStore
) -> None:
    # Given six member audits, each with users of the same names (each account's are its own)
    audits = {account: audit_of(account, users=4 + n) for n, account in enumerate(MEMBERS)}
    # held at their first write until every one has read what is stored: the worst interleaving
    barrier = threading.Barrier(len(MEMBERS), timeout=60)
    waited = threading.local()

    def hold(**_: Any) -> None:
        if not getattr(waited, "done", False) and threading.current_thread().name.startswith("member-audit"):
            waited.done = True
            barrier.wait()

    hub_store.client.meta.events.register("before-call.dynamodb.PutItem", hold)

    def audit(account: str) -> None:
        hub_store.record(audits[account], full_audit_account=account)
        hub_store.record_audit_run(
            started_at=NOW,
            finished_at=NOW + timedelta(seconds=5),
            account_id=account,
            summary={},
            errors={},
            api_calls=1,
        )

    # When they run at the same time
    threads = [threading.Thread(target=audit, args=(a,), name=f"member-audit-{a}") for a in MEMBERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    hub_store.client.meta.events.unregister("before-call.dynamodb.PutItem", hold)

    # Then each account's summary is its own audit's, and the organization's is their sum
    service = StatusService(
        hub_store, ApiSettings(), clock=lambda: NOW + timedelta(minutes=1), organization_id=ORGANIZATION
    )
    for account, findings in audits.items():
        assert reported(service.account_status(account).model_dump(mode="json")) == counters(findings), account
    everything = [f for findings in audits.values() for f in findings]
    counted = FindingsStore(aws.dynamodb(), hub_store.table, home_account=HUB)
    reads = ItemsRead(counted)
    organization = StatusService(counted, ApiSettings(), clock=service.clock, organization_id=ORGANIZATION).status()
    assert dict(reads.calls) == {"Query": 2}  # the accounts' summaries and their latest runs, at any size
    assert reported(organization.model_dump(mode="json")) == counters(everything)
    assert organization.users.total == sum(4 + n for n in range(len(MEMBERS)))  # six user000: six users
    assert organization.accounts is not None and organization.accounts.total == len(MEMBERS)


class ItemsRead:
    """Counts the items DynamoDB read for the calls of one client (ScannedCount: before any filter)."""

    def __init__(self, store: FindingsStore) -> None:
        self.items = 0
        self.calls: Counter[str] = Counter()
        store.client.meta.events.register("after-call.dynamodb", self._count)

    def _count(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name in {"Query", "Scan"}:
            self.items += int(parsed.get("ScannedCount", 0))
        elif model.name == "GetItem":
            self.items += 1 if "Item" in parsed else 0
        elif model.name == "BatchGetItem":
            self.items += sum(len(found) for found in parsed.get("Responses", {}).values())


def bulk_load(store: FindingsStore, findings: list[Finding]) -> None:
    """What the other accounts' audits stored, written 25 items a request."""
    items = [to_ddb(finding_to_item(f, 1, Transition.RECORDED, home_account=store.home_account)) for f in findings]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        store.client.batch_write_item(RequestItems={store.table: batch})  # type: ignore[dict-item]


def test_one_member_audit_reads_only_its_own_account_however_many_findings_the_others_have(
    aws: AwsContext, hub_store: FindingsStore
) -> None:
    audited, others = MEMBERS[0], MEMBERS[1:3]
    # Given the member's earlier audit, and the other accounts each audited once (small)
    hub_store.record(audit_of(audited, users=10), full_audit_account=audited)
    for account in others:
        hub_store.record(audit_of(account, users=1), full_audit_account=account)

    def next_audit(hours: int) -> ItemsRead:
        counted = FindingsStore(aws.dynamodb(), hub_store.table, home_account=HUB)  # a client of its own, counted
        reads = ItemsRead(counted)
        counted.record(audit_of(audited, users=10, at=NOW + timedelta(hours=hours)), full_audit_account=audited)
        return reads

    small = next_audit(hours=1)
    # When the other accounts come to hold many findings
    bulk_load(hub_store, [f for account in others for f in audit_of(account, users=150)])
    large = next_audit(hours=2)

    # Then the member's audit read exactly as many items as before: its own 22 findings, and nothing of
    # another account (an organization's GET /status sums the accounts' summaries: no table-wide sum is kept)
    assert large.items == small.items == 22, (small.items, large.items)
    assert large.calls["Scan"] == 0 and large.calls["Query"] == small.calls["Query"] == 3, dict(large.calls)
    assert hub_store.summary_and_audit()[0] is None


def test_one_accounts_findings_and_users_are_queried_from_its_index_partition_page_by_page(
    aws: AwsContext, hub_store: FindingsStore
) -> None:
    # Given the hub's and three members' audits, with the same user names in each
    for account in (HUB, *MEMBERS[:3]):
        hub_store.record(audit_of(account, users=5), full_audit_account=account)
    wanted = MEMBERS[1]
    counted = FindingsStore(aws.dynamodb(), hub_store.table, home_account=HUB)
    reads = ItemsRead(counted)
    indexes: Counter[tuple[str, str | None]] = Counter()

    def index_of(params: dict[str, Any], model: Any, **_: Any) -> None:
        indexes[(model.name, params.get("IndexName"))] += 1

    counted.client.meta.events.register("before-parameter-build.dynamodb", index_of)
    service = StatusService(counted, ApiSettings(), clock=lambda: NOW + timedelta(minutes=1))

    # When GET /findings?account= and GET /users?account= are read a few at a time, following next_token
    def every_page(read: Any) -> list[Any]:
        pages, token = [], None
        while True:
            page = read(token)
            pages.append(page)
            if (token := page.next_token) is None:
                return pages

    findings = every_page(lambda token: service.findings(account=wanted, limit=5, next_token=token))
    failing = every_page(lambda token: service.findings(account=wanted, status=Status.FAIL, limit=2, next_token=token))
    users = every_page(lambda token: service.users(account=wanted, limit=2, next_token=token))

    # Then the answers are exactly the account's, each once
    own = audit_of(wanted, users=5)
    listed = [(f.check_id, f.resource_name, f.account_id) for page in findings for f in page.findings]
    assert sorted(listed) == sorted((f.check_id, f.resource_name, wanted) for f in own)
    listed_failing = [(f.check_id, f.resource_name) for page in failing for f in page.findings]
    assert sorted(listed_failing) == sorted((f.check_id, f.resource_name) for f in own if f.status is Status.FAIL)
    names = [(u.account_id, u.name) for page in users for u in page.users]
    assert names == [(wanted, f"user{n:03d}") for n in range(5)]
    assert len(users) == 3 and len(findings) == 3
    # and every read was a Query of the account index: no Scan, no other account's finding read
    assert set(indexes) == {("Query", "account")}
    assert indexes[("Query", "account")] == len(findings) + len(failing) + len(users)
    per_call = reads.items / sum(reads.calls.values())
    assert per_call <= len(own) + 2  # its findings and its summary items, never the table's 48 findings

    # and a token is bound to its account: another account's resume key is refused
    forged = encode_token(
        {"pk": f"USER#{MEMBERS[0]}#user001", "sk": "CHECK#user_mfa", "account_id": MEMBERS[0]},
        query_fingerprint(endpoint="users", account=wanted),
    )
    with pytest.raises(BadRequest):
        service.users(account=wanted, next_token=forged)


def test_an_organizations_events_move_only_their_accounts_summary_and_status_stays_exact(
    aws: AwsContext, hub_store: FindingsStore
) -> None:
    # Given two member audits stored in the hub's table
    first, second = MEMBERS[:2]
    for account in (first, second):
        hub_store.record(audit_of(account, users=3), full_audit_account=account)
    latest = hub_store.summary_and_audit()[0]
    steps: list[list[dict[str, Any]]] = []

    def transaction(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            steps.append(params["TransactItems"])

    hub_store.client.meta.events.register("before-parameter-build.dynamodb", transaction)
    # When an event of the first member fails a check its user passed, and opens a new user
    passed = next(f for f in audit_of(first, users=3) if f.status is Status.PASS and f.resource_type == "user")
    failing = passed.model_copy(update={"status": Status.FAIL, "observed_at": NOW + timedelta(minutes=1)})
    new_user = in_account(finding("user_console_mfa", user="late", status=Status.FAIL, at=NOW), first)
    hub_store.record_resources([failing])
    hub_store.record_resources([new_user], read=[hub_store.new_resource("user", "late", first)])
    hub_store.client.meta.events.unregister("before-parameter-build.dynamodb", transaction)

    # Then each transaction updated the account's summary and not the table-wide one, which nothing reads here
    summaries = [step["Update"]["Key"]["sk"]["S"] for items in steps for step in items if "Update" in step]
    assert summaries == [summary.account_sk(first)] * 2
    assert hub_store.summary_and_audit()[0] == latest
    # and the organization's GET /status, the sum of the accounts' items, counts exactly what is stored
    service = StatusService(
        hub_store, ApiSettings(), clock=lambda: NOW + timedelta(minutes=2), organization_id=ORGANIZATION
    )
    stored = hub_store.findings()
    assert reported(service.status().model_dump(mode="json")) == counters(stored)
    assert reported(service.account_status(first).model_dump(mode="json")) == counters(
        [f for f in stored if f.account_id == first]
    )
