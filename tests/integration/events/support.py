"""Helpers for the event-path tests: both handlers loaded as Lambda loads them, on in-process moto.

`Bot` routes an event to on_iam_event or on_signin_event by its source (as the
EventBridge rules do), runs the scheduled audit function deployed with the same
settings, records every announcement, and exposes what the tests look at: the
stored findings, the activity records, the idempotency table.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from botocore.exceptions import ClientError
from iamguard.aws import AwsContext
from iamguard.domain.alerts import Action, Alert
from iamguard.domain.findings import Change
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local import moto_ext
from iamguard_cli.local.lambda_context import LambdaContext

from tests.conftest import ACCOUNT_ID, fake_lambda_context, load_event
from tests.support.template import load_handler  # a fresh module each time, as a cold start

IDEMPOTENCY_TABLE = "iamguard-idempotency-test"
CHANGE_PASSWORD = "arn:aws:iam::aws:policy/IAMUserChangePassword"
ADMINISTRATOR = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
GUARDRAIL = f"arn:aws:iam::{ACCOUNT_ID}:policy/iamguard-mfa-guardrail"


def sample(name: str, *, new_id: bool = False, **detail: Any) -> dict[str, Any]:
    """A sample from events/, optionally with a fresh eventID and some detail fields replaced."""
    event = copy.deepcopy(load_event(f"{name}.json"))
    if new_id:
        event["id"] = str(uuid.uuid4())
        event["detail"]["eventID"] = str(uuid.uuid4())
    event["detail"].update(detail)
    return event


@dataclass
class Announcement:
    alerts: list[Alert]
    changes: list[Change]
    actions: list[Action]


@dataclass
class RecordingAnnouncer:
    """Counts what would be told to people."""

    calls: list[Announcement] = field(default_factory=list)

    def announce(self, *, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> None:
        self.calls.append(Announcement(list(alerts), list(changes), list(actions)))

    @property
    def alerts(self) -> list[Alert]:
        return [alert for call in self.calls for alert in call.alerts]

    @property
    def actions(self) -> list[Action]:
        return [action for call in self.calls for action in call.actions]


@dataclass
class Bot:
    """Both event handlers of one deployment, with the announcer they share."""

    handlers: dict[str, ModuleType]
    announcer: RecordingAnnouncer
    store: FindingsStore
    aws: AwsContext
    context: LambdaContext = field(default_factory=fake_lambda_context)
    auditor: ModuleType | None = None

    def audit(self) -> dict[str, Any]:
        """One scheduled run of the audit function (deployed with the same settings; its announcements recorded)."""
        if self.auditor is None:
            self.auditor = load_audit(self.announcer)
        result: dict[str, Any] = self.auditor.lambda_handler(
            {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, self.context
        )
        return result

    def __call__(self, event: Any) -> dict[str, Any]:
        source = event.get("source") if isinstance(event, dict) else None
        handler = self.handlers["on_signin_event" if source == "aws.signin" else "on_iam_event"]
        result: dict[str, Any] = handler.lambda_handler(event, self.context)
        return result

    def restart(self) -> Bot:
        """Fresh execution environments (cold start), same tables and account."""
        return Bot(load_both(self.announcer), self.announcer, self.store, self.aws, self.context)

    def activity(self, kind: str) -> list[dict[str, Any]]:
        return [item for item in self.store.recent_activity(days=400) if item["kind"] == kind]

    def idempotency_records(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.aws.dynamodb().scan(TableName=IDEMPOTENCY_TABLE)["Items"]
        return items

    def attached(self, user: str) -> set[str]:
        return {p["PolicyArn"] for p in self.aws.iam().list_attached_user_policies(UserName=user)["AttachedPolicies"]}


def load_both(announcer: RecordingAnnouncer) -> dict[str, ModuleType]:
    handlers = {name: load_handler(name) for name in ("on_iam_event", "on_signin_event")}
    for module in handlers.values():
        module.HANDLER.announcer_factory = lambda _settings, _logger: announcer
        # One retry instead of Lambda's eight: throttling tests stay fast.
        module.HANDLER.aws = AwsContext(region="us-east-1", retry_mode="standard", max_attempts=2)
    return handlers


def load_audit(announcer: RecordingAnnouncer) -> ModuleType:
    """The audit function; what it announces goes to its real dispatcher and to `announcer`."""
    module = load_handler("audit_account")
    dispatcher = module.NOTIFY
    deliver = dispatcher.announce

    def announce(*, alerts: list[Alert], changes: list[Change], actions: list[Action]) -> Any:
        announcer.announce(alerts=alerts, changes=changes, actions=actions)
        return deliver(alerts=alerts, changes=changes, actions=actions)

    dispatcher.announce = announce
    return module


BotFactory = Callable[..., Bot]


def _ignore_missing(call: Callable[[], object]) -> None:
    try:
        call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise


def wipe_account(aws: AwsContext) -> None:
    """Return the moto account to empty through the API (much faster than a new mock with managed policies)."""
    iam = aws.iam()
    for page in iam.get_paginator("list_users").paginate():
        for user in page["Users"]:
            name = user["UserName"]
            for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
                iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
            for policy_name in iam.list_user_policies(UserName=name)["PolicyNames"]:
                iam.delete_user_policy(UserName=name, PolicyName=policy_name)
            for group in iam.list_groups_for_user(UserName=name)["Groups"]:
                iam.remove_user_from_group(GroupName=group["GroupName"], UserName=name)
            for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
            for device in iam.list_mfa_devices(UserName=name)["MFADevices"]:
                iam.deactivate_mfa_device(UserName=name, SerialNumber=device["SerialNumber"])
            _ignore_missing(lambda name=name: iam.delete_login_profile(UserName=name))
            iam.delete_user(UserName=name)
    for group in iam.list_groups()["Groups"]:
        name = group["GroupName"]
        for policy in iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]:
            iam.detach_group_policy(GroupName=name, PolicyArn=policy["PolicyArn"])
        for policy_name in iam.list_group_policies(GroupName=name)["PolicyNames"]:
            iam.delete_group_policy(GroupName=name, PolicyName=policy_name)
        iam.delete_group(GroupName=name)
    for device in iam.list_virtual_mfa_devices()["VirtualMFADevices"]:
        owner = device.get("User")
        if owner is not None and owner["Arn"].endswith(":root"):
            # root's own call: as in AWS, a device is deactivated before it can be deleted
            iam.deactivate_mfa_device(SerialNumber=device["SerialNumber"])
        _ignore_missing(lambda serial=device["SerialNumber"]: iam.delete_virtual_mfa_device(SerialNumber=serial))
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        iam.delete_policy(PolicyArn=policy["Arn"])
    _ignore_missing(iam.delete_account_password_policy)
    for alias in iam.list_account_aliases()["AccountAliases"]:
        iam.delete_account_alias(AccountAlias=alias)
    dynamodb = aws.dynamodb()
    for table in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=table)
    moto_ext.reset()


def detections(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(detection, severity, resource) of each alert in a handler result."""
    return [(a["detection"], a["severity"], a["resource_name"]) for a in result["alerts"]]
