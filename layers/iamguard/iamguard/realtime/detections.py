"""The real-time detection rules (DESIGN.md's detection table), as pure functions.

The event path (iamguard.realtime) reads the current state of what an event
touched into an `Observed`; each detection looks at the event and that state
and returns the alerts it raises. Nothing here calls AWS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from iamguard.checks.account import unmet_password_rules
from iamguard.domain.account import (
    Group,
    PasswordPolicy,
    PolicyDocument,
    RootState,
    User,
)
from iamguard.domain.alerts import Alert, Detection
from iamguard.domain.findings import Change, Finding, Severity, Status
from iamguard.iam import evaluation as policy
from iamguard.realtime.cloudtrail import HIDDEN_USER_NAME, CloudTrailEvent
from iamguard.realtime.event_map import SubjectError, account_of_principal
from iamguard.settings import Settings


def stored_before(change: Change) -> Finding | None:
    """What the store held for a finding before this event: a change an earlier run recorded and never
    announced (`recovered`) is already stored, so it is not this event's transition."""
    return change.finding if change.recovered else change.previous


@dataclass(frozen=True)
class UserView:
    """One user as it is now, with the findings just stored for it."""

    user: User
    groups: Mapping[str, Group]
    documents: Mapping[str, PolicyDocument]
    findings: tuple[Finding, ...] = ()
    changes: tuple[Change, ...] = ()
    restored: tuple[str, ...] = ()  # policy ARNs enforcement attached while handling this event

    def finding(self, check_id: str) -> Finding | None:
        return next((f for f in self.findings if f.check_id == check_id), None)

    def previous(self, check_id: str) -> Finding | None:
        """What was stored for the check before this event."""
        return next((stored_before(c) for c in self.changes if c.finding.check_id == check_id), None)

    @property
    def is_admin(self) -> bool:
        return bool(policy.admin_sources(self.user, self.groups, self.documents))


@dataclass(frozen=True)
class Burst:
    """Failed sign-ins of one principal within the window that ends at this failure."""

    principal: str
    failures: int
    threshold: int
    window: timedelta
    opened: bool  # this failure opened a new burst: the one time it is announced


@dataclass(frozen=True)
class Observed:
    """The current state of what an event touched (only the parts that event needs)."""

    users: tuple[UserView, ...] = ()
    root: RootState | None = None
    root_changes: tuple[Change, ...] = ()
    password_policy: PasswordPolicy | None = None
    # Managed policy ARNs that the event took away (detached, or carried by the group a user left).
    removed_policy_arns: tuple[str, ...] = ()
    burst: Burst | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _alert(
    event: CloudTrailEvent,
    detection: Detection,
    severity: Severity,
    resource_name: str,
    summary: str,
    *,
    resource_arn: str | None = None,
    related: tuple[str, ...] = (),
    **extra: object,
) -> Alert:
    detail = event.detail
    return Alert(
        detection=detection,
        severity=severity,
        resource_name=resource_name,
        resource_arn=resource_arn,
        summary=summary,
        actor=detail.user_identity.readable,
        source_ip=detail.source_ip_address,
        event_id=detail.event_id,
        event_name=detail.event_name,
        event_time=detail.event_time,
        region=detail.aws_region or event.region,
        account_id=event.account_id,
        related_check_ids=related,
        extra=dict(extra),
    )


def _who(event: CloudTrailEvent) -> str:
    readable = event.detail.user_identity.readable
    return readable[0].upper() + readable[1:]


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def user_created(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """Every new user is announced with its compliance; high when it already fails a high/critical check."""
    alerts = []
    for view in seen.users:
        failed = sorted((f for f in view.findings if f.status is Status.FAIL), key=lambda f: -f.severity.rank)
        serious = [f for f in failed if f.severity.rank >= Severity.HIGH.rank]
        if failed:
            listed = ", ".join(f"{f.check_id} ({f.severity.value})" for f in failed)
            state = f"it fails {len(failed)} check{'s' if len(failed) != 1 else ''}: {listed}"
        else:
            state = "it passes every check"
        alerts.append(
            _alert(
                event,
                Detection.USER_CREATED,
                Severity.HIGH if serious else Severity.INFORMATIONAL,
                view.user.name,
                f"{_who(event)} created user {view.user.name}; {state}.",
                resource_arn=view.user.arn,
                related=tuple(f.check_id for f in failed),
            )
        )
    return alerts


def console_access_granted(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """A console password set by someone else without 'must reset at next sign-in'."""
    detail = event.detail
    identity = detail.user_identity
    alerts = []
    for view in seen.users:
        own = identity.type == "IAMUser" and identity.user_name == view.user.name
        if own or _truthy(detail.request("passwordResetRequired")):
            continue
        verb = "gave" if detail.event_name == "CreateLoginProfile" else "changed the console password of"
        alerts.append(
            _alert(
                event,
                Detection.CONSOLE_ACCESS_GRANTED,
                Severity.MEDIUM,
                view.user.name,
                f"{_who(event)} {verb} {view.user.name}"
                + (" a console password" if verb == "gave" else "")
                + " without requiring a new password at the next sign-in.",
                resource_arn=view.user.arn,
                related=("user_console_mfa",),
            )
        )
    return alerts


# Events that change a managed policy's default version (what IAM enforces) or a user's boundary: they
# re-evaluate users who may have been admins already, so only a user who was not one before is "granted".
POLICY_VERSION_EVENTS = frozenset({"CreatePolicyVersion", "SetDefaultPolicyVersion"})
BOUNDARY_EVENTS = frozenset({"PutUserPermissionsBoundary", "DeleteUserPermissionsBoundary"})


def _was_admin(view: UserView) -> bool:
    """The stored user_admin_access verdict before this event said admin (nothing stored: unknown, so no)."""
    previous = view.previous("user_admin_access")
    return previous is not None and previous.status in {Status.FAIL, Status.EXEMPT}


def _event_grants_admin(event: CloudTrailEvent, view: UserView, verdict: policy.AdminVerdict) -> bool:
    """Whether what this event attached, put, joined, rewrote or unbounded (still in place) gives full admin."""
    if not verdict.is_admin:
        return False
    detail = event.detail
    name, arn = detail.event_name, detail.request("policyArn")
    policy_name, group_name = detail.request("policyName"), detail.request("groupName")
    sources = verdict.sources
    if name == "AttachUserPolicy":
        return any(s.group is None and s.policy_arn == arn for s in sources)
    if name == "PutUserPolicy":
        return any(s.group is None and s.inline_name == policy_name for s in sources)
    if name == "AddUserToGroup":  # joining: any admin policy of that group counts
        return any(s.group == group_name for s in sources)
    if name == "AttachGroupPolicy":
        return any(s.group == group_name and s.policy_arn == arn for s in sources)
    if name == "PutGroupPolicy":
        return any(s.group == group_name and s.inline_name == policy_name for s in sources)
    if name in POLICY_VERSION_EVENTS:
        boundary = view.user.permissions_boundary
        touched = any(s.policy_arn == arn for s in sources) or (boundary is not None and boundary.arn == arn)
        return touched and not _was_admin(view)
    if name in BOUNDARY_EVENTS:
        return not _was_admin(view)
    return False


def _policy_name(value: object, otherwise: str) -> str:
    """The name of a policy ARN from the request, for alert text (bounded: the event is not trusted)."""
    if not isinstance(value, str) or not value:
        return otherwise
    return value.rsplit("/", 1)[-1][:128]


def _how_granted(event: CloudTrailEvent, user: str) -> str:
    detail = event.detail
    name, who = detail.event_name, _who(event)
    policy_name = _policy_name(detail.request("policyArn"), "a policy")
    if name == "CreatePolicyVersion":
        return f"{who} made a new version of policy {policy_name} its default, which gives {user}"
    if name == "SetDefaultPolicyVersion":
        version = detail.request("versionId")
        valid = isinstance(version, str) and re.fullmatch(r"v\d{1,6}", version)
        which = f"version {version}" if valid else "another version"
        return f"{who} made {which} of policy {policy_name} its default, which gives {user}"
    if name == "DeleteUserPermissionsBoundary":
        return f"{who} removed the permissions boundary of {user}, which gives it"
    if name == "PutUserPermissionsBoundary":
        shown = _policy_name(detail.request("permissionsBoundary"), "another policy")
        return f"{who} set {shown} as the permissions boundary of {user}, which gives it"
    return f"{who} gave {user}"


def admin_access_granted(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """The event's grant (policy, inline policy, group, policy version or boundary) makes a user a full admin."""
    alerts = []
    for view in seen.users:
        verdict = policy.admin_verdict(view.user, view.groups, view.documents)
        if not _event_grants_admin(event, view, verdict):
            continue
        no_mfa = "" if view.user.has_mfa else "; the user has no MFA device"
        alerts.append(
            _alert(
                event,
                Detection.ADMIN_ACCESS_GRANTED,
                Severity.HIGH,
                view.user.name,
                f"{_how_granted(event, view.user.name)} full administrator access ({'; '.join(verdict.labels)})"
                f"{no_mfa}.",
                resource_arn=view.user.arn,
                related=("user_admin_access", "user_admin_without_mfa"),
            )
        )
    return alerts


def required_policy_removed(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """The event took a required policy away and the user no longer has it any other way."""
    required = [arn for arn in seen.removed_policy_arns if arn in settings.required_policy_arns]
    alerts = []
    for view in seen.users:
        in_effect = policy.policy_arns_in_effect(view.user, view.groups)
        missing = [arn for arn in required if arn not in in_effect or arn in view.restored]
        if not missing:
            continue
        names = ", ".join(arn.rsplit("/", 1)[-1] for arn in missing)
        plural = len(missing) > 1
        restored = ""
        if set(missing) <= set(view.restored):
            restored = f" (iamguard attached {'them' if plural else 'it'} again)"
        alerts.append(
            _alert(
                event,
                Detection.REQUIRED_POLICY_REMOVED,
                Severity.HIGH,
                view.user.name,
                f"{_who(event)} removed required polic{'ies' if plural else 'y'} {names} "
                f"from {view.user.name} ({event.detail.event_name}){restored}.",
                resource_arn=view.user.arn,
                related=("user_required_policies",),
                missing_policy_arns=missing,
            )
        )
    return alerts


def _lost(previous: Finding | None, event_name: str) -> bool:
    """Whether MFA was there before this event.

    DeactivateMFADevice only succeeds on an enabled device, so it proves it. Deleting a
    virtual device does not (unassigned devices can be deleted too): only a stored PASS does.
    """
    if event_name == "DeactivateMFADevice":
        return True
    return previous is not None and previous.status is Status.PASS


def mfa_removed(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """A user or root had MFA and now has none (removing one of several devices is not losing MFA)."""
    name = event.detail.event_name
    alerts = []
    for view in seen.users:
        if view.user.has_mfa or not _lost(view.previous("user_mfa"), name):
            continue
        admin = view.is_admin
        alerts.append(
            _alert(
                event,
                Detection.MFA_REMOVED,
                Severity.CRITICAL if admin else Severity.HIGH,
                view.user.name,
                f"{_who(event)} removed the last MFA device of "
                f"{'administrator ' if admin else ''}{view.user.name}; it now signs in without MFA.",
                resource_arn=view.user.arn,
                related=("user_mfa", "user_console_mfa") + (("user_admin_without_mfa",) if admin else ()),
            )
        )
    # Root may keep up to 8 devices: only losing the last one is losing MFA. A root without any
    # credential left (centralized root access deleted them all) has nothing to sign in with.
    root = seen.root
    if root is not None and not root.mfa_enabled and not root.has_no_credentials:
        previous = next((stored_before(c) for c in seen.root_changes if c.finding.check_id == "root_mfa_enabled"), None)
        if _lost(previous, name):
            serial = event.detail.request("serialNumber")
            device = f" ({serial})" if isinstance(serial, str) else ""
            alerts.append(
                _alert(
                    event,
                    Detection.MFA_REMOVED,
                    Severity.CRITICAL,
                    "root",
                    f"{_who(event)} removed the root user's last MFA device{device}; "
                    "root now signs in with a password alone.",
                    resource_arn=root.arn,
                    related=("root_mfa_enabled",),
                )
            )
    return alerts


def root_access_key_created(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """Root created an access key for itself (a key root creates for an IAM user names that user)."""
    detail = event.detail
    if detail.user_identity.type != "Root" or detail.request("userName") is not None:
        return []
    key_id = (detail.response_elements or {}).get("accessKey", {})
    key = key_id.get("accessKeyId") if isinstance(key_id, dict) else None
    return [
        _alert(
            event,
            Detection.ROOT_ACCESS_KEY_CREATED,
            Severity.CRITICAL,
            "root",
            "The root user created an access key for itself"
            + (f" ({key})" if isinstance(key, str) else "")
            + ": unrestricted, MFA-free programmatic access to the whole account.",
            resource_arn=f"arn:aws:iam::{event.account_id}:root",
            related=("root_no_access_keys",),
        )
    ]


def password_policy_weakened(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """The password policy was deleted, or changed to something below the baseline."""
    unmet = unmet_password_rules(seen.password_policy, settings.password_baseline)
    if not unmet:
        return []
    if seen.password_policy is None:
        summary = f"{_who(event)} deleted the account password policy; IAM users may now choose any password."
    else:
        summary = f"{_who(event)} changed the account password policy to below the baseline: {'; '.join(unmet)}."
    return [
        _alert(
            event,
            Detection.PASSWORD_POLICY_WEAKENED,
            Severity.MEDIUM,
            event.account_id,
            summary,
            resource_arn=f"arn:aws:iam::{event.account_id}:account",
            related=("password_policy",),
            unmet_rules=unmet,
        )
    ]


def _signed_in(event: CloudTrailEvent) -> bool:
    return event.detail.console_login_result == "Success"


def _from_where(event: CloudTrailEvent) -> str:
    detail = event.detail
    origin = f" from {detail.source_ip_address}" if detail.source_ip_address else ""
    return f"{origin} ({detail.aws_region or event.region})"


def root_console_sign_in(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """Root signed in to the console: high, critical without MFA."""
    if not _signed_in(event) or event.detail.user_identity.type != "Root":
        return []
    mfa = event.detail.mfa_used
    how = {True: "with MFA", False: "without MFA", None: "(MFA use not reported)"}[mfa]
    return [
        _alert(
            event,
            Detection.ROOT_CONSOLE_SIGN_IN,
            Severity.CRITICAL if mfa is False else Severity.HIGH,
            "root",
            f"The root user signed in to the console {how}{_from_where(event)}.",
            resource_arn=f"arn:aws:iam::{event.account_id}:root",
            related=("root_not_used_recently",) + (("root_mfa_enabled",) if mfa is False else ()),
            mfa_used=mfa,
        )
    ]


def console_sign_in_without_mfa(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """An IAM user signed in with a password alone (federated sign-ins are not, whatever their identity type)."""
    detail = event.detail
    identity = detail.user_identity
    if not _signed_in(event) or identity.type != "IAMUser" or detail.federation or detail.mfa_used is not False:
        return []
    name = identity.user_name or "unknown"
    return [
        _alert(
            event,
            Detection.CONSOLE_SIGN_IN_WITHOUT_MFA,
            Severity.HIGH,
            name,
            f"IAM user {name} signed in to the console without MFA{_from_where(event)}.",
            resource_arn=identity.arn,
            related=("user_console_mfa",),
        )
    ]


def console_sign_in_failures(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """A burst of failed sign-ins, announced once when it opens."""
    burst = seen.burst
    if burst is None or not burst.opened:
        return []
    minutes = int(burst.window.total_seconds() // 60)
    if burst.principal == "root":
        whom = "the root user"
    elif burst.principal == HIDDEN_USER_NAME:
        whom = "user names that do not exist in the account (AWS hides them)"
    else:
        whom = f"IAM user {burst.principal}"
    return [
        _alert(
            event,
            Detection.CONSOLE_SIGN_IN_FAILURES,
            Severity.HIGH if burst.principal == "root" else Severity.MEDIUM,
            burst.principal,
            f"{burst.failures} failed console sign-ins for {whom} within {minutes} minutes"
            f"{_from_where(event)}; latest at {event.detail.event_time:%Y-%m-%d %H:%M:%S} UTC.",
            related=("root_mfa_enabled",) if burst.principal == "root" else ("user_console_mfa",),
            failures=burst.failures,
            threshold=burst.threshold,
            window_minutes=minutes,
        )
    ]


def root_session_assumed(event: CloudTrailEvent, seen: Observed, settings: Settings) -> list[Alert]:
    """sts:AssumeRoot: a short privileged session as a member account's root user (centralized root access)."""
    detail = event.detail
    try:
        account = account_of_principal(detail.request("targetPrincipal"))
    except SubjectError:
        return []
    policy_ref = detail.request("taskPolicyArn")
    task_arn = policy_ref.get("arn") if isinstance(policy_ref, dict) else None
    task = task_arn.rsplit("/", 1)[-1][:128] if isinstance(task_arn, str) else "unknown"
    duration = detail.request("durationSeconds")
    lasting = f" for up to {duration} seconds" if isinstance(duration, int) else ""
    return [
        _alert(
            event,
            Detection.ROOT_SESSION_ASSUMED,
            Severity.HIGH,
            account,
            f"{_who(event)} opened a root session on account {account}{lasting}, scoped to the task policy "
            f"{task}: it acts as that account's root user.",
            resource_arn=f"arn:aws:iam::{account}:root",
            related=("root_mfa_enabled", "root_no_access_keys") if task.startswith("IAM") else (),
            target_account=account,
            task_policy_arn=task_arn[:2048] if isinstance(task_arn, str) else None,
        )
    ]


Detector = Callable[[CloudTrailEvent, Observed, Settings], list[Alert]]

DETECTORS: dict[Detection, Detector] = {
    Detection.USER_CREATED: user_created,
    Detection.CONSOLE_ACCESS_GRANTED: console_access_granted,
    Detection.ADMIN_ACCESS_GRANTED: admin_access_granted,
    Detection.REQUIRED_POLICY_REMOVED: required_policy_removed,
    Detection.MFA_REMOVED: mfa_removed,
    Detection.ROOT_ACCESS_KEY_CREATED: root_access_key_created,
    Detection.PASSWORD_POLICY_WEAKENED: password_policy_weakened,
    Detection.ROOT_CONSOLE_SIGN_IN: root_console_sign_in,
    Detection.CONSOLE_SIGN_IN_WITHOUT_MFA: console_sign_in_without_mfa,
    Detection.CONSOLE_SIGN_IN_FAILURES: console_sign_in_failures,
    Detection.ROOT_SESSION_ASSUMED: root_session_assumed,
}
