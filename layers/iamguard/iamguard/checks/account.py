"""Account-wide checks: password policy and sign-in alias."""

from __future__ import annotations

from datetime import datetime

from iamguard.checks.base import Outcome, RemediationSteps, Standards, account_check
from iamguard.domain.account import AccountState, PasswordPolicy
from iamguard.domain.findings import Severity
from iamguard.settings import PasswordBaseline, Settings


def unmet_password_rules(policy: PasswordPolicy | None, baseline: PasswordBaseline) -> list[str]:
    """Each rule of the baseline the policy does not meet, in words."""
    if policy is None:
        return ["no password policy is set"]
    unmet = []
    if policy.minimum_length < baseline.minimum_length:
        unmet.append(f"minimum length is {policy.minimum_length}, needs at least {baseline.minimum_length}")
    if (
        baseline.password_reuse_prevention
        and (policy.password_reuse_prevention or 0) < baseline.password_reuse_prevention
    ):
        unmet.append(
            f"reuse prevention is {policy.password_reuse_prevention or 0}, "
            f"needs at least {baseline.password_reuse_prevention}"
        )
    for flag, words in (
        ("require_symbols", "symbols"),
        ("require_numbers", "numbers"),
        ("require_uppercase", "uppercase letters"),
        ("require_lowercase", "lowercase letters"),
    ):
        if getattr(baseline, flag) and not getattr(policy, flag):
            unmet.append(f"{words} are not required")
    if baseline.max_password_age_days and (
        policy.max_password_age_days is None or policy.max_password_age_days > baseline.max_password_age_days
    ):
        unmet.append(f"passwords must expire within {baseline.max_password_age_days} days")
    return unmet


@account_check(
    id="password_policy",
    severity=Severity.MEDIUM,
    scope="account",
    title="The account password policy meets the baseline",
    risk="Without a strong password policy, IAM users can choose short or reused passwords that are easy "
    "to guess or already leaked.",
    remediation=RemediationSteps(
        console=(
            "Open IAM > Account settings > Password policy > Edit.",
            "Choose Custom: minimum length 14 or more, prevent reuse of the last 24 passwords, allow users "
            "to change their own password; Save changes.",
        ),
        cli="aws iam update-account-password-policy --minimum-password-length 14 --password-reuse-prevention 24 "
        "--allow-users-to-change-password --require-symbols --require-numbers "
        "--require-uppercase-characters --require-lowercase-characters",
    ),
    standards=Standards(
        cis="1.8, 1.9",
        security_hub="IAM.7, IAM.15, IAM.16",
        config_rule="iam-password-policy",
        prowler="iam_password_policy_*",
    ),
    permissions=("iam:GetAccountPasswordPolicy",),
)
def password_policy(state: AccountState, settings: Settings, now: datetime) -> Outcome:
    unmet = unmet_password_rules(state.password_policy, settings.password_baseline)
    if not unmet:
        return Outcome(True, "The account password policy meets the baseline.")
    if state.password_policy is None:
        return Outcome(False, "The account has no password policy.")
    return Outcome(False, "The account password policy is below the baseline: " + "; ".join(unmet) + ".")


@account_check(
    id="account_alias_set",
    severity=Severity.INFORMATIONAL,
    scope="account",
    title="The account has a sign-in alias",
    risk="Without an alias, IAM users must sign in with the 12-digit account id, which invites mistakes and "
    "phishing look-alikes.",
    remediation=RemediationSteps(
        console=("Open IAM > Dashboard > AWS Account > Account Alias > Create, enter a unique alias, Save.",),
        cli="aws iam create-account-alias --account-alias <alias>",
    ),
    standards=Standards(),
    permissions=("iam:ListAccountAliases",),
)
def account_alias_set(state: AccountState, settings: Settings, now: datetime) -> Outcome:
    if state.aliases:
        return Outcome(True, f"The account signs in with the alias {state.aliases[0]}.")
    return Outcome(False, f"The account has no alias; IAM users sign in with the account id {state.account_id}.")
