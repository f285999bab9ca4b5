"""Organization mode, real time: the hub's event function takes events of member accounts (moto over HTTP).

Three member accounts made by Organizations, each with the member roles (created through its
OrganizationAccountAccessRole) and an alias; the hub is moto's default account, the organization's
management account. Each member's CreateUser is evaluated in that account through the member audit role:
findings are stored under it and the Slack message names it (id and alias). An account outside the
organization, and a member without the StackSet's roles, are rejected with their reasons and the
EventsRejected metric, and nothing is retried (the handler answers normally).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.client import BaseClient
from iamguard.aws import AwsContext
from iamguard.domain.exemptions import Exemption
from iamguard.organization.access import MemberAccess
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore, GuardrailRecord
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.persistence.table import iso, item_key, to_ddb
from iamguard.settings import Settings
from iamguard_cli.local.api_server import serve_in_thread
from iamguard_cli.local.bootstrap import ensure_findings_table, ensure_guardrail_policy, ensure_idempotency_table
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.conftest import ACCOUNT_ID, load_event
from tests.integration.api_support import call
from tests.integration.notify_support import slack_fixture  # noqa: F401
from tests.support.organization import member_account, organization_id
from tests.support.template import load_handler

ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass
class Hub:
    aws: AwsContext
    store: FindingsStore
    handler: ModuleType
    members: dict[str, AwsContext]  # account id → its administrator (OrganizationAccountAccessRole)
    aliases: dict[str, str]

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.handler.lambda_handler(event, context)
        return result


def create_user_event(account: str, user: str, event_id: str) -> dict[str, Any]:
    """CreateUser as the member account's EventBridge forwards it to the hub bus."""
    event = copy.deepcopy(load_event("create_user.json"))
    event["account"] = account
    detail = event["detail"]
    detail.update(recipientAccountId=account, eventID=event_id, requestParameters={"userName": user})
    detail["userIdentity"].update(accountId=account, arn=f"arn:aws:iam::{account}:root", principalId=account)
    detail["responseElements"]["user"].update(userName=user, arn=f"arn:aws:iam::{account}:user/{user}")
    return event


def admin_without_mfa(admin: AwsContext, user: str) -> None:
    iam = admin.iam()
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Initial-Passw0rd!")
    iam.put_user_policy(UserName=user, PolicyName="admin", PolicyDocument=ADMIN_POLICY)


@pytest.fixture
def hub(server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)  # the handler's own clients: the moto server
    store = FindingsStore(server_aws.dynamodb(), os.environ["FINDINGS_TABLE"], home_account=ACCOUNT_ID)
    ensure_findings_table(store)
    ensure_idempotency_table(server_aws.dynamodb(), "iamguard-idempotency-org")
    secret = server_aws.client("secretsmanager").create_secret(Name="iamguard/slack", SecretString=slack.url)["ARN"]
    members: dict[str, AwsContext] = {}
    aliases: dict[str, str] = {}
    for team in ("payments", "search", "data"):
        account, admin = member_account(server_aws, team, alias=f"{team}-prod")
        members[account] = admin
        aliases[account] = f"{team}-prod"
    for name, value in {
        "ORGANIZATION_ID": organization_id(server_aws),
        "HUB_ACCOUNT_ID": ACCOUNT_ID,
        "IDEMPOTENCY_TABLE": "iamguard-idempotency-org",
        "SLACK_SECRET_ARN": secret,
        "SEVERITY_ROUTING": "critical=slack,high=slack",
        "MODE": "monitor",
        "GUARDRAIL_POLICY_ARN": ensure_guardrail_policy(server_aws.iam(), ACCOUNT_ID),
        "IAMGUARD_ROLE_ARNS": f"arn:aws:iam::{ACCOUNT_ID}:role/iamguard-OnIamEventFunctionRole",
        "REQUIRED_POLICY_ARNS": "",
        "EXEMPT_USERS": "",
    }.items():
        monkeypatch.setenv(name, value)
    return Hub(server_aws, store, load_handler("on_iam_event", prefix="org"), members, aliases)


def texts(slack: SlackReceiver) -> list[str]:
    """Each Slack message as people read it (headline, fields, footer)."""
    return [slack.render(payload) for payload in slack.messages]


def rejections(printed: str) -> list[str]:
    """The `reason` dimension of each EventsRejected metric Powertools printed."""
    found = []
    for line in printed.splitlines():
        if '"EventsRejected"' in line:
            found.append(json.loads(line)["reason"])
    return found


def test_each_members_event_is_evaluated_in_its_account_and_named_in_its_message(
    hub: Hub, slack: SlackReceiver, lambda_context: Any
) -> None:
    for n, admin in enumerate(hub.members.values()):
        admin_without_mfa(admin, f"admin-{n}")

    results = {
        account: hub(create_user_event(account, f"admin-{n}", f"event-{n}"), lambda_context)
        for n, account in enumerate(hub.members)
    }

    for n, (account, result) in enumerate(results.items()):
        assert result["outcome"] == "evaluated", result["reason"]
        failing = {f["check_id"] for f in result["findings"] if f["status"] == "FAIL"}
        assert {"user_admin_without_mfa", "user_console_mfa"} <= failing
        stored = hub.store.findings_for_resource("user", f"admin-{n}", account)
        assert stored and {f.account_id for f in stored} == {account}
    # Nothing of the members was read or stored as the hub's own account
    assert {f.account_id for f in hub.store.findings()} == set(hub.members)
    assert hub.aws.iam().list_users()["Users"] == []
    # Every Slack message names its account: id and alias
    for account, alias in hub.aliases.items():
        mine = [text for text in texts(slack) if account in text]
        assert len(mine) == 4, f"no message names {account}"  # the new user, and its critical and high findings
        assert all(f"{account} ({alias})" in text for text in mine)
    assert len(texts(slack)) == 12


def test_a_warm_function_assumes_a_members_audit_role_once(
    hub: Hub, slack: SlackReceiver, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = next(iter(hub.members))
    for user in ("warm-1", "warm-2"):
        admin_without_mfa(hub.members[account], user)
    assumed: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "AssumeRole":
            assumed.append(params["RoleArn"])
        return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    for n, user in enumerate(("warm-1", "warm-2")):
        result = hub(create_user_event(account, user, f"warm-{n}"), lambda_context)
        assert result["outcome"] == "evaluated", result["reason"]
    # The router re-read the users and the messages named the account by its alias (read in the member):
    # both through the member audit role, assumed once for the warm function.
    assert sum(f"{account} ({hub.aliases[account]})" in text for text in texts(slack)) >= 2
    assert assumed == [f"arn:aws:iam::{account}:role/iamguard-member-audit"]


def test_duplicate_delivery_is_handled_once_per_account(hub: Hub, slack: SlackReceiver, lambda_context: Any) -> None:
    first, second = list(hub.members)[:2]
    admin_without_mfa(hub.members[first], "twice-a")
    admin_without_mfa(hub.members[second], "twice-b")

    once = hub(create_user_event(first, "twice-a", "same-event-id"), lambda_context)
    again = hub(create_user_event(first, "twice-a", "same-event-id"), lambda_context)
    elsewhere = hub(create_user_event(second, "twice-b", "same-event-id"), lambda_context)

    assert once["outcome"] == "evaluated" and not once["duplicate"]
    assert again["duplicate"] and "duplicate delivery" in again["reason"]
    # The same eventID in another account is another event: evaluated, stored and announced there
    assert elsewhere["outcome"] == "evaluated" and not elsewhere["duplicate"]
    assert {f["transition"] for f in elsewhere["findings"] if f["status"] == "FAIL"} == {"opened"}
    posts_first = [text for text in texts(slack) if first in text]
    posts_second = [text for text in texts(slack) if second in text]
    assert len(posts_first) == len(posts_second) == 4  # the new user, its critical and high findings: once each


def test_one_user_name_in_two_accounts_is_two_resources(hub: Hub, slack: SlackReceiver, lambda_context: Any) -> None:
    first, second = list(hub.members)[:2]
    admin_without_mfa(hub.members[first], "admin")
    admin_without_mfa(hub.members[second], "admin")

    here = hub(create_user_event(first, "admin", "first-admin"), lambda_context)
    elsewhere = hub(create_user_event(second, "admin", "second-admin"), lambda_context)

    # Both are new users with findings of their own, opened (and announced) in each account
    for result in (here, elsewhere):
        assert {f["transition"] for f in result["findings"] if f["status"] == "FAIL"} == {"opened"}
    for account in (first, second):
        stored = hub.store.findings_for_resource("user", "admin", account)
        assert stored and {f.account_id for f in stored} == {account}
        assert {f.resource_arn for f in stored} == {f"arn:aws:iam::{account}:user/admin"}
    for account, alias in [(first, hub.aliases[first]), (second, hub.aliases[second])]:
        mine = [text for text in texts(slack) if account in text]
        assert len(mine) == 4 and all(f"{account} ({alias})" in text for text in mine)
    # and nothing was stored under the hub's own key for that name
    assert hub.store.findings_for_resource("user", "admin", ACCOUNT_ID) == []


def legacy_items(user_id: str, at: datetime) -> list[dict[str, Any]]:
    """What a single-account deployment stored before users were keyed by account (the layout of that
    version, written out by hand): the hub's admin with a transition nobody announced yet, its guardrail
    record and login-profile facts, and a user deleted since."""
    arn = f"arn:aws:iam::{ACCOUNT_ID}:user/admin"

    def finding(user: str, check: str, severity: str, rank: int, pending: bool) -> dict[str, Any]:
        item = {
            "pk": f"USER#{user}",
            "sk": f"CHECK#{check}",
            "gsi1pk": f"CHECK#{check}",
            "gsi1sk": f"FAIL#{user}",
            "kind": "finding",
            "check_id": check,
            "severity": severity,
            "status": "FAIL",
            "resource_type": "user",
            "resource_arn": arn.replace("/admin", f"/{user}"),
            "resource_name": user,
            "account_id": ACCOUNT_ID,
            "detail": f"{user} fails {check}.",
            "observed_at": iso(at),
            "first_seen": iso(at),
            "last_seen": iso(at),
            "status_changed_at": iso(at),
            "severity_rank": rank,
            "last_transition": "opened",
            "version": 1,
        }
        return {**item, "notify_pending": "1"} if pending else item

    return [
        finding("admin", "user_admin_without_mfa", "critical", 4, pending=True),
        finding("gone", "user_console_mfa", "high", 3, pending=False),
        {
            "pk": "USER#admin",
            "sk": "GUARDRAIL",
            "gsi1pk": "GUARDRAIL",
            "gsi1sk": "admin",
            "kind": "guardrail",
            "user_name": "admin",
            "user_id": user_id,
            "detached_by": "arn:aws:iam::123456789012:user/security-lead",
            "detached_at": iso(at),
            "decided_at": iso(at),
        },
        {
            "pk": "LOGIN_PROFILES",
            "sk": "USER#admin",
            "kind": "login_profile",
            "user_id": user_id,
            "password_reset_required": False,
            "profile_created": iso(at),
            "observed_at": iso(at),
            "expires_at": int((at + timedelta(days=1)).timestamp()),
        },
    ]


def test_a_table_written_before_organization_mode_keeps_every_record_of_the_hubs_users(
    hub: Hub, slack: SlackReceiver, lambda_context: Any
) -> None:
    # Given the hub's table as the single-account version left it, and a user named admin in the hub
    # and in two members
    admin_without_mfa(hub.aws, "admin")
    user_id = hub.aws.iam().get_user(UserName="admin")["User"]["UserId"]
    before = datetime.now(UTC) - timedelta(hours=2)
    client = hub.store.client
    for item in legacy_items(user_id, before):
        client.put_item(TableName=hub.store.table, Item=to_ddb(item))
    first, second = list(hub.members)[:2]
    for account in (first, second):
        admin_without_mfa(hub.members[account], "admin")

    # When the members' admins are created, the hub's old records are not touched
    for account in (first, second):
        result = hub(create_user_event(account, "admin", f"{account}-admin"), lambda_context)
        assert {f["transition"] for f in result["findings"] if f["status"] == "FAIL"} == {"opened"}
    legacy = item_key("USER#admin", "CHECK#user_admin_without_mfa")
    kept = client.get_item(TableName=hub.store.table, Key=legacy, ConsistentRead=True)["Item"]
    assert kept["notify_pending"] == {"S": "1"} and kept["version"] == {"N": "1"}

    # When an event about the hub's own admin comes: its stored finding is the one evaluated (no
    # re-opening), and the announcement the old version left pending is delivered and claimed
    own = hub(create_user_event(ACCOUNT_ID, "admin", "hub-admin"), lambda_context)
    assert own["outcome"] == "evaluated"
    critical = next(f for f in own["findings"] if f["check_id"] == "user_admin_without_mfa")
    assert critical["status"] == "FAIL"  # its transition: the one recorded two hours ago, announced now
    # the guardrail record written before is the one enforcement decides on: detached by hand, withheld
    [guardrail] = [a for a in own["actions"] if a["action"] == "attach_guardrail_policy"]
    assert guardrail["withheld"] == "admin_detached"
    assert guardrail["detached_by"] == "arn:aws:iam::123456789012:user/security-lead"
    stored = client.get_item(TableName=hub.store.table, Key=legacy, ConsistentRead=True)["Item"]
    assert "notify_pending" not in stored and stored["first_seen"] == {"S": iso(before)}
    assert [t for t in texts(slack) if ACCOUNT_ID in t and "admin" in t]
    # still under its old key: nothing was copied under an account-qualified one
    qualified = item_key(f"USER#{ACCOUNT_ID}#admin", "CHECK#user_admin_without_mfa")
    assert "Item" not in client.get_item(TableName=hub.store.table, Key=qualified, ConsistentRead=True)
    # its enforcement memory and login-profile facts are the hub's, and no member's
    assert hub.store.guardrail_record("admin", ACCOUNT_ID) == GuardrailRecord(
        "admin",
        user_id,
        account_id=ACCOUNT_ID,
        detached_by="arn:aws:iam::123456789012:user/security-lead",
        detached_at=datetime.fromisoformat(iso(before)),
        decided_at=datetime.fromisoformat(iso(before)),
    )
    assert hub.store.guardrail_records(ACCOUNT_ID).keys() == {"admin"}
    assert hub.store.guardrail_record("admin", first) is None and hub.store.guardrail_records(first) == {}
    assert LoginProfileStore.of(hub.store, ACCOUNT_ID).recall()["admin"].user_id == user_id
    assert "admin" not in LoginProfileStore.of(hub.store, first).recall()

    # When the hub's account is audited: the gone user is resolved, admin stays open, and the
    # members' findings are neither read nor resolved
    audit = load_handler("audit_account", prefix="org_upgrade")
    audited = audit.lambda_handler({"source": "aws.events"}, lambda_context)
    assert audited["account_id"] == ACCOUNT_ID
    gone = hub.store.findings_for_resource("user", "gone", ACCOUNT_ID)
    assert [(f.status.value, f.detail) for f in gone] == [("PASS", "gone no longer exists; the finding is resolved.")]
    [admin] = [
        f for f in hub.store.findings_for_resource("user", "admin", ACCOUNT_ID) if f.check_id == critical["check_id"]
    ]
    assert admin.status.value == "FAIL" and admin.first_seen == datetime.fromisoformat(iso(before))
    for account in (first, second):
        theirs = hub.store.findings_for_resource("user", "admin", account)
        assert theirs and all(f.status.value != "PASS" or "no longer exists" not in f.detail for f in theirs)

    # And the API tells the three admins apart
    server = serve_in_thread(hub.aws, hub.store.table, settings=Settings.from_env())
    try:
        mine = call(server.url, "/users/admin")
        assert mine.status == 200 and mine.body["account_id"] == ACCOUNT_ID
        assert mine.body["arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/admin"
        theirs = call(server.url, f"/users/admin?account={first}")
        assert theirs.status == 200 and theirs.body["account_id"] == first
        assert {f["account_id"] for f in theirs.body["findings"]} == {first}
        assert call(server.url, "/users/admin?account=999988887777").status == 404
        assert call(server.url, "/users/admin?account=not-an-account").status == 400
        listed = call(server.url, "/users?limit=100").body["users"]
        assert sorted((u["name"], u["account_id"]) for u in listed if u["name"] == "admin") == sorted(
            [("admin", ACCOUNT_ID), ("admin", first), ("admin", second)]
        )
        only = call(server.url, f"/users?account={second}").body["users"]
        assert [(u["name"], u["account_id"]) for u in only] == [("admin", second)]
        page = call(server.url, f"/findings?account={second}&check_id=user_admin_without_mfa").body["findings"]
        assert [(f["resource_name"], f["account_id"]) for f in page] == [("admin", second)]
    finally:
        server.stop()


def test_enforcement_keeps_one_guardrail_record_per_account_for_one_user_name(
    hub: Hub, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an enforcing hub and two enforcing members, each with its guardrail and a console user "ops"
    monkeypatch.setenv("MODE", "enforce")
    handler = load_handler("on_iam_event", prefix="org_enforce_same_name")
    accounts = [member_account(hub.aws, name)[0] for name in ("enforced-a", "enforced-b")]
    admins = {account: MemberAccess(hub.aws, "OrganizationAccountAccessRole").context(account) for account in accounts}
    user_ids = {}
    for account, admin in admins.items():
        admin.iam().create_policy(PolicyName="iamguard-member-mfa-guardrail", PolicyDocument=ADMIN_POLICY)
        user_ids[account] = admin.iam().create_user(UserName="ops")["User"]["UserId"]
        admin.iam().create_login_profile(UserName="ops", Password="Initial-Passw0rd!")

    results = [handler.lambda_handler(create_user_event(a, "ops", f"{a}-ops"), lambda_context) for a in accounts]

    # Then each member's ops got its own guardrail, and each account remembers its own
    for account, result in zip(accounts, results, strict=True):
        assert [(a["action"], a["performed"]) for a in result["actions"]] == [("attach_guardrail_policy", True)]
        attached = admins[account].iam().list_attached_user_policies(UserName="ops")["AttachedPolicies"]
        assert [p["PolicyArn"] for p in attached] == [f"arn:aws:iam::{account}:policy/iamguard-member-mfa-guardrail"]
        record = hub.store.guardrail_record("ops", account)
        assert record is not None and record.attached_at is not None
        assert (record.account_id, record.user_id) == (account, user_ids[account])
        assert hub.store.guardrail_records(account).keys() == {"ops"}
    assert user_ids[accounts[0]] != user_ids[accounts[1]]
    assert hub.store.guardrail_record("ops", ACCOUNT_ID) is None and hub.store.guardrail_records(ACCOUNT_ID) == {}


def test_an_account_outside_the_organization_is_rejected_without_a_retry(
    hub: Hub, slack: SlackReceiver, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    outsider = "999988887777"
    result = hub(create_user_event(outsider, "intruder", "forged-1"), lambda_context)  # returns: no retry
    assert result["outcome"] == "rejected"
    assert f"account {outsider} is not an account of organization" in result["reason"]
    assert rejections(capsys.readouterr().out) == ["not_in_organization"]
    assert hub.store.findings() == [] and slack.messages == []


def test_a_member_without_the_stackset_roles_is_rejected_with_its_reason(
    hub: Hub, slack: SlackReceiver, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bare, admin = member_account(hub.aws, "no-stackset", roles=())
    admin_without_mfa(admin, "someone")

    result = hub(create_user_event(bare, "someone", "bare-1"), lambda_context)

    assert result["outcome"] == "rejected"
    assert f"arn:aws:iam::{bare}:role/iamguard-member-audit" in result["reason"]
    assert "deploy the iamguard member StackSet" in result["reason"]
    assert rejections(capsys.readouterr().out) == ["member_role_missing"]
    assert hub.store.findings() == [] and slack.messages == []
    # The other members still work
    member = next(iter(hub.members))
    admin_without_mfa(hub.members[member], "fine")
    assert hub(create_user_event(member, "fine", "fine-1"), lambda_context)["outcome"] == "evaluated"


def test_an_enforcing_hub_attaches_the_members_guardrail_through_the_enforce_role(
    hub: Hub, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an enforcing hub, one member with both roles and its guardrail, one whose StackSet runs in
    # monitor mode (no enforce role)
    monkeypatch.setenv("MODE", "enforce")
    handler = load_handler("on_iam_event", prefix="org_enforce")
    enforcing, _ = member_account(hub.aws, "enforced")
    monitored, _ = member_account(hub.aws, "monitored", roles=("iamguard-member-audit",))
    members = {
        account: MemberAccess(hub.aws, "OrganizationAccountAccessRole").context(account)
        for account in (enforcing, monitored)
    }
    for admin in members.values():
        admin.iam().create_policy(PolicyName="iamguard-member-mfa-guardrail", PolicyDocument=ADMIN_POLICY)
        admin.iam().create_user(UserName="console-only")
        admin.iam().create_login_profile(UserName="console-only", Password="Initial-Passw0rd!")

    done = handler.lambda_handler(create_user_event(enforcing, "console-only", "enforce-1"), lambda_context)
    watched = handler.lambda_handler(create_user_event(monitored, "console-only", "monitor-1"), lambda_context)

    # Then the guardrail is attached in the enforcing member only, by the member enforce role
    attached = members[enforcing].iam().list_attached_user_policies(UserName="console-only")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [f"arn:aws:iam::{enforcing}:policy/iamguard-member-mfa-guardrail"]
    assert [a["action"] for a in done["actions"]] == ["attach_guardrail_policy"]
    assert all(a["performed"] for a in done["actions"])
    assert members[monitored].iam().list_attached_user_policies(UserName="console-only")["AttachedPolicies"] == []
    assert watched["outcome"] == "evaluated" and not any(a["performed"] for a in watched["actions"])


def member_event(name: str, account: str, event_id: str) -> dict[str, Any]:
    """A sample event as member `account`'s EventBridge forwards it (its administrator alice made the call)."""
    event = copy.deepcopy(load_event(name))
    event["account"] = account
    detail = event["detail"]
    detail.update(recipientAccountId=account, eventID=event_id)
    detail["userIdentity"].update(accountId=account, arn=f"arn:aws:iam::{account}:user/alice")
    return event


def api_exception(check_id: str, resource: str, account: str) -> Exemption:
    today = datetime.now(UTC)
    return Exemption(
        check_id=check_id,
        resource=resource,
        owner="secops",
        reason="made for one member only",
        expires=today.date() + timedelta(days=30),
        source="api",
        created_at=today,
        created_by="arn:aws:iam::123456789012:user/lead",
        account_id=account,
    )


def test_events_of_three_members_read_the_exceptions_once_in_a_warm_function(
    hub: Hub, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an exception for the first member's admin, and an administrator without MFA in each member
    accounts = list(hub.members)
    for account in accounts:
        admin_without_mfa(hub.members[account], "admin")
    ExemptionStore.of(hub.store).put(api_exception("*", "admin", accounts[0]))
    reads: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        values = params.get("ExpressionAttributeValues") or {}
        if operation == "Query" and {"S": "EXCEPTIONS"} in values.values():
            reads.append(operation)
        return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    # When each member's CreateUser reaches the warm hub function within the cache's minute
    results = [hub(create_user_event(a, "admin", f"{a}-once"), lambda_context) for a in accounts]

    # Then the exceptions were read once for all three accounts, and each applied only its own
    assert reads == ["Query"]
    statuses = [{f["status"] for f in result["findings"] if f["status"] != "PASS"} for result in results]
    assert statuses == [{"EXEMPT"}, {"FAIL"}, {"FAIL"}]


def test_a_members_event_applies_only_the_exceptions_of_its_own_account(hub: Hub, lambda_context: Any) -> None:
    # Given an administrator "admin" without MFA in two members, and API exceptions for the first's admin
    # and the first's account
    first, second = list(hub.members)[:2]
    for account in (first, second):
        admin_without_mfa(hub.members[account], "admin")
    exceptions = ExemptionStore.of(hub.store)
    exceptions.put(api_exception("*", "admin", first))
    exceptions.put(api_exception("password_policy", "account", first))

    # When each member's CreateUser and DeleteAccountPasswordPolicy reach the hub
    users = {a: hub(create_user_event(a, "admin", f"{a}-admin"), lambda_context) for a in (first, second)}
    policies = {
        a: hub(member_event("delete_account_password_policy.json", a, f"{a}-policy"), lambda_context)
        for a in (first, second)
    }

    # Then the first's admin is exempt from every check it fails, and the second's admin fails them
    def failing(result: dict[str, Any], status: str) -> set[str]:
        return {f["check_id"] for f in result["findings"] if f["status"] == status}

    assert {"user_admin_without_mfa", "user_console_mfa"} <= failing(users[first], "EXEMPT")
    assert failing(users[first], "FAIL") == set()
    assert {"user_admin_without_mfa", "user_console_mfa"} <= failing(users[second], "FAIL")
    assert failing(users[second], "EXEMPT") == set()
    stored = {f.check_id: f for f in hub.store.findings_for_resource("user", "admin", first)}
    assert stored["user_console_mfa"].exempt_source == "api"
    # and the first's missing password policy is exempt, the second's fails
    assert "password_policy" in failing(policies[first], "EXEMPT"), policies[first]
    assert "password_policy" in failing(policies[second], "FAIL"), policies[second]


def test_an_enforcing_hub_spares_only_the_user_excepted_in_its_own_account(
    hub: Hub, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an enforcing hub, two enforcing members each with a console user "ops" without MFA, and an
    # exception from the MFA guardrail's check for the first member's ops only
    monkeypatch.setenv("MODE", "enforce")
    handler = load_handler("on_iam_event", prefix="org_enforce_exceptions")
    accounts = [member_account(hub.aws, name)[0] for name in ("excepted-a", "excepted-b")]
    admins = {account: MemberAccess(hub.aws, "OrganizationAccountAccessRole").context(account) for account in accounts}
    for admin in admins.values():
        admin.iam().create_policy(PolicyName="iamguard-member-mfa-guardrail", PolicyDocument=ADMIN_POLICY)
        admin.iam().create_user(UserName="ops")
        admin.iam().create_login_profile(UserName="ops", Password="Initial-Passw0rd!")
    ExemptionStore.of(hub.store).put(api_exception("user_console_mfa", "ops", accounts[0]))

    results = [handler.lambda_handler(create_user_event(a, "ops", f"{a}-ops"), lambda_context) for a in accounts]

    # Then the first's ops keeps no guardrail, and the second's gets one
    spared, enforced = accounts
    assert results[0]["actions"] == []
    assert admins[spared].iam().list_attached_user_policies(UserName="ops")["AttachedPolicies"] == []
    assert [(a["action"], a["performed"]) for a in results[1]["actions"]] == [("attach_guardrail_policy", True)]
    attached = admins[enforced].iam().list_attached_user_policies(UserName="ops")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [f"arn:aws:iam::{enforced}:policy/iamguard-member-mfa-guardrail"]
