"""The organization audit on moto over HTTP: three members, one without the member role; the CLI's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from iamguard.audit.run import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.domain.exemptions import Exemption
from iamguard.domain.organization import ROOT_CREDENTIALS_MANAGEMENT
from iamguard.iam.inventory import Inventory
from iamguard.organization.accounts import active_accounts, list_accounts, organization_facts
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings
from iamguard_cli.local import moto_ext
from iamguard_cli.local.bootstrap import ensure_findings_table
from iamguard_cli.main import main

from tests.integration.organization_support import AUDIT_ROLE, HUB_ACCOUNT, build_organization, member


def audit_json(server_aws: AwsContext, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["audit", "--organization", "--endpoint-url", str(server_aws.endpoint_url), "--format", "json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_every_active_account_is_audited_and_the_one_without_the_role_is_an_error(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an organization whose last member has no member audit role
    org = build_organization(server_aws)
    # When the organization is audited from the management account
    code, report = audit_json(server_aws, capsys, "--concurrency", "3")
    # Then the report has exactly the organization's keys, one report per audited account
    assert list(report) == ["organization_id", "generated_at", "summary", "accounts", "errors"]
    assert report["organization_id"] == org.id
    audited = [a["account_id"] for a in report["accounts"]]
    assert audited == sorted([HUB_ACCOUNT, *org.with_role])
    for account in report["accounts"]:  # today's single-account report, unchanged
        assert list(account) == ["account_id", "generated_at", "summary", "errors", "findings"]
        assert {f["account_id"] for f in account["findings"]} == {account["account_id"]}
    # the missing role is that account's error, naming the StackSet; the others are unaffected
    assert list(report["errors"]) == org.without_role
    reason = report["errors"][org.without_role[0]]
    assert f"arn:aws:iam::{org.without_role[0]}:role/{AUDIT_ROLE}" in reason and "StackSet" in reason
    first = next(a for a in report["accounts"] if a["account_id"] == org.members[0])
    failing = {(f["check_id"], f["resource_name"]) for f in first["findings"] if f["status"] == "FAIL"}
    assert ("user_admin_without_mfa", "admin-0") in failing
    second = next(a for a in report["accounts"] if a["account_id"] == org.members[1])
    assert not any(f["resource_name"] == "admin-0" for f in second["findings"])
    access = [f for f in second["findings"] if f["check_id"] == "member_audit_access"]
    assert [f["status"] for f in access] == ["PASS"]
    summary = report["summary"]
    assert (summary["accounts"], summary["audited"], summary["unaudited"]) == (4, 3, 1)
    assert summary["by_status"]["FAIL"] == sum(a["summary"]["by_status"]["FAIL"] for a in report["accounts"])
    # failures found: exit 3, as a single-account audit
    assert code == 3


def test_accounts_filter_and_exit_1_when_no_account_could_be_audited(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str]
) -> None:
    org = build_organization(server_aws)
    code, report = audit_json(server_aws, capsys, "--accounts", f"{org.without_role[0]},999999999999")
    assert code == 1
    assert report["accounts"] == []
    assert report["errors"]["999999999999"] == "not an ACTIVE account of the organization"
    assert "member StackSet" in report["errors"][org.without_role[0]]

    code, report = audit_json(server_aws, capsys, "--accounts", org.with_role[1], "--fail-on", "none")
    assert code == 0
    assert [a["account_id"] for a in report["accounts"]] == [org.with_role[1]] and report["errors"] == {}

    endpoint = str(server_aws.endpoint_url)
    main(["audit", "--organization", "--endpoint-url", endpoint, "--accounts", org.with_role[0], "--format", "csv"])
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("account_id,check_id,severity,status")
    assert rows and all(row.startswith(f"{org.with_role[0]},") for row in rows)


def test_role_name_and_table_output(server_aws: AwsContext, capsys: pytest.CaptureFixture[str]) -> None:
    org = build_organization(server_aws, without_role=0)
    code = main(["audit", "--organization", "--endpoint-url", str(server_aws.endpoint_url), "--role-name", "not-there"])
    out = capsys.readouterr().out
    assert code == 3  # the hub's own account was audited; every member is an error
    for account_id in org.members:
        assert f"error: account {account_id} not audited: cannot assume arn:aws:iam::{account_id}:role/not-there" in out
    assert f"Organization {org.id}: 1 of 4 accounts audited" in out


def test_centralized_root_access_and_member_root_credentials(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given centralized root access enabled, and a member whose root still has a password (moto's default)
    org = build_organization(server_aws, without_role=0)
    moto_ext.organization_features.update({ROOT_CREDENTIALS_MANAGEMENT, "RootSessions"})
    for account_id in org.members[1:]:
        state = moto_ext.root(account_id)
        state.password = False
    _, report = audit_json(server_aws, capsys, "--accounts", ",".join(org.members))
    verdicts = {
        a["account_id"]: next(f for f in a["findings"] if f["check_id"] == "org_member_root_credentials")
        for a in report["accounts"]
    }
    assert verdicts[org.members[0]]["status"] == "FAIL"
    assert verdicts[org.members[0]]["detail"] == (
        "Centralized root access is enabled, yet this member account's root user still has a password."
    )
    assert {verdicts[m]["status"] for m in org.members[1:]} == {"PASS"}


def test_centralized_root_access_is_read_from_iam(server_aws: AwsContext) -> None:
    build_organization(server_aws, members=1, without_role=0)
    facts = organization_facts(server_aws, "o-abcdefghij", None)
    assert facts.root_features == frozenset() and facts.root_credentials_managed is False


def test_stackset_coverage(server_aws: AwsContext, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    # Given a member StackSet with an instance in the first member only
    org = build_organization(server_aws, without_role=0)
    cfn = server_aws.client("cloudformation")
    cfn.create_stack_set(
        StackSetName="iamguard-member",
        TemplateBody=json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}),
    )
    cfn.create_stack_instances(StackSetName="iamguard-member", Accounts=[org.members[0]], Regions=["us-east-1"])
    monkeypatch.setenv("MEMBER_STACKSET_NAME", "iamguard-member")
    _, report = audit_json(server_aws, capsys, "--accounts", ",".join(org.members[:2]))
    coverage = {
        a["account_id"]: next(f for f in a["findings"] if f["check_id"] == "org_member_stackset")
        for a in report["accounts"]
    }
    assert coverage[org.members[0]]["status"] == "PASS"
    assert coverage[org.members[1]]["status"] == "FAIL"
    assert coverage[org.members[1]]["detail"] == "The StackSet iamguard-member has no instance in this account."


def test_list_accounts_reads_state_then_status_over_every_page() -> None:
    hub = AwsContext(region="us-east-1")
    organizations = hub.client("organizations")
    stub = Stubber(organizations)
    stub.add_response(
        "list_accounts",
        {
            "Accounts": [
                {"Id": "111111111111", "Name": "prod", "State": "ACTIVE", "Status": "ACTIVE"},
                {"Id": "222222222222", "Name": "closing", "State": "PENDING_CLOSURE", "Status": "PENDING_CLOSURE"},
            ],
            "NextToken": "page-2",
        },
    )
    stub.add_response(
        "list_accounts",
        {
            "Accounts": [
                {"Id": "333333333333", "Name": "old-shape", "Status": "ACTIVE"},  # before State existed
                {"Id": "444444444444", "Name": "closed", "State": "CLOSED"},  # State only, after Status retires
                {"Id": "555555555555", "Name": "suspended", "State": "SUSPENDED", "Status": "SUSPENDED"},
            ]
        },
        {"NextToken": "page-2"},
    )
    stub.activate()

    class StubbedHub(AwsContext):
        def client(self, service: str) -> Any:
            return organizations

    accounts = list_accounts(StubbedHub(region="us-east-1"))
    assert [(a.id, a.state) for a in accounts] == [
        ("111111111111", "ACTIVE"),
        ("222222222222", "PENDING_CLOSURE"),
        ("333333333333", "ACTIVE"),
        ("444444444444", "CLOSED"),
        ("555555555555", "SUSPENDED"),
    ]
    stub.assert_no_pending_responses()


def test_only_active_accounts_are_listed_on_moto(server_aws: AwsContext) -> None:
    org = build_organization(server_aws, without_role=0)
    server_aws.client("organizations").close_account(AccountId=org.members[2])
    assert [a.id for a in active_accounts(server_aws)] == sorted([HUB_ACCOUNT, *org.members[:2]])


def test_stored_organization_audit_keys_a_members_users_by_account_and_the_hubs_as_before(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a user "ops" in the hub and in the first member
    org = build_organization(server_aws)
    for ctx in (server_aws, member(server_aws, org.members[0])):
        ctx.iam().create_user(UserName="ops")
    # When the organization's audit is stored from the management account
    code, _ = audit_json(server_aws, capsys, "--store", "--table", "org-cli-findings")
    assert code == 3
    # Then the hub's ops keeps the single-account key and the member's has its own
    store = FindingsStore(server_aws.dynamodb(), "org-cli-findings", home_account=HUB_ACCOUNT)
    for account in (HUB_ACCOUNT, org.members[0]):
        stored = store.findings_for_resource("user", "ops", account)
        assert stored and {f.resource_arn for f in stored} == {f"arn:aws:iam::{account}:user/ops"}
    keys = {item["pk"] for item, _ in store.finding_items(resource_type="user")}
    assert {"USER#ops", f"USER#{org.members[0]}#ops"} <= keys


def test_a_stored_organization_audit_applies_each_accounts_own_api_exceptions(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a user "ops" in the hub and in the first member, and an API exception for the member's ops only
    org = build_organization(server_aws)
    for ctx in (server_aws, member(server_aws, org.members[0])):
        ctx.iam().create_user(UserName="ops")
    store = FindingsStore(server_aws.dynamodb(), "org-cli-exceptions", home_account=HUB_ACCOUNT)
    ensure_findings_table(store)
    today = datetime.now(UTC)
    ExemptionStore.of(store).put(
        Exemption(
            check_id="*",
            resource="ops",
            owner="secops",
            reason="the member's ops only",
            expires=today.date() + timedelta(days=3),
            source="api",
            created_at=today,
            account_id=org.members[0],
        )
    )
    # When the organization's audit is stored
    audit_json(server_aws, capsys, "--store", "--table", "org-cli-exceptions")
    # Then the member's ops is exempt from what it fails, and the hub's ops (same name) fails it
    statuses = {
        account: {f.status.value for f in store.findings_for_resource("user", "ops", account)} - {"PASS"}
        for account in (HUB_ACCOUNT, org.members[0])
    }
    assert statuses == {HUB_ACCOUNT: {"FAIL"}, org.members[0]: {"EXEMPT"}}


def _organization_table_seen_by(server_aws: AwsContext, account_id: str, table: str) -> FindingsStore:
    """The hub's findings table, with what the hub's audit stored and two exceptions, reached by `account_id`.

    moto keeps DynamoDB per account and has no cross-account table access (a resource-based policy and
    the table's ARN, in AWS), so the table lives in that account's backend here; its items are the
    organization's, keyed as the hub writes them (home account: the hub).
    """
    store = FindingsStore(member(server_aws, account_id).dynamodb(), table, home_account=HUB_ACCOUNT)
    ensure_findings_table(store)
    today = datetime.now(UTC)
    for check_id, resource, account in (("*", "ops", HUB_ACCOUNT), ("user_admin_without_mfa", "admin-0", account_id)):
        ExemptionStore.of(store).put(
            Exemption(
                check_id=check_id,
                resource=resource,
                owner="secops",
                reason=f"only in {account}",
                expires=today.date() + timedelta(days=3),
                source="api",
                created_at=today,
                account_id=account,
            )
        )
    hub = run_audit(Inventory(server_aws), Settings.from_env(), exemptions=ExemptionStore.of(store).all())
    store_audit(hub, store)  # the hub's own users: USER#<name>
    return store


def _act_as(monkeypatch: pytest.MonkeyPatch, server_aws: AwsContext, account_id: str) -> None:
    """The CLI's credentials: the member's OrganizationAccountAccessRole session."""
    role = f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"
    credentials = server_aws.sts().assume_role(RoleArn=role, RoleSessionName="cli")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    monkeypatch.setenv("AWS_SECURITY_TOKEN", credentials["SessionToken"])


def test_a_single_account_audit_stored_from_a_members_credentials_keeps_to_that_account(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an organization's table: the hub's "ops" (excepted from everything, in the hub only) and an
    # exception for the member's admin-0; the member has an "ops" too
    org = build_organization(server_aws)
    first = org.members[0]
    server_aws.iam().create_user(UserName="ops")
    member(server_aws, first).iam().create_user(UserName="ops")
    store = _organization_table_seen_by(server_aws, first, "org-member-cli")
    hub_ops = {item["sk"]: item for item in store._partition("USER#ops")}
    assert {item["status"] for item in hub_ops.values()} >= {"EXEMPT"}
    # When the member audits itself with the deployment's settings, storing into that table
    monkeypatch.setenv("ORGANIZATION_ID", org.id)
    monkeypatch.setenv("HUB_ACCOUNT_ID", HUB_ACCOUNT)
    _act_as(monkeypatch, server_aws, first)
    endpoint = str(server_aws.endpoint_url)
    code = main(["audit", "--store", "--table", "org-member-cli", "--endpoint-url", endpoint, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 3 and report["account_id"] == first
    # Then the member's users are keyed by its account, and only its own exception applied
    ops = {item["sk"]: item for item in store._partition(f"USER#{first}#ops")}
    assert ops and {item["account_id"] for item in ops.values()} == {first}
    assert "EXEMPT" not in {item["status"] for item in ops.values()}  # the hub's exception stays in the hub
    admin = {item["sk"]: item["status"] for item in store._partition(f"USER#{first}#admin-0")}
    assert admin["CHECK#user_admin_without_mfa"] == "EXEMPT" and admin["CHECK#user_mfa"] == "FAIL"
    # the hub's ops is as the hub's audit left it
    assert {item["sk"]: item for item in store._partition("USER#ops")} == hub_ops
    assert {item["sk"] for item in store.account_findings(first)} >= {"CHECK#user_admin_without_mfa"}


def test_a_single_account_audit_without_organization_settings_refuses_an_organizations_table(
    server_aws: AwsContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the organization's table, reached from a member's credentials, and no organization settings
    org = build_organization(server_aws)
    first = org.members[0]
    store = _organization_table_seen_by(server_aws, first, "org-member-cli-bare")
    before = store.client.scan(TableName=store.table)["Items"]
    _act_as(monkeypatch, server_aws, first)
    # When the member's audit is stored there
    endpoint = str(server_aws.endpoint_url)
    code = main(["audit", "--store", "--table", store.table, "--endpoint-url", endpoint, "--format", "json"])
    # Then it is refused, naming why, before anything is written
    assert code == 2
    error = capsys.readouterr().err
    assert f"holds other accounts' findings ({HUB_ACCOUNT})" in error and "HUB_ACCOUNT_ID" in error
    assert store.client.scan(TableName=store.table)["Items"] == before
