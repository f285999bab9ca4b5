"""Reads account state: in bulk for an audit, or one user for the event path.

Bulk reads use a fixed set of paginated calls (GetAccountAuthorizationDetails,
GetCredentialReport, ...), so the number of calls grows with pages, not users.
Throttling and transient errors are retried by botocore's retry mode (see
iamguard.aws); the only loop here is the credential report's own
generate-then-poll protocol.

Where no bulk API has a fact (PasswordResetRequired: GetLoginProfile, one user at a
time), the per-user calls run in a small bounded pool, each user's failure stays that
user's (its check says ERROR), and an audit given a `LoginProfileMemory` reuses what
an earlier run read while it cannot have changed (see `login_profile_facts_hold`).
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from iamguard.aws import AwsContext, error_code, error_text
from iamguard.domain.account import (
    ADMINISTRATOR_ACCESS_ARN,
    AccessKey,
    AccountState,
    Credentials,
    Group,
    InlinePolicy,
    InventoryPart,
    LoginProfileFacts,
    LoginProfileMemory,
    ManagedPolicyRef,
    MfaDevice,
    PasswordPolicy,
    PolicyDocument,
    RootState,
    User,
    is_virtual_mfa_serial,
)
from iamguard.iam import evaluation as policy

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

ROOT_REPORT_NAME = "<root_account>"
# Users the credential report does not describe yet (created after it was generated, or a
# deleted user's name reused) are read live, a handful of calls each; beyond this many the
# rest wait for the next report (their report-based checks say ERROR meanwhile).
MAX_LIVE_CREDENTIAL_READS = 100
# A live read of what the report says about a user: credentials, MFA devices, PasswordResetRequired.
LiveCredentials = tuple[Credentials, tuple[MfaDevice, ...], bool | None]
# Per-user calls in flight at once. IAM's request quotas are per account, shared with every other
# caller (console, CLI, other tools), unpublished as numbers and not raisable; AWS's guidance is to
# back off when throttled and not to fire many calls at once (re:Post knowledge center
# "iam-sts-throttling-error"; AWS Security Blog "How to monitor and query IAM resources at scale,
# part 2": a token bucket per API). So a few calls at a time, on ONE client whose adaptive retry
# mode (iamguard.aws) slows every thread down together as soon as IAM throttles.
PER_USER_WORKERS = 8
# How long a login-profile fact may be reused: no longer than the credential report it sits next to
# may be old (AWS regenerates the report at most every 4 hours). See `login_profile_facts_hold`.
LOGIN_PROFILE_FACTS_MAX_AGE = timedelta(hours=4)
# Error codes of a request IAM refused for lack of capacity (after botocore's own retries).
_THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"})
# AdministratorAccess is the one AWS managed policy the checks must know without a call.
KNOWN_POLICY_DOCUMENTS: dict[str, PolicyDocument] = {
    ADMINISTRATOR_ACCESS_ARN: {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
}


# How long a warm function reuses an AWS managed policy's document (see managed_policy_document).
AWS_MANAGED_TTL = 900.0
# The largest page IAM serves (MaxItems 1000): fewer round trips for large accounts.
_BIG_PAGES: Any = {"PageSize": 1000}


class InventoryError(RuntimeError):
    """A part of the account could not be read."""


class CredentialReportUnavailable(InventoryError):
    """The credential report could not be generated or read in time."""


class UnknownUser(InventoryError):
    """The user named by an event does not exist (any more)."""


_COUNTER_HOOK = "iamguard-call-counter"


@dataclass
class CallCounter:
    """Counts API calls made through the clients it is attached to (for benchmarks and logs)."""

    calls: dict[str, int] = field(default_factory=dict)

    def attach(self, client: Any) -> Any:
        """Count `client`'s calls from now on. One hook per client: a client made once at cold start
        serves one inventory per invocation, and the newest inventory's counter is the one counting."""
        client.meta.events.unregister("before-call.*.*", unique_id=_COUNTER_HOOK)
        client.meta.events.register("before-call.*.*", self._count, unique_id=_COUNTER_HOOK)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def parse_time(value: str | None) -> datetime | None:
    """Credential-report timestamps; 'N/A', 'no_information' and 'not_supported' mean none."""
    if not value or value in {"N/A", "no_information", "not_supported"}:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _document(raw: Any) -> PolicyDocument:
    """Policy documents arrive as dicts from boto3, or URL-encoded JSON from some emulators."""
    if isinstance(raw, dict):
        return raw
    text = urllib.parse.unquote(str(raw))
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {}


def parse_credential_report(content: bytes | str, generated_at: datetime | None = None) -> dict[str, Credentials]:
    """Credential report CSV → credentials by user name (root is `<root_account>`).

    Every fact is stamped with the report's GeneratedTime: the report is regenerated at most
    every 4 hours, so its facts can be that much older than the read.
    """
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    result: dict[str, Credentials] = {}
    for row in csv.DictReader(io.StringIO(text)):
        keys = tuple(
            AccessKey(
                slot=slot,
                active=row.get(f"access_key_{slot}_active") == "true",
                last_rotated=parse_time(row.get(f"access_key_{slot}_last_rotated")),
                last_used=parse_time(row.get(f"access_key_{slot}_last_used_date")),
            )
            for slot in (1, 2)
            if row.get(f"access_key_{slot}_active") == "true" or parse_time(row.get(f"access_key_{slot}_last_rotated"))
        )
        password_enabled = row.get("password_enabled") == "true"
        if row.get("user") == ROOT_REPORT_NAME:
            password_enabled = True  # 'not_supported' for root, which always has a password
        result[row["user"]] = Credentials(
            password_enabled=password_enabled,
            password_last_used=parse_time(row.get("password_last_used")),
            password_last_changed=parse_time(row.get("password_last_changed")),
            mfa_active=row.get("mfa_active") == "true",
            access_keys=keys,
            observed_at=generated_at,
            principal_created=parse_time(row.get("user_creation_time")),
        )
    return result


def login_profile_facts_hold(facts: LoginProfileFacts, user: User, now: datetime) -> bool:
    """Whether GetLoginProfile would still say what it said when `facts` were observed.

    PasswordResetRequired changes only with the login profile: CreateLoginProfile,
    UpdateLoginProfile, DeleteLoginProfile, or the user's own ChangePassword. A new
    password (any of those but a flag-only update) moves the credential report's
    password_last_changed past the observation; the report can be 4 hours behind and a
    flag-only update moves nothing, which is what the event path is for: it rewrites
    the facts on Create/UpdateLoginProfile and removes them on DeleteLoginProfile. Should
    an event never arrive (EventBridge is best effort, or no stack watches the account),
    the facts expire after LOGIN_PROFILE_FACTS_MAX_AGE, so a verdict built on them is
    never older than the report-based verdicts beside it.
    """
    credentials = user.credentials
    if credentials is None or facts.user_id != user.user_id:
        return False  # no report row to compare with, or a re-created user of the same name
    if not timedelta(0) <= now - facts.observed_at <= LOGIN_PROFILE_FACTS_MAX_AGE:
        return False
    changed = credentials.password_last_changed
    # The report has whole seconds: a password set within the observed second may be the newer one.
    return changed is not None and changed + timedelta(seconds=1) <= facts.observed_at


@dataclass(frozen=True)
class _ProfileRead:
    """One user's GetLoginProfile: the flag and the profile's creation (None: no profile), or the error."""

    reset_required: bool | None = None
    created: datetime | None = None
    error: ClientError | BotocoreConnectionError | None = None


class Inventory:
    """Reads an account through one IAM client (whose calls it counts)."""

    def __init__(
        self,
        ctx: AwsContext,
        *,
        report_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        iam_client: IAMClient | None = None,
        login_profiles: LoginProfileMemory | None = None,
    ) -> None:
        self.counter = CallCounter()
        self.iam: IAMClient = self.counter.attach(iam_client or ctx.iam())
        self._ctx = ctx
        self._report_timeout = report_timeout
        self._sleep = sleep
        self._login_profiles = login_profiles
        self._aws_managed: dict[str, tuple[float, PolicyDocument]] = {}  # arn -> (read at, document)
        self._versions: dict[tuple[str, str], PolicyDocument] = {}  # (arn, version id) -> document

    # -- bulk -----------------------------------------------------------------
    def read_account(self, account_id: str | None = None) -> AccountState:
        """One sweep over the whole account."""
        read_at = datetime.now(UTC)
        errors: dict[InventoryPart, str] = {}
        summary = self.iam.get_account_summary()["SummaryMap"]
        try:
            report: dict[str, Credentials] | None = self.credential_report()
        except CredentialReportUnavailable as exc:
            report = None
            errors["credential_report"] = str(exc)

        users_raw: list[dict[str, Any]] = []
        groups_raw: list[dict[str, Any]] = []
        documents: dict[str, PolicyDocument] = dict(KNOWN_POLICY_DOCUMENTS)
        paginator = self.iam.get_paginator("get_account_authorization_details")
        for page in paginator.paginate(Filter=["User", "Group", "LocalManagedPolicy"], PaginationConfig=_BIG_PAGES):
            users_raw.extend(page.get("UserDetailList", []))  # type: ignore[arg-type]
            groups_raw.extend(page.get("GroupDetailList", []))  # type: ignore[arg-type]
            for managed in page.get("Policies", []):
                default = next((v for v in managed.get("PolicyVersionList", []) if v.get("IsDefaultVersion")), None)
                if default is not None:
                    documents[managed["Arn"]] = _document(default.get("Document"))

        virtual_devices = self._virtual_mfa_devices()
        devices_by_user: dict[str, list[dict[str, Any]]] = {}
        for device in virtual_devices:
            devices_by_user.setdefault(device["User"]["Arn"], []).append(device)
        groups = {raw["GroupName"]: _group_from_details(raw) for raw in groups_raw}
        users = [_user_from_details(raw, report, devices_by_user.get(raw["Arn"], [])) for raw in users_raw]
        if report is not None:
            users = self._with_live_credentials(users)
        self._fetch_unknown_documents(users, groups.values(), documents)
        password_policy = self.password_policy()
        if password_policy is None or not password_policy.allow_users_to_change_password:
            users = self._with_reset_flags(users, groups, documents)

        if account_id is None:
            account_id = users[0].arn.split(":")[4] if users else self._account_id()
        root_credentials = report.get(ROOT_REPORT_NAME) if report is not None else None
        root = _root_state(account_id, summary, virtual_devices, root_credentials)
        return AccountState(
            account_id=account_id,
            read_at=read_at,
            root=root,
            password_policy=password_policy,
            aliases=tuple(self.aliases()),
            users=tuple(users),
            groups=groups,
            policy_documents=documents,
            errors=errors,
            api_calls=self.counter.total,
        )

    def credential_report(self) -> dict[str, Credentials]:
        """Generate (if needed), poll with backoff until complete, then parse the report."""
        deadline = time.monotonic() + self._report_timeout
        delay = 0.25
        last_problem = "not generated"
        while True:
            try:
                state: str = self.iam.generate_credential_report()["State"]
            except self.iam.exceptions.LimitExceededException as exc:
                # Only LimitExceeded (too many generations right now) is worth waiting for; AccessDenied
                # and the rest are the caller's to report (botocore already retried throttling).
                state = "LIMITED"
                last_problem = error_text(exc)
            if state == "COMPLETE":
                try:
                    response = self.iam.get_credential_report()
                    generated = response.get("GeneratedTime")
                    return parse_credential_report(response["Content"], _as_utc(generated) if generated else None)
                except (
                    self.iam.exceptions.CredentialReportNotReadyException,  # ReportInProgress
                    self.iam.exceptions.CredentialReportNotPresentException,  # ReportNotPresent
                    self.iam.exceptions.CredentialReportExpiredException,  # ReportExpired
                ) as exc:
                    last_problem = error_text(exc)
            else:
                last_problem = last_problem if state == "LIMITED" else f"report generation {state.lower()}"
            if time.monotonic() + delay > deadline:
                raise CredentialReportUnavailable(
                    f"credential report not available after {self._report_timeout:.0f}s ({last_problem})"
                )
            self._sleep(delay)
            delay = min(delay * 2, 8.0)

    def password_policy(self) -> PasswordPolicy | None:
        try:
            raw = self.iam.get_account_password_policy()["PasswordPolicy"]
        except self.iam.exceptions.NoSuchEntityException:
            return None
        return PasswordPolicy(
            minimum_length=int(raw.get("MinimumPasswordLength", 8)),
            require_symbols=bool(raw.get("RequireSymbols")),
            require_numbers=bool(raw.get("RequireNumbers")),
            require_uppercase=bool(raw.get("RequireUppercaseCharacters")),
            require_lowercase=bool(raw.get("RequireLowercaseCharacters")),
            allow_users_to_change_password=bool(raw.get("AllowUsersToChangePassword")),
            max_password_age_days=raw.get("MaxPasswordAge") if raw.get("ExpirePasswords") else None,
            password_reuse_prevention=raw.get("PasswordReusePrevention"),
            hard_expiry=bool(raw.get("HardExpiry")),
        )

    def aliases(self) -> list[str]:
        aliases: list[str] = []
        for page in self.iam.get_paginator("list_account_aliases").paginate():
            aliases.extend(page.get("AccountAliases", []))
        return aliases

    def _account_id(self) -> str:
        sts = self.counter.attach(self._ctx.sts())
        account: str = sts.get_caller_identity()["Account"]
        return account

    def _virtual_mfa_devices(self) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = []
        pages = self.iam.get_paginator("list_virtual_mfa_devices").paginate(
            AssignmentStatus="Assigned", PaginationConfig=_BIG_PAGES
        )
        for page in pages:
            for device in page.get("VirtualMFADevices", []):
                # Never keep the seed or QR code some emulators return: only what checks need.
                devices.append(
                    {
                        "SerialNumber": device["SerialNumber"],
                        "User": {"Arn": device.get("User", {}).get("Arn", "")},
                        "EnableDate": device.get("EnableDate"),
                    }
                )
        return devices

    def _fetch_unknown_documents(
        self, users: Iterable[User], groups: Iterable[Group], documents: dict[str, PolicyDocument]
    ) -> None:
        """AWS managed policies are not in the details response; fetch each distinct one once, a few at a time."""
        wanted = {ref.arn for user in users for ref in user.attached_policies}
        wanted.update(user.permissions_boundary.arn for user in users if user.permissions_boundary is not None)
        wanted.update(ref.arn for group in groups for ref in group.attached_policies)
        missing = sorted(wanted - documents.keys())
        if len(missing) <= 1:
            documents.update((arn, self.managed_policy_document(arn)) for arn in missing)
            return
        with ThreadPoolExecutor(max_workers=PER_USER_WORKERS, thread_name_prefix="policy-documents") as pool:
            documents.update(zip(missing, pool.map(self.managed_policy_document, missing), strict=True))

    def managed_policy_document(self, arn: str) -> PolicyDocument:
        """The default version's document of a managed policy ({} when it no longer exists).

        A warm function reuses what it read: an AWS managed policy for AWS_MANAGED_TTL (AWS
        publishes new versions rarely, and the audit re-reads them), a customer managed
        policy's version for good (a version never changes; the default version is read each time).
        """
        if arn in KNOWN_POLICY_DOCUMENTS:
            return KNOWN_POLICY_DOCUMENTS[arn]
        now = time.monotonic()
        kept = self._aws_managed.get(arn)
        if kept is not None and now - kept[0] < AWS_MANAGED_TTL:
            return kept[1]
        try:
            version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            document = self._versions.get((arn, version))
            if document is None:
                raw = self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                document = self._versions[(arn, version)] = _document(raw)
        except self.iam.exceptions.NoSuchEntityException:
            return {}
        if arn.split(":")[4] == "aws":
            self._aws_managed[arn] = (now, document)
        return document

    def _with_reset_flags(
        self, users: list[User], groups: Mapping[str, Group], documents: Mapping[str, PolicyDocument]
    ) -> list[User]:
        """Read PasswordResetRequired only where it can lock a user out.

        That is a console user who has never signed in and has no ChangePassword
        permission of its own, in an account whose password policy does not let
        users change their password. This is the one per-user call of the bulk read
        (GetLoginProfile; nothing else has the flag): facts an earlier run observed
        are reused while they hold, the rest are read concurrently (PER_USER_WORKERS).
        A user whose read failed keeps `login_profile_error` (its check says ERROR);
        only when every read failed, none for throttling, is the first error raised:
        the role may not call GetLoginProfile at all, or IAM cannot be reached.
        """

        cache = policy.PolicyCache()

        def at_risk(user: User) -> bool:
            creds = user.credentials
            return (
                creds is not None
                and user.password_reset_required is None  # not already read live
                and creds.password_enabled
                and creds.password_last_used is None
                and not policy.can_change_own_password(user, groups, documents, cache)
            )

        wanted = [user for user in users if at_risk(user)]
        if not wanted:
            return users
        now = datetime.now(UTC)
        kept = self._login_profiles.recall() if self._login_profiles is not None else {}
        reused = {
            user.name: facts.password_reset_required
            for user in wanted
            if (facts := kept.get(user.name)) is not None and login_profile_facts_hold(facts, user, now)
        }
        to_read = [user for user in wanted if user.name not in reused]
        reads = self._read_login_profiles([user.name for user in to_read])
        failures = [read.error for read in reads.values() if read.error is not None]
        if failures and len(failures) == len(reads) and not any(_throttled(error) for error in failures):
            raise failures[0]
        if self._login_profiles is not None:
            observed = [
                LoginProfileFacts(user.name, user.user_id, read.reset_required, read.created, now)
                for user in to_read
                if (read := reads[user.name]).error is None and read.reset_required is not None
            ]
            if observed:
                self._login_profiles.remember(observed)
        result = []
        for user in users:
            answer = reads.get(user.name)
            if user.name in reused:
                user = replace(user, password_reset_required=reused[user.name])
            elif answer is not None and answer.error is not None:
                user = replace(user, login_profile_error=_failure_text(answer.error))
            elif answer is not None:
                user = replace(user, password_reset_required=answer.reset_required)
            result.append(user)
        return result

    def _read_login_profiles(self, user_names: list[str]) -> dict[str, _ProfileRead]:
        """GetLoginProfile for each user, PER_USER_WORKERS at a time; results in `user_names` order."""
        if not user_names:
            return {}
        with ThreadPoolExecutor(max_workers=PER_USER_WORKERS, thread_name_prefix="login-profile") as pool:
            return dict(zip(user_names, pool.map(self._read_login_profile, user_names), strict=True))

    def _read_login_profile(self, user_name: str) -> _ProfileRead:
        try:
            profile = self.iam.get_login_profile(UserName=user_name)["LoginProfile"]
        except self.iam.exceptions.NoSuchEntityException:
            return _ProfileRead()  # deleted since the report: no password, nothing to reset
        except (ClientError, BotocoreConnectionError) as exc:  # after botocore's retries: this user's problem
            return _ProfileRead(error=exc)
        created = profile.get("CreateDate")
        return _ProfileRead(
            reset_required=bool(profile.get("PasswordResetRequired")),
            created=_as_utc(created) if created else None,
        )

    # -- one user (event path) ---------------------------------------------------
    def read_user(self, user_name: str) -> tuple[User, dict[str, Group], dict[str, PolicyDocument]]:
        """The current state of one user, read live.

        The calls go out together (PER_USER_WORKERS at a time): the seven that need only the
        name, then what their answers name (inline documents, groups, keys' last use), then
        unknown managed policies. On AWS that is three round trips, not one per call. A user
        deleted while it is read is an `UnknownUser`, whichever call noticed.
        """
        iam = self.iam
        read_at = datetime.now(UTC)
        not_found = iam.exceptions.NoSuchEntityException
        with ThreadPoolExecutor(max_workers=PER_USER_WORKERS, thread_name_prefix="user-read") as pool:

            def every_page(pages: Iterable[Mapping[str, Any]], key: str) -> Future[list[Any]]:
                return pool.submit(lambda: [item for page in pages for item in page[key]])  # pages are read there

            found = pool.submit(iam.get_user, UserName=user_name)
            attached = every_page(
                iam.get_paginator("list_attached_user_policies").paginate(UserName=user_name), "AttachedPolicies"
            )
            inline_names = every_page(
                iam.get_paginator("list_user_policies").paginate(UserName=user_name), "PolicyNames"
            )
            member_of = every_page(iam.get_paginator("list_groups_for_user").paginate(UserName=user_name), "Groups")
            devices = every_page(iam.get_paginator("list_mfa_devices").paginate(UserName=user_name), "MFADevices")
            profile = pool.submit(self._login_profile, user_name)
            keys = pool.submit(lambda: iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"])
            try:
                raw = found.result()["User"]
                inline = {
                    name: pool.submit(lambda n: iam.get_user_policy(UserName=user_name, PolicyName=n), name)
                    for name in inline_names.result()
                }
                groups = {
                    g["GroupName"]: pool.submit(self._read_group, g["GroupName"], g["Arn"]) for g in member_of.result()
                }
                last_used = [
                    pool.submit(lambda k: iam.get_access_key_last_used(AccessKeyId=k), key["AccessKeyId"])
                    for key in keys.result()
                ]
                credentials, mfa_devices, password_reset_required = _credentials(
                    devices.result(),
                    profile.result(),
                    zip(
                        keys.result(),
                        (f.result()["AccessKeyLastUsed"].get("LastUsedDate") for f in last_used),
                        strict=True,
                    ),
                    raw.get("PasswordLastUsed"),
                    read_at,
                )
                user = _user(
                    raw,
                    attached=attached.result(),
                    inline=tuple(InlinePolicy(n, _document(f.result()["PolicyDocument"])) for n, f in inline.items()),
                    group_names=tuple(groups),
                    mfa_devices=mfa_devices,
                    credentials=credentials,
                    password_reset_required=password_reset_required,
                )
                read_groups = {name: f.result() for name, f in groups.items()}
            except not_found as exc:
                raise UnknownUser(f"user {user_name} does not exist") from exc
        documents: dict[str, PolicyDocument] = dict(KNOWN_POLICY_DOCUMENTS)
        self._fetch_unknown_documents([user], read_groups.values(), documents)
        return user, read_groups, documents

    def _read_group(self, name: str, arn: str) -> Group:
        iam = self.iam
        attached, inline = self._live_policies(
            iam.get_paginator("list_attached_group_policies").paginate(GroupName=name),
            iam.get_paginator("list_group_policies").paginate(GroupName=name),
            lambda policy: iam.get_group_policy(GroupName=name, PolicyName=policy)["PolicyDocument"],
        )
        return Group(name=name, arn=arn, attached_policies=attached, inline_policies=inline)

    @staticmethod
    def _live_policies(
        attached_pages: Iterable[Mapping[str, Any]],
        inline_pages: Iterable[Mapping[str, Any]],
        inline_document: Callable[[str], Any],
    ) -> tuple[tuple[ManagedPolicyRef, ...], tuple[InlinePolicy, ...]]:
        """A group's policies, read live: the attached ones and each inline one's document."""
        attached = tuple(
            ManagedPolicyRef(arn=p["PolicyArn"], name=p["PolicyName"])
            for page in attached_pages
            for p in page["AttachedPolicies"]
        )
        inline = tuple(
            InlinePolicy(name, _document(inline_document(name)))
            for page in inline_pages
            for name in page["PolicyNames"]
        )
        return attached, inline

    def read_root(self, account_id: str) -> RootState:
        """Root state without the credential report (event path: password, keys and MFA from the summary)."""
        summary = self.iam.get_account_summary()["SummaryMap"]
        return _root_state(account_id, summary, self._virtual_mfa_devices(), None)

    def mfa_device_owner(self, serial_number: str) -> str | None:
        """The ARN of the user (or root) a virtual MFA device is assigned to now; None when unassigned or gone."""
        for device in self._virtual_mfa_devices():
            if device["SerialNumber"] == serial_number:
                return device["User"]["Arn"] or None
        return None

    def _with_live_credentials(self, users: list[User]) -> list[User]:
        """Read live the credentials of users the report does not describe (see MAX_LIVE_CREDENTIAL_READS).

        A user missing from the report was created after it was generated; a row whose
        creation time is not the user's belongs to a deleted user of the same name.
        """
        stale = [user.name for user in users if _report_row_is_stale(user)][:MAX_LIVE_CREDENTIAL_READS]
        if not stale:
            return users
        with ThreadPoolExecutor(max_workers=PER_USER_WORKERS, thread_name_prefix="live-credentials") as pool:
            live = dict(zip(stale, pool.map(self._live_credentials_or_none, stale), strict=True))
        result = []
        for user in users:
            read = live.get(user.name)
            if user.name in live:
                credentials, devices, reset = read if read is not None else (None, user.mfa_devices, None)
                user = replace(user, credentials=credentials, mfa_devices=devices, password_reset_required=reset)
            result.append(user)
        return result

    def _live_credentials_or_none(self, user_name: str) -> LiveCredentials | None:
        try:
            password_last_used = self.iam.get_user(UserName=user_name)["User"].get("PasswordLastUsed")
            return self._live_credentials(user_name, password_last_used)
        except self.iam.exceptions.NoSuchEntityException:
            return None  # deleted during the read: the next audit resolves it

    def _live_credentials(self, user_name: str, password_last_used: Any) -> LiveCredentials:
        """What the credential report would say about one user, read now (and its MFA devices of every kind)."""
        iam = self.iam
        read_at = datetime.now(UTC)
        devices = [
            d for page in iam.get_paginator("list_mfa_devices").paginate(UserName=user_name) for d in page["MFADevices"]
        ]
        profile = self._login_profile(user_name)
        keys = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        last_used = (
            iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"].get("LastUsedDate")
            for key in keys
        )
        return _credentials(devices, profile, zip(keys, last_used, strict=True), password_last_used, read_at)

    def _login_profile(self, user_name: str) -> Mapping[str, Any] | None:
        """GetLoginProfile's profile; None when the user has no console password."""
        try:
            return self.iam.get_login_profile(UserName=user_name)["LoginProfile"]
        except self.iam.exceptions.NoSuchEntityException:
            return None


def _credentials(
    devices: Iterable[Mapping[str, Any]],
    profile: Mapping[str, Any] | None,
    keys: Iterable[tuple[Mapping[str, Any], Any]],
    password_last_used: Any,
    read_at: datetime,
) -> LiveCredentials:
    """A live read's answers as the credential report would say them: MFA devices, login profile, access
    keys (each with its last use), GetUser's PasswordLastUsed."""
    mfa_devices = tuple(
        MfaDevice(
            serial_number=d["SerialNumber"],
            virtual=is_virtual_mfa_serial(d["SerialNumber"]),
            enabled_at=_as_utc(d["EnableDate"]) if d.get("EnableDate") else None,
        )
        for d in devices
    )
    access_keys = tuple(
        AccessKey(
            slot=slot,
            active=key["Status"] == "Active",
            last_rotated=_as_utc(key["CreateDate"]),
            last_used=_as_utc(used) if used else None,
        )
        for slot, (key, used) in enumerate(keys, start=1)
    )
    credentials = Credentials(
        password_enabled=profile is not None,
        password_last_used=_as_utc(password_last_used) if password_last_used else None,
        password_last_changed=_as_utc(profile["CreateDate"]) if profile else None,
        mfa_active=bool(mfa_devices),
        access_keys=access_keys,
        observed_at=read_at,
    )
    reset = bool(profile.get("PasswordResetRequired")) if profile else None
    return credentials, mfa_devices, reset


def _throttled(error: Exception) -> bool:
    return isinstance(error, ClientError) and error_code(error) in _THROTTLING_CODES


def _failure_text(error: Exception) -> str:
    return error_text(error) if isinstance(error, ClientError) else str(error)


def _boundary(raw: Mapping[str, Any]) -> ManagedPolicyRef | None:
    """GetUser's / GetAccountAuthorizationDetails' PermissionsBoundary (absent or empty: none)."""
    arn = (raw.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return ManagedPolicyRef(arn=arn, name=arn.rsplit("/", 1)[-1]) if isinstance(arn, str) and arn else None


def _root_state(
    account_id: str, summary: Mapping[Any, int], virtual_devices: list[dict[str, Any]], credentials: Credentials | None
) -> RootState:
    """Root from GetAccountSummary (live) and its assigned virtual devices; `credentials` is its report row."""
    arn = f"arn:aws:iam::{account_id}:root"
    password = summary.get("AccountPasswordPresent")
    virtual = sum(1 for device in virtual_devices if device.get("User", {}).get("Arn") == arn)
    return RootState(
        arn=arn,
        mfa_enabled=bool(summary.get("AccountMFAEnabled")),
        has_virtual_mfa=virtual > 0,
        access_keys_present=bool(summary.get("AccountAccessKeysPresent")),
        credentials=credentials,
        password_present=None if password is None else bool(password),
        signing_certificates_present=bool(summary.get("AccountSigningCertificatesPresent")),
        virtual_mfa_devices=virtual,
    )


def _report_row_is_stale(user: User) -> bool:
    credentials = user.credentials
    if credentials is None:
        return True
    created = credentials.principal_created
    return created is not None and abs((created - user.created).total_seconds()) >= 1


def _group_from_details(raw: Mapping[str, Any]) -> Group:
    return Group(
        name=raw["GroupName"],
        arn=raw["Arn"],
        attached_policies=tuple(
            ManagedPolicyRef(arn=p["PolicyArn"], name=p["PolicyName"]) for p in raw.get("AttachedManagedPolicies", [])
        ),
        inline_policies=tuple(
            InlinePolicy(p["PolicyName"], _document(p["PolicyDocument"])) for p in raw.get("GroupPolicyList", [])
        ),
    )


def _user_from_details(
    raw: Mapping[str, Any], report: Mapping[str, Credentials] | None, own_devices: list[dict[str, Any]]
) -> User:
    devices = tuple(
        MfaDevice(
            serial_number=d["SerialNumber"],
            virtual=True,
            enabled_at=_as_utc(d["EnableDate"]) if d.get("EnableDate") else None,
        )
        for d in own_devices
    )
    return _user(
        raw,
        attached=raw.get("AttachedManagedPolicies", []),
        inline=tuple(
            InlinePolicy(p["PolicyName"], _document(p["PolicyDocument"])) for p in raw.get("UserPolicyList", [])
        ),
        group_names=tuple(raw.get("GroupList", [])),
        mfa_devices=devices,
        credentials=report.get(raw["UserName"]) if report is not None else None,
    )


def _user(
    raw: Mapping[str, Any],
    *,
    attached: Iterable[Mapping[str, Any]],
    inline: tuple[InlinePolicy, ...],
    group_names: tuple[str, ...],
    mfa_devices: tuple[MfaDevice, ...],
    credentials: Credentials | None,
    password_reset_required: bool | None = None,
) -> User:
    """A user as GetUser or GetAccountAuthorizationDetails describes it, with what was read beside it."""
    return User(
        name=raw["UserName"],
        arn=raw["Arn"],
        user_id=raw["UserId"],
        created=_as_utc(raw["CreateDate"]),
        path=raw.get("Path", "/"),
        tags={tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])},
        attached_policies=tuple(ManagedPolicyRef(arn=p["PolicyArn"], name=p["PolicyName"]) for p in attached),
        inline_policies=inline,
        group_names=group_names,
        permissions_boundary=_boundary(raw),
        mfa_devices=mfa_devices,
        credentials=credentials,
        password_reset_required=password_reset_required,
    )
