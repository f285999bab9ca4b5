"""The event path: one CloudTrail event → the current state of what it touched → findings, alerts, actions.

`EventProcessor.process(raw)` is the whole logic of both event Lambdas and of
`iamguard events replay`:

1. parse (Powertools parser) — malformed input is *rejected*, never raised;
2. screen — failed calls, read-only calls, other accounts, iamguard's own
   role, federated sign-ins … are *ignored*, each with its reason;
3. evaluate, once per CloudTrail eventID (Powertools idempotency on DynamoDB):
   re-read the one user (or root, group, account) live, run its checks, store
   the findings, raise the detection-table alerts, enforce if configured,
   record the activity and announce it.

Only infrastructure failures (DynamoDB, IAM after botocore's retries) raise:
the Lambda's retry and on-failure destination handle those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from pydantic import BaseModel, ConfigDict, ValidationError

from iamguard.aws import AwsContext
from iamguard.checks import CATALOG, run_checks, run_user_checks
from iamguard.checks.base import UserContext
from iamguard.checks.exemptions import by_resource
from iamguard.domain.account import AccountState, Group, PasswordPolicy, PolicyDocument, RootState, RootUse, User
from iamguard.domain.alerts import Action, Alert, Announcer, Detection, LogOnlyAnnouncer
from iamguard.domain.exemptions import Exemption
from iamguard.domain.findings import Change, Finding, Status
from iamguard.enforcement.enforcer import DETACH_GUARDRAIL, Enforcer, ManualChange
from iamguard.iam.evaluation import PolicyCache, can_change_own_password
from iamguard.iam.inventory import Inventory, UnknownUser
from iamguard.persistence.exemptions import CachedExemptions, ExemptionStore
from iamguard.persistence.findings import FindingsStore, NotNew, ResourceItems
from iamguard.persistence.login_profiles import LoginProfileStore, login_profile_changed
from iamguard.realtime.cloudtrail import (
    HIDDEN_USER_NAME,
    CloudTrailDetail,
    CloudTrailEvent,
    UserIdentity,
    parse_event,
    printable,
)
from iamguard.realtime.detections import DETECTORS, Observed, UserView
from iamguard.realtime.event_map import EventRule, Subject, SubjectError, locate_subject, rule_for, subject_of_arn
from iamguard.realtime.signin_bursts import SignInFailures
from iamguard.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

Outcome = Literal["evaluated", "ignored", "rejected"]
READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Simulate", "Generate")
# What signin.amazonaws.com records besides ConsoleLogin (CloudTrail and IAM Identity Center User Guides).
_IDENTITY_CENTER = "IAM Identity Center users are neither IAM users nor root, and their MFA is Identity Center's"
SIGN_IN_STEPS = {
    "CheckMfa": "a step of the console sign-in (which MFA to ask for), not a sign-in: the ConsoleLogin is judged",
    "CredentialChallenge": f"a step of an IAM Identity Center sign-in: {_IDENTITY_CENTER}",
    "CredentialVerification": f"a step of an IAM Identity Center sign-in: {_IDENTITY_CENTER}",
    "UserAuthentication": f"an IAM Identity Center sign-in: {_IDENTITY_CENTER}",
}
IDEMPOTENCY_TTL = timedelta(hours=24)  # EventBridge retries an event for up to 24 hours
# A member costs about ten IAM calls; larger groups: the first 25 now, the rest at the next audit.
MAX_GROUP_MEMBERS = 25
# A delivery that finds the same eventID in progress elsewhere waits this long for its result
# (never past the invocation's last CONCURRENT_MARGIN seconds), then reports a duplicate.
CONCURRENT_WAIT = 5.0
CONCURRENT_MARGIN = 5.0
ROOT_USAGE_CHECK = "root_not_used_recently"
CLOCK_SKEW = timedelta(minutes=5)


def manual_guardrail_change(event: CloudTrailEvent, settings: Settings) -> ManualChange | None:
    """The Attach/DetachUserPolicy event of the stack's guardrail, if that is what this event is."""
    detail = event.detail
    guardrail = settings.guardrail_policy_arn
    if detail.event_name not in {"AttachUserPolicy", "DetachUserPolicy"} or not guardrail:
        return None
    if detail.request("policyArn") != guardrail:
        return None
    return ManualChange(
        attached=detail.event_name == "AttachUserPolicy",
        by=detail.user_identity.readable,
        at=detail.event_time,
        event_id=detail.event_id,
    )


class FindingView(BaseModel):
    """A finding as the event path reports it."""

    model_config = ConfigDict(frozen=True)

    check_id: str
    status: str
    severity: str
    resource_name: str
    detail: str
    transition: str | None = None


class EventResult(BaseModel):
    """What happened to one event; also the JSON line of `iamguard events replay`."""

    event_id: str | None = None
    event_name: str | None = None
    outcome: Outcome
    reason: str
    findings: list[FindingView] = []
    alerts: list[Alert] = []
    actions: list[Action] = []
    duplicate: bool = False
    api_calls: int = 0

    def line(self) -> dict[str, Any]:
        """The replay output: alerts reduced to detection, severity, resource and summary."""
        return {
            "event_id": self.event_id,
            "event_name": self.event_name,
            "outcome": self.outcome,
            "reason": self.reason,
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "alerts": [
                {
                    "detection": a.detection.value,
                    "severity": a.severity.value,
                    "resource_name": a.resource_name,
                    "summary": a.summary,
                }
                for a in self.alerts
            ],
            "actions": [a.model_dump(mode="json", exclude_none=True) for a in self.actions],
            "duplicate": self.duplicate,
            "api_calls": self.api_calls,
        }


def _finding_views(findings: Iterable[Finding], changes: Iterable[Change]) -> list[FindingView]:
    transitions = {c.finding.key: c.transition.value for c in changes}
    return [
        FindingView(
            check_id=f.check_id,
            status=f.status.value,
            severity=f.severity.value,
            resource_name=f.resource_name,
            detail=f.detail,
            transition=transitions.get(f.key),
        )
        for f in findings
    ]


def _validation_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error["loc"]) or "event"
            problems.append(f"{where}: {error['msg']}")
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        return "not a CloudTrail event via EventBridge — " + "; ".join(problems) + more
    return f"not a CloudTrail event via EventBridge — {exc}"


def _raw_field(raw: Any, *path: str) -> str | None:
    """A best-effort identifier from a rejected event, for the log line (bounded length)."""
    node = raw
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return printable(node, 128) if isinstance(node, str) else None


def own_role(identity: UserIdentity, role_arns: Iterable[str]) -> str | None:
    """The iamguard role that made this call, if it was one of them (so its own actions do not loop)."""
    if identity.type != "AssumedRole":
        return None
    issuer = identity.session_context.session_issuer if identity.session_context else None
    assumed = (identity.arn or "").partition(":assumed-role/")[2].split("/", 1)[0]
    for arn in role_arns:
        if (issuer is not None and issuer.arn == arn) or (assumed and assumed == arn.rsplit("/", 1)[-1]):
            return arn
    return None


def screen(event: CloudTrailEvent, rule: EventRule | None, settings: Settings, account_id: str) -> str | None:
    """Why the event is ignored, or None when it must be evaluated."""
    detail = event.detail
    name = detail.event_name
    # CloudTrail may file an STS session as read-only; a root session is a signal all the same.
    read_only = detail.read_only and not (rule is not None and rule.source == "sts.amazonaws.com")
    if read_only or (rule is None and name.startswith(READ_ONLY_PREFIXES)):
        return f"{name} is a read-only call: it changes nothing"
    if rule is None and detail.event_source == "signin.amazonaws.com" and name in SIGN_IN_STEPS:
        return f"{name} is {SIGN_IN_STEPS[name]}"
    if rule is None:
        return f"{name} from {detail.event_source} is not an event iamguard acts on"
    if event.account_id != account_id:
        return f"the event is from account {event.account_id}; this deployment watches {account_id}"
    sign_in = rule.source == "signin.amazonaws.com"
    if detail.error_code and not sign_in:
        return f"the call failed ({detail.error_code}): nothing changed"
    if rule.only_if and detail.request(rule.only_if) not in (True, "true"):
        return f"{name} without {rule.only_if}: what IAM enforces did not change"
    role = own_role(detail.user_identity, settings.iamguard_role_arns)
    if role is not None:
        return f"caused by iamguard's own role {role}: its actions are not re-evaluated (no loops)"
    if sign_in:
        return _screen_sign_in(detail)
    return None


def _screen_sign_in(detail: CloudTrailDetail) -> str | None:
    """ConsoleLogin is judged for root and IAM users signing in with their own password, and nobody else."""
    result = detail.console_login_result
    if result not in {"Success", "Failure"}:
        return "the sign-in result (responseElements.ConsoleLogin) is missing: nothing to judge"
    federation = detail.federation
    if federation is not None:
        return (
            f"console sign-in through {federation}: not a root or IAM user password sign-in; "
            "MFA is the identity provider's to enforce"
        )
    identity = detail.user_identity
    if result == "Success" and identity.type == "IAMUser" and identity.user_name in {None, "", HIDDEN_USER_NAME}:
        return "a successful IAM user sign-in that names no user: AWS hides names only on failed sign-ins"
    return None


class EventProcessor:
    """Evaluates CloudTrail events for one account (both event Lambdas and the replay CLI)."""

    def __init__(
        self,
        aws: AwsContext,
        settings: Settings,
        *,
        account_id: str,
        store: FindingsStore,
        announcer: Announcer | None = None,
        accept_sources: Iterable[str] | None = None,
        logger: Any = None,
        iam_client: IAMClient | None = None,
        enforce_iam: IAMClient | None = None,
        clock: Callable[[], datetime] | None = None,
        concurrent_wait: float = CONCURRENT_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        exemptions: CachedExemptions | None = None,
    ) -> None:
        self.aws = aws
        self.settings = settings
        self.account_id = account_id
        self.store = store
        self.logger = logger or logging.getLogger("iamguard.realtime.processor")
        self.announcer: Announcer = announcer or LogOnlyAnnouncer(self.logger)
        self.accept_sources = frozenset(accept_sources) if accept_sources is not None else None
        self.iam: IAMClient = iam_client or aws.iam()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.concurrent_wait = concurrent_wait
        self._sleep = sleep
        # One inventory for the processor's life: its call counter hooks the client once, not once per event.
        self.inventory = Inventory(aws, iam_client=self.iam)
        # A member account is read through its audit role and enforced through its enforce role.
        self.enforcer = Enforcer(self.iam, settings, memory=store, clock=self.clock, writer=enforce_iam)
        self.login_profiles = LoginProfileStore.of(store, account_id)
        # The status API's exceptions, re-read at most once a minute (tags come with the user's live read);
        # every account's processor in a container shares one read (EventHandler passes it).
        self.exemptions = exemptions or CachedExemptions(ExemptionStore.of(store))
        self.failures = SignInFailures(
            store.client,
            store.table,
            threshold=settings.signin_failure_threshold,
            window=timedelta(minutes=settings.signin_failure_window_minutes),
        )
        self._idempotency_config: IdempotencyConfig | None = None
        self._evaluate_once: Callable[..., EventResult] = self._evaluate
        if settings.idempotency_table:
            self._idempotency_config = IdempotencyConfig(
                event_key_jmespath="detail.event_id",
                raise_on_no_idempotency_key=True,
                expires_after_seconds=int(IDEMPOTENCY_TTL.total_seconds()),
                response_hook=_mark_duplicate,
            )
            self._evaluate_once = idempotent_function(
                self._evaluate,
                data_keyword_argument="event",
                persistence_store=DynamoDBPersistenceLayer(
                    table_name=settings.idempotency_table, boto3_client=aws.dynamodb()
                ),
                config=self._idempotency_config,
                output_serializer=PydanticSerializer(EventResult),
                key_prefix=f"iamguard-cloudtrail-event#{account_id}",  # once per (account, eventID)
            )

    def register_lambda_context(self, context: Any) -> None:
        """Lets idempotency expire an in-progress record when the invocation times out."""
        if self._idempotency_config is not None:
            self._idempotency_config.register_lambda_context(context)

    # -- entry point -----------------------------------------------------------------------------
    def process(self, raw: Any) -> EventResult:
        """Parse, screen and (once per eventID) evaluate one event. Malformed input never raises."""
        try:
            event = parse_event(raw)
        except (ValidationError, TypeError, ValueError, InvalidModelTypeError) as exc:
            return self._rejected(raw, _validation_reason(exc))
        detail = event.detail
        if self.accept_sources is not None and event.source not in self.accept_sources:
            accepted = ", ".join(sorted(self.accept_sources))
            return self._rejected(raw, f"source {event.source} is not handled here (this function takes {accepted})")
        rule = rule_for(event)
        reason = screen(event, rule, self.settings, self.account_id)
        if reason is None and rule is not None:
            try:
                subject = locate_subject(event, rule, device_owner=self._device_owner)
            except SubjectError as exc:
                return self._rejected(raw, str(exc))
            if subject is not None:
                result = self._evaluate_or_wait(event=event, rule=rule, subject=subject)
                self._log(result)
                return result
            reason = f"the event names no IAM user, group or root ({detail.user_identity.type} caller)"
        result = EventResult(
            event_id=detail.event_id, event_name=detail.event_name, outcome="ignored", reason=reason or ""
        )
        self._log(result)
        return result

    def _evaluate_or_wait(self, *, event: CloudTrailEvent, rule: EventRule, subject: Subject) -> EventResult:
        """Evaluate once per eventID; a delivery racing another one of the same event is a duplicate, not an error.

        While the other delivery holds the in-progress record, retry briefly: its stored result
        comes back marked duplicate, or (if it failed and released the record) this one evaluates.
        If it is still running after the wait, it owns the event: it stores and announces the
        result, and any later redelivery finds that completed record.
        """
        waited = 0.0
        budget = self._wait_budget()
        delay = 0.1
        while True:
            try:
                return self._evaluate_once(event=event, rule=rule, subject=subject)
            except IdempotencyAlreadyInProgressError:
                if waited >= budget:
                    break
                pause = min(delay, budget - waited)
                self._sleep(pause)
                waited += pause
                delay = min(delay * 2, 1.0)
        detail = event.detail
        return EventResult(
            event_id=detail.event_id,
            event_name=detail.event_name,
            outcome="ignored",
            duplicate=True,
            reason=(
                f"duplicate delivery: another invocation is evaluating this event (eventID {detail.event_id}) "
                f"right now and still was after {waited:.1f} s; it stores and announces the result"
            ),
        )

    def _wait_budget(self) -> float:
        context = self._idempotency_config.lambda_context if self._idempotency_config is not None else None
        if context is None:
            return self.concurrent_wait
        remaining = context.get_remaining_time_in_millis() / 1000 - CONCURRENT_MARGIN
        return max(0.0, min(self.concurrent_wait, remaining))

    def _rejected(self, raw: Any, reason: str) -> EventResult:
        result = EventResult(
            event_id=_raw_field(raw, "detail", "eventID") or _raw_field(raw, "id"),
            event_name=_raw_field(raw, "detail", "eventName"),
            outcome="rejected",
            reason=reason,
        )
        self._log(result)
        return result

    def _log(self, result: EventResult) -> None:
        extra = {
            "event_id": result.event_id,
            "event_name": result.event_name,
            "outcome": result.outcome,
            "reason": result.reason,
            "duplicate": result.duplicate,
            "alerts": [a.detection.value for a in result.alerts],
            "actions": [f"{a.action}:{a.user_name}:{a.outcome}" for a in result.actions],
            "api_calls": result.api_calls,
        }
        if result.outcome == "rejected":
            self.logger.warning("event rejected", extra=extra)
        else:
            self.logger.info(f"event {result.outcome}", extra=extra)

    # -- evaluation (once per eventID) ---------------------------------------------------------
    def _evaluate(self, *, event: CloudTrailEvent, rule: EventRule, subject: Subject) -> EventResult:
        detail = event.detail
        calls_before = self.inventory.counter.total
        now = self.clock()
        actions: list[Action] = []
        exemptions = cache(self.exemptions.all)  # read once per event, and only when something is checked
        used = root_use(event, now, self.settings)
        recorded = False  # the activity items went in with the findings' transaction
        if rule.source == "signin.amazonaws.com" and detail.console_login_result == "Failure":
            seen, findings, changes, notes = self._failed_sign_in(event)
        elif not rule.checks:  # alert-only rows (sts:AssumeRoot): nothing of this account to re-read
            seen, findings, changes, notes = Observed(), [], [], []
        elif subject.kind in {"user", "group", "policy"}:
            seen, findings, changes, actions, notes, recorded = self._evaluate_users(
                event, rule, subject, now, exemptions
            )
        else:
            seen, findings, changes = self._evaluate_account(subject, rule, now, exemptions, used)
            notes, recorded = [], False
        if used is not None and subject.kind != "root":
            usage = self._record_root_use(used, now, exemptions)
            findings, changes = findings + usage, changes + self.store.record_resources(usage)

        alerts = self._detect(event, rule, seen)
        self._record_and_announce(alerts, changes, actions, recorded=recorded)
        if findings:
            failed = sum(1 for f in findings if f.status is Status.FAIL)
            notes.insert(0, f"re-evaluated {_describe(subject)}: {failed} failing finding{'s' if failed != 1 else ''}")
        return EventResult(
            event_id=detail.event_id,
            event_name=detail.event_name,
            outcome="evaluated" if findings or alerts or seen.burst else "ignored",
            reason="; ".join(notes) or f"nothing to evaluate for {_describe(subject)}",
            findings=_finding_views(findings, changes),
            alerts=alerts,
            actions=actions,
            api_calls=self.inventory.counter.total - calls_before,
        )

    def _failed_sign_in(self, event: CloudTrailEvent) -> tuple[Observed, list[Finding], list[Change], list[str]]:
        """Count the failure towards its principal's burst; nothing else changed."""
        detail = event.detail
        identity = detail.user_identity
        principal = "root" if identity.type == "Root" else identity.user_name or HIDDEN_USER_NAME
        burst = self.failures.count(self.account_id, principal, detail.event_id, detail.event_time)
        note = (
            f"failed sign-in for {principal}: {burst.failures} within {self.settings.signin_failure_window_minutes}"
            f" minutes (burst threshold {burst.threshold})"
        )
        return Observed(burst=burst), [], [], [note]

    def _evaluate_users(
        self,
        event: CloudTrailEvent,
        rule: EventRule,
        subject: Subject,
        now: datetime,
        exemptions: Callable[[], list[Exemption]],
    ) -> tuple[Observed, list[Finding], list[Change], list[Action], list[str], bool]:
        """The event's user, or every member of its group: read, enforce, check, store.

        For one user, the event's activity items (its alerts and actions) are written in the
        transaction of the user's findings; the last value says whether they were.
        """
        names, notes = self._user_names(subject)
        views: list[UserView] = []
        actions: list[Action] = []
        password_policy = cache(self.inventory.password_policy)  # read once per event, only if a user exists
        manual = manual_guardrail_change(event, self.settings)  # an administrator attached/detached the guardrail
        removed = self._removed_policies(event, rule)
        single = subject.kind == "user"

        def activity(view: UserView, taken: list[Action]) -> list[dict[str, Any]]:
            alerts = self._detect(event, rule, Observed(users=(view,), removed_policy_arns=removed))
            return [self.store.activity_item(*entry) for entry in _activity_entries(alerts, taken)]

        for name in names:
            view, done = self._evaluate_user(
                name,
                rule,
                event.detail.event_id,
                now,
                password_policy,
                by_resource(exemptions(), self.account_id),
                manual,
                activity if single else None,
            )
            if view is None:
                notes.append(
                    f"user {name} no longer exists (deleted before iamguard looked); "
                    "the next audit resolves its findings"
                )
                continue
            views.append(view)
            actions.extend(done)
        for view in views:  # after a login-profile event, what the audit may reuse (no-op for other events)
            login_profile_changed(self.login_profiles, event.detail.event_name, view.user)
        seen = Observed(users=tuple(views), removed_policy_arns=removed)
        findings = [f for view in views for f in view.findings]
        changes = [c for view in views for c in view.changes]
        return seen, findings, changes, actions, notes, single and bool(views)

    def _user_names(self, subject: Subject) -> tuple[list[str], list[str]]:
        if subject.kind == "user":
            return [subject.name], []
        if subject.kind == "policy":
            return self._policy_holders(subject.name)
        names = self._group_members(subject.name)
        if names is None:
            return [], [f"group {subject.name} no longer exists"]
        if len(names) > MAX_GROUP_MEMBERS:
            return names[:MAX_GROUP_MEMBERS], [
                f"group {subject.name} has {len(names)} members: the first {MAX_GROUP_MEMBERS} were re-evaluated, "
                "the next audit covers the rest"
            ]
        return names, [] if names else [f"group {subject.name} has no members"]

    def _group_members(self, group: str) -> list[str] | None:
        """Every member of a group (None when the group no longer exists)."""
        names: list[str] = []
        try:
            for page in self.iam.get_paginator("get_group").paginate(GroupName=group):
                names.extend(user["UserName"] for user in page["Users"])
        except self.iam.exceptions.NoSuchEntityException:
            return None
        return names

    def _policy_holders(self, arn: str) -> tuple[list[str], list[str]]:
        """Users who hold a managed policy: attached, through a group, or as their permissions boundary.

        Bounded like a group event: at most MAX_GROUP_MEMBERS users now, the rest at the next audit.
        """
        name = arn.rsplit("/", 1)[-1]
        users: dict[str, None] = {}
        groups: list[str] = []
        try:
            for page in self.iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
                users.update(dict.fromkeys(user["UserName"] for user in page.get("PolicyUsers", [])))
                groups.extend(group["GroupName"] for group in page.get("PolicyGroups", []))
        except self.iam.exceptions.NoSuchEntityException:
            return [], [f"policy {name} no longer exists"]
        # Enough users to fill the bound, or as many groups read as the bound allows: the rest waits for the audit.
        expanded = 0
        for group in groups:
            if len(users) > MAX_GROUP_MEMBERS or expanded == MAX_GROUP_MEMBERS:
                break
            users.update(dict.fromkeys(self._group_members(group) or []))
            expanded += 1
        names = list(users)
        if len(names) > MAX_GROUP_MEMBERS or expanded < len(groups):
            return names[:MAX_GROUP_MEMBERS], [
                f"policy {name} is held by more than {MAX_GROUP_MEMBERS} users or groups: the first "
                f"{min(len(names), MAX_GROUP_MEMBERS)} users were re-evaluated, the next audit covers the rest"
            ]
        return names, [] if names else [f"policy {name} is held by no user"]

    def _evaluate_user(
        self,
        name: str,
        rule: EventRule,
        event_id: str,
        now: datetime,
        password_policy: Callable[[], PasswordPolicy | None],
        exemptions: Mapping[str, list[Exemption]],
        manual: ManualChange | None = None,
        activity: Callable[[UserView, list[Action]], list[dict[str, Any]]] | None = None,
    ) -> tuple[UserView | None, list[Action]]:
        """Read one user live, enforce (if configured), run its checks and store the findings.

        What is stored for the user (its findings and guardrail record: one Query) is read while
        IAM is, so the event waits for one round trip less. A user the event just created is
        taken to have nothing stored, so its partition is not read at all - in monitor mode
        only, where enforcement's plan changes nothing in IAM. The transaction checks that
        assumption (`FindingsStore.new_resource`); when it was wrong (a re-created name, a late
        CreateUser), the user is judged again on what is stored.
        """
        assumed_new = rule.event_name == "CreateUser" and self.settings.mode == "monitor"
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stored-items") as pool:
            reading = None if assumed_new else pool.submit(self.store.read_resource, "user", name, self.account_id)
            try:
                user, groups, documents = self.inventory.read_user(name)
            except UnknownUser:
                self.logger.info("user no longer exists", extra={"user": name, "event_id": event_id})
                return None, []
            stored = reading.result() if reading is not None else None
        if stored is None:
            try:
                stored = self.store.new_resource("user", name, self.account_id)
                return self._judge_user(
                    user, groups, documents, stored, rule, event_id, now, password_policy, exemptions, manual, activity
                )
            except NotNew:
                self.logger.info("the new user has stored items: judged again", extra={"user": name})
                stored = self.store.read_resource("user", name, self.account_id)
        return self._judge_user(
            user, groups, documents, stored, rule, event_id, now, password_policy, exemptions, manual, activity
        )

    def _judge_user(
        self,
        user: User,
        groups: dict[str, Group],
        documents: dict[str, PolicyDocument],
        stored: ResourceItems,
        rule: EventRule,
        event_id: str,
        now: datetime,
        password_policy: Callable[[], PasswordPolicy | None],
        exemptions: Mapping[str, list[Exemption]],
        manual: ManualChange | None,
        activity: Callable[[UserView, list[Action]], list[dict[str, Any]]] | None,
    ) -> tuple[UserView, list[Action]]:
        """Enforce (if configured) on what `stored` remembers, run the user's checks, store the findings."""
        actions = self.enforcer.enforce(
            user,
            groups,
            event_id,
            manual=manual,
            documents=documents,
            password_policy=password_policy,
            remembered=stored.guardrail,
            exemptions=exemptions,
        )
        if any(action.performed for action in actions):
            user, groups, documents = self.inventory.read_user(user.name)  # judge the state enforcement left behind
        cache = PolicyCache()
        context = UserContext(
            self.settings,
            now,
            groups,
            documents,
            password_policy() if _needs_password_policy(user, groups, documents, cache) else None,
            cache,
            exemptions,
        )
        only = [check for check in rule.checks if CATALOG[check].scope == "user"]
        findings = run_user_checks(user, context, self.account_id, only=only)
        restored = tuple(a.policy_arn for a in actions if a.performed and a.action != DETACH_GUARDRAIL)

        def view(changes: list[Change]) -> UserView:
            return UserView(user, groups, documents, tuple(findings), tuple(changes), restored)

        also = (lambda changes: activity(view(changes), actions)) if activity is not None else None
        return view(self.store.record_resources(findings, read=[stored], also=also)), actions

    def _removed_policies(self, event: CloudTrailEvent, rule: EventRule) -> tuple[str, ...]:
        """Managed policies the event took away; only looked up when required policies are configured."""
        if Detection.REQUIRED_POLICY_REMOVED not in rule.detections or not self.settings.required_policy_arns:
            return ()
        detail = event.detail
        if detail.event_name in {"DetachUserPolicy", "DetachGroupPolicy"}:
            arn = detail.request("policyArn")
            return (arn,) if isinstance(arn, str) else ()
        if detail.event_name == "RemoveUserFromGroup":
            group = str(detail.request("groupName"))
            try:
                return tuple(
                    policy["PolicyArn"]
                    for page in self.iam.get_paginator("list_attached_group_policies").paginate(GroupName=group)
                    for policy in page["AttachedPolicies"]
                )
            except self.iam.exceptions.NoSuchEntityException:
                pass  # the group is gone: nothing it held applies
        return ()

    def _device_owner(self, serial_number: str) -> Subject | None:
        """Who an MFA device is assigned to now, as IAM says (never guessed from the device's name)."""
        owner = self.inventory.mfa_device_owner(serial_number)
        return subject_of_arn(owner) if owner else None

    def _record_root_use(
        self, used: RootUse, now: datetime, exemptions: Callable[[], list[Exemption]]
    ) -> list[Finding]:
        """Root made this call: root_not_used_recently fails on the event's own fact (no AWS call)."""
        root = replace(_unread_root(self.account_id), used=used)
        state = AccountState(self.account_id, now, root, None, (), (), {}, {})
        return run_checks(state, self.settings, now, only=[ROOT_USAGE_CHECK], exemptions=exemptions())

    def _evaluate_account(
        self,
        subject: Subject,
        rule: EventRule,
        now: datetime,
        exemptions: Callable[[], list[Exemption]],
        used: RootUse | None = None,
    ) -> tuple[Observed, list[Finding], list[Change]]:
        """Root or account checks on a partial AccountState holding only what they read."""
        inventory = self.inventory
        scope = "root" if subject.kind == "root" else "account"
        only = [check for check in rule.checks if CATALOG[check].scope == scope]
        if scope == "root" and used is not None:
            only.append(ROOT_USAGE_CHECK)  # the event says root was used: no credential report needed
        root = inventory.read_root(self.account_id) if scope == "root" else None
        if root is not None and used is not None:
            root = replace(root, used=used)
        password_policy = inventory.password_policy() if "password_policy" in only else None
        state = AccountState(
            account_id=self.account_id,
            read_at=now,
            root=root or _unread_root(self.account_id),
            password_policy=password_policy,
            aliases=tuple(inventory.aliases()) if scope == "account" else (),
            users=(),
            groups={},
            policy_documents={},
        )
        findings = run_checks(state, self.settings, now, only=only, exemptions=exemptions())
        changes = self.store.record_resources(findings)
        seen = Observed(
            root=root,
            root_changes=tuple(changes) if root is not None else (),
            password_policy=password_policy,
        )
        return seen, findings, changes

    def _detect(self, event: CloudTrailEvent, rule: EventRule, seen: Observed) -> list[Alert]:
        return [alert for detection in rule.detections for alert in DETECTORS[detection](event, seen, self.settings)]

    def _record_and_announce(
        self, alerts: list[Alert], changes: list[Change], actions: list[Action], *, recorded: bool = False
    ) -> None:
        if not recorded:  # else they went in with the findings' transaction
            for entry in _activity_entries(alerts, actions):
                self.store.record_activity(*entry)
        taken = [action for action in actions if action.announce]
        notable = [change for change in changes if change.notable]
        if alerts or notable or taken:
            self.announcer.announce(alerts=alerts, changes=notable, actions=taken)


def _activity_entries(alerts: list[Alert], actions: list[Action]) -> list[tuple[str, datetime, str, dict[str, Any]]]:
    """What the status API keeps of an event: its alerts, and the actions people are told of.

    Monitor mode's would-be actions, and what people were already told, are reported in the result only.
    """
    entries = [("alert", alert.event_time, alert.dedup_key, alert.model_dump(mode="json")) for alert in alerts]
    entries += [
        ("action", action.at, f"{action.event_id}#{action.action}#{action.user_name}", action.model_dump(mode="json"))
        for action in actions
        if action.announce
    ]
    return entries


def _needs_password_policy(
    user: User, groups: Mapping[str, Group], documents: Mapping[str, PolicyDocument], cache: PolicyCache
) -> bool:
    """Only user_password_reset_possible reads the policy: for a user who must reset a password it may not change."""
    credentials = user.credentials
    if credentials is None or not credentials.password_enabled or not user.password_reset_required:
        return False
    return not can_change_own_password(user, groups, documents, cache)


def root_use(event: CloudTrailEvent, now: datetime, settings: Settings) -> RootUse | None:
    """Root's own credentials were used by this event's caller, recently enough to matter.

    A successful root console sign-in, or a call root made itself; not an sts:AssumeRoot
    session (a privileged session from the organization, not root's credentials).
    """
    detail = event.detail
    identity = detail.user_identity
    context = identity.session_context
    if identity.type != "Root" or (context is not None and context.assumed_root == "true"):
        return None
    if detail.event_source == "signin.amazonaws.com":
        if detail.event_name != "ConsoleLogin" or detail.console_login_result != "Success":
            return None
        how = "signed in to the console"
    else:
        how = f"called {detail.event_source.split('.', 1)[0]}:{detail.event_name}"
    at = detail.event_time.astimezone(UTC)
    # An old replayed event says nothing about the last days; one from the future is not believed.
    if now - at >= timedelta(days=settings.root_usage_days) or at - now > CLOCK_SKEW:
        return None
    return RootUse(at, how)


def _describe(subject: Subject) -> str:
    return {
        "user": f"user {subject.name}",
        "group": f"the members of group {subject.name}",
        "policy": f"the users who hold policy {subject.name.rsplit('/', 1)[-1]}",
        "root": "the root user",
        "account": f"account {subject.name}",
    }[subject.kind]


def _unread_root(account_id: str) -> RootState:
    """Stands in for root in an account-only state; no root check runs on it."""
    return RootState(
        arn=f"arn:aws:iam::{account_id}:root",
        mfa_enabled=False,
        has_virtual_mfa=False,
        access_keys_present=False,
        credentials=None,
    )


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Idempotency hook: a stored result returned for a repeated eventID."""
    if isinstance(response, EventResult):
        return response.model_copy(
            update={"duplicate": True, "reason": f"duplicate delivery, already processed: {response.reason}"}
        )
    return response
