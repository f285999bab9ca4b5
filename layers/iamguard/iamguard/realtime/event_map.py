"""The declarative event map: which CloudTrail events iamguard acts on, and how.

One row per event name says where the event comes from, where the affected
principal is found, which checks to run again and which detections to
consider. The same rows produce the EventBridge patterns of template.yaml
(`event_patterns()`), so the deployed rules and the handlers cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from iamguard.checks import checks_by_scope
from iamguard.domain.alerts import Detection
from iamguard.realtime.cloudtrail import API_CALL, CONSOLE_SIGN_IN, CONSOLE_SIGN_IN_TYPES, CloudTrailEvent

EventSource = Literal["iam.amazonaws.com", "signin.amazonaws.com", "sts.amazonaws.com"]

# Where a row finds the principal the event is about; tried in order, first hit wins.
#   request:userName         requestParameters.userName → that IAM user (`<root_account>` from root: root)
#   request:groupName        requestParameters.groupName → every member of the group
#   request:serialNumber     the user (or root) the MFA device is assigned to now, looked up in IAM
#                            (ListVirtualMFADevices' User.Arn) — never guessed from the device's name,
#                            which is free text (`mfa/my-phone` can be root's device)
#   request:policyArn        requestParameters.policyArn → every user who holds that managed policy
#   request:targetPrincipal  the member account of an sts:AssumeRoot session (ID or principal ARN)
#   caller                   userIdentity → root, or the calling IAM user (roles and federated sessions: nobody)
#   root-caller              userIdentity → root; anyone else: not this locator
#   account                  the account itself (password policy, alias)
Locator = Literal[
    "request:userName",
    "request:groupName",
    "request:serialNumber",
    "request:policyArn",
    "request:targetPrincipal",
    "caller",
    "root-caller",
    "account",
]

USER_CHECKS: tuple[str, ...] = tuple(check.id for check in checks_by_scope("user"))
# Root checks that need no credential report (the event path reads root from the account summary).
ROOT_CHECKS: tuple[str, ...] = ("root_mfa_enabled", "root_hardware_mfa", "root_no_access_keys")
ROOT_REPORT_NAME = "<root_account>"  # no IAM user can have it; the local trail and some tools use it for root
# IAM user and group names: ASCII letters, digits and +=,.@_- (users 1-64 characters, groups 1-128).
_USER_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_GROUP_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
# A managed policy: the account's own or AWS's, with an optional path (printable ASCII).
_POLICY_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?:\d{12}|aws):policy/[!-~]{1,1500}")
_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
_PRINCIPAL_ACCOUNT = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):", re.ASCII)


@dataclass(frozen=True)
class EventRule:
    """What iamguard does with one CloudTrail event name."""

    event_name: str
    source: EventSource
    locate: tuple[Locator, ...]
    checks: tuple[str, ...]  # user checks run for a user subject, root/account checks for root or the account
    detections: tuple[Detection, ...] = ()
    # A boolean request parameter without which the call changed nothing iamguard judges (setAsDefault).
    only_if: str | None = None

    @property
    def handler(self) -> str:
        """The function (functions/<handler>/) that receives this event."""
        return "on_signin_event" if self.source == "signin.amazonaws.com" else "on_iam_event"


def _iam(
    name: str,
    locate: tuple[Locator, ...],
    checks: tuple[str, ...],
    *detections: Detection,
    only_if: str | None = None,
) -> EventRule:
    return EventRule(name, "iam.amazonaws.com", locate, checks, detections, only_if)


_USER: tuple[Locator, ...] = ("request:userName",)
_USER_OR_CALLER: tuple[Locator, ...] = ("request:userName", "caller")
_GROUP: tuple[Locator, ...] = ("request:groupName",)
# Deactivate/Enable/Resync: the named user; else the caller when it is root, or an IAM user acting on its
# own device (IAM's implicit user); else whoever the device is assigned to.
_MFA_OWNER: tuple[Locator, ...] = ("request:userName", "caller", "request:serialNumber")
# DeleteVirtualMFADevice names only the device, which AWS requires to be deactivated first: the caller is
# the subject only when it is root (root's own devices); otherwise the device's owner, if it still has one.
_DEVICE_OWNER: tuple[Locator, ...] = ("root-caller", "request:serialNumber")
_POLICY: tuple[Locator, ...] = ("request:policyArn",)

RULES: dict[str, EventRule] = {
    rule.event_name: rule
    for rule in (
        _iam("CreateUser", _USER, USER_CHECKS, Detection.USER_CREATED),
        _iam("CreateLoginProfile", _USER_OR_CALLER, USER_CHECKS, Detection.CONSOLE_ACCESS_GRANTED),
        _iam("UpdateLoginProfile", _USER_OR_CALLER, USER_CHECKS, Detection.CONSOLE_ACCESS_GRANTED),
        # Console access removed: its findings change, and the audit must not reuse the old profile's facts.
        _iam("DeleteLoginProfile", _USER_OR_CALLER, USER_CHECKS),
        _iam("AttachUserPolicy", _USER, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("PutUserPolicy", _USER, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("AddUserToGroup", _USER, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("AttachGroupPolicy", _GROUP, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("PutGroupPolicy", _GROUP, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("DetachUserPolicy", _USER, USER_CHECKS, Detection.REQUIRED_POLICY_REMOVED),
        # Inline policies cannot be required policies (the list holds managed ARNs): re-evaluate only.
        _iam("DeleteUserPolicy", _USER, USER_CHECKS),
        _iam("RemoveUserFromGroup", _USER, USER_CHECKS, Detection.REQUIRED_POLICY_REMOVED),
        _iam("DetachGroupPolicy", _GROUP, USER_CHECKS, Detection.REQUIRED_POLICY_REMOVED),
        _iam("DeleteGroupPolicy", _GROUP, USER_CHECKS),
        # A managed policy's default version is what IAM enforces: a new default re-evaluates its holders.
        _iam("CreatePolicyVersion", _POLICY, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED, only_if="setAsDefault"),
        _iam("SetDefaultPolicyVersion", _POLICY, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("PutUserPermissionsBoundary", _USER, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("DeleteUserPermissionsBoundary", _USER, USER_CHECKS, Detection.ADMIN_ACCESS_GRANTED),
        _iam("EnableMFADevice", _MFA_OWNER, USER_CHECKS + ROOT_CHECKS),
        _iam("ResyncMFADevice", _MFA_OWNER, USER_CHECKS + ROOT_CHECKS),
        _iam("DeactivateMFADevice", _MFA_OWNER, USER_CHECKS + ROOT_CHECKS, Detection.MFA_REMOVED),
        _iam("DeleteVirtualMFADevice", _DEVICE_OWNER, USER_CHECKS + ROOT_CHECKS, Detection.MFA_REMOVED),
        _iam("CreateAccessKey", _USER_OR_CALLER, USER_CHECKS + ROOT_CHECKS, Detection.ROOT_ACCESS_KEY_CREATED),
        _iam("UpdateAccountPasswordPolicy", ("account",), ("password_policy",), Detection.PASSWORD_POLICY_WEAKENED),
        _iam("DeleteAccountPasswordPolicy", ("account",), ("password_policy",), Detection.PASSWORD_POLICY_WEAKENED),
        _iam("CreateAccountAlias", ("account",), ("account_alias_set",)),
        _iam("DeleteAccountAlias", ("account",), ("account_alias_set",)),
        # A privileged root session on a member account (centralized root access). Regional: recorded
        # where the STS endpoint is, in the account that called it. Nothing of this account to re-read.
        EventRule(
            "AssumeRoot", "sts.amazonaws.com", ("request:targetPrincipal",), (), (Detection.ROOT_SESSION_ASSUMED,)
        ),
        EventRule(
            "ConsoleLogin",
            "signin.amazonaws.com",
            ("caller",),
            USER_CHECKS + ROOT_CHECKS,
            (
                Detection.ROOT_CONSOLE_SIGN_IN,
                Detection.CONSOLE_SIGN_IN_WITHOUT_MFA,
                Detection.CONSOLE_SIGN_IN_FAILURES,
            ),
        ),
    )
}

_EVENTBRIDGE: dict[EventSource, tuple[str, str]] = {
    "iam.amazonaws.com": ("aws.iam", API_CALL),
    "signin.amazonaws.com": ("aws.signin", CONSOLE_SIGN_IN),
    "sts.amazonaws.com": ("aws.sts", API_CALL),
}
# AWS documents the sign-in detail-type in two spellings: the rules match both.
_DETAIL_TYPES: dict[str, tuple[str, ...]] = {CONSOLE_SIGN_IN: CONSOLE_SIGN_IN_TYPES}


def rule_for(event: CloudTrailEvent) -> EventRule | None:
    """The row for this event, if iamguard acts on it (name and source must both match)."""
    rule = RULES.get(event.detail.event_name)
    if rule is None or rule.source != event.detail.event_source:
        return None
    return rule


def event_patterns() -> dict[str, dict[str, Any]]:
    """The EventBridge pattern of each function, exactly as template.yaml must declare it.

    IAM and STS calls that failed (`errorCode` present) changed nothing and are
    filtered out by the rule already; failed sign-ins have no errorCode and do
    reach the sign-in function (they are a signal of their own). One function
    takes both IAM and STS calls: the lists hold both sources and both sets of
    names (no STS event bears an IAM event's name), and the handler matches
    name and source together (`rule_for`).
    """
    patterns: dict[str, dict[str, Any]] = {}
    for rule in sorted(RULES.values(), key=lambda r: r.event_name):
        eb_source, detail_type = _EVENTBRIDGE[rule.source]
        pattern = patterns.setdefault(
            rule.handler,
            {
                "source": [],
                "detail-type": list(_DETAIL_TYPES.get(detail_type, (detail_type,))),
                "detail": {"eventSource": [], "eventName": []},
            },
        )
        if eb_source not in pattern["source"]:
            pattern["source"].append(eb_source)
            pattern["detail"]["eventSource"].append(rule.source)
        pattern["detail"]["eventName"].append(rule.event_name)
    for pattern in patterns.values():
        pattern["source"].sort()
        pattern["detail"]["eventSource"].sort()
    patterns["on_iam_event"]["detail"]["errorCode"] = [{"exists": False}]
    return patterns


# -- finding the subject -------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """The principal an event is about."""

    kind: Literal["user", "group", "policy", "root", "account"]
    name: str  # a user or group name, root, the account id, or a managed policy's ARN


class SubjectError(ValueError):
    """The event names its subject in a way no IAM name can have (a corrupt or hostile event)."""


def _iam_name(value: Any, what: str, pattern: re.Pattern[str] = _USER_NAME) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = value[:80] + "…" if isinstance(value, str) and len(value) > 80 else value
        raise SubjectError(f"{what} {shown!r} is not a valid IAM name")
    return value


def _policy_arn(value: Any) -> str:
    if not isinstance(value, str) or not _POLICY_ARN.fullmatch(value):
        shown = value[:80] + "…" if isinstance(value, str) and len(value) > 80 else value
        raise SubjectError(f"requestParameters.policyArn {shown!r} is not a managed policy ARN")
    return value


def account_of_principal(target: Any) -> str:
    """sts:AssumeRoot's targetPrincipal: a member account ID or a principal ARN in it."""
    if isinstance(target, str):
        if _ACCOUNT_ID.fullmatch(target):
            return target
        match = _PRINCIPAL_ACCOUNT.match(target)
        if match:
            return match.group(1)
    shown = target[:80] if isinstance(target, str) else target
    raise SubjectError(f"requestParameters.targetPrincipal {shown!r} is not an account ID or a principal ARN")


def subject_of_arn(arn: str) -> Subject | None:
    """The subject an IAM principal ARN names: `…:root` → root, `…:user/path/name` → that user."""
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    if resource == "root":
        return Subject("root", "root")
    if resource.startswith("user/"):
        return Subject("user", _iam_name(resource.rsplit("/", 1)[-1], "MFA device owner"))
    return None


# The owner of an MFA device by its serial number, as IAM says now (ListVirtualMFADevices), or None.
DeviceOwner = Callable[[str], Subject | None]


def locate_subject(event: CloudTrailEvent, rule: EventRule, device_owner: DeviceOwner | None = None) -> Subject | None:
    """Follow the row's locators; None when the event names nobody iamguard evaluates.

    `device_owner` answers the `request:serialNumber` locator (the event path looks it up in IAM);
    without it, that locator finds nobody.
    """
    detail = event.detail
    identity = detail.user_identity
    serial = detail.request("serialNumber")
    # IAM's bounds for a serial number; a corrupt one is refused whichever locator would answer
    malformed = not isinstance(serial, str) or not 9 <= len(serial) <= 256
    if "request:serialNumber" in rule.locate and serial is not None and malformed:
        raise SubjectError("requestParameters.serialNumber is not an MFA serial number")
    for locator in rule.locate:
        if locator == "account":
            return Subject("account", event.account_id)
        if locator == "request:userName" and detail.request("userName") is not None:
            name = detail.request("userName")
            if identity.type == "Root" and name == ROOT_REPORT_NAME:
                return Subject("root", "root")
            return Subject("user", _iam_name(name, "requestParameters.userName"))
        if locator == "request:groupName" and detail.request("groupName") is not None:
            return Subject("group", _iam_name(detail.request("groupName"), "requestParameters.groupName", _GROUP_NAME))
        if locator == "request:policyArn" and detail.request("policyArn") is not None:
            return Subject("policy", _policy_arn(detail.request("policyArn")))
        if locator == "request:targetPrincipal":
            return Subject("account", account_of_principal(detail.request("targetPrincipal")))
        if locator == "request:serialNumber" and isinstance(serial, str) and device_owner is not None:
            owner = device_owner(serial)
            if owner is not None:
                return owner
        if locator in {"caller", "root-caller"} and identity.type == "Root":
            return Subject("root", "root")
        if locator == "caller" and identity.type == "IAMUser" and identity.user_name:
            return Subject("user", _iam_name(identity.user_name, "userIdentity.userName"))
    return None
