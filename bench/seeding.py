"""A large, realistic IAM account for the benchmarks: planned deterministically, created through the IAM API.

`plan(n, seed)` decides every user (console password or not, MFA, access keys, groups,
direct and inline policies, exemption tag, last console sign-in); `seed_account()` creates
that account on a moto server with ordinary IAM calls from a thread pool; `expected()`
says what iamguard must find in it, check by check, so that a benchmark run also proves
the audit is right.

The mix (fractions of all users unless said otherwise):

* 30 % console users (login profile); of them 75 % have a virtual MFA device, 5 % never
  signed in (most of those with a forced password reset), 10 % last signed in 60-400 days
  ago, the rest 0-30 days ago. 5 % of the other users have MFA too.
* access keys: programmatic users 60 % one key, 12 % two; console users 10 % one, 2 % two.
* groups: developers 55 % (ReadOnlyAccess + IAMUserChangePassword), data 15 % (a customer
  managed policy + an inline one), support 8 % (ViewOnlyAccess), auditors 5 %
  (SecurityAudit), admins 1.5 % (AdministratorAccess), ops 0.5 % (inline Allow * on *).
* direct grants: 0.5 % AdministratorAccess attached, 0.3 % an inline Allow * on *, 3 % a
  managed policy attached, 2 % a harmless inline policy.
* 0.5 % tagged iamguard:exempt=true.
* the account has a password policy (14 characters, users may not change their password).

That is the "current" shape (`SHAPES`): most console users have signed in. The
"never-signed-in" shape is a new account, or a batch of freshly created users: 65 % of
the users are a batch with a console password they never used (80 % of them with a forced
reset), in groups without IAMUserChangePassword (data, support, auditors, at the same
shares) and without any admin grant, so that nothing lets them change their password and
the audit cannot tell from the bulk reads whether a reset is pending (today: one
GetLoginProfile each). The other 35 % follow the current mix.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import boto3
from botocore.config import Config

AWS_POLICY = "arn:aws:iam::aws:policy/"
ADMIN = AWS_POLICY + "AdministratorAccess"
CHANGE_PASSWORD = AWS_POLICY + "IAMUserChangePassword"
ADMIN_DOCUMENT = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
DATA_READ_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
}
DATA_WRITE_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::bench-data/*"}],
}
TOOLING_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "logs:Get*"], "Resource": "*"}],
}
ADMIN_GROUPS = frozenset({"admins", "ops"})
CHANGE_PASSWORD_GROUPS = frozenset({"developers"})
PASSWORD = "Bench-Only-Password-1!"
DEFAULT_ACCOUNT = "123456789012"  # moto's default account
EXEMPT_TAG = {"Key": "iamguard:exempt", "Value": "true"}


@dataclass(frozen=True)
class PlannedUser:
    name: str
    console: bool
    reset_required: bool
    signed_in_days_ago: int | None  # None: never signed in (or no console password)
    mfa: bool
    keys: int
    groups: tuple[str, ...]
    direct_policies: tuple[str, ...]  # managed policy names (AWS managed or bench-tooling)
    inline_policies: tuple[str, ...]  # "admin-star" allows * on *
    exempt: bool

    @property
    def admin(self) -> bool:
        return (
            bool(ADMIN_GROUPS & set(self.groups)) or "AdministratorAccess" in self.direct_policies
        ) or "admin-star" in self.inline_policies

    @property
    def can_change_password(self) -> bool:
        return self.admin or bool(CHANGE_PASSWORD_GROUPS & set(self.groups))


CURRENT = "current"
NEVER_SIGNED_IN = "never-signed-in"
SHAPES = (CURRENT, NEVER_SIGNED_IN)
# Share of the never-signed-in shape's users that are the fresh batch (see the module docstring).
FRESH_BATCH = 0.65
# Groups a fresh-batch user may join: none grants iam:ChangePassword or administrator access.
FRESH_BATCH_GROUPS = (("data", 0.15), ("support", 0.08), ("auditors", 0.05))


def plan(n: int, seed: int = 2, shape: str = CURRENT) -> list[PlannedUser]:
    """The users of the benchmark account, the same for the same (n, seed, shape)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown account shape {shape!r} (one of {', '.join(SHAPES)})")
    rng = random.Random(seed)
    users = []
    for i in range(n):
        if shape == NEVER_SIGNED_IN and rng.random() < FRESH_BATCH:
            users.append(_fresh_batch_user(f"user{i:05d}", rng))
            continue
        console = rng.random() < 0.30
        signed_in: int | None = None
        reset_required = False
        if console:
            r = rng.random()
            if r < 0.05:
                reset_required = rng.random() < 0.8
            elif r < 0.15:
                signed_in = rng.randint(60, 400)
            else:
                signed_in = rng.randint(0, 30)
        mfa = rng.random() < (0.75 if console else 0.05)
        r = rng.random()
        one, two = (0.10, 0.02) if console else (0.60, 0.12)
        keys = 2 if r < two else 1 if r < two + one else 0
        groups = [
            name
            for name, share in (
                ("developers", 0.55),
                ("data", 0.15),
                ("support", 0.08),
                ("auditors", 0.05),
                ("admins", 0.015),
                ("ops", 0.005),
            )
            if rng.random() < share
        ]
        direct = []
        if rng.random() < 0.005:
            direct.append("AdministratorAccess")
        if rng.random() < 0.03:
            direct.append(rng.choice(["ReadOnlyAccess", "bench-tooling"]))
        inline = []
        if rng.random() < 0.003:
            inline.append("admin-star")
        if rng.random() < 0.02:
            inline.append("tooling")
        users.append(
            PlannedUser(
                name=f"user{i:05d}",
                console=console,
                reset_required=reset_required,
                signed_in_days_ago=signed_in,
                mfa=mfa,
                keys=keys,
                groups=tuple(groups),
                direct_policies=tuple(direct),
                inline_policies=tuple(inline),
                exempt=rng.random() < 0.005,
            )
        )
    return users


def renamed(users: list[PlannedUser], prefix: str) -> list[PlannedUser]:
    """The same users under other names (`prefix` + their number): one plan for many accounts, each its own names."""
    return [replace(u, name=prefix + u.name.removeprefix("user")) for u in users]


def _fresh_batch_user(name: str, rng: random.Random) -> PlannedUser:
    """A user of a freshly created batch: a console password never used, no way to change it."""
    r = rng.random()
    return PlannedUser(
        name=name,
        console=True,
        reset_required=rng.random() < 0.8,
        signed_in_days_ago=None,
        mfa=rng.random() < 0.10,
        keys=2 if r < 0.02 else 1 if r < 0.12 else 0,
        groups=tuple(group for group, share in FRESH_BATCH_GROUPS if rng.random() < share),
        direct_policies=(),
        inline_policies=("tooling",) if rng.random() < 0.02 else (),
        exempt=rng.random() < 0.005,
    )


def expected(users: list[PlannedUser], unused_days: int = 45) -> dict[str, dict[str, int]]:
    """What the audit must report for the users, by check: {check_id: {"FAIL": n, "EXEMPT": n}}.

    A failing outcome of an exempt user is reported EXEMPT instead of FAIL.
    """
    fails: dict[str, Callable[[PlannedUser], bool]] = {
        "user_console_mfa": lambda u: u.console and not u.mfa,
        "user_mfa": lambda u: not u.mfa,
        "user_admin_access": lambda u: u.admin,
        # No planned policy allows an escalation action; administrators pass it ("already an administrator").
        "user_privilege_escalation": lambda u: False,
        "user_admin_without_mfa": lambda u: u.admin and not u.mfa,
        "user_no_direct_policies": lambda u: bool(u.direct_policies or u.inline_policies),
        "user_required_policies": lambda u: False,
        "user_password_reset_possible": lambda u: u.console and u.reset_required and not u.can_change_password,
        "user_pending_first_sign_in": lambda u: False,  # every password was set today
        "user_access_keys_rotated": lambda u: False,  # every key was created today
        "user_unused_credentials": lambda u: u.signed_in_days_ago is not None and u.signed_in_days_ago >= unused_days,
        "user_single_active_key": lambda u: u.keys == 2,
    }
    result = {}
    for check_id, failing in fails.items():
        failed = [u for u in users if failing(u)]
        result[check_id] = {
            "FAIL": sum(1 for u in failed if not u.exempt),
            "EXEMPT": sum(1 for u in failed if u.exempt),
        }
    return result


def expected_login_profile_reads(users: list[PlannedUser]) -> int:
    """GetLoginProfile calls the bulk audit needs: console users who never signed in and cannot change passwords."""
    return sum(1 for u in users if u.console and u.signed_in_days_ago is None and not u.can_change_password)


def describe(users: list[PlannedUser]) -> dict[str, int]:
    """Counts of the planned account, for the results file."""
    counts: Counter[str] = Counter()
    for u in users:
        counts["users"] += 1
        counts["console_users"] += u.console
        counts["console_users_without_mfa"] += u.console and not u.mfa
        counts["users_with_mfa"] += u.mfa
        counts["never_signed_in_console_users"] += u.console and u.signed_in_days_ago is None
        counts["never_signed_in_cannot_change_password"] += (
            u.console and u.signed_in_days_ago is None and not u.can_change_password
        )
        counts["access_keys"] += u.keys
        counts["users_with_two_keys"] += u.keys == 2
        counts["admins"] += u.admin
        counts["group_memberships"] += len(u.groups)
        counts["direct_managed_attachments"] += len(u.direct_policies)
        counts["inline_user_policies"] += len(u.inline_policies)
        counts["exempt_users"] += u.exempt
    return dict(counts)


def iam_client(url: str, pool: int = 16, credentials: Mapping[str, Any] | None = None) -> Any:
    """An IAM client of the server at `url`: moto's default account, or the account of `credentials`
    (STS's AccessKeyId / SecretAccessKey / SessionToken)."""
    keys = credentials or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    session = boto3.session.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys.get("SessionToken"),
        region_name="us-east-1",
    )
    config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=pool)
    return session.client("iam", endpoint_url=url, config=config)


def create_groups(iam: Any, account_id: str = DEFAULT_ACCOUNT) -> None:
    """The groups, policies and password policy the users refer to."""
    account_policy = f"arn:aws:iam::{account_id}:policy/"
    iam.create_policy(PolicyName="bench-data-read", PolicyDocument=json.dumps(DATA_READ_DOCUMENT))
    iam.create_policy(PolicyName="bench-tooling", PolicyDocument=json.dumps(TOOLING_DOCUMENT))
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {
        "developers": ([AWS_POLICY + "ReadOnlyAccess", CHANGE_PASSWORD], {}),
        "data": ([account_policy + "bench-data-read"], {"s3-data-write": DATA_WRITE_DOCUMENT}),
        "support": ([AWS_POLICY + "job-function/ViewOnlyAccess"], {}),
        "auditors": ([AWS_POLICY + "SecurityAudit"], {}),
        "admins": ([ADMIN], {}),
        "ops": ([], {"everything": ADMIN_DOCUMENT}),
    }
    for name, (attached, inline) in groups.items():
        iam.create_group(GroupName=name)
        for arn in attached:
            iam.attach_group_policy(GroupName=name, PolicyArn=arn)
        for policy_name, document in inline.items():
            iam.put_group_policy(GroupName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    iam.update_account_password_policy(MinimumPasswordLength=14, AllowUsersToChangePassword=False)


def create_user(iam: Any, user: PlannedUser, account_id: str = DEFAULT_ACCOUNT) -> int:
    """Create one planned user; returns the number of IAM calls made."""
    calls = 1
    iam.create_user(UserName=user.name, **({"Tags": [EXEMPT_TAG]} if user.exempt else {}))
    if user.console:
        iam.create_login_profile(UserName=user.name, Password=PASSWORD, PasswordResetRequired=user.reset_required)
        calls += 1
    if user.mfa:
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=user.name)["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(
            UserName=user.name, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
        )
        calls += 2
    for _ in range(user.keys):
        iam.create_access_key(UserName=user.name)
        calls += 1
    for group in user.groups:
        iam.add_user_to_group(GroupName=group, UserName=user.name)
        calls += 1
    for policy_name in user.direct_policies:
        arn = (
            f"arn:aws:iam::{account_id}:policy/bench-tooling"
            if policy_name == "bench-tooling"
            else AWS_POLICY + policy_name
        )
        iam.attach_user_policy(UserName=user.name, PolicyArn=arn)
        calls += 1
    for policy_name in user.inline_policies:
        document = ADMIN_DOCUMENT if policy_name == "admin-star" else TOOLING_DOCUMENT
        iam.put_user_policy(UserName=user.name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
        calls += 1
    return calls


def seed_account(
    url: str,
    users: list[PlannedUser],
    workers: int = 8,
    *,
    account_id: str = DEFAULT_ACCOUNT,
    credentials: Mapping[str, Any] | None = None,
) -> int:
    """Create the account on the moto server at `url` (moto's default account, or `account_id` acting with
    `credentials` there); returns the number of IAM calls made."""
    iam = iam_client(url, pool=workers, credentials=credentials)
    create_groups(iam, account_id)
    total = 0
    lock = threading.Lock()

    def one(user: PlannedUser) -> None:
        nonlocal total
        made = create_user(iam, user, account_id)
        with lock:
            total += made

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(one, user) for user in users]:
            future.result()
    return total


def sign_ins(users: list[PlannedUser]) -> dict[str, float]:
    """Days since the last console sign-in of each user who signed in (for the server's sign-in hook)."""
    # Half a day more than planned keeps the day count away from a boundary at audit time.
    return {u.name: u.signed_in_days_ago + 0.5 for u in users if u.signed_in_days_ago is not None}
