"""The local runtime: a managed policy rewritten to * on * makes its holders administrators, and iamguard says so."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.demo import message_ids
from iamguard_cli.local.runtime import LocalOptions, LocalRuntime

from tests.integration.local_support import client

pytestmark = pytest.mark.e2e
NARROW = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "lambda:UpdateFunctionCode", "Resource": "*"}],
}
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture(scope="module")
def runtime() -> Iterator[tuple[LocalRuntime, io.StringIO]]:
    terminal = io.StringIO()
    with LocalRuntime(LocalOptions(run_schedules_on_time=False, echo=terminal)) as running:
        yield running, terminal


def _admin_alerts(runtime: LocalRuntime, since: int) -> list[dict[str, Any]]:
    return [m for m in runtime.slack.messages[since:] if "admin_access_granted" in message_ids(m)]


def test_a_policy_version_made_default_raises_admin_access_granted_for_its_holders(
    runtime: tuple[LocalRuntime, io.StringIO],
) -> None:
    local, terminal = runtime
    iam = client("iam", local.endpoint_url)
    # Given deploy-tools (narrow), held by pat through the group deployers and by kim directly
    arn = iam.create_policy(PolicyName="deploy-tools", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_group(GroupName="deployers")
    iam.attach_group_policy(GroupName="deployers", PolicyArn=arn)
    for name in ("pat", "kim"):
        iam.create_user(UserName=name)
    iam.add_user_to_group(GroupName="deployers", UserName="pat")
    iam.attach_user_policy(UserName="kim", PolicyArn=arn)
    assert local.wait_idle()
    before = len(local.slack.messages)
    assert _admin_alerts(local, 0) == []

    # When another process writes a new version allowing * on * and makes it the default
    script = (
        "import boto3, json, sys\n"
        "iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "iam.create_policy_version(PolicyArn=sys.argv[2], PolicyDocument=sys.argv[3], SetAsDefault=True)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, local.endpoint_url, arn, json.dumps(EVERYTHING)], check=True, timeout=60
    )
    assert local.wait_idle()

    # Then the trail recorded the call as CloudTrail does...
    [event] = [e for e in local.trail.recent if e["detail"]["eventName"] == "CreatePolicyVersion"]
    assert event["detail"]["requestParameters"]["setAsDefault"] is True
    assert event["detail"]["requestParameters"]["policyArn"] == arn
    # ...both holders were announced as new administrators...
    alerts = _admin_alerts(local, before)
    assert sorted(name for m in alerts for name in ("pat", "kim") if f"`{name}`" in json.dumps(m)) == ["kim", "pat"]
    # ...and their findings say so
    store = FindingsStore(client("dynamodb", local.endpoint_url), local.findings_table)
    admin = {f.resource_name: f.status.value for f in store.findings() if f.check_id == "user_admin_access"}
    assert admin["pat"] == "FAIL" and admin["kim"] == "FAIL"
    shown = terminal.getvalue()
    assert "on_iam_event ← CreatePolicyVersion" in shown
    assert "made a new version of policy deploy-tools its default, which gives pat full administrator access" in shown


def test_a_version_that_is_not_made_default_raises_nothing(runtime: tuple[LocalRuntime, io.StringIO]) -> None:
    local, _ = runtime
    iam = client("iam", local.endpoint_url)
    arn = iam.create_policy(PolicyName="quiet", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_user(UserName="quinn")
    iam.attach_user_policy(UserName="quinn", PolicyArn=arn)
    assert local.wait_idle()
    before = len(local.slack.messages)
    assert local.dispatcher is not None
    handled = len(local.dispatcher.invocations)

    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=False)
    assert local.wait_idle()

    [run] = [i for i in local.dispatcher.invocations[handled:] if i.trigger == "CreatePolicyVersion"]
    assert run.result["outcome"] == "ignored"
    assert run.result["reason"] == "CreatePolicyVersion without setAsDefault: what IAM enforces did not change"
    assert _admin_alerts(local, before) == []
