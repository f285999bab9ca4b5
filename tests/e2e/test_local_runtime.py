"""The local runtime end to end, driven from other processes as a user would drive it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local import moto_ext
from iamguard_cli.local.demo import message_ids
from iamguard_cli.local.runtime import LocalOptions, LocalRuntime, control_request
from iamguard_cli.local.trail import API_CALL
from iamguard_cli.mfa import Enrollment, authenticator_codes

from tests.conftest import load_event
from tests.integration.local_support import client, wait_for_line

pytestmark = pytest.mark.e2e
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(LocalOptions(run_schedules_on_time=False)) as running:
        yield running


def _findings(runtime: LocalRuntime, resource: str) -> dict[str, str]:
    store = FindingsStore(client("dynamodb", runtime.endpoint_url), runtime.findings_table)
    return {f.check_id: f.status.value for f in store.findings() if f.resource_name == resource}


def _messages_about(runtime: LocalRuntime, name: str) -> list[dict[str, Any]]:
    return [m for m in runtime.slack.messages if name in json.dumps(m)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iamguard_cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_user_created_from_another_process_raises_the_finding_and_the_alert(runtime: LocalRuntime) -> None:
    # Given a plain boto3 client in another process, pointed at the local endpoint with root's default keys
    script = (
        "import boto3, sys\n"
        "iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "iam.create_user(UserName='outsider')\n"
        "iam.create_login_profile(UserName='outsider', Password='Outsider-Password-1!')\n"
    )
    # When it creates a console user without MFA
    subprocess.run([sys.executable, "-c", script, runtime.endpoint_url], check=True, timeout=60)
    assert runtime.wait_idle()

    # Then the event path stored the user's findings...
    findings = _findings(runtime, "outsider")
    assert findings["user_console_mfa"] == "FAIL"
    assert findings["user_mfa"] == "FAIL"
    # ...the status API shows them...
    with urllib.request.urlopen(f"{runtime.api_url}/users/outsider", timeout=10) as response:
        user = json.loads(response.read())
    assert {f["check_id"]: f["status"] for f in user["findings"]}["user_console_mfa"] == "FAIL"
    # ...and Slack heard about the console user without MFA
    said = set().union(*(message_ids(m) for m in _messages_about(runtime, "outsider")))
    assert "user_console_mfa" in said


def test_teams_pagerduty_and_the_webhook_hear_of_a_finding_and_pagerduty_resolves_it(runtime: LocalRuntime) -> None:
    # Given a console user without MFA created through the local endpoint
    iam = client("iam", runtime.endpoint_url)
    iam.create_user(UserName="pager")
    iam.create_login_profile(UserName="pager", Password="Pager-Password-1!")
    assert runtime.wait_idle()

    # Then PagerDuty has an open alert for it, Teams a card, the webhook a signed document
    key = f"iamguard:user_console_mfa:arn:aws:iam::{ACCOUNT}:user/pager"
    assert runtime.pagerduty.alerts.get(key) == "triggered"
    assert "🟠 High · New finding: pager" in runtime.teams.headlines
    documents = [
        m["message"] for m in runtime.webhook.messages if m["message"]["attributes"].get("resource") == "pager"
    ]
    assert {d["attributes"].get("check_id") for d in documents} >= {"user_console_mfa", "user_mfa"}
    assert all(r.status in {200, 202} for r in [*runtime.webhook.requests, *runtime.pagerduty.requests])

    # When the user enrolls an MFA device, the event path resolves the finding and PagerDuty's alert with it
    enrollment = Enrollment(iam, ACCOUNT)
    device = enrollment.create("pager")
    enrollment.enable(device, *authenticator_codes(device.seed))
    assert runtime.wait_idle()
    assert runtime.pagerduty.alerts[key] == "resolved"
    assert "✅ Resolved: pager" in runtime.teams.headlines


def test_sign_ins_from_the_cli_follow_the_users_mfa(runtime: LocalRuntime) -> None:
    iam = client("iam", runtime.endpoint_url)
    iam.create_user(UserName="signer")
    iam.create_login_profile(UserName="signer", Password="Signer-Password-1!")
    enrollment = Enrollment(iam, ACCOUNT)
    device = enrollment.create("signer")
    enrollment.enable(device, *authenticator_codes(device.seed))
    url = runtime.endpoint_url

    no_code = _cli("local", "signin", "signer", "--endpoint-url", url)
    wrong = _cli("local", "signin", "signer", "--mfa-code", "000000", "--endpoint-url", url)
    right = _cli("local", "signin", "signer", "--mfa-code", pyotp.TOTP(device.seed).now(), "--endpoint-url", url)
    unknown = _cli("local", "signin", "nobody", "--endpoint-url", url)
    unknown_fails = _cli("local", "signin", "nobody", "--fail", "--endpoint-url", url)
    assert runtime.wait_idle()

    assert no_code.returncode == 1 and "--mfa-code" in no_code.stderr
    assert wrong.returncode == 0 and "failed to sign in" in wrong.stdout
    assert right.returncode == 0 and "signed in to the console (MFAUsed=Yes)" in right.stdout
    assert unknown.returncode == 1 and "there is no IAM user nobody" in unknown.stderr
    assert unknown_fails.returncode == 0
    logins = [e["detail"] for e in runtime.trail.recent if e["detail"]["eventName"] == "ConsoleLogin"]
    outcomes = [
        (d["userIdentity"].get("userName"), d["responseElements"]["ConsoleLogin"], d["additionalEventData"]["MFAUsed"])
        for d in logins[-3:]
    ]
    assert outcomes == [
        ("signer", "Failure", "No"),
        ("signer", "Success", "Yes"),
        ("HIDDEN_DUE_TO_SECURITY_REASONS", "Failure", "No"),
    ]
    assert logins[-2]["additionalEventData"]["MFAIdentifier"] == device.serial_number
    assert iam.get_user(UserName="signer")["User"]["PasswordLastUsed"] is not None
    assert device.seed not in json.dumps(list(runtime.trail.recent))


def test_root_signs_in_and_the_credential_report_shows_it(runtime: LocalRuntime) -> None:
    result = runtime.sign_in("root")
    assert runtime.wait_idle()
    assert (result.console_login, result.mfa_used) == ("Success", "No")
    assert result.event["detail"]["userIdentity"]["type"] == "Root"
    assert moto_ext.root(ACCOUNT).password_last_used is not None
    assert "root_console_sign_in" in set().union(*(message_ids(m) for m in runtime.slack.messages))
    # The event itself says root was used: root_not_used_recently fails at once...
    assert _findings(runtime, "root")["root_not_used_recently"] == "FAIL"
    # ...the credential report says so too, with the time it was generated...
    iam = client("iam", runtime.endpoint_url)
    iam.generate_credential_report()
    report = iam.get_credential_report()
    root_row = report["Content"].decode().splitlines()[1].split(",")
    assert root_row[0] == "<root_account>" and root_row[4].startswith(f"{result.event['detail']['eventTime'][:10]}")
    assert abs(time.time() - report["GeneratedTime"].timestamp()) < 60
    # ...and the scheduled audit agrees (no resolve, no reopen)
    runtime.run_audit()
    assert runtime.wait_idle()
    assert _findings(runtime, "root")["root_not_used_recently"] == "FAIL"


def test_root_removing_its_custom_named_device_is_a_critical_alert_for_root(runtime: LocalRuntime) -> None:
    # Given root enrols a virtual device it names "my-phone" (codes checked, as the console does)
    iam = client("iam", runtime.endpoint_url)
    enrollment = Enrollment(iam, ACCOUNT)
    device = enrollment.create(None, device_name="my-phone")
    enrollment.enable(device, *authenticator_codes(device.seed))
    assert runtime.wait_idle()
    before = len(runtime.slack.messages)

    # When root deactivates and deletes it, as the console's "Remove" does
    iam.deactivate_mfa_device(UserName=moto_ext.ROOT_USER_NAME, SerialNumber=device.serial_number)
    iam.delete_virtual_mfa_device(SerialNumber=device.serial_number)
    assert runtime.wait_idle()

    # Then Slack hears a critical mfa_removed for root (not for a user called my-phone), once
    said = runtime.slack.messages[before:]
    removed = [m for m in said if "mfa_removed" in message_ids(m)]
    assert len(removed) == 1
    text = json.dumps(removed[0])
    assert "Critical" in text and "root" in text and "my-phone" in text
    assert _findings(runtime, "root")["root_mfa_enabled"] == "FAIL"
    assert "my-phone" not in {f.resource_name for f in _stored(runtime)}


def _stored(runtime: LocalRuntime) -> list[Any]:
    return FindingsStore(client("dynamodb", runtime.endpoint_url), runtime.findings_table).findings()


def test_the_templates_patterns_decide_what_reaches_the_handlers(runtime: LocalRuntime) -> None:
    assert runtime.dispatcher is not None
    before = len(runtime.dispatcher.invocations)
    failed_call = {
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser",
        "errorCode": "AccessDenied",
        "eventID": "00000000-0000-0000-0000-000000000001",
        "userIdentity": {"type": "Root", "accountId": ACCOUNT},
        "requestParameters": {"userName": "denied"},
        "recipientAccountId": ACCOUNT,
    }
    runtime.trail.publish(API_CALL, "aws.iam", failed_call, ACCOUNT)  # matches no rule: errorCode exists
    client("iam", runtime.endpoint_url).create_policy(
        PolicyName="unrelated",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
        ),
    )  # CreatePolicy is not in the IAM rule's event names
    client("iam", runtime.endpoint_url).create_user(UserName="routed")
    assert runtime.wait_idle()
    handled = [(i.function, i.trigger) for i in runtime.dispatcher.invocations[before:]]
    assert handled == [("on_iam_event", "CreateUser")]


def test_sign_ins_in_either_spelling_reach_the_handler_and_federated_ones_are_not_judged(
    runtime: LocalRuntime,
) -> None:
    assert runtime.dispatcher is not None
    before = len(runtime.dispatcher.invocations)
    # A SAML sign-in recorded with userIdentity.type IAMUser, and an IAM user's own sign-in without
    # MFA under the EventBridge User Guide's spelling of the detail-type; both on the template's rule.
    for name in ("console_login_saml_iam_user_type", "console_login_signin_spelling"):
        sample = load_event(f"{name}.json")
        runtime.trail.publish(sample["detail-type"], "aws.signin", sample["detail"], ACCOUNT)
    assert runtime.wait_idle()
    runs = runtime.dispatcher.invocations[before:]
    assert [(i.function, i.trigger, i.result["outcome"]) for i in runs] == [
        ("on_signin_event", "ConsoleLogin", "ignored"),
        ("on_signin_event", "ConsoleLogin", "evaluated"),
    ]
    assert "SAML federation" in runs[0].result["reason"]
    assert [a["detection"] for a in runs[1].result["alerts"]] == ["console_sign_in_without_mfa"]
    assert _messages_about(runtime, "tester") == []


def test_audits_run_on_demand_from_the_api_and_the_cli(runtime: LocalRuntime) -> None:
    assert runtime.dispatcher is not None
    before = len(runtime.dispatcher.invocations)
    request = urllib.request.Request(f"{runtime.api_url}/audit", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    cli = _cli("local", "audit", "--endpoint-url", runtime.endpoint_url)
    assert cli.returncode == 0, cli.stderr
    assert "audit done in" in cli.stdout
    assert runtime.wait_idle()
    audits = [i for i in runtime.dispatcher.invocations[before:] if i.function == "audit_account"]
    assert len(audits) == 2
    assert all(i.error is None for i in audits)
    info = control_request(runtime.endpoint_url, "info")
    assert info["functions"]["on_iam_event"]["routes"] == ["IamChanges"]
    assert info["functions"]["audit_account"]["schedules"] == ["rate(1 hour)"]


def test_the_iamguard_local_command_prints_its_banner_and_what_happens() -> None:
    # Given `iamguard local` running in its own process, as a person would start it
    process = subprocess.Popen(
        [sys.executable, "-m", "iamguard_cli", "local", "--port", "0", "--api-port", "0", "--no-schedules"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        endpoint = wait_for_line(lines, r"AWS endpoint\s+(http://127\.0\.0\.1:\d+)")
        api = wait_for_line(lines, r"status API\s+(http://127\.0\.0\.1:\d+)/status")
        assert wait_for_line(lines, r"(export AWS_ENDPOINT_URL=http://127\.0\.0\.1:\d+)")
        assert wait_for_line(lines, r"(Stop with Ctrl-C)")
        wait_for_line(lines, r"lambda\s+audit_account ← Scheduled Event")  # the first audit

        # When another process creates a user through the endpoint the banner gave
        client("iam", endpoint).create_user(UserName="from_the_banner")

        # Then the terminal shows the CloudTrail event and the handler's run, and the API knows the user
        wait_for_line(lines, r"trail\s+CreateUser by root \(userName=from_the_banner\)")
        wait_for_line(lines, r"lambda\s+on_iam_event ← CreateUser")
        with urllib.request.urlopen(f"{api}/users/from_the_banner", timeout=10) as response:
            assert json.loads(response.read())["name"] == "from_the_banner"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    reader.join(timeout=5)
    assert any("stopping the local runtime" in line for line in lines)
