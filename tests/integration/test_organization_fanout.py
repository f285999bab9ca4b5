"""Organization mode's Lambda fan-out on moto over HTTP: the planner's messages, the SQS-driven audit of
each account (one without the member role), and what GET /accounts and /status answer afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from iamguard.audit.fanout import AuditRequest
from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.settings import Settings
from iamguard_cli.local.api_server import serve_in_thread
from iamguard_cli.local.bootstrap import ensure_findings_table

from tests.integration.api_support import call
from tests.integration.organization_support import HUB_ACCOUNT, Organization, build_organization, member
from tests.integration.test_api_exceptions import body as exception_body
from tests.integration.test_api_exceptions import send
from tests.support.template import load_handler

TABLE = "org-findings"


@dataclass(frozen=True)
class Hub:
    aws: AwsContext
    org: Organization
    store: FindingsStore
    queue_url: str


@pytest.fixture
def hub(server_aws: AwsContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    org = build_organization(server_aws)
    store = FindingsStore(server_aws.dynamodb(), TABLE, home_account=HUB_ACCOUNT)
    ensure_findings_table(store)
    queue_url = server_aws.client("sqs").create_queue(QueueName="audit-queue")["QueueUrl"]
    # The functions' environment in organization mode; their clients reach moto over HTTP.
    monkeypatch.setenv("AWS_ENDPOINT_URL", str(server_aws.endpoint_url))
    monkeypatch.setenv("ORGANIZATION_ID", org.id)
    monkeypatch.setenv("HUB_ACCOUNT_ID", HUB_ACCOUNT)
    monkeypatch.setenv("FINDINGS_TABLE", TABLE)
    monkeypatch.setenv("AUDIT_QUEUE_URL", queue_url)
    yield Hub(server_aws, org, store, queue_url)


def queued(hub: Hub) -> list[dict[str, Any]]:
    """Every message on the audit queue, as the SQS event source mapping hands them to the function."""
    sqs = hub.aws.client("sqs")
    records = []
    while messages := sqs.receive_message(QueueUrl=hub.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            records.append({"messageId": message["MessageId"], "body": message["Body"], "eventSource": "aws:sqs"})
            sqs.delete_message(QueueUrl=hub.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return records


def test_the_planner_queues_one_audit_per_active_account_and_counts_stale_ones(hub: Hub, lambda_context: Any) -> None:
    # Given a closed account besides the hub and the three members
    hub.aws.client("organizations").close_account(AccountId=hub.org.members[1])
    planner = load_handler("plan_audit")
    answer = planner.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context)
    active = sorted([HUB_ACCOUNT, hub.org.members[0], hub.org.members[2]])
    assert answer == {"accounts": 3, "queued": 3, "failed": {}, "stale": active}  # none audited yet
    bodies = [json.loads(r["body"]) for r in queued(hub)]
    assert sorted(b["account_id"] for b in bodies) == active
    assert {b["name"] for b in bodies} >= {"member-0", "member-2"}
    assert all(set(b) == {"account_id", "name", "planned_at"} for b in bodies)


def test_each_queued_account_is_audited_on_its_own_and_accounts_answer(hub: Hub, lambda_context: Any) -> None:
    planner = load_handler("plan_audit")
    planner.lambda_handler({}, lambda_context)
    audit = load_handler("audit_account")
    records = queued(hub)
    assert len(records) == 4
    # When each message is delivered on its own (batch size 1), plus one that is no audit request
    answers = [audit.lambda_handler({"Records": [record]}, lambda_context) for record in records]
    garbage = {"messageId": "not-a-plan", "body": "{}", "eventSource": "aws:sqs"}
    rejected = audit.lambda_handler({"Records": [garbage]}, lambda_context)
    forged = json.dumps({"account_id": "../../x", "name": "", "planned_at": "2026-11-30T00:00:00+00:00"})
    assert audit.lambda_handler(
        {"Records": [{"messageId": "forged", "body": forged, "eventSource": "aws:sqs"}]}, lambda_context
    ) == {"batchItemFailures": [{"itemIdentifier": "forged"}]}

    # Then every account's message is done, and only the malformed one is handed back to SQS
    assert all(answer == {"batchItemFailures": []} for answer in answers)
    assert rejected == {"batchItemFailures": [{"itemIdentifier": "not-a-plan"}]}
    findings = hub.store.findings()
    by_account: dict[str, set[tuple[str, str, str]]] = {}
    for f in findings:
        by_account.setdefault(f.account_id, set()).add((f.check_id, f.resource_name, f.status.value))
    first, second, missing = hub.org.members
    assert ("user_admin_without_mfa", "admin-0", "FAIL") in by_account[first]
    assert not any(name == "admin-0" for _, name, _ in by_account[second])
    assert ("member_audit_access", second, "PASS") in by_account[second]
    [error] = [f for f in findings if f.account_id == missing]
    assert (error.check_id, error.status.value) == ("member_audit_access", "ERROR")
    assert f"arn:aws:iam::{missing}:role/iamguard-member-audit" in error.detail and "StackSet" in error.detail

    # and the planner no longer counts the audited accounts as stale
    assert planner.lambda_handler({}, lambda_context)["stale"] == []

    # and the status API answers per account and for the organization, over HTTP
    server = serve_in_thread(hub.aws, TABLE, settings=Settings.from_env())
    try:
        accounts = call(server.url, "/accounts")
        assert accounts.status == 200 and accounts.body["organization_id"] == hub.org.id
        verdicts = {a["account_id"]: a["verdict"] for a in accounts.body["accounts"]}
        assert verdicts[first] == "non_compliant"
        assert verdicts[missing] == "unknown"
        assert set(verdicts) == {HUB_ACCOUNT, first, second, missing}
        entry = next(a for a in accounts.body["accounts"] if a["account_id"] == missing)
        assert entry["findings"]["ERROR"] == 1 and entry["last_audit"]["errors"]["member_role"].startswith("cannot")

        one = call(server.url, f"/accounts/{first}/status")
        assert one.status == 200 and one.body["account_id"] == first and one.body["verdict"] == "non_compliant"
        assert one.body["users"]["non_compliant"] == 1
        assert call(server.url, "/accounts/999999999999/status").status == 404
        assert call(server.url, "/accounts/not-an-id/status").status == 400

        filtered = call(server.url, f"/findings?account={missing}")
        assert [f["check_id"] for f in filtered.body["findings"]] == ["member_audit_access"]
        users = call(server.url, f"/users?account={second}")
        assert [u["name"] for u in users.body["users"]] == ["dev-1"]

        status = call(server.url, "/status")
        assert status.body["organization_id"] == hub.org.id
        assert status.body["verdict"] == "non_compliant"
        # the hub's root and every audited member fail something; the one without the role is unknown
        assert status.body["accounts"] == {"total": 4, "compliant": 0, "non_compliant": 3, "unknown": 1}
        assert status.body["stale"] is False
    finally:
        server.stop()


def test_member_audits_keep_one_users_records_and_login_profile_facts_per_account(
    hub: Hub, lambda_context: Any
) -> None:
    # Given a console user "ops" that never signed in, in two members and in the hub
    first, second = hub.org.with_role
    ids = {}
    for account, ctx in [(first, member(hub.aws, first)), (second, member(hub.aws, second)), (HUB_ACCOUNT, hub.aws)]:
        ids[account] = ctx.iam().create_user(UserName="ops")["User"]["UserId"]
        ctx.iam().create_login_profile(UserName="ops", Password="Initial-Passw0rd!")
    audit = load_handler("audit_account", prefix="same_name")

    # When each member's queued audit runs
    for account in (first, second):
        body = AuditRequest(account, account, datetime.now(UTC)).body()
        record = {"messageId": account, "body": body, "eventSource": "aws:sqs"}
        assert audit.lambda_handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}

    # Then each account's ops has its own findings and its own login-profile facts (the audit's memory)
    for account in (first, second):
        stored = hub.store.findings_for_resource("user", "ops", account)
        assert stored and {(f.account_id, f.resource_arn) for f in stored} == {
            (account, f"arn:aws:iam::{account}:user/ops")
        }
        facts = LoginProfileStore.of(hub.store, account).recall()
        assert facts["ops"].user_id == ids[account]
    assert hub.store.findings_for_resource("user", "ops", HUB_ACCOUNT) == []
    assert "ops" not in LoginProfileStore.of(hub.store, HUB_ACCOUNT).recall()

    # and the organization's counts are the sum of the accounts' (two users named ops: two users)
    server = serve_in_thread(hub.aws, TABLE, settings=Settings.from_env())
    try:
        accounts = call(server.url, "/accounts").body["accounts"]
        status = call(server.url, "/status").body
        assert status["users"]["total"] == sum(a["users"]["total"] for a in accounts) == 4  # ops twice, admin-0, dev-1
        for key in ("findings", "failed_by_severity"):
            assert status[key] == {k: sum(a[key][k] for a in accounts) for k in status[key]}
        ops = call(server.url, f"/users/ops?account={second}").body
        assert ops["account_id"] == second and ops["arn"] == f"arn:aws:iam::{second}:user/ops"
    finally:
        server.stop()


def test_an_api_exception_holds_only_in_the_member_account_it_was_made_for(hub: Hub, lambda_context: Any) -> None:
    # Given a console administrator "boss" without MFA in two members
    first, second = hub.org.with_role
    for account in (first, second):
        iam = member(hub.aws, account).iam()
        iam.create_user(UserName="boss")
        iam.create_login_profile(UserName="boss", Password="Initial-Passw0rd!")
    audit = load_handler("audit_account", prefix="member_exceptions")
    server = serve_in_thread(hub.aws, TABLE, settings=Settings.from_env())
    try:
        # When exceptions for boss and for the account are made over HTTP for the first member only
        for path in ("/exceptions/*/boss", "/exceptions/*/account"):
            made = send(server.url, f"{path}?account={first}", "PUT", exception_body())
            assert made.status == 201 and made.body["account_id"] == first, made.text
        for malformed in ("12345", "1234567890123", "12345678901a", "../" + first):
            assert send(server.url, f"/exceptions/*/boss?account={malformed}", "PUT", exception_body()).status == 400
        assert call(server.url, "/exceptions?account=123").status == 400
        listed = call(server.url, "/exceptions").body["exceptions"]
        assert sorted((e["resource"], e["account_id"]) for e in listed) == [("account", first), ("boss", first)]
        assert call(server.url, f"/exceptions?account={second}").body["exceptions"] == []
        assert len(call(server.url, f"/exceptions?account={first}").body["exceptions"]) == 2

        # and each member's queued audit runs
        for account in (first, second):
            body = AuditRequest(account, account, datetime.now(UTC)).body()
            record = {"messageId": account, "body": body, "eventSource": "aws:sqs"}
            assert audit.lambda_handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}

        # Then the first member's boss and account checks (the organization's, org_*, too) are exempt,
        # and the second's fail
        def statuses(account: str, kinds: set[str]) -> set[str]:
            return {
                f.status.value
                for f in hub.store.findings()
                if f.account_id == account
                and f.resource_type in kinds
                and (f.resource_type != "user" or f.resource_name == "boss")
                and f.status.value != "PASS"
            }

        assert statuses(first, {"user"}) == {"EXEMPT"}
        assert statuses(second, {"user"}) == {"FAIL"}
        assert statuses(first, {"root", "account"}) == {"EXEMPT"}
        assert "FAIL" in statuses(second, {"root", "account"}) and "EXEMPT" not in statuses(second, {"root", "account"})
        boss = call(server.url, f"/users/boss?account={first}").body
        assert {f["exempt_source"] for f in boss["findings"] if f["status"] == "EXEMPT"} == {"api"}

        # and an exception is ended in its own account only
        assert send(server.url, f"/exceptions/*/boss?account={second}", "DELETE", b"").status == 404
        assert send(server.url, "/exceptions/*/boss", "DELETE", b"").status == 404  # the hub's: none
        ended = send(server.url, f"/exceptions/*/boss?account={first}", "DELETE", b"")
        assert ended.status == 200 and ended.body["account_id"] == first
        assert [e["resource"] for e in call(server.url, "/exceptions").body["exceptions"]] == ["account"]
    finally:
        server.stop()


def test_an_organization_check_is_excepted_in_the_member_account_it_was_made_for(
    hub: Hub, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a member StackSet with an instance in neither member (both fail the coverage check)
    first, second = hub.org.with_role
    cfn = hub.aws.client("cloudformation")
    cfn.create_stack_set(
        StackSetName="iamguard-member",
        TemplateBody=json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}),
    )
    monkeypatch.setenv("MEMBER_STACKSET_NAME", "iamguard-member")
    audit = load_handler("audit_account", prefix="member_org_exceptions")
    server = serve_in_thread(hub.aws, TABLE, settings=Settings.from_env())
    try:
        # When the security team excepts the first (a sandbox) from the coverage check, over HTTP
        path = f"/exceptions/org_member_stackset/account?account={first}"
        made = send(server.url, path, "PUT", exception_body(reason="sandbox: no member stack by design"))
        assert made.status == 201 and made.body["account_id"] == first, made.text
        # and each member's queued audit runs
        for account in (first, second):
            body = AuditRequest(account, account, datetime.now(UTC)).body()
            record = {"messageId": account, "body": body, "eventSource": "aws:sqs"}
            assert audit.lambda_handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}

        # Then the sandbox's coverage finding is exempt, saying by whom and why, and the other member's fails
        coverage = {f.account_id: f for f in hub.store.findings() if f.check_id == "org_member_stackset"}
        assert coverage[first].status.value == "EXEMPT" and coverage[second].status.value == "FAIL"
        assert (
            coverage[first].exempt_source == "api"
            and coverage[first].exempt_reason == "sandbox: no member stack by design"
        )
        assert coverage[first].detail.startswith("The StackSet iamguard-member has no instance in this account. (")
        # and the organization's other checks of the sandbox are judged as before
        other = {f.check_id: f.status.value for f in hub.store.findings() if f.account_id == first}
        assert other["org_member_console_users"] == "FAIL"  # admin-0 signs in with a password
        listed = call(server.url, f"/accounts/{first}/status").body
        assert listed["findings"]["EXEMPT"] >= 1

        # and once the exception is ended, the next audit reopens it
        assert send(server.url, path, "DELETE", b"").status == 200
        body = AuditRequest(first, first, datetime.now(UTC)).body()
        audit.lambda_handler(
            {"Records": [{"messageId": "again", "body": body, "eventSource": "aws:sqs"}]}, lambda_context
        )
        [again] = [f for f in hub.store.findings() if f.check_id == "org_member_stackset" and f.account_id == first]
        assert again.status.value == "FAIL"
    finally:
        server.stop()
