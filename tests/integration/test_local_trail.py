"""The local CloudTrail: IAM writes to the local endpoint become CloudTrail events on EventBridge."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.trail import API_CALL, Trail
from iamguard_cli.mfa import authenticator_codes

from tests.integration.local_support import client, queue_events, trail_server

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"
PASSWORD = "Local-Trail-Password-1!"
NEW_PASSWORD = "Local-Trail-Password-2!"


@pytest.fixture
def local() -> Iterator[tuple[MotoServer, Trail]]:
    with trail_server() as running:
        yield running


def _by_name(trail: Trail) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in trail.recent:
        found.setdefault(event["detail"]["eventName"], []).append(event)
    return found


def test_a_write_becomes_a_cloudtrail_event_on_the_default_bus(local: tuple[MotoServer, Trail]) -> None:
    # Given a rule on the local default bus that sends IAM API calls to a queue
    server, _ = local
    events, sqs = client("events", server.url), client("sqs", server.url)
    queue_url = sqs.create_queue(QueueName="iam-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.iam"], "detail-type": [API_CALL], "detail": {"eventSource": ["iam.amazonaws.com"]}}
    events.put_rule(Name="iam", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="iam", Targets=[{"Id": "q", "Arn": queue_arn}])

    # When root creates a user with a console password that must be reset
    iam = client("iam", server.url)
    iam.create_user(UserName="wonjun_admin", Tags=[{"Key": "team", "Value": "ops"}])
    iam.create_login_profile(UserName="wonjun_admin", Password=PASSWORD, PasswordResetRequired=True)
    iam.attach_user_policy(UserName="wonjun_admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")

    # Then three CloudTrail-shaped events arrive, with camelCase, typed parameters
    received = queue_events(sqs, queue_url, expect=3)
    assert [e["detail"]["eventName"] for e in received] == ["CreateUser", "CreateLoginProfile", "AttachUserPolicy"]
    create_user, login_profile, attach = (e["detail"] for e in received)
    assert received[0]["source"] == "aws.iam"
    assert received[0]["detail-type"] == API_CALL
    assert received[0]["account"] == ACCOUNT
    assert received[0]["region"] == "us-east-1"
    assert create_user["eventSource"] == "iam.amazonaws.com"
    assert create_user["eventType"] == "AwsApiCall"
    assert create_user["readOnly"] is False
    assert create_user["recipientAccountId"] == ACCOUNT
    assert create_user["requestParameters"] == {
        "userName": "wonjun_admin",
        "tags": [{"key": "team", "value": "ops"}],
    }
    assert create_user["responseElements"]["user"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/wonjun_admin"
    assert login_profile["requestParameters"] == {"userName": "wonjun_admin", "passwordResetRequired": True}
    assert attach["requestParameters"] == {
        "userName": "wonjun_admin",
        "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
    }
    assert attach["responseElements"] is None
    assert len({e["detail"]["eventID"] for e in received}) == 3
    assert create_user["userIdentity"] == {
        "type": "Root",
        "principalId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "accountId": ACCOUNT,
        "accessKeyId": "testing",
    }


def test_numbers_and_flags_keep_their_types(local: tuple[MotoServer, Trail]) -> None:
    server, trail = local
    client("iam", server.url).update_account_password_policy(
        MinimumPasswordLength=14, RequireSymbols=True, PasswordReusePrevention=24, AllowUsersToChangePassword=False
    )
    (event,) = _by_name(trail)["UpdateAccountPasswordPolicy"]
    assert event["detail"]["requestParameters"] == {
        "minimumPasswordLength": 14,
        "requireSymbols": True,
        "allowUsersToChangePassword": False,
        "passwordReusePrevention": 24,
    }


def test_user_identity_comes_from_the_signing_access_key(local: tuple[MotoServer, Trail]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    user = iam.create_user(UserName="alice")["User"]
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    session = client("sts", server.url).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/deployer", RoleSessionName="ci-run"
    )["Credentials"]

    as_alice = client("iam", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    as_alice.tag_user(UserName="alice", Tags=[{"Key": "by", "Value": "alice"}])
    as_role = client("iam", server.url, session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    as_role.create_user(UserName="from-role")

    (tag,) = _by_name(trail)["TagUser"]
    assert tag["detail"]["userIdentity"] == {
        "type": "IAMUser",
        "principalId": user["UserId"],
        "arn": user["Arn"],
        "accountId": ACCOUNT,
        "accessKeyId": key["AccessKeyId"],
        "userName": "alice",
    }
    role_identity = _by_name(trail)["CreateUser"][-1]["detail"]["userIdentity"]
    assert role_identity["type"] == "AssumedRole"
    assert role_identity["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci-run"
    assert role_identity["accessKeyId"] == session["AccessKeyId"]
    assert role_identity["sessionContext"]["sessionIssuer"]["arn"] == f"arn:aws:iam::{ACCOUNT}:role/deployer"
    assert role_identity["sessionContext"]["sessionIssuer"]["type"] == "Role"


def test_reads_and_failed_calls_are_not_recorded(local: tuple[MotoServer, Trail]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    iam.create_user(UserName="bob")
    iam.list_users()
    iam.get_user(UserName="bob")
    iam.generate_credential_report()
    with pytest.raises(ClientError):
        iam.create_user(UserName="bob")  # EntityAlreadyExists
    with pytest.raises(ClientError):
        iam.attach_user_policy(UserName="nobody", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert [e["detail"]["eventName"] for e in trail.recent] == ["CreateUser"]


def test_the_trail_never_records_secrets(local: tuple[MotoServer, Trail]) -> None:
    # Given every IAM call that carries a secret one way or the other
    server, trail = local
    sqs, events = client("sqs", server.url), client("events", server.url)
    queue_url = sqs.create_queue(QueueName="everything")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-iam", EventPattern=json.dumps({"source": ["aws.iam"]}))
    events.put_targets(Rule="all-iam", Targets=[{"Id": "q", "Arn": queue_arn}])
    iam = client("iam", server.url)
    iam.create_user(UserName="carol")
    iam.create_login_profile(UserName="carol", Password=PASSWORD, PasswordResetRequired=True)
    iam.update_login_profile(UserName="carol", Password=NEW_PASSWORD)
    key = iam.create_access_key(UserName="carol")["AccessKey"]
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="carol")["VirtualMFADevice"]
    seed = device["Base32StringSeed"].decode()
    code1, code2 = authenticator_codes(seed)
    iam.enable_mfa_device(
        UserName="carol", SerialNumber=device["SerialNumber"], AuthenticationCode1=code1, AuthenticationCode2=code2
    )
    root_key = iam.create_access_key()["AccessKey"]

    # Then the calls are recorded, with what is not secret...
    recorded = _by_name(trail)
    assert recorded["CreateLoginProfile"][0]["detail"]["requestParameters"] == {
        "userName": "carol",
        "passwordResetRequired": True,
    }
    assert recorded["UpdateLoginProfile"][0]["detail"]["requestParameters"] == {"userName": "carol"}
    assert (
        recorded["CreateAccessKey"][0]["detail"]["responseElements"]["accessKey"]["accessKeyId"] == key["AccessKeyId"]
    )
    assert recorded["CreateAccessKey"][1]["detail"]["requestParameters"] is None  # root, for itself
    assert recorded["CreateVirtualMFADevice"][0]["detail"]["responseElements"] == {
        "virtualMFADevice": {"serialNumber": device["SerialNumber"]}
    }
    assert recorded["EnableMFADevice"][0]["detail"]["requestParameters"] == {
        "userName": "carol",
        "serialNumber": device["SerialNumber"],
    }
    # ...and no secret anywhere: not in the trail, not in what EventBridge delivered
    delivered = queue_events(sqs, queue_url, expect=len(trail.recent))
    assert len(delivered) == len(trail.recent) == 7
    text = json.dumps(list(trail.recent)) + json.dumps(delivered)
    secrets = [PASSWORD, NEW_PASSWORD, key["SecretAccessKey"], root_key["SecretAccessKey"], seed, code1, code2]
    assert [secret for secret in secrets if secret in text] == []
    for name in ("password", "secretAccessKey", "base32StringSeed", "qRCodePNG", "authenticationCode1"):
        assert f'"{name}"' not in text


def test_wrong_mfa_codes_are_refused_as_aws_refuses_them(local: tuple[MotoServer, Trail]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    iam.create_user(UserName="dave")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="dave")["VirtualMFADevice"]
    with pytest.raises(ClientError) as refused:
        iam.enable_mfa_device(
            UserName="dave",
            SerialNumber=device["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )
    assert refused.value.response["Error"]["Code"] == "InvalidAuthenticationCode"
    assert "not valid" in refused.value.response["Error"]["Message"]
    assert iam.list_mfa_devices(UserName="dave")["MFADevices"] == []
    assert "EnableMFADevice" not in _by_name(trail)


def test_a_client_in_another_process_is_recorded(local: tuple[MotoServer, Trail]) -> None:
    server, trail = local
    script = (
        "import boto3, sys\n"
        "iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "iam.create_user(UserName='from_another_process')\n"
    )
    subprocess.run([sys.executable, "-c", script, server.url], check=True, timeout=60)
    (event,) = _by_name(trail)["CreateUser"]
    assert event["detail"]["requestParameters"] == {"userName": "from_another_process"}
    assert event["detail"]["userIdentity"]["type"] == "Root"
    assert "Boto3" in event["detail"]["userAgent"]
