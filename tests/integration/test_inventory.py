"""Inventory against moto: bulk reads, pagination, the credential-report protocol, throttling."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from iamguard.audit.run import run_audit
from iamguard.aws import AwsContext
from iamguard.domain.findings import Status
from iamguard.iam.inventory import CredentialReportUnavailable, Inventory, UnknownUser
from iamguard.settings import Settings
from iamguard_cli.local import moto_ext
from iamguard_cli.local.seed import seed_designed_account, seed_walkthrough

NO_WAIT: dict[str, Any] = {"sleep": lambda _s: None}


def test_bulk_read_of_the_designed_account(aws: AwsContext) -> None:
    seed_designed_account(aws.iam())
    state = Inventory(aws, **NO_WAIT).read_account()

    users = {u.name: u for u in state.users}
    assert set(users) == {"alice", "bob_ci", "carol_ops", "dave_new", "erin_contractor"}
    assert users["alice"].has_mfa and users["alice"].mfa_devices[0].serial_number.endswith(":mfa/alice")
    assert users["bob_ci"].credentials is not None and len(users["bob_ci"].credentials.active_keys) == 2
    assert users["carol_ops"].group_names == ("ops",)
    assert state.groups["ops"].inline_policies[0].document["Statement"][0]["Action"] == "*"
    assert users["dave_new"].password_reset_required is True  # looked up: cannot change its password
    assert users["alice"].password_reset_required is None  # not looked up: has IAMUserChangePassword
    assert users["erin_contractor"].tags == {"iamguard:exempt": "true"}
    assert state.password_policy is not None and state.password_policy.minimum_length == 8
    assert state.aliases == ("iamguard-example",)
    assert state.root.arn == "arn:aws:iam::123456789012:root"
    assert state.errors == {}


def test_root_state_comes_from_summary_report_and_virtual_devices(aws: AwsContext) -> None:
    account = moto_ext.root("123456789012")
    account.mfa = "virtual"
    account.access_keys.append(moto_ext.RootKey("AKIAROOTEXAMPLE"))
    state = Inventory(aws, **NO_WAIT).read_account()
    assert state.root.mfa_enabled and state.root.has_virtual_mfa and state.root.access_keys_present
    assert state.root.credentials is not None and len(state.root.credentials.active_keys) == 1


def test_api_calls_grow_with_pages_not_users(aws: AwsContext) -> None:
    iam = aws.iam()
    seed_walkthrough(iam)
    small = Inventory(aws, **NO_WAIT)
    small.read_account()
    for n in range(60):
        iam.create_user(UserName=f"user{n:03d}")
        iam.create_login_profile(UserName=f"user{n:03d}", Password="Long-Enough-Password-1!")
        iam.attach_user_policy(UserName=f"user{n:03d}", PolicyArn="arn:aws:iam::aws:policy/IAMUserChangePassword")
    large = Inventory(aws, **NO_WAIT)
    state = large.read_account()
    assert len(state.users) == 61
    # The first run also waited for the report to be generated; otherwise the calls are the same.
    assert large.counter.total <= small.counter.total
    assert large.counter.calls.get("GetLoginProfile", 0) == small.counter.calls.get("GetLoginProfile", 0)


def test_authorization_details_pages_are_all_read() -> None:
    ctx = AwsContext()
    client = ctx.iam()
    stubber = Stubber(client)
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def user(name: str) -> dict[str, Any]:
        return {"UserName": name, "UserId": f"AIDA{name.upper():0<16}", "Arn": f"arn:aws:iam::123456789012:user/{name}",
                "Path": "/", "CreateDate": created}  # fmt: skip

    stubber.add_response("get_account_summary", {"SummaryMap": {"AccountMFAEnabled": 1}})
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    pages = [["u1", "u2"], ["u3"], ["u4", "u5"]]
    rows = "".join(
        f"{n},arn:aws:iam::123456789012:user/{n},2026-01-01T00:00:00+00:00\n" for page in pages for n in page
    )
    report = ("user,arn,user_creation_time\n" + rows).encode()
    stubber.add_response("get_credential_report", {"Content": report, "ReportFormat": "text/csv"})
    for index, names in enumerate(pages):
        response: dict[str, Any] = {"UserDetailList": [user(n) for n in names], "GroupDetailList": [], "Policies": []}
        expected: dict[str, Any] = {"Filter": ["User", "Group", "LocalManagedPolicy"], "MaxItems": 1000}
        if index:
            expected["Marker"] = f"page{index}"
        if index < len(pages) - 1:
            response.update(IsTruncated=True, Marker=f"page{index + 1}")
        stubber.add_response("get_account_authorization_details", response, expected)
    stubber.add_response("list_virtual_mfa_devices", {"VirtualMFADevices": [], "IsTruncated": True, "Marker": "m1"})
    stubber.add_response(
        "list_virtual_mfa_devices",
        {"VirtualMFADevices": []},
        {"AssignmentStatus": "Assigned", "Marker": "m1", "MaxItems": 1000},
    )
    stubber.add_client_error("get_account_password_policy", "NoSuchEntity", http_status_code=404)
    stubber.add_response("list_account_aliases", {"AccountAliases": []})
    with stubber:
        state = Inventory(ctx, iam_client=client, **NO_WAIT).read_account()
    stubber.assert_no_pending_responses()
    assert [u.name for u in state.users] == ["u1", "u2", "u3", "u4", "u5"]
    assert state.password_policy is None


def _report_stub(ctx: AwsContext) -> tuple[Any, Stubber]:
    client = ctx.iam()
    return client, Stubber(client)


def test_credential_report_is_polled_until_complete() -> None:
    ctx = AwsContext()
    client, stubber = _report_stub(ctx)
    stubber.add_response("generate_credential_report", {"State": "STARTED"})
    stubber.add_response("generate_credential_report", {"State": "INPROGRESS"})
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_client_error("get_credential_report", "ReportInProgress", http_status_code=404)
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_response(
        "get_credential_report", {"Content": b"user,arn,mfa_active\nbob,arn:aws:iam::1:user/bob,true\n"}
    )
    sleeps: list[float] = []
    with stubber:
        report = Inventory(ctx, iam_client=client, sleep=sleeps.append).credential_report()
    assert report["bob"].mfa_active is True
    assert sleeps == [0.25, 0.5, 1.0]  # exponential backoff between polls


def test_persistent_limit_exceeded_becomes_an_error_never_no_findings() -> None:
    ctx = AwsContext()
    client, stubber = _report_stub(ctx)
    for _ in range(20):
        stubber.add_client_error("generate_credential_report", "LimitExceeded", "Rate exceeded", http_status_code=409)
    clock = iter(range(1000))
    with stubber, pytest.raises(CredentialReportUnavailable, match="LimitExceeded"):
        Inventory(ctx, iam_client=client, report_timeout=3, sleep=lambda s: next(clock)).credential_report()


def test_audit_reports_errors_for_checks_that_need_an_unavailable_report(aws: AwsContext) -> None:
    seed_walkthrough(aws.iam())
    inventory = Inventory(aws, report_timeout=0.1, **NO_WAIT)

    def unavailable() -> Any:
        raise CredentialReportUnavailable("credential report not available after 0s (LimitExceeded: Rate exceeded)")

    inventory.credential_report = unavailable  # type: ignore[method-assign]
    result = run_audit(inventory, Settings())
    by_check = {(f.check_id, f.resource_name): f for f in result.findings}
    assert by_check[("user_console_mfa", "wonjun_admin")].status is Status.ERROR
    assert by_check[("root_not_used_recently", "root")].status is Status.ERROR
    assert "LimitExceeded" in by_check[("user_console_mfa", "wonjun_admin")].detail
    # Root MFA still comes from the account summary, and admin rights from the authorization details.
    assert by_check[("root_mfa_enabled", "root")].status is Status.FAIL
    assert by_check[("user_admin_access", "wonjun_admin")].status is Status.FAIL
    assert result.errors["credential_report"].startswith("credential report not available")


def test_read_user_reads_one_users_live_state(aws: AwsContext) -> None:
    seed_designed_account(aws.iam())
    inventory = Inventory(aws, **NO_WAIT)
    carol, groups, documents = inventory.read_user("carol_ops")
    assert carol.group_names == ("ops",)
    assert groups["ops"].inline_policies[0].name == "everything"
    dave, _, _ = inventory.read_user("dave_new")
    assert dave.credentials is not None and dave.credentials.password_enabled
    assert dave.password_reset_required is True
    assert "arn:aws:iam::aws:policy/ReadOnlyAccess" in documents or dave.attached_policies
    assert inventory.counter.total < 30
    with pytest.raises(UnknownUser, match="ghost"):
        inventory.read_user("ghost")


class _HeldCalls:
    """Holds each IAM request until `together` of them are open at once (or `patience` seconds passed), as a slow
    network would, and records how many were in flight at the most: calls sent one by one never get past 1."""

    def __init__(self, client: Any, together: int, patience: float = 5.0) -> None:
        self.together, self.patience = together, patience
        self.lock = threading.Lock()
        self.gathered = threading.Event()
        self.in_flight = 0
        self.peak = 0
        self.started: list[str] = []
        client.meta.events.register("before-call.iam", self._start)
        client.meta.events.register("after-call.iam", self._end)

    def _start(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.started.append(model.name)
            if self.in_flight >= self.together:
                self.gathered.set()
        self.gathered.wait(self.patience)

    def _end(self, **_: Any) -> None:
        with self.lock:
            self.in_flight -= 1


def _user_with_everything(iam: Any) -> None:
    """A console user with an inline policy, a group and two access keys."""
    iam.create_user(UserName="busy")
    iam.create_login_profile(UserName="busy", Password="Initial-password-1!", PasswordResetRequired=True)
    iam.put_user_policy(UserName="busy", PolicyName="own", PolicyDocument=json.dumps(_READ_ONLY))
    iam.create_group(GroupName="crew")
    iam.add_user_to_group(GroupName="crew", UserName="busy")
    iam.create_access_key(UserName="busy")
    iam.create_access_key(UserName="busy")


_READ_ONLY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
_BY_NAME_ONLY = {
    "GetUser",
    "ListAttachedUserPolicies",
    "ListUserPolicies",
    "ListGroupsForUser",
    "ListMFADevices",
    "GetLoginProfile",
    "ListAccessKeys",
}


def test_read_user_sends_the_calls_that_need_only_the_name_together(aws: AwsContext) -> None:
    """On AWS each call is a round trip: the seven that need only the user's name go out at once, then what
    their answers name (the inline document, the group's policies, each key's last use)."""
    _user_with_everything(aws.iam())
    inventory = Inventory(aws, **NO_WAIT)
    held = _HeldCalls(inventory.iam, together=len(_BY_NAME_ONLY))

    user, groups, _ = inventory.read_user("busy")

    assert set(held.started[:7]) == _BY_NAME_ONLY  # none of them waited for another
    assert held.peak == 7  # one at a time would be 1
    assert set(held.started[7:]) >= {"GetUserPolicy", "GetAccessKeyLastUsed", "ListAttachedGroupPolicies"}
    assert user.inline_policies[0].name == "own" and user.inline_policies[0].document == _READ_ONLY
    assert user.group_names == ("crew",) and groups["crew"].name == "crew"
    assert user.credentials is not None and user.credentials.password_enabled
    assert [key.slot for key in user.credentials.access_keys] == [1, 2]
    assert all(key.active and key.last_used is None for key in user.credentials.access_keys)
    assert user.password_reset_required is True


@pytest.mark.parametrize("operation", ["ListAccessKeys", "GetUserPolicy", "ListGroupPolicies"])
def test_a_user_deleted_while_it_is_read_is_unknown_whichever_call_noticed(aws: AwsContext, operation: str) -> None:
    _user_with_everything(aws.iam())
    inventory = Inventory(aws, **NO_WAIT)

    def deleted(**_: Any) -> None:
        raise inventory.iam.exceptions.NoSuchEntityException(
            {"Error": {"Code": "NoSuchEntity", "Message": "The user with name busy cannot be found."}}, operation
        )

    inventory.iam.meta.events.register(f"before-call.iam.{operation}", deleted)
    with pytest.raises(UnknownUser, match="busy"):
        inventory.read_user("busy")


def test_a_refused_call_of_a_user_read_is_not_taken_for_a_missing_user(aws: AwsContext) -> None:
    _user_with_everything(aws.iam())
    inventory = Inventory(aws, **NO_WAIT)

    def refused(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "ListMFADevices")

    inventory.iam.meta.events.register("before-call.iam.ListMFADevices", refused)
    with pytest.raises(ClientError, match="AccessDenied"):
        inventory.read_user("busy")
