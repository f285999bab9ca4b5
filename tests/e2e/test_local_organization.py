"""`iamguard local --accounts 3`: an organization on moto over real HTTP, member events reaching the hub."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.organization.access import MemberAccess
from iamguard_cli.commands.common import EXIT_USAGE
from iamguard_cli.local.organization import MemberAccount
from iamguard_cli.local.runtime import LocalOptions, LocalRuntime, control_request

from tests.integration.local_support import client, wait_for_line

pytestmark = pytest.mark.e2e
HUB = "123456789012"
IAM_EVENTS = "on_iam_event"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(LocalOptions(run_schedules_on_time=False, accounts=3)) as running:
        yield running


def members(runtime: LocalRuntime) -> list[MemberAccount]:
    assert runtime.organization is not None
    return runtime.organization.members


def member_environment(runtime: LocalRuntime, member: MemberAccount) -> dict[str, str]:
    """What the banner tells a user to export for a member account."""
    session = member.session
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **keep,
        "AWS_ENDPOINT_URL": runtime.endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": session.access_key_id,
        "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
    }


def _wait_for(lines: list[str], pattern: str) -> str:
    return wait_for_line(lines, pattern, timeout=120.0)  # the organization takes longer to start


def create_user_in_another_process(env: dict[str, str], user: str) -> None:
    script = "import boto3, sys\nboto3.client('iam').create_user(UserName=sys.argv[1])\n"
    done = subprocess.run(
        [sys.executable, "-c", script, user], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def handled(runtime: LocalRuntime, user: str) -> list[dict[str, Any]]:
    assert runtime.dispatcher is not None
    return [
        i.event
        for i in runtime.dispatcher.invocations
        if i.function == IAM_EVENTS
        and isinstance(i.event, dict)
        and (i.event.get("detail") or {}).get("requestParameters", {}).get("userName") == user
    ]


def test_the_organization_has_the_hub_as_management_account_and_three_active_members(runtime: LocalRuntime) -> None:
    organizations = client("organizations", runtime.endpoint_url)
    organization = organizations.describe_organization()["Organization"]
    assert organization["MasterAccountId"] == HUB
    assert runtime.organization is not None and organization["Id"] == runtime.organization.organization_id
    accounts = {a["Id"]: a["Status"] for a in organizations.list_accounts()["Accounts"]}
    ids = [m.account_id for m in members(runtime)]
    assert len(set(ids)) == len(ids) >= 3 and HUB not in ids
    assert all(accounts[account] == "ACTIVE" for account in ids)
    # The control API tells other processes about the organization (without credentials)
    info = control_request(runtime.endpoint_url, "info")["organization"]
    assert [a["account_id"] for a in info["accounts"]] == ids
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(info) and "session_token" not in json.dumps(info)


def test_each_member_has_the_member_stack(runtime: LocalRuntime) -> None:
    organization_id = runtime.organization.organization_id if runtime.organization else ""
    for member in members(runtime):
        iam = client("iam", runtime.endpoint_url, *_keys(member))
        # The audit role, trusted by the hub's function roles within the organization only
        role = iam.get_role(RoleName="iamguard-member-audit")["Role"]
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"AWS": f"arn:aws:iam::{HUB}:root"}
        assert trust["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": organization_id}
        assert trust["Condition"]["StringLike"] == {"aws:PrincipalArn": f"arn:aws:iam::{HUB}:role/iamguard-*"}
        assert iam.list_role_policies(RoleName="iamguard-member-audit")["PolicyNames"] == ["iamguard-audit-read"]
        # The guardrail under the hub's guardrail name; no enforcement role in monitor mode
        guardrail = iam.get_policy(PolicyArn=f"arn:aws:iam::{member.account_id}:policy/iamguard-mfa-guardrail")
        assert guardrail["Policy"]["PolicyName"] == "iamguard-mfa-guardrail"
        roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
        assert "iamguard-member-enforce" not in roles
        # The forward rules on the member's default bus, targeting the hub's bus
        events = client("events", runtime.endpoint_url, *_keys(member))
        rules = [r["Name"] for r in events.list_rules(EventBusName="default")["Rules"]]
        assert len(rules) == 2
        for rule in rules:
            (target,) = events.list_targets_by_rule(Rule=rule, EventBusName="default")["Targets"]
            assert target["Arn"] == runtime.hub_bus_arn()
            assert target["RoleArn"].startswith(f"arn:aws:iam::{member.account_id}:role/")


def test_a_user_created_in_each_member_reaches_the_hubs_handler_with_that_account(runtime: LocalRuntime) -> None:
    # Given a user created in each member account from another process, with the printed credentials
    for member in members(runtime):
        create_user_in_another_process(member_environment(runtime, member), f"dev-{member.account_id}")
    assert runtime.wait_idle(60)
    for member in members(runtime):
        # Then the hub's IAM event function got the event once, as the member account's
        (event,) = handled(runtime, f"dev-{member.account_id}")
        assert event["account"] == member.account_id
        detail = event["detail"]
        assert detail["recipientAccountId"] == member.account_id
        assert detail["eventName"] == "CreateUser"
        identity = detail["userIdentity"]
        assert identity["type"] == "AssumedRole" and identity["accountId"] == member.account_id
        assert identity["sessionContext"]["sessionIssuer"]["arn"] == (
            f"arn:aws:iam::{member.account_id}:role/OrganizationAccountAccessRole"
        )
        # and the user exists in that member account only
        assert client("iam", runtime.endpoint_url, *_keys(member)).get_user(UserName=f"dev-{member.account_id}")
    hub_users = {u["UserName"] for u in client("iam", runtime.endpoint_url).list_users()["Users"]}
    assert not {f"dev-{m.account_id}" for m in members(runtime)} & hub_users


def test_the_hubs_own_events_still_carry_the_hubs_account(runtime: LocalRuntime) -> None:
    client("iam", runtime.endpoint_url).create_user(UserName="hub-user")
    assert runtime.wait_idle(60)
    (event,) = handled(runtime, "hub-user")
    assert event["account"] == HUB and event["detail"]["recipientAccountId"] == HUB


def test_the_hubs_function_role_reads_a_member_through_its_audit_role(runtime: LocalRuntime) -> None:
    # Given the hub's IAM event function's own role session (what the Lambda runs with)
    session = runtime.provisioned.sessions["OnIamEventFunction"]
    import boto3

    hub_function = AwsContext(
        region="us-east-1",
        endpoint_url=runtime.endpoint_url,
        retry_mode="standard",
        max_attempts=2,
        _session=boto3.session.Session(
            aws_access_key_id=session.access_key_id,
            aws_secret_access_key=session.secret_access_key,
            aws_session_token=session.session_token,
            region_name="us-east-1",
        ),
    )
    member = members(runtime)[0]
    client("iam", runtime.endpoint_url, *_keys(member)).create_user(UserName="read-through-role")
    # When the core's MemberAccess assumes the member's audit role
    in_member = MemberAccess(hub_function, "iamguard-member-audit").context(member.account_id)
    identity = in_member.sts().get_caller_identity()
    # Then it acts in the member account, as that role
    assert identity["Account"] == member.account_id
    assert identity["Arn"].startswith(f"arn:aws:sts::{member.account_id}:assumed-role/iamguard-member-audit/")
    assert in_member.iam().get_user(UserName="read-through-role")["User"]["UserName"] == "read-through-role"


def test_the_banner_prints_each_members_endpoint_and_credentials(runtime: LocalRuntime) -> None:
    banner = runtime.banner()
    assert runtime.organization is not None and runtime.organization.organization_id in banner
    for member in members(runtime):
        assert member.account_id in banner
        assert f"AWS_ACCESS_KEY_ID={member.session.access_key_id}" in banner
        assert f"AWS_SESSION_TOKEN={member.session.session_token}" in banner


def _keys(member: MemberAccount) -> tuple[str, str, str]:
    return member.session.access_key_id, member.session.secret_access_key, member.session.session_token


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "51"], "--accounts must be between 0 and 50"),
        (["--accounts", "-1"], "--accounts must be between 0 and 50"),
        (["--accounts", "2", "--member-template", "/nonexistent/member.yaml"], "no member template at"),
    ],
)
def test_careless_organization_options_are_usage_errors(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "iamguard_cli", "local", "--port", "0", "--api-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_USAGE
    assert message in done.stderr


def test_the_command_prints_credentials_that_act_in_the_member_account() -> None:
    # Given `iamguard local --accounts 1` in its own process, as a person would start it
    process = subprocess.Popen(
        [sys.executable, "-m", "iamguard_cli", "local", "--port", "0", "--api-port", "0", "--no-schedules"]
        + ["--accounts", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        account = _wait_for(lines, r"member-1\s+account (\d{12})")
        exported = _wait_for(lines, r"export (AWS_ENDPOINT_URL=\S+ .*AWS_SESSION_TOKEN=\S+)")
        # When another process uses exactly what the banner printed for that member
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(dict(pair.split("=", 1) for pair in exported.split()))
        create_user_in_another_process(env, "from-the-member-banner")
        # Then the call acted in the member account, and the hub's event function saw it there
        _wait_for(
            lines,
            rf"trail\s+\[{account}\] CreateUser by role OrganizationAccountAccessRole \(userName=from-the-member-banner\)",
        )
        _wait_for(lines, r"lambda\s+on_iam_event ← CreateUser")
        script = "import boto3; print(boto3.client('sts').get_caller_identity()['Account'])"
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == account
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    reader.join(timeout=5)


def test_an_account_that_joins_later_gets_the_member_stack_and_is_watched(runtime: LocalRuntime) -> None:
    # Given a running organization, when an account joins it from another process (`iamguard local join`)
    done = subprocess.run(
        [sys.executable, "-m", "iamguard_cli", "local", "join", "late comer", "--endpoint-url", runtime.endpoint_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    account = re.search(r"account (\d{12}) \(late comer\) joined", done.stdout)
    exported = re.search(r"export (AWS_ENDPOINT_URL=.*)", done.stdout)
    assert account and exported
    # Then it is an ACTIVE member with the member stack (what auto-deployment gives a new account)
    accounts = client("organizations", runtime.endpoint_url).list_accounts()["Accounts"]
    assert {a["Id"]: a["Status"] for a in accounts}[account.group(1)] == "ACTIVE"
    member = runtime.organization.member(account.group(1)) if runtime.organization else None
    assert member is not None
    assert client("iam", runtime.endpoint_url, *_keys(member)).get_role(RoleName="iamguard-member-audit")
    # and a user created with the printed session reaches the hub as that account's
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(dict(pair.split("=", 1) for pair in exported.group(1).split()))
    create_user_in_another_process(env, "late-user")
    assert runtime.wait_idle(60)
    (event,) = handled(runtime, "late-user")
    assert event["account"] == event["detail"]["recipientAccountId"] == account.group(1)


@pytest.mark.parametrize("name", ["", "x" * 51, "bad/name", None])
def test_a_careless_account_name_is_refused(runtime: LocalRuntime, name: str | None) -> None:
    before = len(members(runtime))
    status, body = runtime.control("POST", "join", {"name": name})
    assert status == 400 and body["error"]
    assert len(members(runtime)) == before


def test_joining_needs_an_organization() -> None:
    status, body = LocalRuntime(LocalOptions()).control("POST", "join", {"name": "dev"})
    assert status == 400 and "--accounts" in body["error"]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_a_scheduled_organization_audit_audits_every_account_through_the_audit_queue(runtime: LocalRuntime) -> None:
    expected = {HUB, *(m.account_id for m in members(runtime))}
    # When the audit schedule fires (asked over the control API, as `iamguard local audit` does)
    answer = control_request(runtime.endpoint_url, "audit", {})
    planner, *audits = answer["invocations"]
    # Then the planner queued one message per ACTIVE account ...
    assert planner["function"] == "plan_audit" and planner["error"] is None
    assert planner["result"]["queued"] == planner["result"]["accounts"] == len(expected)
    # ... and the audit queue's mapping gave each to the audit function, one per invocation (BatchSize 1)
    assert {a["function"] for a in audits} == {"audit_account"}
    assert all(a["error"] is None and a["result"] == {"batchItemFailures": []} for a in audits)
    audited = [json.loads(body)["account_id"] for a in audits for body in a["messages"]]
    assert sorted(audited) == sorted(expected)
    queue_arn = runtime.provisioned.attrs[("AuditQueue", "Arn")]
    assert runtime.dispatcher is not None
    records = [
        record
        for i in runtime.dispatcher.invocations
        if i.function == "audit_account" and isinstance(i.event, dict)
        for record in i.event.get("Records", [])
    ]
    assert records and all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"] == queue_arn for r in records)
    # And /accounts (over HTTP) shows each account's last audit, /status the organization's verdict
    listed = {a["account_id"]: a for a in _get(f"{runtime.api_url}/accounts")["accounts"]}
    assert expected <= listed.keys()
    assert all(listed[account]["last_audit"] is not None for account in expected)
    status = _get(f"{runtime.api_url}/status")
    assert runtime.organization is not None and status["organization_id"] == runtime.organization.organization_id
    assert sum(status["accounts"].values()) >= len(expected)
    # and the queue is empty: every message was deleted after its audit
    sqs = client("sqs", runtime.endpoint_url)
    attributes = sqs.get_queue_attributes(
        QueueUrl=runtime.provisioned.queues["AuditQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_a_message_the_audit_function_refuses_is_retried_then_dead_lettered(runtime: LocalRuntime) -> None:
    sqs = client("sqs", runtime.endpoint_url)
    queue = runtime.provisioned.queues["AuditQueue"]
    dead_letters = runtime.provisioned.queues["AuditDeadLetterQueue"]
    # the template's redrive policy, as CloudFormation would set it
    redrive = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]["RedrivePolicy"]
    )
    assert redrive == {
        "deadLetterTargetArn": runtime.provisioned.attrs[("AuditDeadLetterQueue", "Arn")],
        "maxReceiveCount": 3,
    }
    # Given a forged message (not a 12-digit account) next to a planner's message for a member
    member = members(runtime)[0]
    forged = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"account_id": "../../etc", "planned_at": "x"}))
    good = sqs.send_message(
        QueueUrl=queue,
        MessageBody=json.dumps(
            {"account_id": member.account_id, "name": member.name, "planned_at": "2026-11-30T00:00:00+00:00"}
        ),
    )
    assert runtime.wait_idle(180)
    assert runtime.dispatcher is not None
    tries: dict[str, list[str]] = {}
    for invocation in runtime.dispatcher.invocations:
        event = invocation.event if isinstance(invocation.event, dict) else {}
        for record in event.get("Records", []):
            tries.setdefault(record["messageId"], []).append(record["attributes"]["ApproximateReceiveCount"])
    # Then the forged one was named in batchItemFailures, received maxReceiveCount times, and moved to the DLQ
    assert tries[forged["MessageId"]] == ["1", "2", "3"]
    (kept,) = sqs.receive_message(QueueUrl=dead_letters, WaitTimeSeconds=1)["Messages"]
    assert kept["MessageId"] == forged["MessageId"]
    # and the good one was audited once and deleted
    assert tries[good["MessageId"]] == ["1"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
