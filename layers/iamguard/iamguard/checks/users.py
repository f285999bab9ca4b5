"""Checks on each IAM user."""

from __future__ import annotations

from datetime import timedelta

from iamguard.checks.base import Outcome, RemediationSteps, Standards, UserContext, user_check
from iamguard.domain.account import User
from iamguard.domain.findings import Severity
from iamguard.iam import evaluation as policy

DETAILS = ("iam:GetAccountAuthorizationDetails",)
REPORT = ("iam:GenerateCredentialReport", "iam:GetCredentialReport")
MFA = ("iam:ListVirtualMFADevices",)

ENABLE_MFA_CONSOLE = (
    "Open IAM > Users > {user} > Security credentials > Multi-factor authentication (MFA) > Assign MFA device.",
    "Choose Authenticator app, scan the QR code, enter two consecutive codes, and choose Add MFA.",
)
ENABLE_MFA_CLI = (
    "aws iam create-virtual-mfa-device --virtual-mfa-device-name <user> --outfile qr.png "
    "--bootstrap-method QRCodePNG; aws iam enable-mfa-device --user-name <user> --serial-number <arn> "
    "--authentication-code1 <code1> --authentication-code2 <code2> (or `iamguard mfa enroll <user>`)"
)


def _days(delta: timedelta) -> int:
    return max(0, delta.days)


@user_check(
    id="user_console_mfa",
    severity=Severity.HIGH,
    title="Every user with a console password has MFA",
    risk="A console password alone can be phished, guessed or reused from another breach; MFA stops the "
    "sign-in even when the password is known.",
    remediation=RemediationSteps(console=ENABLE_MFA_CONSOLE, cli=ENABLE_MFA_CLI),
    standards=Standards(
        cis="1.10",
        security_hub="IAM.5",
        config_rule="mfa-enabled-for-iam-console-access",
        prowler="iam_user_mfa_enabled_console_access",
    ),
    permissions=REPORT + MFA,
    needs=("credential_report",),
)
def user_console_mfa(user: User, ctx: UserContext) -> Outcome:
    assert user.credentials is not None
    if not user.credentials.password_enabled:
        return Outcome(True, f"User {user.name} has no console password.")
    if user.has_mfa:
        return Outcome(True, f"User {user.name} has a console password and an MFA device.")
    return Outcome(False, f"User {user.name} has a console password but no MFA device.")


@user_check(
    id="user_mfa",
    severity=Severity.LOW,
    title="Every IAM user has MFA",
    risk="Users without MFA (programmatic ones too) cannot satisfy MFA-conditioned policies and are one "
    "leaked credential away from compromise.",
    remediation=RemediationSteps(console=ENABLE_MFA_CONSOLE, cli=ENABLE_MFA_CLI),
    standards=Standards(security_hub="IAM.19", config_rule="iam-user-mfa-enabled"),
    permissions=REPORT + MFA,
    needs=("credential_report",),
)
def user_mfa(user: User, ctx: UserContext) -> Outcome:
    if user.has_mfa:
        return Outcome(True, f"User {user.name} has an MFA device.")
    return Outcome(False, f"User {user.name} has no MFA device.")


@user_check(
    id="user_admin_access",
    severity=Severity.HIGH,
    title="IAM users do not hold full administrator access",
    risk="Full admin (AdministratorAccess, or an Allow of * or of a NotAction on *) on a long-lived IAM user "
    "means one stolen credential controls everything; admin work belongs to roles assumed with MFA.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Permissions and remove AdministratorAccess (and any policy allowing * "
            "or a NotAction on *).",
            "Grant only the permissions the user needs, through a group; give admin work to a role that requires MFA.",
        ),
        cli="aws iam detach-user-policy --user-name <user> --policy-arn arn:aws:iam::aws:policy/AdministratorAccess "
        "(or remove-user-from-group / delete-user-policy for group and inline grants)",
    ),
    standards=Standards(security_hub="IAM.1", prowler="iam_user_administrator_access_policy"),
    permissions=DETAILS + ("iam:GetPolicy", "iam:GetPolicyVersion"),
)
def user_admin_access(user: User, ctx: UserContext) -> Outcome:
    verdict = ctx.permissions(user).admin()
    granted = "; ".join(verdict.labels)
    if verdict.is_admin:
        return Outcome(False, f"User {user.name} has full administrator access: {granted}.")
    if verdict.grants and verdict.denied_by:
        return Outcome(
            True,
            f"User {user.name} is not an administrator: {granted} would allow everything, but "
            f"{', '.join(verdict.denied_by)} denies every action without a condition.",
        )
    if verdict.grants and verdict.capped_by:
        return Outcome(
            True,
            f"User {user.name} is not an administrator: {granted} would allow everything, but its "
            f"permissions boundary {verdict.capped_by} does not.",
        )
    return Outcome(True, f"User {user.name} does not have full administrator access.")


@user_check(
    id="user_privilege_escalation",
    severity=Severity.HIGH,
    title="IAM users cannot make themselves administrators",
    risk="A user allowed to rewrite or attach policies, to create credentials for other users, to change a "
    "role's trust or to pass a role to code it runs can turn itself into an administrator in one or two calls: "
    "its credentials are worth as much as an administrator's.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Permissions and open the policy the finding names.",
            "Remove the escalation action, or scope its Resource to what the user must manage: never its own user "
            "or groups, other users' credentials, roles or managed policies; for iam:PassRole name only the roles "
            "it must pass and add an iam:PassedToService condition.",
            "Or set a permissions boundary on {user} that does not allow these actions.",
        ),
        cli="aws iam put-user-permissions-boundary --user-name <user> --permissions-boundary <boundary-policy-arn> "
        "(or scope the granting policy: aws iam create-policy-version --policy-arn <arn> "
        "--policy-document file://scoped.json --set-as-default)",
    ),
    standards=Standards(prowler="iam_policy_allows_privilege_escalation"),
    permissions=DETAILS + ("iam:GetPolicy", "iam:GetPolicyVersion"),
)
def user_privilege_escalation(user: User, ctx: UserContext) -> Outcome:
    permissions = ctx.permissions(user)
    if permissions.admin().is_admin:
        return Outcome(True, f"User {user.name} already has full administrator access (user_admin_access reports it).")
    found = permissions.escalations()
    if not found:
        return Outcome(True, f"User {user.name} has no known way to make itself an administrator.")
    shown = "; ".join(f"{e.describe()}, allowed by {', '.join(e.granted_by)}" for e in found[:3])
    more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
    return Outcome(False, f"User {user.name} can make itself an administrator: {shown}{more}.")


@user_check(
    id="user_admin_without_mfa",
    severity=Severity.CRITICAL,
    title="No administrator works without MFA",
    risk="An administrator without MFA is the most valuable and least protected identity in the account: "
    "its password alone gives full control.",
    remediation=RemediationSteps(console=ENABLE_MFA_CONSOLE, cli=ENABLE_MFA_CLI),
    standards=Standards(prowler="iam_administrator_access_with_mfa"),
    permissions=DETAILS + REPORT + MFA,
    needs=("credential_report",),
)
def user_admin_without_mfa(user: User, ctx: UserContext) -> Outcome:
    permissions = ctx.permissions(user)
    if permissions.admin().is_admin:
        what = "full administrator access"
    elif permissions.full_iam():
        what = "full IAM access (iam:* on *, admin-equivalent)"
    else:
        return Outcome(True, f"User {user.name} is not an administrator.")
    if user.has_mfa:
        return Outcome(True, f"Administrator {user.name} has an MFA device.")
    return Outcome(False, f"User {user.name} has {what} but no MFA device.")


@user_check(
    id="user_no_direct_policies",
    severity=Severity.LOW,
    title="IAM users receive permissions only through groups",
    risk="Policies attached to individual users are hard to review and easy to forget when people change "
    "roles; groups keep permissions consistent.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > User groups > Create group, attach the policies the user needs, add the user.",
            "Open IAM > Users > {user} > Permissions and remove the directly attached and inline policies.",
        ),
        cli="aws iam create-group --group-name <group>; aws iam attach-group-policy --group-name <group> "
        "--policy-arn <arn>; aws iam add-user-to-group --group-name <group> --user-name <user>; "
        "aws iam detach-user-policy --user-name <user> --policy-arn <arn>",
    ),
    standards=Standards(cis="1.15", security_hub="IAM.2", config_rule="iam-user-no-policies-check"),
    permissions=DETAILS,
)
def user_no_direct_policies(user: User, ctx: UserContext) -> Outcome:
    # iamguard's own guardrail is attached directly by design (enforce mode); it is not a lapse.
    guardrail = ctx.settings.guardrail_policy_arn
    attached = [ref.name for ref in user.attached_policies if ref.arn != guardrail]
    direct = attached + [f"inline {p.name}" for p in user.inline_policies]
    if direct:
        return Outcome(False, f"User {user.name} has policies attached directly: {', '.join(direct)}.")
    return Outcome(True, f"User {user.name} has no policies attached directly.")


@user_check(
    id="user_required_policies",
    severity=Severity.HIGH,
    title="Every IAM user has the account's required policies",
    risk="A user missing a required policy (a guardrail or permissions baseline) escapes the controls the "
    "account relies on.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Permissions > Add permissions and attach the missing policy "
            "(or add the user to a group that has it).",
        ),
        cli="aws iam attach-user-policy --user-name <user> --policy-arn <required-policy-arn>",
    ),
    standards=Standards(config_rule="iam-user-group-membership-check"),
    permissions=DETAILS,
)
def user_required_policies(user: User, ctx: UserContext) -> Outcome:
    required = ctx.settings.required_policy_arns
    if not required:
        return Outcome(True, f"No required policies are configured for user {user.name}.")
    missing = [arn for arn in required if arn not in policy.policy_arns_in_effect(user, ctx.groups)]
    if missing:
        names = ", ".join(arn.rsplit("/", 1)[-1] for arn in missing)
        return Outcome(
            False, f"User {user.name} is missing required polic{'ies' if len(missing) > 1 else 'y'} {names}."
        )
    return Outcome(True, f"User {user.name} has every required policy.")


@user_check(
    id="user_password_reset_possible",
    severity=Severity.HIGH,
    title="Users who must reset their password are allowed to",
    risk="A user created with 'must create a new password at next sign-in' but without iam:ChangePassword "
    "(IAMUserChangePassword, or the account setting) is locked out at first sign-in.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Permissions > Add permissions and attach IAMUserChangePassword,",
            "or open IAM > Account settings > Password policy > Edit and tick 'Allow users to change their own "
            "password'.",
        ),
        cli="aws iam attach-user-policy --user-name <user> --policy-arn arn:aws:iam::aws:policy/IAMUserChangePassword",
    ),
    standards=Standards(),
    permissions=DETAILS + REPORT + ("iam:GetLoginProfile", "iam:GetAccountPasswordPolicy"),
    needs=("credential_report",),
)
def user_password_reset_possible(user: User, ctx: UserContext) -> Outcome:
    assert user.credentials is not None
    if user.login_profile_error is not None:
        reason = user.login_profile_error
        return Outcome(False, f"Could not be evaluated — iam:GetLoginProfile: {reason}.", unknown=True)
    if not user.credentials.password_enabled or not user.password_reset_required:
        return Outcome(True, f"User {user.name} does not have to reset a password.")
    # The user's own permission first: the event path reads the password policy only when it is missing.
    if ctx.permissions(user).can_change_own_password():
        return Outcome(True, f"User {user.name} must reset the password and is allowed iam:ChangePassword.")
    if ctx.password_policy is not None and ctx.password_policy.allow_users_to_change_password:
        return Outcome(True, f"User {user.name} must reset the password and the account lets users do so.")
    return Outcome(
        False,
        f"User {user.name} must reset the password at first sign-in but is not allowed iam:ChangePassword.",
    )


@user_check(
    id="user_pending_first_sign_in",
    severity=Severity.LOW,
    title="Console passwords are used soon after they are set",
    risk="A password that was handed out and never used is sitting in an email or chat somewhere; the "
    "longer it waits, the more likely someone else uses it first.",
    remediation=RemediationSteps(
        console=(
            "Ask the user to sign in now, or open IAM > Users > {user} > Security credentials > "
            "Manage console access > Disable.",
        ),
        cli="aws iam delete-login-profile --user-name <user> (after confirming the user no longer needs it)",
    ),
    standards=Standards(),
    permissions=REPORT,
    needs=("credential_report",),
)
def user_pending_first_sign_in(user: User, ctx: UserContext) -> Outcome:
    creds = user.credentials
    assert creds is not None
    if not creds.password_enabled or creds.password_last_used is not None:
        return Outcome(True, f"User {user.name} has no unused console password.")
    since = creds.password_last_changed or user.created
    waited = _days(ctx.now - since)
    if waited > ctx.settings.pending_first_sign_in_days:
        return Outcome(False, f"User {user.name} got a console password {waited} days ago and has never signed in.")
    return Outcome(
        True,
        f"User {user.name} got a console password {waited} days ago (within "
        f"{ctx.settings.pending_first_sign_in_days}).",
    )


@user_check(
    id="user_access_keys_rotated",
    severity=Severity.MEDIUM,
    title="Active access keys are rotated within the maximum age",
    risk="An old access key has had years to leak into scripts, laptops and repositories.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Security credentials > Create access key, switch the "
            "application to it, then Deactivate and Delete the old key.",
        ),
        cli="aws iam create-access-key --user-name <user>; (switch over) aws iam update-access-key "
        "--user-name <user> --access-key-id <old> --status Inactive; aws iam delete-access-key "
        "--user-name <user> --access-key-id <old>",
    ),
    standards=Standards(
        cis="1.14", security_hub="IAM.3", config_rule="access-keys-rotated", prowler="iam_rotate_access_key_90_days"
    ),
    permissions=REPORT,
    needs=("credential_report",),
)
def user_access_keys_rotated(user: User, ctx: UserContext) -> Outcome:
    assert user.credentials is not None
    limit = ctx.settings.access_key_max_age_days
    old = [
        (key.slot, _days(ctx.now - key.last_rotated))
        for key in user.credentials.active_keys
        if key.last_rotated is not None and _days(ctx.now - key.last_rotated) > limit
    ]
    if not old:
        return Outcome(True, f"User {user.name} has no active access key older than {limit} days.")
    described = ", ".join(f"key {slot} is {age} days old" for slot, age in old)
    # Twice the limit is no longer a rotation lapse; it is a forgotten key.
    severity = Severity.HIGH if max(age for _, age in old) > 2 * limit else None
    return Outcome(False, f"User {user.name} has active access keys older than {limit} days: {described}.", severity)


@user_check(
    id="user_unused_credentials",
    severity=Severity.MEDIUM,
    title="Credentials unused for the allowed period are disabled",
    risk="Passwords and keys nobody uses still work for whoever finds them; unused credentials are pure risk.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Security credentials: Manage console access > Disable, and "
            "Deactivate unused access keys.",
        ),
        cli="aws iam delete-login-profile --user-name <user>; aws iam update-access-key --user-name <user> "
        "--access-key-id <id> --status Inactive",
    ),
    standards=Standards(
        cis="1.12",
        security_hub="IAM.22",
        config_rule="iam-user-unused-credentials-check",
        prowler="iam_user_accesskey_unused / iam_user_console_access_unused",
    ),
    permissions=REPORT,
    needs=("credential_report",),
)
def user_unused_credentials(user: User, ctx: UserContext) -> Outcome:
    creds = user.credentials
    assert creds is not None
    limit = ctx.settings.unused_credentials_days
    unused = []
    if creds.password_enabled:
        since = creds.password_last_used or creds.password_last_changed or user.created
        if _days(ctx.now - since) >= limit:
            what = "used" if creds.password_last_used else "set and never used"
            unused.append(f"the console password was last {what} {_days(ctx.now - since)} days ago")
    for key in creds.active_keys:
        since_key = key.last_used or key.last_rotated
        if since_key is not None and _days(ctx.now - since_key) >= limit:
            what = "used" if key.last_used else "created and never used"
            unused.append(f"access key {key.slot} was last {what} {_days(ctx.now - since_key)} days ago")
    if unused:
        return Outcome(False, f"User {user.name} has credentials unused for {limit}+ days: {'; '.join(unused)}.")
    return Outcome(True, f"User {user.name} has no credentials unused for {limit} days.")


@user_check(
    id="user_single_active_key",
    severity=Severity.LOW,
    title="Each IAM user has at most one active access key",
    risk="Two active keys usually mean an abandoned rotation: the old key still works and nobody watches it.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Users > {user} > Security credentials > Access keys and deactivate the key that "
            "is no longer in use.",
        ),
        cli="aws iam update-access-key --user-name <user> --access-key-id <old> --status Inactive",
    ),
    standards=Standards(cis="1.13", prowler="iam_user_two_active_access_key"),
    permissions=REPORT,
    needs=("credential_report",),
)
def user_single_active_key(user: User, ctx: UserContext) -> Outcome:
    assert user.credentials is not None
    if len(user.credentials.active_keys) > 1:
        return Outcome(False, f"User {user.name} has {len(user.credentials.active_keys)} active access keys.")
    return Outcome(True, f"User {user.name} has at most one active access key.")
