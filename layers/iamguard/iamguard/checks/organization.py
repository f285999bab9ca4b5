"""Organization checks: what the hub sees about each member account from the organization's side.

They run in organization mode only, once per member account audit, over that account's
state and the `OrganizationFacts` the hub read (centralized root access, the member StackSet).
Their findings belong to the member account (resource type "account").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from iamguard.checks.base import (
    CATALOG,
    Check,
    Outcome,
    RemediationSteps,
    Standards,
    account_resource,
    judge,
    register,
    utc_day,
)
from iamguard.checks.exemptions import by_resource
from iamguard.domain.account import AccountState, RootState
from iamguard.domain.exemptions import ACCOUNT_RESOURCE, Exemption
from iamguard.domain.findings import Finding, Severity
from iamguard.domain.organization import OrganizationFacts

OrganizationEvaluator = Callable[[AccountState, OrganizationFacts], Outcome]
_EVALUATORS: dict[str, OrganizationEvaluator] = {}
MEMBER_AUDIT_ACCESS = "member_audit_access"


def organization_check(
    *,
    id: str,
    severity: Severity,
    title: str,
    risk: str,
    remediation: RemediationSteps,
    standards: Standards,
    permissions: tuple[str, ...],
) -> Callable[[OrganizationEvaluator], OrganizationEvaluator]:
    def decorate(fn: OrganizationEvaluator) -> OrganizationEvaluator:
        register(Check(id, severity, "organization", title, risk, remediation, standards, permissions))
        _EVALUATORS[id] = fn
        return fn

    return decorate


@organization_check(
    id=MEMBER_AUDIT_ACCESS,
    severity=Severity.HIGH,
    title="The hub can audit the member account",
    risk="An account the hub cannot enter is not audited and its IAM events are not evaluated: its users, root "
    "and password policy drift unseen.",
    remediation=RemediationSteps(
        console=(
            "Open CloudFormation > StackSets > the iamguard member StackSet > Add stacks to StackSet, "
            "and deploy it to the account (or to its organizational unit, with automatic deployment on).",
        ),
        cli="aws cloudformation create-stack-instances --stack-set-name <member StackSet> "
        "--deployment-targets OrganizationalUnitIds=<ou> --regions us-east-1",
    ),
    standards=Standards(),
    permissions=("sts:AssumeRole",),
)
def member_audit_access(state: AccountState, organization: OrganizationFacts) -> Outcome:
    # Evaluated only once the role was assumed; a role that cannot be is `access_error_finding`.
    return Outcome(True, f"The hub audits account {state.account_id} through its member role.")


@organization_check(
    id="org_member_root_credentials",
    severity=Severity.HIGH,
    title="Member account root users have no credentials under centralized root access",
    risk="With centralized root access the organization no longer needs member root passwords, keys or MFA "
    "devices; any left over is a way into the account around every SCP-free root control.",
    remediation=RemediationSteps(
        console=(
            "From the management account (or IAM's delegated administrator) open IAM > Root access management.",
            "Select the account, choose Take privileged action > Delete root user credentials, and confirm.",
        ),
        cli="aws sts assume-root --target-principal <account id> --task-policy-arn "
        "arn=arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials; then, with those credentials: "
        "aws iam delete-login-profile; aws iam delete-access-key; aws iam deactivate-mfa-device; "
        "aws iam delete-signing-certificate",
    ),
    standards=Standards(prowler="organizations_centralized_root_access_enabled"),
    permissions=("iam:ListOrganizationsFeatures", "iam:GetAccountSummary"),
)
def org_member_root_credentials(state: AccountState, organization: OrganizationFacts) -> Outcome:
    left = root_credentials(state.root)
    managed = organization.root_credentials_managed
    if managed is None:
        return Outcome(
            False, f"Could not read centralized root access: {organization.root_features_error}.", unknown=True
        )
    if not left:
        return Outcome(True, "The root user of this member account has no credentials.")
    if not managed:
        return Outcome(
            False,
            "Centralized root access is not enabled for the organization, and this member account's root user "
            f"still has {', '.join(left)}.",
            severity=Severity.MEDIUM,
        )
    return Outcome(
        False,
        f"Centralized root access is enabled, yet this member account's root user still has {', '.join(left)}.",
    )


def root_credentials(root: RootState) -> list[str]:
    """What root still has, in words (what GetAccountSummary says: password, keys, MFA, signing certificates)."""
    left = []
    if root.password_present is not False:
        left.append("a password")
    if root.access_keys_present:
        left.append("access keys")
    if root.mfa_enabled:
        left.append("an MFA device")
    if root.signing_certificates_present:
        left.append("signing certificates")
    return left


@organization_check(
    id="org_member_stackset",
    severity=Severity.HIGH,
    title="The member account is covered by the iamguard member StackSet",
    risk="An account without the member stack forwards no IAM events to the hub and has no audit role: "
    "changes there go unnoticed until someone looks.",
    remediation=RemediationSteps(
        console=(
            "Open CloudFormation > StackSets > the iamguard member StackSet > Add stacks to StackSet; "
            "target the account's organizational unit, and keep automatic deployment on.",
        ),
        cli="aws cloudformation create-stack-instances --stack-set-name <member StackSet> "
        "--deployment-targets OrganizationalUnitIds=<ou> --regions us-east-1",
    ),
    standards=Standards(),
    permissions=("cloudformation:ListStackInstances",),
)
def org_member_stackset(state: AccountState, organization: OrganizationFacts) -> Outcome:
    name = organization.stackset_name
    if organization.stackset_accounts is None:
        return Outcome(False, f"Could not read the StackSet's instances: {organization.stackset_error}.", unknown=True)
    if state.account_id in organization.stackset_accounts:
        return Outcome(True, f"The StackSet {name} has an instance in this account.")
    return Outcome(False, f"The StackSet {name} has no instance in this account.")


@organization_check(
    id="org_member_console_users",
    severity=Severity.LOW,
    title="People sign in through the organization's identity account, not as IAM users of member accounts",
    risk="IAM users scattered over member accounts are people with long-lived passwords in many places: each "
    "account's users must be found, reviewed and removed on their own when someone leaves.",
    remediation=RemediationSteps(
        console=(
            "Give people access through IAM Identity Center (or federation) and roles in the member accounts.",
            "Then open IAM > Users in the member account and delete each console user's password and user.",
        ),
        cli="aws iam delete-login-profile --user-name <user>; aws iam delete-user --user-name <user> "
        "(after removing its keys, MFA devices, policies and groups)",
    ),
    standards=Standards(cis="1.21"),
    permissions=("iam:GenerateCredentialReport", "iam:GetCredentialReport"),
)
def org_member_console_users(state: AccountState, organization: OrganizationFacts) -> Outcome:
    if state.account_id == organization.identity_account:
        return Outcome(True, "This is the organization's identity account: its IAM users are expected here.")
    if any(user.credentials is None for user in state.users):
        return Outcome(False, "Could not be evaluated — credential report unavailable.", unknown=True)
    people = sorted(u.name for u in state.users if u.credentials is not None and u.credentials.password_enabled)
    if not people:
        return Outcome(True, "No IAM user of this member account has a console password.")
    shown = ", ".join(people[:5]) + (f" and {len(people) - 5} more" if len(people) > 5 else "")
    return Outcome(False, f"{len(people)} IAM users of this member account have a console password: {shown}.")


def run_organization_checks(
    state: AccountState, organization: OrganizationFacts, now: datetime, exemptions: Iterable[Exemption] = ()
) -> list[Finding]:
    """The organization checks for one member account whose state the hub read through its role.

    The API's `exemptions` apply as to the account's other checks: resource `account`, in this account only.
    """
    findings = []
    arn, name = account_resource(state, "account")
    held = by_resource(exemptions, state.account_id).get(ACCOUNT_RESOURCE, [])
    for check_id, evaluate in _EVALUATORS.items():
        if check_id == "org_member_stackset" and organization.stackset_name is None:
            continue  # no StackSet configured (MEMBER_STACKSET_NAME)
        findings.append(
            judge(
                CATALOG[check_id],
                evaluate(state, organization),
                held,
                utc_day(now),
                arn=arn,
                name=name,
                rtype="account",
                account_id=state.account_id,
                observed=now,
            )
        )
    return findings


def access_error_finding(account_id: str, reason: str, now: datetime) -> Finding:
    """The ERROR finding of an account whose member role cannot be assumed (the reason names the StackSet)."""
    return judge(
        CATALOG[MEMBER_AUDIT_ACCESS],
        Outcome(False, f"The hub cannot audit this account: {reason}.", unknown=True),
        [],  # no exception hides an account the hub cannot enter
        utc_day(now),
        arn=f"arn:aws:iam::{account_id}:account",
        name=account_id,
        rtype="account",
        account_id=account_id,
        observed=now,
        error=True,
    )
