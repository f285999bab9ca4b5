"""Every check in the catalog, failing and passing, on hand-built account state."""

from __future__ import annotations

from dataclasses import replace

import pytest
from iamguard.checks import CATALOG, run_checks
from iamguard.domain.account import ManagedPolicyRef, PasswordPolicy
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.settings import PasswordBaseline, Settings

from tests.factories import (
    ADMIN,
    CHANGE_PASSWORD,
    GOOD_POLICY,
    NOW,
    READ_ONLY,
    creds,
    days_ago,
    group,
    inline_star,
    key,
    root,
    state,
    user,
    with_mfa,
)

SETTINGS = Settings()


def verdict(findings: list[Finding], check_id: str, resource: str | None = None) -> Finding:
    matches = [f for f in findings if f.check_id == check_id and (resource is None or f.resource_name == resource)]
    assert len(matches) == 1, f"expected one {check_id} finding for {resource}, got {matches}"
    return matches[0]


def run(*users, settings: Settings = SETTINGS, **fields) -> list[Finding]:
    return run_checks(state(*users, **fields), settings, NOW)


def test_catalog_has_every_check_of_the_design_with_metadata() -> None:
    expected = {
        "root_mfa_enabled", "root_hardware_mfa", "root_no_access_keys", "root_not_used_recently", "password_policy",
        "account_alias_set", "user_console_mfa", "user_mfa", "user_admin_access", "user_privilege_escalation",
        "user_admin_without_mfa",
        "user_no_direct_policies", "user_required_policies", "user_password_reset_possible",
        "user_pending_first_sign_in", "user_access_keys_rotated", "user_unused_credentials", "user_single_active_key",
        "member_audit_access", "org_member_root_credentials", "org_member_stackset", "org_member_console_users",
    }  # fmt: skip
    assert set(CATALOG) == expected
    for check in CATALOG.values():
        assert check.title and not check.title.startswith("Ensure"), check.id
        assert check.risk and check.remediation.console and check.remediation.cli, check.id
        assert check.permissions, check.id
        if check.scope != "organization":  # organization checks name the hub's calls (sts, cloudformation) too
            assert all(p.startswith("iam:") for p in check.permissions), check.id
    assert CATALOG["root_mfa_enabled"].severity is Severity.CRITICAL
    assert CATALOG["user_admin_without_mfa"].severity is Severity.CRITICAL
    assert "CIS 1.5" in CATALOG["root_mfa_enabled"].standards.labels()


# -- root ------------------------------------------------------------------------
def test_root_without_mfa_fails_both_mfa_checks() -> None:
    findings = run(root=root(mfa_enabled=False, credentials=creds(password=True, mfa=False)))
    assert verdict(findings, "root_mfa_enabled").status is Status.FAIL
    assert verdict(findings, "root_mfa_enabled").detail == "The root user has no MFA device."
    assert verdict(findings, "root_hardware_mfa").status is Status.FAIL


def test_root_with_virtual_mfa_passes_mfa_but_fails_hardware() -> None:
    findings = run(root=root(has_virtual_mfa=True))
    assert verdict(findings, "root_mfa_enabled").status is Status.PASS
    hardware = verdict(findings, "root_hardware_mfa")
    assert hardware.status is Status.FAIL
    assert "virtual" in hardware.detail


def test_root_with_hardware_mfa_passes() -> None:
    assert verdict(run(), "root_hardware_mfa").status is Status.PASS


def test_root_access_key_fails() -> None:
    findings = run(root=root(access_keys_present=True, credentials=creds(password=True, mfa=True, keys=(key(),))))
    finding = verdict(findings, "root_no_access_keys")
    assert finding.status is Status.FAIL
    assert finding.detail == "The root user has 1 active access key."
    assert verdict(run(), "root_no_access_keys").status is Status.PASS


def test_root_used_within_window_fails_and_older_use_passes() -> None:
    recent = run(root=root(credentials=creds(password=True, mfa=True, password_last_used=days_ago(0.2))))
    assert verdict(recent, "root_not_used_recently").status is Status.FAIL
    key_use = run(root=root(credentials=creds(password=True, mfa=True, keys=(key(used_days=0.5),))))
    assert "access key 1" in verdict(key_use, "root_not_used_recently").detail
    assert verdict(run(), "root_not_used_recently").status is Status.PASS
    wider = Settings(root_usage_days=60)
    assert verdict(run(settings=wider), "root_not_used_recently").status is Status.FAIL


def test_root_usage_is_an_error_not_a_pass_without_the_credential_report() -> None:
    findings = run(root=root(credentials=None), errors={"credential_report": "LimitExceeded: try later"})
    finding = verdict(findings, "root_not_used_recently")
    assert finding.status is Status.ERROR
    assert "LimitExceeded" in finding.detail


# -- account ---------------------------------------------------------------------
def test_missing_password_policy_fails() -> None:
    finding = verdict(run(password_policy=None), "password_policy")
    assert finding.status is Status.FAIL
    assert finding.detail == "The account has no password policy."


def test_weak_password_policy_lists_every_unmet_rule() -> None:
    weak = PasswordPolicy(minimum_length=8, password_reuse_prevention=5)
    strict = Settings(password_baseline=PasswordBaseline(require_symbols=True, max_password_age_days=90))
    finding = verdict(run(password_policy=weak, settings=strict), "password_policy")
    assert finding.status is Status.FAIL
    for words in ("minimum length is 8", "reuse prevention is 5", "symbols", "expire within 90 days"):
        assert words in finding.detail
    assert verdict(run(password_policy=GOOD_POLICY), "password_policy").status is Status.PASS


def test_account_alias() -> None:
    assert verdict(run(aliases=()), "account_alias_set").status is Status.FAIL
    assert verdict(run(), "account_alias_set").status is Status.PASS


# -- users -----------------------------------------------------------------------
def test_console_user_without_mfa_fails_console_and_user_mfa() -> None:
    bob = user("bob", credentials=creds(password=True, password_last_used=days_ago(1)))
    findings = run(bob)
    console = verdict(findings, "user_console_mfa", "bob")
    assert console.status is Status.FAIL
    assert console.detail == "User bob has a console password but no MFA device."
    assert console.resource_arn == "arn:aws:iam::123456789012:user/bob"
    assert verdict(findings, "user_mfa", "bob").status is Status.FAIL


def test_programmatic_user_without_mfa_fails_only_user_mfa() -> None:
    findings = run(user("ci", credentials=creds(keys=(key(),))))
    assert verdict(findings, "user_console_mfa", "ci").status is Status.PASS
    assert verdict(findings, "user_mfa", "ci").status is Status.FAIL


def test_hardware_mfa_from_credential_report_counts() -> None:
    findings = run(user("hw", credentials=creds(password=True, mfa=True, password_last_used=days_ago(1))))
    assert verdict(findings, "user_console_mfa", "hw").status is Status.PASS


@pytest.mark.parametrize(
    ("case", "fields", "source"),
    [
        ("direct", {"attached_policies": (ADMIN,)}, "AdministratorAccess (attached directly)"),
        ("inline", {"inline_policies": (inline_star(),)}, "inline policy everything"),
        ("group", {"group_names": ("admins",)}, "AdministratorAccess via group admins"),
        ("group inline", {"group_names": ("ops",)}, "inline policy everything of group ops"),
    ],
)
def test_admin_through_every_path(case: str, fields: dict, source: str) -> None:
    groups = {"admins": group("admins", ADMIN), "ops": group("ops", inline=(inline_star(),))}
    findings = run(user("adm", **fields), groups=groups)
    admin = verdict(findings, "user_admin_access", "adm")
    assert admin.status is Status.FAIL, case
    assert source in admin.detail
    no_mfa = verdict(findings, "user_admin_without_mfa", "adm")
    assert no_mfa.status is Status.FAIL
    assert no_mfa.severity is Severity.CRITICAL


def test_admin_with_mfa_passes_admin_without_mfa_but_still_is_admin() -> None:
    findings = run(with_mfa(user("adm", attached_policies=(ADMIN,))))
    assert verdict(findings, "user_admin_without_mfa", "adm").status is Status.PASS
    assert verdict(findings, "user_admin_access", "adm").status is Status.FAIL


def test_read_only_is_not_admin() -> None:
    findings = run(user("reader", group_names=("devs",)), groups={"devs": group("devs", READ_ONLY)})
    assert verdict(findings, "user_admin_access", "reader").status is Status.PASS
    assert verdict(findings, "user_admin_without_mfa", "reader").status is Status.PASS


def test_direct_policies() -> None:
    findings = run(user("d", attached_policies=(READ_ONLY,), inline_policies=(inline_star("x"),)))
    finding = verdict(findings, "user_no_direct_policies", "d")
    assert finding.status is Status.FAIL
    assert finding.detail == "User d has policies attached directly: ReadOnlyAccess, inline x."
    assert verdict(run(user("g", group_names=("devs",)), groups={"devs": group("devs", READ_ONLY)}),
                   "user_no_direct_policies", "g").status is Status.PASS  # fmt: skip


def test_required_policies_direct_or_via_group() -> None:
    required = Settings(required_policy_arns=(READ_ONLY.arn,))
    missing = verdict(run(user("m"), settings=required), "user_required_policies", "m")
    assert missing.status is Status.FAIL
    assert "ReadOnlyAccess" in missing.detail
    via_group = run(user("g", group_names=("devs",)), groups={"devs": group("devs", READ_ONLY)}, settings=required)
    assert verdict(via_group, "user_required_policies", "g").status is Status.PASS
    assert verdict(run(user("n")), "user_required_policies", "n").status is Status.PASS


def test_password_reset_lockout() -> None:
    locked = user("new", credentials=creds(password=True), password_reset_required=True)
    no_change = replace(GOOD_POLICY, allow_users_to_change_password=False)
    finding = verdict(run(locked, password_policy=no_change), "user_password_reset_possible", "new")
    assert finding.status is Status.FAIL
    assert "not allowed iam:ChangePassword" in finding.detail
    # IAMUserChangePassword (what the console attaches with the reset option) fixes it …
    with_policy = replace(locked, attached_policies=(CHANGE_PASSWORD,))
    assert (
        verdict(run(with_policy, password_policy=no_change), "user_password_reset_possible", "new").status
        is Status.PASS
    )
    # … and so does the account setting; no password policy at all means no such setting.
    assert verdict(run(locked), "user_password_reset_possible", "new").status is Status.PASS
    assert verdict(run(locked, password_policy=None), "user_password_reset_possible", "new").status is Status.FAIL


def test_pending_first_sign_in() -> None:
    waiting = user("w", credentials=creds(password=True, password_last_changed=days_ago(10)))
    finding = verdict(run(waiting), "user_pending_first_sign_in", "w")
    assert finding.status is Status.FAIL
    assert finding.detail == "User w got a console password 10 days ago and has never signed in."
    fresh = user("f", credentials=creds(password=True, password_last_changed=days_ago(2)))
    assert verdict(run(fresh), "user_pending_first_sign_in", "f").status is Status.PASS
    used = user(
        "u", credentials=creds(password=True, password_last_changed=days_ago(10), password_last_used=days_ago(9))
    )
    assert verdict(run(used), "user_pending_first_sign_in", "u").status is Status.PASS


def test_stale_access_keys_escalate_when_long_forgotten() -> None:
    old = verdict(run(user("k", credentials=creds(keys=(key(rotated_days=120),)))), "user_access_keys_rotated", "k")
    assert old.status is Status.FAIL
    assert old.severity is Severity.MEDIUM
    assert "key 1 is 120 days old" in old.detail
    ancient = verdict(run(user("k", credentials=creds(keys=(key(rotated_days=400),)))), "user_access_keys_rotated", "k")
    assert ancient.severity is Severity.HIGH
    inactive = run(user("k", credentials=creds(keys=(key(rotated_days=400, active=False),))))
    assert verdict(inactive, "user_access_keys_rotated", "k").status is Status.PASS


def test_unused_credentials() -> None:
    idle_password = user("p", credentials=creds(password=True, password_last_used=days_ago(60)))
    finding = verdict(run(idle_password), "user_unused_credentials", "p")
    assert finding.status is Status.FAIL
    assert "last used 60 days ago" in finding.detail
    never_used_key = user("k", credentials=creds(keys=(key(rotated_days=50, used_days=None),)))
    assert "created and never used 50 days ago" in verdict(run(never_used_key), "user_unused_credentials", "k").detail
    active = user("a", credentials=creds(password=True, password_last_used=days_ago(3), keys=(key(used_days=2),)))
    assert verdict(run(active), "user_unused_credentials", "a").status is Status.PASS


def test_two_active_keys() -> None:
    two = verdict(run(user("t", credentials=creds(keys=(key(1), key(2))))), "user_single_active_key", "t")
    assert two.status is Status.FAIL
    assert two.detail == "User t has 2 active access keys."
    one_inactive = run(user("t", credentials=creds(keys=(key(1), key(2, active=False)))))
    assert verdict(one_inactive, "user_single_active_key", "t").status is Status.PASS


# -- exemptions and errors ---------------------------------------------------------
def test_exempt_users_by_tag_or_setting_are_reported_exempt_not_failed() -> None:
    tagged = user("contractor", tags={"iamguard:exempt": "true"}, credentials=creds(password=True))
    listed = user("breakglass", attached_policies=(ADMIN,))
    findings = run(tagged, listed, settings=Settings(exempt_users=frozenset({"breakglass"})))
    tagged_console = verdict(findings, "user_console_mfa", "contractor")
    assert tagged_console.status is Status.EXEMPT
    assert "tagged iamguard:exempt=true" in tagged_console.detail
    assert verdict(findings, "user_admin_access", "breakglass").status is Status.EXEMPT
    assert not [f for f in findings if f.resource_type == "user" and f.status is Status.FAIL]


def test_user_checks_needing_the_report_are_errors_without_it() -> None:
    findings = run(user("x", credentials=None), errors={"credential_report": "ReportInProgress"})
    assert verdict(findings, "user_console_mfa", "x").status is Status.ERROR
    # Checks that need only authorization details still run.
    assert verdict(findings, "user_admin_access", "x").status is Status.PASS


def test_a_clean_account_has_no_failures() -> None:
    clean = with_mfa(
        user("alice", group_names=("devs",), credentials=creds(password=True, password_last_used=days_ago(1)))
    )
    findings = run(clean, groups={"devs": group("devs", READ_ONLY)})
    assert [f for f in findings if f.status is not Status.PASS] == []
    assert len(findings) == 6 + 12  # 6 root/account checks + 12 user checks


def test_the_guardrail_iamguard_attaches_is_not_a_direct_policy_finding() -> None:
    guardrail = ManagedPolicyRef("arn:aws:iam::123456789012:policy/iamguard-mfa-guardrail", "iamguard-mfa-guardrail")
    settings = Settings(guardrail_policy_arn=guardrail.arn)
    guarded = user("g", attached_policies=(guardrail,))
    assert verdict(run(guarded, settings=settings), "user_no_direct_policies", "g").status is Status.PASS
    both = user("b", attached_policies=(guardrail, READ_ONLY))
    finding = verdict(run(both, settings=settings), "user_no_direct_policies", "b")
    assert finding.status is Status.FAIL
    assert finding.detail == "User b has policies attached directly: ReadOnlyAccess."
