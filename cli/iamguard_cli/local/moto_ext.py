"""Root-user state for moto, in one documented place.

moto has no root user: its credential report has no `<root_account>` row and
GetAccountSummary reports AccountMFAEnabled / AccountAccessKeysPresent as a
constant 0 (and has no AccountPasswordPresent). It also ignores
PasswordResetRequired on CreateLoginProfile. This module patches those spots
(idempotently) so that iamguard's root checks and the first-sign-in lockout
check can be exercised locally and in tests:

    from iamguard_cli.local import moto_ext
    moto_ext.install()
    moto_ext.root(account_id).mfa = "virtual"            # one device of that kind
    moto_ext.root(account_id).add_mfa_device("u2f")      # root may have up to 8 devices
    moto_ext.root(account_id).password = False           # centralized root access deleted it

Root's MFA devices are virtual (made with CreateVirtualMFADevice, listed by
ListVirtualMFADevices with root's ARN as their user, under any name), hardware
TOTP tokens (a bare serial) or FIDO security keys / passkeys (`arn:…:u2f/root/…`);
AccountMFAEnabled counts them all.

Where moto differs from AWS for everyone, not only root:
- GetCredentialReport answers a fixed GeneratedTime of 2015; moto builds the report
  afresh on every call, so its true generation time is now, and that is what it says;
- DeleteVirtualMFADevice deletes a device that is still assigned; AWS refuses
  (DeleteConflict: a device is deactivated first), and so does this module.

Calls made with root's credentials act on root, as in AWS. moto treats every
request as coming from an IAM user and fails when a call names no user; here a
request signed with an access key that belongs to no IAM user or role session
(moto's default `testing` keys, or a key root created) is root's own, so:

- EnableMFADevice / DeactivateMFADevice without UserName enable or remove root's
  virtual MFA device (created with CreateVirtualMFADevice as usual). boto3 and
  the aws CLI insist on a UserName for EnableMFADevice, so `<root_account>`
  (the credential report's name for root; no IAM user can have it) means
  "root" as well;
- ListMFADevices without UserName lists root's device;
- CreateAccessKey / ListAccessKeys without UserName create or list root's keys,
  and UpdateAccessKey / DeleteAccessKey act on a root key by its id.

moto's EventBridge drops the `account` field from the events it delivers to
targets (its default input template lacks it); the template is completed here,
so a handler parsing the envelope sees what EventBridge sends.

moto's EventBridge re-stamps an event it forwards to another account's (or region's) bus
as that bus's own: `account`, `time`, `region` and `resources` become the target's. AWS
keeps them - an organization's hub bus receives each member's events with the member's
account id - and so does this module. moto also delivers events to the targets of a DISABLED
rule; EventBridge does not, and neither does moto here.

Organizations' CreateAccount creates OrganizationAccountAccessRole in the new account,
trusted by the management account, with AdministratorAccess; moto creates no role.
`organization_access_role(account_id, management_account_id)` adds it.

moto has no ResyncMFADevice either; it is added here (the device must belong to
the user; the local trail checks the codes, as for EnableMFADevice).

moto has permissions boundaries for roles only. For users they are added here as
AWS has them: CreateUser's PermissionsBoundary, PutUserPermissionsBoundary and
DeleteUserPermissionsBoundary (the policy must exist), the boundary in GetUser
and GetAccountAuthorizationDetails, and ListEntitiesForPolicy listing the users
whose boundary the policy is (with no PolicyUsageFilter, or PermissionsBoundary;
moto ignores that filter and lists only attachments) and failing with
NoSuchEntity for a policy that does not exist (moto lists nobody).

moto's TransactWriteItems deep-copies the whole table once per step of the
transaction (its way to roll back), so a transaction costs steps x table size:
measured on moto 5.2.5, 13 Puts into a table of 1,000 items take seconds, where
AWS's cost does not depend on the table at all. Here a transaction keeps only the
items it touches and puts those back when it is cancelled; what it accepts,
writes and answers (CancellationReasons, ALL_OLD items) is moto's own.

moto's Query gathers every item of the table and sorts them all, for every page of every
Query: a read of one partition costs the whole table (N log N in Python) where DynamoDB reads only
the partition (or the index's matching items). In a shared table that made one account's audit
slower with every other account's findings. Here a Query of the table gathers only its partition,
and a Query of an index only the items whose index key matches, unsorted (moto checks them again
and sorts them by the index's key, as it does); what it returns, in which order and with which
LastEvaluatedKey, is moto's own. The index's matching items are still found by looking at every
item of the table once, but with two attribute reads each, where moto compares typed values in
Python per key condition.

moto's STS lets anyone assume any role ARN, even one that does not exist ("the role
does not need to exist", moto's own docstring). AWS answers AccessDenied: a role that
is not there cannot be assumed, so neither can it here (the hub's MemberAccess must see
a member account without its StackSet role exactly as on AWS). moto's CreateAccount,
like AWS's, leaves an `OrganizationAccountAccessRole` in the new account: the way in.

Organization mode (the hub and its member accounts):
- moto has no ListOrganizationsFeatures (centralized root access): it is added here,
  answering the organization of the calling management account and the features
  `organization_features` holds (none until a test or the local runtime sets them;
  OrganizationNotFound outside an organization).

Login profiles: moto dates a user's password by the user's creation, everywhere: the
credential report's password_last_changed (even for a user with no password, where AWS
says N/A) and LoginProfile.CreateDate. AWS dates them by the password: CreateLoginProfile
sets both, UpdateLoginProfile with a Password moves password_last_changed only (the
profile keeps its CreateDate; a flag-only update moves nothing), and DeleteLoginProfile
ends both. So a user made long ago who gets a console password today was, on moto,
"given a console password N days ago and never signed in". This module dates them as
AWS does (`LoginProfileDates` on moto's user).

The state lives in the moto process (in-process mock or a server started from
Python); it mirrors what AWS itself would hold for the root user.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ROOT_MFA_SERIAL = "arn:aws:iam::{account_id}:mfa/root-account-mfa-device"
ROOT_U2F_SERIAL = "arn:aws:iam::{account_id}:u2f/root/security-key-EXAMPLE{n}"
ROOT_HARDWARE_SERIAL = "GAHT0000000{n}"
MAX_MFA_DEVICES = 8  # per user, and for root
MfaKind = Literal["virtual", "hardware", "u2f"]
ROOT_USER_NAME = "<root_account>"  # stands for root where an API insists on a UserName
_DATE = "%Y-%m-%dT%H:%M:%S+00:00"

_lock = threading.Lock()
_installed = False
# iam:ListOrganizationsFeatures' EnabledFeatures (RootCredentialsManagement, RootSessions) of the organization.
organization_features: set[str] = set()


@dataclass
class RootKey:
    access_key_id: str
    active: bool = True
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: datetime | None = None


@dataclass
class RootMfaDevice:
    serial_number: str
    kind: MfaKind
    enabled_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class RootAccount:
    """What AWS knows about an account's root user."""

    account_id: str
    created: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    password: bool = True  # False: deleted through centralized root access (AWS Organizations)
    password_last_used: datetime | None = None
    access_keys: list[RootKey] = field(default_factory=list)
    mfa_devices: list[RootMfaDevice] = field(default_factory=list)

    def add_mfa_device(self, kind: MfaKind, serial_number: str | None = None) -> RootMfaDevice:
        """Assign root one more device (AWS allows 8); virtual ones without a moto device are listed anyway."""
        if len(self.mfa_devices) >= MAX_MFA_DEVICES:
            raise ValueError(f"root already has {MAX_MFA_DEVICES} MFA devices")
        n = len(self.mfa_devices) + 1
        default = {"virtual": ROOT_MFA_SERIAL, "u2f": ROOT_U2F_SERIAL, "hardware": ROOT_HARDWARE_SERIAL}[kind]
        device = RootMfaDevice(serial_number or default.format(account_id=self.account_id, n=n), kind)
        self.mfa_devices.append(device)
        return device

    # -- shortcuts for one device ------------------------------------------------------
    @property
    def mfa(self) -> Literal["none", "virtual", "hardware"]:
        """'virtual' when any device is virtual, 'hardware' when all are hardware or FIDO, else 'none'."""
        if not self.mfa_devices:
            return "none"
        return "virtual" if any(d.kind == "virtual" for d in self.mfa_devices) else "hardware"

    @mfa.setter
    def mfa(self, kind: Literal["none", "virtual", "hardware"]) -> None:
        self.mfa_devices = []
        if kind != "none":
            self.add_mfa_device(kind)

    @property
    def mfa_serial(self) -> str | None:
        """The first virtual device's serial number."""
        return next((d.serial_number for d in self.mfa_devices if d.kind == "virtual"), None)

    @property
    def mfa_enabled_at(self) -> datetime | None:
        return min((d.enabled_at for d in self.mfa_devices), default=None)

    @mfa_enabled_at.setter
    def mfa_enabled_at(self, value: datetime) -> None:
        for device in self.mfa_devices:
            device.enabled_at = value

    def device(self, serial_number: str) -> RootMfaDevice | None:
        return next((d for d in self.mfa_devices if d.serial_number == serial_number), None)

    def report_row(self) -> str:
        def when(value: datetime | None) -> str:
            return value.strftime(_DATE) if value else "N/A"

        keys = self.access_keys[:2] + [None] * (2 - len(self.access_keys[:2]))
        cells = [
            "<root_account>",
            f"arn:aws:iam::{self.account_id}:root",
            self.created.strftime(_DATE),
            "not_supported",  # AWS never says whether root has a password here (GetAccountSummary does)
            when(self.password_last_used) if self.password_last_used else "no_information",
            "not_supported",
            "not_supported",
            "true" if self.mfa_devices else "false",
        ]
        for key in keys:
            cells += [
                "true" if key and key.active else "false",
                when(key.created) if key else "N/A",
                when(key.last_used) if key else "N/A",
                "N/A",
                "N/A",
            ]
        cells += ["false", "N/A", "false", "N/A"]
        return ",".join(cells) + "\n"


_roots: dict[str, RootAccount] = {}


def root(account_id: str) -> RootAccount:
    """The root state of a moto account (created on first use: no MFA, no keys)."""
    with _lock:
        return _roots.setdefault(account_id, RootAccount(account_id))


def reset() -> None:
    """Forget all root state and the organization's features (between tests)."""
    with _lock:
        _roots.clear()
        organization_features.clear()


class _RootUserView:
    """Quacks like moto's User where a virtual MFA device points at its owner."""

    def __init__(self, account_id: str) -> None:
        self.name = "root"
        self.path = "/"
        self.id = account_id
        self.arn = f"arn:aws:iam::{account_id}:root"
        self.create_date = root(account_id).created
        self.tags: dict[str, str] = {}


def install() -> None:
    """Patch moto (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from moto.core.responses import ActionResult
    from moto.iam import models, responses

    original_report = models.IAMBackend.get_credential_report
    original_summary = models.AccountSummary.summary_map
    original_list_devices = models.IAMBackend.list_virtual_mfa_devices
    original_delete_device = models.IAMBackend.delete_virtual_mfa_device
    original_create_login_profile = responses.IamResponse.create_login_profile
    original_report_response = responses.IamResponse.get_credential_report

    def get_credential_report(self: Any) -> str:
        report: str = original_report(self)
        header, _, rest = report.partition("\n")
        return f"{header}\n{root(self.account_id).report_row()}{rest}"

    def summary_map(self: Any) -> dict[str, Any]:
        summary: dict[str, Any] = dict(original_summary.fget(self))  # type: ignore[attr-defined]
        state = root(self._iam_backend.account_id)
        summary["AccountMFAEnabled"] = 1 if state.mfa_devices else 0
        summary["AccountAccessKeysPresent"] = 1 if state.access_keys else 0
        summary["AccountPasswordPresent"] = 1 if state.password else 0
        return summary

    def list_virtual_mfa_devices(self: Any, assignment_status: str, marker: str | None, max_items: int) -> Any:
        devices, next_marker = original_list_devices(self, assignment_status, marker, max_items)
        state = root(self.account_id)
        if assignment_status in {"Assigned", "Any"} and next_marker is None:
            # A device root enabled through EnableMFADevice is listed by moto itself; one set in a test is not.
            for held in state.mfa_devices:
                if held.kind != "virtual" or held.serial_number in self.virtual_mfa_devices:
                    continue
                name = held.serial_number.partition(":mfa")[2] or "/root-account-mfa-device"
                device = models.VirtualMfaDevice(self.account_id, self.region_name, name)
                device.enable_date = held.enabled_at
                device.user = _RootUserView(self.account_id)  # type: ignore[assignment]
                devices = [*devices, device]
        return devices, next_marker

    def delete_virtual_mfa_device(self: Any, serial_number: str) -> None:
        from moto.iam.exceptions import DeleteConflictException

        device = self.virtual_mfa_devices.get(serial_number)
        if device is not None and device.enable_date is not None:
            raise DeleteConflictException("MFA device is still in use: deactivate it first")
        original_delete_device(self, serial_number)

    def get_credential_report_response(self: Any) -> Any:
        # moto builds the report on each call: it was generated now (moto itself says 2015).
        result = original_report_response(self)
        body: dict[str, Any] = dict(result.result)  # type: ignore[call-overload]
        return ActionResult({**body, "GeneratedTime": datetime.now(UTC)})

    def create_login_profile(self: Any) -> Any:
        result = original_create_login_profile(self)
        if str(self._get_param("PasswordResetRequired", "false")).lower() == "true":
            user = self.backend.get_user(self._get_param("UserName"))
            user.password_reset_required = True
            result = original_get_login_profile_result(self)
        return result

    def original_get_login_profile_result(self: Any) -> Any:
        return responses.IamResponse.get_login_profile(self)

    _install_root_calls(responses.IamResponse)
    _install_organization_calls(responses.IamResponse)
    _install_user_boundaries(models, responses.IamResponse)
    _complete_event_envelope()
    _keep_the_source_account_across_buses()
    _install_item_level_transactions()
    _install_partition_queries()
    _install_role_assumption()
    models.IAMBackend.get_credential_report = get_credential_report  # type: ignore[method-assign]
    models.AccountSummary.summary_map = property(summary_map)  # type: ignore[assignment,method-assign]
    models.IAMBackend.list_virtual_mfa_devices = list_virtual_mfa_devices  # type: ignore[method-assign]
    models.IAMBackend.delete_virtual_mfa_device = delete_virtual_mfa_device  # type: ignore[method-assign]
    responses.IamResponse.create_login_profile = create_login_profile  # type: ignore[method-assign]
    responses.IamResponse.get_credential_report = get_credential_report_response  # type: ignore[method-assign]
    _install_login_profile_dates(models, responses.IamResponse)  # wraps create_login_profile's flag fix above


@dataclass
class LoginProfileDates:
    """When a user's login profile was created and its password last set (AWS's two dates)."""

    created: datetime
    password_set: datetime


def login_profile_dates(user: Any) -> LoginProfileDates | None:
    """The dates this module keeps on a moto user; None without a login profile (or one moto made unseen)."""
    dates = getattr(user, "iamguard_login_profile", None)
    return dates if user.password and isinstance(dates, LoginProfileDates) else None


def _install_login_profile_dates(models: Any, response_class: Any) -> None:
    """Date passwords by the login profile, not by the user (see the module's docstring)."""
    from moto.core.responses import ActionResult

    original_create = models.IAMBackend.create_login_profile
    original_update = models.IAMBackend.update_login_profile
    original_delete = models.IAMBackend.delete_login_profile
    original_row = models.User.to_csv
    original_get = response_class.get_login_profile
    original_create_response = response_class.create_login_profile

    def create_login_profile(self: Any, user_name: str, password: str) -> Any:
        user = original_create(self, user_name, password)
        now = datetime.now(UTC)
        user.iamguard_login_profile = LoginProfileDates(created=now, password_set=now)
        return user

    def update_login_profile(self: Any, user_name: str, password: str | None, password_reset_required: Any) -> Any:
        user = self.get_user(user_name)
        kept_password, kept_reset = user.password, user.password_reset_required
        result = original_update(self, user_name, password, password_reset_required)
        # moto sets whatever the call carried; AWS changes only what it names
        if password is None:
            user.password = kept_password  # a flag-only update keeps the password (moto deleted the profile)
        if password_reset_required is None:
            user.password_reset_required = kept_reset
        dates = login_profile_dates(user)
        if password is not None and dates is not None:
            dates.password_set = datetime.now(UTC)
        return result

    def delete_login_profile(self: Any, user_name: str) -> None:
        original_delete(self, user_name)
        self.get_user(user_name).iamguard_login_profile = None

    def to_csv(self: Any) -> str:
        row: str = original_row(self)
        fields = row.split(",")
        dates = login_profile_dates(self)  # field 5 is password_last_changed
        fields[5] = dates.password_set.strftime("%Y-%m-%dT%H:%M:%S+00:00") if dates else "N/A"
        return ",".join(fields)

    def with_profile_created(self: Any, result: Any) -> Any:
        dates = login_profile_dates(self.backend.get_user(self._get_param("UserName")))
        if dates is None:
            return result
        body: dict[str, Any] = dict(result.result)
        return ActionResult({**body, "LoginProfile": {**body["LoginProfile"], "CreateDate": dates.created}})

    def get_login_profile(self: Any) -> Any:
        return with_profile_created(self, original_get(self))

    def create_login_profile_response(self: Any) -> Any:
        return with_profile_created(self, original_create_response(self))

    models.IAMBackend.create_login_profile = create_login_profile
    models.IAMBackend.update_login_profile = update_login_profile
    models.IAMBackend.delete_login_profile = delete_login_profile
    models.User.to_csv = to_csv
    response_class.get_login_profile = get_login_profile
    response_class.create_login_profile = create_login_profile_response


def _install_user_boundaries(models: Any, response_class: Any) -> None:
    """Permissions boundaries of IAM users (moto models them for roles only)."""
    from moto.core.responses import EmptyResult

    def boundary(user: Any) -> dict[str, str] | None:
        arn = getattr(user, "iamguard_boundary_arn", None)
        return {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn} if arn else None

    # moto serializes a user's attributes by the API's member names: this one appears in
    # GetUser, CreateUser and GetAccountAuthorizationDetails once it exists.
    models.User.permissions_boundary = property(boundary)

    def set_boundary(self: Any, user_name: str, arn: str | None) -> None:
        if arn:
            self.backend.get_policy(arn)  # NoSuchEntity for a policy that does not exist, as in AWS
        self.backend.get_user(user_name).iamguard_boundary_arn = arn or None

    original_create_user = response_class.create_user
    original_list_entities = response_class.list_entities_for_policy

    def create_user(self: Any) -> Any:
        arn = self._get_param("PermissionsBoundary")
        if arn:
            self.backend.get_policy(arn)
        result = original_create_user(self)
        if arn:
            set_boundary(self, self._get_param("UserName"), arn)
        return result

    def put_user_permissions_boundary(self: Any) -> Any:
        set_boundary(self, self._get_param("UserName"), self._get_param("PermissionsBoundary"))
        return EmptyResult()

    def delete_user_permissions_boundary(self: Any) -> Any:
        set_boundary(self, self._get_param("UserName"), None)
        return EmptyResult()

    def list_entities_for_policy(self: Any) -> Any:
        usage = self._get_param("PolicyUsageFilter")
        entity = self._get_param("EntityFilter")
        arn = self._get_param("PolicyArn")
        self.backend.get_policy(arn)  # NoSuchEntity for a policy that does not exist (moto lists nobody)
        result = original_list_entities(self)
        if entity not in {None, "", "User"}:
            return result
        bounded = [user for user in self.backend.users.values() if getattr(user, "iamguard_boundary_arn", None) == arn]
        if usage == "PermissionsBoundary":
            result.result.update(PolicyUsers=bounded, PolicyGroups=[], PolicyRoles=[])
        elif usage != "PermissionsPolicy":
            listed = result.result["PolicyUsers"]
            listed.extend(user for user in bounded if user not in listed)
        return result

    response_class.create_user = create_user
    response_class.put_user_permissions_boundary = put_user_permissions_boundary
    response_class.delete_user_permissions_boundary = delete_user_permissions_boundary
    response_class.list_entities_for_policy = list_entities_for_policy


def _install_role_assumption() -> None:
    """AssumeRole needs the role to exist (AccessDenied otherwise), as on AWS."""
    import re

    from moto.iam.models import iam_backends
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    role_arn_pattern = re.compile(r"^arn:[\w-]+:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$")
    original_assume = STSBackend.assume_role

    def assume_role(self: Any, **kwargs: Any) -> Any:
        arn = str(kwargs.get("role_arn") or "")
        match = role_arn_pattern.match(arn)
        exists = match is not None and any(
            role.name == match.group(2) for role in iam_backends[match.group(1)][self.partition].roles.values()
        )
        if not exists:
            raise STSClientError(
                "AccessDenied", f"User is not authorized to perform: sts:AssumeRole on resource: {arn}"
            )
        return original_assume(self, **kwargs)

    STSBackend.assume_role = assume_role  # type: ignore[method-assign,assignment]


def _complete_event_envelope() -> None:
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"source": "<source>",', '"source": "<source>", "account": "<account>",'
        )


def _keep_the_source_account_across_buses() -> None:
    from moto.events.exceptions import ResourceNotFoundException
    from moto.events.models import Rule, events_backends
    from moto.utilities.arns import parse_arn

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if getattr(self, "state", "ENABLED") == "DISABLED":  # moto delivers to disabled rules; EventBridge does not
            return
        buses = [t for t in self.targets if _is_bus(parse_arn(t["Arn"]))]
        if not buses or not self.event_pattern.matches_event(original_event):
            original(self, original_event, transform_input)
            return
        others = copy.copy(self)
        others.targets = [t for t in self.targets if t not in buses]
        original(others, original_event, transform_input)
        hops = getattr(_forwarding, "hops", 0)
        if hops >= MAX_BUS_HOPS:  # rules forwarding in a circle: moto would recurse until the stack overflows
            logging.getLogger(__name__).warning("%s: not forwarded, %d buses deep already", self.name, hops)
            return
        _forwarding.hops = hops + 1
        try:
            _forward(buses, original_event, self.name)
        finally:
            _forwarding.hops = hops

    def _forward(buses: list[dict[str, Any]], original_event: Any, rule_name: str) -> None:
        for target in buses:
            arn = parse_arn(target["Arn"])
            try:
                bus = events_backends[arn.account][arn.region].describe_event_bus(arn.resource_id)
            except ResourceNotFoundException:  # AWS keeps it in the rule's dead-letter queue
                logging.getLogger(__name__).warning("%s: no event bus %s", rule_name, target["Arn"])
                continue
            for rule in list(bus.rules.values()):
                rule.send_to_targets(copy.copy(original_event))

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


MAX_BUS_HOPS = 4
_forwarding = threading.local()


def _is_bus(arn: Any) -> bool:
    return bool(arn.service == "events" and arn.resource_type == "event-bus")


ORGANIZATION_ACCESS_ROLE = "OrganizationAccountAccessRole"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"


def organization_access_role(account_id: str, management_account_id: str) -> str:
    """The role Organizations creates in an account it creates; returns its ARN (idempotent)."""
    from moto.iam.exceptions import EntityAlreadyExists
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{management_account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        role = backend.create_role(
            role_name=ORGANIZATION_ACCESS_ROLE,
            assume_role_policy_document=json.dumps(trust),
            path="/",
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration="3600",
        )
    except EntityAlreadyExists:
        return str(backend.get_role(ORGANIZATION_ACCESS_ROLE).arn)
    backend.attach_role_policy(ADMINISTRATOR_ACCESS, ORGANIZATION_ACCESS_ROLE)
    return str(role.arn)


# The table a Query of this thread reads, its partition (None: an index) and the index's key conditions.
_querying = threading.local()


def _install_partition_queries() -> None:
    """A Query gathers what DynamoDB would read, not the whole table sorted (see the module's docstring)."""
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if not index_name and hash_key is None:  # no partition named: moto's own way
            return original_query(self, hash_key, *args, **kwargs)
        conditions = kwargs.get("hash_key_conditions") or ()
        # (name, type, value) of each index key the item must hold, a number as its number ("1" = "1.0"), as
        # DynamoType compares them; its own comparison is Python code run per item of the table
        wanted = tuple((name, value.type, _key_value(value)) for name, value in conditions) if index_name else ()
        _querying.scope = (self, None if index_name else hash_key, wanted)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _querying.scope = None

    def all_items(self: Any) -> list[Any]:
        scope = getattr(_querying, "scope", None)
        if scope is None or scope[0] is not self:
            return original_all_items(self)  # a Scan (or another table): every item, in key order
        partition, wanted = scope[1], scope[2]
        # Other requests write meanwhile (the server is threaded): copy each dict's values in one C call
        # (atomic under the GIL) rather than iterate a dict another thread may grow.
        if partition is None:  # an index: the items its key conditions match; moto checks and sorts them
            partitions = list(self.items.values())
            items = partitions if not self.range_key_attr else [i for part in partitions for i in list(part.values())]
            return [item for item in items if _holds(item, wanted)]
        found = self.items.get(partition)  # the table's own partition; moto sorts it by the range key
        if found is None:
            return []
        return list(found.values()) if self.range_key_attr else [found]

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]


def _key_value(value: Any) -> Any:
    """A key attribute's value as DynamoDB compares it: numbers by number, strings and binary as they are."""
    return value.cast_value if value.type == "N" else value.value


def _holds(item: Any, wanted: tuple[tuple[str, str, Any], ...]) -> bool:
    """Whether a moto item holds each (attribute, type, value) of an index's key conditions."""
    attrs = getattr(item, "attrs", None)
    if attrs is None:
        return False
    for name, kind, value in wanted:
        held = attrs.get(name)
        if held is None or held.type != kind or _key_value(held) != value:
            return False
    return True


def _install_item_level_transactions() -> None:
    from moto.dynamodb import models as dynamodb
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    def item_key(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
        if op_type != "Put":
            return dict(op["Key"])
        table = backend.get_table(op["TableName"])
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        return {name: op["Item"][name] for name in names}

    def snapshot(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
        """Copies of the items the transaction may write (None: absent); Update changes an item in place."""
        saved = []
        for step in transact_items:
            for op_type, op in step.items():
                try:
                    key = item_key(backend, op_type, op)
                    saved.append((op["TableName"], key, copy.deepcopy(backend.get_item(op["TableName"], key))))
                except Exception:  # noqa: BLE001, S112 - a step moto rejects below writes nothing
                    continue
        return saved

    def roll_back(backend: Any, saved: list[tuple[str, dict[str, Any], Any]]) -> None:
        for table_name, key, item in reversed(saved):
            table = backend.get_table(table_name)
            hash_value, range_value = backend.get_keys_value(table, key)
            if item is None:
                table.delete_item(hash_value, range_value)
            else:
                backend.put_item(table_name, item.to_json()["Attributes"])

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        # moto 5.2.5's transact_write_items, rolling back the touched items instead of deep copies of the tables.
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        saved = snapshot(self, transact_items)
        targets: set[tuple[str, str]] = set()
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for step in transact_items:
            if len(step) > 1:
                roll_back(self, saved)
                raise TransactWriteSingleOpException
            original_item: dict[str, Any] | None = None
            try:
                op_type, op = next(iter(step.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                key = item_key(self, op_type, op)
                target = (str(table_name), str(dict(sorted(key.items()))))
                if target in targets:
                    raise MultipleTransactionsException()
                targets.add(target)
                names = op.get("ExpressionAttributeNames")
                values = op.get("ExpressionAttributeValues")
                condition = op.get("ConditionExpression")
                current = self.get_item(table_name, key)
                if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
                written = {
                    "condition_expression": condition,
                    "expression_attribute_names": names,
                    "expression_attribute_values": values,
                }
                if op_type == "Put":
                    self.put_item(table_name, op["Item"], **written)
                elif op_type == "Delete":
                    self.delete_item(table_name, key, **written)
                elif op_type == "Update":
                    self.update_item(table_name, key, update_expression=op["UpdateExpression"], **written)
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                roll_back(self, saved)
                raise
            except ConditionalCheckFailed as exc:
                errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
            except Exception as exc:  # noqa: BLE001 - moto makes any other failure the step's cancellation reason
                errors.append((type(exc).__name__, str(exc), original_item))
        if any(code is not None for code, _, _ in errors):
            roll_back(self, saved)
            raise TransactionCanceledException(errors)

    dynamodb.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# -- calls made with root's credentials -------------------------------------------------


def caller_is_root(response: Any) -> bool:
    """True when a moto IAM request was signed with root's credentials.

    That is any access key that is neither an IAM user's nor an assumed-role
    session's (moto keeps both in the backend's `access_keys`).
    """
    return response.get_access_key() not in response.backend.access_keys


def enable_root_mfa(backend: Any, serial_number: str) -> None:
    """Assign a virtual MFA device (made with CreateVirtualMFADevice, under any name) to root."""
    from moto.core.utils import utcnow
    from moto.iam.exceptions import EntityAlreadyExists, LimitExceededException, NotFoundException

    state = root(backend.account_id)
    device = backend.virtual_mfa_devices.get(serial_number)
    if device is None:
        raise NotFoundException(f"VirtualMFADevice with serial number {serial_number} doesn't exist.")
    if device.enable_date is not None or state.device(serial_number) is not None:
        raise EntityAlreadyExists(f"Device {serial_number} is already in use.")
    if len(state.mfa_devices) >= MAX_MFA_DEVICES:
        raise LimitExceededException(f"Cannot exceed quota for MFADevicesPerUser: {MAX_MFA_DEVICES}")
    device.enable_date = utcnow()
    device.user = _RootUserView(backend.account_id)
    with _lock:
        state.add_mfa_device("virtual", serial_number)


def deactivate_root_mfa(backend: Any, serial_number: str) -> None:
    """Remove one of root's MFA devices (a virtual device stays, unassigned, as in AWS)."""
    from moto.iam.exceptions import NotFoundException

    state = root(backend.account_id)
    held = state.device(serial_number)
    if held is None:
        raise NotFoundException(f"Device {serial_number} not found")
    device = backend.virtual_mfa_devices.get(serial_number)
    if device is not None:
        device.enable_date = None
        device.user = None
    with _lock:
        state.mfa_devices.remove(held)


def create_root_access_key(backend: Any) -> tuple[RootKey, str]:
    """A new active access key for root; returns the key and its secret (shown once, as AWS does)."""
    from moto.iam.exceptions import LimitExceededException
    from moto.iam.utils import generate_access_key_id_from_account_id, random_alphanumeric

    state = root(backend.account_id)
    if len(state.access_keys) >= 2:
        raise LimitExceededException("Cannot exceed quota for AccessKeysPerUser: 2")
    key = RootKey(generate_access_key_id_from_account_id(backend.account_id, prefix="AKIA", total_length=20))
    with _lock:
        state.access_keys.append(key)
    return key, random_alphanumeric(40)


def _root_key(account_id: str, access_key_id: str) -> RootKey | None:
    return next((key for key in root(account_id).access_keys if key.access_key_id == access_key_id), None)


def _key_metadata(key: RootKey, account_id: str) -> dict[str, Any]:
    return {
        "UserName": account_id,
        "AccessKeyId": key.access_key_id,
        "Status": "Active" if key.active else "Inactive",
        "CreateDate": key.created,
    }


def _install_root_calls(response_class: Any) -> None:
    """Route root's own IAM calls (no UserName, or a root key id) to the root state."""
    from moto.core.responses import ActionResult, EmptyResult

    originals = {
        name: getattr(response_class, name)
        for name in (
            "enable_mfa_device",
            "deactivate_mfa_device",
            "list_mfa_devices",
            "create_access_key",
            "list_access_keys",
            "update_access_key",
            "delete_access_key",
        )
    }

    def for_root(self: Any) -> bool:
        return self._get_param("UserName") in {None, "", ROOT_USER_NAME} and caller_is_root(self)

    def enable_mfa_device(self: Any) -> Any:
        if not for_root(self):
            return originals["enable_mfa_device"](self)
        enable_root_mfa(self.backend, self._get_param("SerialNumber"))
        return EmptyResult()

    def deactivate_mfa_device(self: Any) -> Any:
        if not for_root(self):
            return originals["deactivate_mfa_device"](self)
        deactivate_root_mfa(self.backend, self._get_param("SerialNumber"))
        return EmptyResult()

    def list_mfa_devices(self: Any) -> Any:
        if not for_root(self):
            return originals["list_mfa_devices"](self)
        state = root(self.backend.account_id)
        devices = [
            {"UserName": self.backend.account_id, "SerialNumber": d.serial_number, "EnableDate": d.enabled_at}
            for d in state.mfa_devices
        ]
        return ActionResult({"MFADevices": devices, "IsTruncated": False})

    def create_access_key(self: Any) -> Any:
        if not for_root(self):
            return originals["create_access_key"](self)
        key, secret = create_root_access_key(self.backend)
        return ActionResult({"AccessKey": {**_key_metadata(key, self.backend.account_id), "SecretAccessKey": secret}})

    def list_access_keys(self: Any) -> Any:
        if not for_root(self):
            return originals["list_access_keys"](self)
        account_id = self.backend.account_id
        keys = [_key_metadata(key, account_id) for key in root(account_id).access_keys]
        return ActionResult({"UserName": account_id, "AccessKeyMetadata": keys, "IsTruncated": False})

    def update_access_key(self: Any) -> Any:
        key = _root_key(self.backend.account_id, self._get_param("AccessKeyId"))
        if key is None or self._get_param("UserName"):
            return originals["update_access_key"](self)
        with _lock:
            key.active = self._get_param("Status") == "Active"
        return EmptyResult()

    def delete_access_key(self: Any) -> Any:
        key = _root_key(self.backend.account_id, self._get_param("AccessKeyId"))
        if key is None or self._get_param("UserName"):
            return originals["delete_access_key"](self)
        state = root(self.backend.account_id)
        with _lock:
            state.access_keys.remove(key)
        return EmptyResult()

    def resync_mfa_device(self: Any) -> Any:
        """moto has no ResyncMFADevice: the device must be the user's (codes are checked by the local trail)."""
        from moto.iam.exceptions import NotFoundException

        serial = self._get_param("SerialNumber")
        if for_root(self):
            if root(self.backend.account_id).device(serial) is None:
                raise NotFoundException(f"Device {serial} not found")
        elif serial not in self.backend.get_user(self._get_param("UserName")).mfa_devices:
            raise NotFoundException(f"Device {serial} not found")
        return EmptyResult()

    response_class.resync_mfa_device = resync_mfa_device
    response_class.enable_mfa_device = enable_mfa_device
    response_class.deactivate_mfa_device = deactivate_mfa_device
    response_class.list_mfa_devices = list_mfa_devices
    response_class.create_access_key = create_access_key
    response_class.list_access_keys = list_access_keys
    response_class.update_access_key = update_access_key
    response_class.delete_access_key = delete_access_key


def _install_organization_calls(response_class: Any) -> None:
    """ListOrganizationsFeatures, which moto lacks (AssumeRole's role check: `_install_role_assumption`)."""
    from moto.core.responses import ActionResult
    from moto.iam.exceptions import IAMException
    from moto.organizations.models import organizations_backends

    def list_organizations_features(self: Any) -> Any:
        backend = organizations_backends[self.current_account]["aws"]
        if backend.org is None:
            raise IAMException("OrganizationNotFound", "No organization is associated with your account.")
        with _lock:
            features = sorted(organization_features)
        return ActionResult({"OrganizationId": backend.org.id, "EnabledFeatures": features})

    response_class.list_organizations_features = list_organizations_features
