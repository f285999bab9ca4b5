"""Enforcement (MODE=enforce): the MFA guardrail and missing required policies.

What iamguard may do, and nothing else:
- attach the stack's MFA guardrail to a console user without MFA — but never to a user with an
  active access key (calls signed with a long-term key carry no MFA context, so the guardrail's
  `BoolIfExists aws:MultiFactorAuthPresent` deny would cut the key off, even after the user
  enrols MFA), never again once someone other than iamguard detached it, and with
  `GuardrailGraceHours` only when the grace period is over (the scheduled audit attaches it then);
- detach that same guardrail — its ARN and no other — once the user has an MFA device (and, if the
  user must still reset the password at first sign-in, once the guardrail is no longer the user's
  only iam:ChangePassword: taking it off then would lock the user out);
- attach missing required policies (only ARNs from settings; the event path only).
Nothing is ever deleted; root is never touched, nor a user while a live exception covers the action's
check (`user_console_mfa` for the guardrail, `user_required_policies` for required policies; an
expired one protects nothing). Every decision becomes an
`Action`: performed, failed, withheld (the reason says what to do instead) or, in monitor mode,
planned. What the guardrail decisions rest on is kept per user in the findings table
(`iamguard.persistence.findings.GuardrailRecord`), so people are told each thing once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from iamguard.aws import error_code, error_text
from iamguard.checks.base import live_exemption, utc_day
from iamguard.domain.account import (
    AccessKey,
    AccountState,
    Group,
    ManagedPolicyRef,
    MfaDevice,
    PasswordPolicy,
    PolicyDocument,
    User,
)
from iamguard.domain.alerts import Action, Withheld
from iamguard.domain.exemptions import Exemption
from iamguard.iam import evaluation as policy
from iamguard.persistence.findings import FindingsStore, GuardrailRecord
from iamguard.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


ATTACH_GUARDRAIL = "attach_guardrail_policy"
DETACH_GUARDRAIL = "detach_guardrail_policy"
ATTACH_REQUIRED = "attach_required_policy"
# Errors that mean "try the whole event again later", not "this action failed".
RETRYABLE = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"})
# The audit concludes that someone else took the guardrail off only when iamguard attached it
# this long before the audit's read (IAM is eventually consistent; events race the audit).
SETTLED = timedelta(minutes=5)
UNSEEN_DETACHER = "someone outside iamguard (the DetachUserPolicy event never reached iamguard)"
# Users one audit run may act on or tell about (each costs a handful of IAM calls and a message).
AUDIT_USER_BUDGET = 50
# The checks each kind of action answers: a live exception of one spares the user that action.
GUARDRAIL_CHECK = "user_console_mfa"
REQUIRED_POLICIES_CHECK = "user_required_policies"
Exemptions = Mapping[str, list[Exemption]]


def exempt_from(
    user: User, settings: Settings, check_id: str, exemptions: Exemptions | None, now: datetime | None
) -> bool:
    """A live exception (setting, tag or API) covers this user and check today; an expired one protects nothing."""
    today = utc_day(now or datetime.now(UTC))
    return live_exemption(user, settings, check_id, exemptions or {}, today) is not None


class Unread:
    """The guardrail record was not read by the caller (None means: read, and there is none)."""


UNREAD = Unread()


@dataclass(frozen=True)
class PlannedAction:
    action: str
    policy_arn: str
    reason: str
    withheld: Withheld | None = None
    due_at: datetime | None = None


@dataclass(frozen=True)
class ManualChange:
    """Someone other than iamguard attached or detached the guardrail (iamguard's own events are screened out)."""

    attached: bool
    by: str
    at: datetime
    event_id: str


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _console(user: User) -> bool:
    return user.credentials is not None and user.credentials.password_enabled


def guardrail_needed_to_reset(
    user: User,
    groups: Mapping[str, Group],
    settings: Settings,
    documents: Mapping[str, PolicyDocument],
    password_policy: PasswordPolicy | None,
) -> bool:
    """The user must reset the password at first sign-in, and only the guardrail allows iam:ChangePassword."""
    if not _console(user) or not user.password_reset_required:
        return False
    if password_policy is not None and password_policy.allow_users_to_change_password:
        return False
    without = replace(
        user, attached_policies=tuple(r for r in user.attached_policies if r.arn != settings.guardrail_policy_arn)
    )
    return not policy.can_change_own_password(without, groups, documents)


def guardrail_step(
    user: User,
    groups: Mapping[str, Group],
    settings: Settings,
    record: GuardrailRecord | None = None,
    now: datetime | None = None,
    *,
    keep_for_reset: bool = False,
) -> PlannedAction | None:
    """What to do with the guardrail for this (non-exempt) user now; None when nothing.

    `keep_for_reset`: the user must still change the password at first sign-in and the guardrail is
    what allows it (see `guardrail_needed_to_reset`), so it stays on even though the user has MFA.
    """
    guardrail = settings.guardrail_policy_arn
    if not guardrail:
        return None
    direct = any(ref.arn == guardrail for ref in user.attached_policies)
    kept = record is not None and record.attached_by is not None  # an administrator put it on an MFA user
    if direct and user.has_mfa and not keep_for_reset and not kept:
        return PlannedAction(
            DETACH_GUARDRAIL, guardrail, f"{user.name} has an MFA device now: the guardrail has done its job."
        )
    if (
        direct
        and record is not None
        and record.detached_by
        and record.detached_at
        and record.attached_at
        and record.attached_at > record.detached_at
    ):
        return PlannedAction(
            DETACH_GUARDRAIL,
            guardrail,
            f"{record.detached_by} detached the guardrail from {user.name} at {_when(record.detached_at)}; "
            f"iamguard had attached it again at {_when(record.attached_at)} before it learnt of that, "
            "and takes it off again.",
        )
    if not _console(user) or user.has_mfa or guardrail in policy.policy_arns_in_effect(user, groups):
        return None
    if record is not None and record.detached_by:
        at = f" at {_when(record.detached_at)}" if record.detached_at else ""
        return PlannedAction(
            ATTACH_GUARDRAIL,
            guardrail,
            f"{record.detached_by} detached the MFA guardrail from {user.name}{at}: iamguard leaves that decision "
            f"alone and does not attach it again. {user.name} still has a console password and no MFA device; "
            "the finding stays open. Attach the guardrail yourself to let iamguard enforce again.",
            withheld="admin_detached",
        )
    keys = user.credentials.active_keys if user.credentials else ()
    if keys:
        them = "it" if len(keys) == 1 else "them"
        return PlannedAction(
            ATTACH_GUARDRAIL,
            guardrail,
            f"{user.name} has a console password but no MFA device, and {len(keys)} active access "
            f"key{'s' if len(keys) > 1 else ''}: the guardrail would deny every call made with {them} (calls signed "
            "with a long-term key carry no MFA context, even after the user enrols MFA), so iamguard did not attach "
            "it. Move what uses the key to an IAM role, or call `aws sts get-session-token --serial-number "
            "<MFA device ARN> --token-code <code>` and use the temporary credentials; then enable MFA.",
            withheld="access_key",
        )
    grace = settings.guardrail_grace_hours
    if grace and now is not None:
        since = record.since if record is not None and record.since else now
        due = since + timedelta(hours=grace)
        if now < due:
            return PlannedAction(
                ATTACH_GUARDRAIL,
                guardrail,
                f"{user.name} has a console password but no MFA device; the guardrail is attached at {_when(due)} "
                f"unless the user enables MFA before then (grace period {grace} h).",
                withheld="grace_period",
                due_at=due,
            )
    return PlannedAction(
        ATTACH_GUARDRAIL,
        guardrail,
        f"{user.name} has a console password but no MFA device: everything but setting up MFA and "
        "changing the password is denied until the user signs in with MFA.",
    )


def plan(
    user: User,
    groups: Mapping[str, Group],
    settings: Settings,
    *,
    record: GuardrailRecord | None = None,
    now: datetime | None = None,
    keep_for_reset: bool = False,
    exemptions: Exemptions | None = None,
) -> list[PlannedAction]:
    """What enforcement would do for this user now (nothing that a live exception covers)."""
    planned = []
    if not exempt_from(user, settings, GUARDRAIL_CHECK, exemptions, now):
        step = guardrail_step(user, groups, settings, record, now, keep_for_reset=keep_for_reset)
        if step is not None:
            planned.append(step)
    if exempt_from(user, settings, REQUIRED_POLICIES_CHECK, exemptions, now):
        return planned
    in_effect = policy.policy_arns_in_effect(user, groups)
    for arn in settings.required_policy_arns:
        if arn not in in_effect:
            planned.append(PlannedAction(ATTACH_REQUIRED, arn, f"{user.name} is missing the required policy {arn}."))
    return planned


class Enforcer:
    """Carries out (enforce) or reports (monitor) the plan, through one IAM client; remembers through the store."""

    def __init__(
        self,
        iam: IAMClient,
        settings: Settings,
        *,
        memory: FindingsStore | None = None,
        clock: Callable[[], datetime] | None = None,
        writer: IAMClient | None = None,
    ) -> None:
        self.iam = iam
        self.writer = writer or iam  # the attach/detach client (a member account's enforce role)
        self.settings = settings
        self.memory = memory
        self._clock = clock or (lambda: datetime.now(UTC))
        self.deferred = 0  # users the last audit run left for the next one (AUDIT_USER_BUDGET)

    # -- the event path: one user, just read live ----------------------------------------
    def enforce(
        self,
        user: User,
        groups: Mapping[str, Group],
        event_id: str,
        *,
        manual: ManualChange | None = None,
        documents: Mapping[str, PolicyDocument] | None = None,
        password_policy: Callable[[], PasswordPolicy | None] | None = None,
        remembered: GuardrailRecord | Unread | None = UNREAD,
        exemptions: Exemptions | None = None,
    ) -> list[Action]:
        """Act on the plan for one user; every attempt becomes an `Action` tied to the causing event.

        `documents` and `password_policy` (read only if needed) tell whether the guardrail is still
        what lets the user change the password at first sign-in. `remembered`: the user's guardrail
        record as the caller already read it (`FindingsStore.read_resource`); else it is read here.
        """
        now = self._clock()
        if all(
            exempt_from(user, self.settings, c, exemptions, now) for c in (GUARDRAIL_CHECK, REQUIRED_POLICIES_CHECK)
        ):
            return []
        if isinstance(remembered, Unread):
            remembered = self.memory.guardrail_record(user.name, _account(user)) if self.memory else None
        stored = self._record(user, remembered)
        record = _apply_manual(stored, user, manual)
        keep = self._keep_for_reset(user, groups, documents or {}, password_policy or (lambda: None))
        steps = plan(user, groups, self.settings, record=record, now=now, keep_for_reset=keep, exemptions=exemptions)
        actions, record = self._carry_out(steps, user, record, now, event_id, retry_later=True)
        self._save(stored, record)
        return actions

    # -- the scheduled audit: every user, from the bulk read --------------------------------
    def enforce_account(self, state: AccountState, exemptions: Exemptions | None = None) -> list[Action]:
        """The guardrail for every user (attach when due, detach when done, tell what is withheld).

        The bulk read can be hours old (the credential report): before the audit attaches or
        detaches, it reads the user's login profile, MFA devices, access keys and attached
        policies live. At most `AUDIT_USER_BUDGET` users are acted on or told about per run (the
        first enforcing audit of a large account would otherwise outrun the function's timeout
        and flood the channels); the next run goes on where this one stopped.
        """
        self.deferred = 0
        if self.settings.mode != "enforce" or not self.settings.guardrail_policy_arn:
            return []
        records = self.memory.guardrail_records(state.account_id) if self.memory else {}
        now = self._clock()
        actions: list[Action] = []
        budget = AUDIT_USER_BUDGET
        for user in state.users:
            if exempt_from(user, self.settings, GUARDRAIL_CHECK, exemptions, now) or user.credentials is None:
                continue  # exempt, or console access unknown (no credential report): nothing to decide on
            stored = self._record(user, records.get(user.name))
            record = stored
            suspect = self._looks_detached_outside(user, record, state.read_at)
            step = guardrail_step(user, state.groups, self.settings, record, now)
            costly = suspect or (
                step is not None and (step.withheld is None or record is None or record.told != step.withheld)
            )
            if costly and budget <= 0:
                self.deferred += 1
                continue
            if costly:
                budget -= 1
            if suspect:
                user = self._live(user)
                if self._looks_detached_outside(user, record, state.read_at):
                    record = replace(
                        _own(record, user), detached_by=UNSEEN_DETACHER, detached_at=now, detach_event_id=None
                    )
                step = guardrail_step(user, state.groups, self.settings, record, now)
            if step is not None and step.withheld is None:
                user = self._live(user)  # act on what IAM says now, not on the report
                keep = self._keep_for_reset(user, state.groups, state.policy_documents, lambda: state.password_policy)
                step = guardrail_step(user, state.groups, self.settings, record, now, keep_for_reset=keep)
            done, record = self._carry_out([step] if step else [], user, record, now, None, retry_later=False)
            actions.extend(done)
            self._save(stored, record)
        return actions

    def _looks_detached_outside(self, user: User, record: GuardrailRecord | None, read_at: datetime) -> bool:
        """iamguard attached the guardrail (well before the read), it is gone, and no detach was recorded."""
        guardrail = self.settings.guardrail_policy_arn
        return (
            record is not None
            and record.attached_at is not None
            and not record.detached_by
            and record.attached_at < read_at - SETTLED
            and all(ref.arn != guardrail for ref in user.attached_policies)
            and _console(user)
            and not user.has_mfa
        )

    def _keep_for_reset(
        self,
        user: User,
        groups: Mapping[str, Group],
        documents: Mapping[str, PolicyDocument],
        password_policy: Callable[[], PasswordPolicy | None],
    ) -> bool:
        guardrail = self.settings.guardrail_policy_arn
        if (
            not user.has_mfa
            or not user.password_reset_required
            or guardrail not in policy.policy_arns_in_effect(user, groups)
        ):
            return False  # only a guardrail about to come off matters here
        return guardrail_needed_to_reset(user, groups, self.settings, documents, password_policy())

    def _live(self, user: User) -> User:
        """The user's console password, MFA devices, access keys and attached policies as IAM has them now."""
        name = user.name
        try:
            profile = self.iam.get_login_profile(UserName=name)["LoginProfile"]
        except self.iam.exceptions.NoSuchEntityException:
            profile = None
        devices = tuple(
            MfaDevice(serial_number=d["SerialNumber"], virtual=":mfa/" in d["SerialNumber"])
            for page in self.iam.get_paginator("list_mfa_devices").paginate(UserName=name)
            for d in page["MFADevices"]
        )
        keys = tuple(
            AccessKey(slot=slot, active=key["Status"] == "Active", last_rotated=key.get("CreateDate"), last_used=None)
            for slot, key in enumerate(self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"], start=1)
        )
        attached = tuple(
            ManagedPolicyRef(arn=p["PolicyArn"], name=p["PolicyName"])
            for page in self.iam.get_paginator("list_attached_user_policies").paginate(UserName=name)
            for p in page["AttachedPolicies"]
        )
        credentials = user.credentials
        if credentials is not None:
            credentials = replace(
                credentials, password_enabled=profile is not None, mfa_active=bool(devices), access_keys=keys
            )
        return replace(
            user,
            mfa_devices=devices,
            credentials=credentials,
            attached_policies=attached,
            password_reset_required=bool(profile.get("PasswordResetRequired")) if profile else None,
        )

    # -- carrying out ---------------------------------------------------------------------
    def _carry_out(
        self,
        steps: list[PlannedAction],
        user: User,
        record: GuardrailRecord | None,
        now: datetime,
        event_id: str | None,
        *,
        retry_later: bool,
    ) -> tuple[list[Action], GuardrailRecord | None]:
        enforcing = self.settings.mode == "enforce"
        actions = []
        guardrail_planned = False
        for step in steps:
            guardrail_planned |= step.policy_arn == self.settings.guardrail_policy_arn
            if step.withheld is not None:
                told = record is not None and record.told == step.withheld
                if enforcing:
                    since = record.since if record is not None else None
                    if step.withheld == "grace_period":
                        since = since or now  # the grace period starts when iamguard first sees the need
                    record = replace(_own(record, user), told=step.withheld, since=since)
                note = None if enforcing else "monitor mode"
                actions.append(
                    self._action(step, user, event_id, now, record, announce=enforcing and not told, note=note)
                )
                continue
            if not enforcing:
                verb = "detached" if step.action == DETACH_GUARDRAIL else "attached"
                actions.append(self._action(step, user, event_id, now, record, note=f"monitor mode: not {verb}"))
                continue
            error = self._call(step, user, retry_later=retry_later)
            if error is not None:
                failed = "detach failed" if step.action == DETACH_GUARDRAIL else "attach failed"
                actions.append(self._action(step, user, event_id, now, record, note=failed, error=error))
                continue
            if step.action == ATTACH_GUARDRAIL:
                record = replace(_own(record, user), attached_at=now, attached_by=None, since=None, told=None)
            elif step.action == DETACH_GUARDRAIL:
                record = replace(_own(record, user), attached_at=None, since=None, told=None)
            actions.append(self._action(step, user, event_id, now, record, performed=True))
        if not guardrail_planned and enforcing and record is not None and (record.since or record.told):
            record = replace(record, since=None, told=None)  # nothing is wanted of the guardrail now
        return actions, record

    def _call(self, step: PlannedAction, user: User, *, retry_later: bool) -> str | None:
        """Attach or detach one policy; None when done, else the error (retryable ones raise on the event path)."""
        if step.action == DETACH_GUARDRAIL:
            call = self.detach_guardrail
        else:
            allowed = {self.settings.guardrail_policy_arn, *self.settings.required_policy_arns}
            if step.policy_arn not in allowed:  # defence in depth; the role's iam:PolicyARN condition agrees
                raise ValueError(f"refusing to attach {step.policy_arn}: not a configured policy")
            call = self._attach
        try:
            call(user.name, step.policy_arn)
        except ClientError as exc:
            if retry_later and error_code(exc) in RETRYABLE:
                raise
            return error_text(exc)
        return None

    def _attach(self, user_name: str, policy_arn: str) -> None:
        self.writer.attach_user_policy(UserName=user_name, PolicyArn=policy_arn)

    def detach_guardrail(self, user_name: str, policy_arn: str) -> None:
        """Detach the stack's guardrail — the one policy iamguard ever detaches (the role can detach no other)."""
        if not self.settings.guardrail_policy_arn or policy_arn != self.settings.guardrail_policy_arn:
            raise ValueError(f"refusing to detach {policy_arn}: iamguard only ever detaches its own MFA guardrail")
        self.writer.detach_user_policy(UserName=user_name, PolicyArn=policy_arn)

    # -- memory ----------------------------------------------------------------------------
    @staticmethod
    def _record(user: User, stored: GuardrailRecord | None) -> GuardrailRecord | None:
        """The stored record if it belongs to this user (not to an earlier user of the same name)."""
        return stored if stored is not None and stored.user_id == user.user_id else None

    def _save(self, stored: GuardrailRecord | None, record: GuardrailRecord | None) -> None:
        if self.memory is None or record is None or record == stored:
            return
        self.memory.save_guardrail_record(record)

    def _action(
        self,
        step: PlannedAction,
        user: User,
        event_id: str | None,
        now: datetime,
        record: GuardrailRecord | None,
        *,
        performed: bool = False,
        announce: bool | None = None,
        note: str | None = None,
        error: str | None = None,
    ) -> Action:
        admin = step.withheld == "admin_detached" and record is not None
        return Action(
            action=step.action,
            user_name=user.name,
            policy_arn=step.policy_arn,
            account_id=_account(user) or None,
            performed=performed,
            reason=f"{step.reason} ({note})" if note else step.reason,
            event_id=event_id,
            at=now,
            error=error,
            withheld=step.withheld,
            due_at=step.due_at,
            detached_by=record.detached_by if admin and record else None,
            detached_at=record.detached_at if admin and record else None,
            # Planned (monitor) actions are reported, not announced; performed and failed ones always are.
            announce=announce if announce is not None else performed or error is not None,
        )


def _account(user: User) -> str:
    """The user's account, from its ARN ("" when the ARN does not say)."""
    return user.arn.split(":")[4] if user.arn.count(":") >= 5 else ""


def _own(record: GuardrailRecord | None, user: User) -> GuardrailRecord:
    if record is not None:
        return record
    return GuardrailRecord(user_name=user.name, user_id=user.user_id, account_id=_account(user))


def _apply_manual(record: GuardrailRecord | None, user: User, manual: ManualChange | None) -> GuardrailRecord | None:
    """Remember an administrator's Attach/DetachUserPolicy of the guardrail (the later event wins)."""
    if manual is None or (record is not None and record.decided_at is not None and manual.at <= record.decided_at):
        return record
    if manual.attached:  # attaching it by hand lets iamguard enforce again
        return replace(
            _own(record, user),
            detached_by=None,
            detached_at=None,
            detach_event_id=None,
            decided_at=manual.at,
            # on a user who already has MFA it is there for its own sake (it denies calls made with
            # long-term keys): iamguard leaves it on rather than take it off as "done"
            attached_by=manual.by if user.has_mfa else None,
        )
    known = record is not None and record.detached_by  # the audit noticed it first: people were told then
    return replace(
        _own(record, user),
        attached_by=None,
        detached_by=manual.by,
        detached_at=manual.at,
        detach_event_id=manual.event_id,
        decided_at=manual.at,
        told=record.told if known and record else None,  # tell people about this decision once
    )
