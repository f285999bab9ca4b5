"""Organization checks over typed facts: centralized root access, StackSet coverage, unreadable facts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from iamguard.checks.organization import access_error_finding, run_organization_checks
from iamguard.domain.exemptions import Exemption
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.domain.organization import ROOT_CREDENTIALS_MANAGEMENT, OrganizationFacts

from tests.factories import creds, root, state, user

NOW = datetime(2026, 11, 30, tzinfo=UTC)
MEMBER = "222233334444"


def verdict(facts: OrganizationFacts, **root_fields: object) -> dict[str, tuple[Status, Severity, str]]:
    member = state(root=root(**root_fields), account_id=MEMBER)
    return {f.check_id: (f.status, f.severity, f.detail) for f in run_organization_checks(member, facts, NOW)}


MANAGED = OrganizationFacts("o-abcdefghij", root_features=frozenset({ROOT_CREDENTIALS_MANAGEMENT}))


def test_root_credentials_left_under_centralized_root_access_fail_high() -> None:
    found = verdict(
        MANAGED, password_present=True, access_keys_present=True, mfa_enabled=False, signing_certificates_present=True
    )
    status, severity, detail = found["org_member_root_credentials"]
    assert (status, severity) == (Status.FAIL, Severity.HIGH)
    assert detail == (
        "Centralized root access is enabled, yet this member account's root user still has a password, "
        "access keys, signing certificates."
    )


def test_a_member_root_without_credentials_passes_whatever_the_organization_enabled() -> None:
    for facts in (MANAGED, OrganizationFacts("o-abcdefghij", root_features=frozenset())):
        found = verdict(facts, password_present=False, access_keys_present=False, mfa_enabled=False)
        assert found["org_member_root_credentials"][0] is Status.PASS


def test_without_centralized_root_access_leftover_credentials_fail_medium() -> None:
    facts = OrganizationFacts("o-abcdefghij", root_features=frozenset({"RootSessions"}))
    status, severity, detail = verdict(facts, password_present=True)["org_member_root_credentials"]
    assert (status, severity) == (Status.FAIL, Severity.MEDIUM)
    assert detail.startswith("Centralized root access is not enabled for the organization")


def test_unreadable_features_are_an_error_not_a_pass() -> None:
    facts = OrganizationFacts("o-abcdefghij", root_features_error="ListOrganizationsFeatures failed: AccessDenied: x")
    status, _, detail = verdict(facts, password_present=False)["org_member_root_credentials"]
    assert status is Status.ERROR and "AccessDenied" in detail


@pytest.mark.parametrize(
    ("accounts", "error", "expected"),
    [
        (frozenset({MEMBER}), None, Status.PASS),
        (frozenset({"999999999999"}), None, Status.FAIL),
        (None, "ListStackInstances(iamguard-member) failed: StackSetNotFoundException: none", Status.ERROR),
    ],
)
def test_stackset_coverage(accounts: frozenset[str] | None, error: str | None, expected: Status) -> None:
    facts = OrganizationFacts(
        "o-abcdefghij", root_features=frozenset(), stackset_name="iamguard-member", stackset_accounts=accounts,
        stackset_error=error,
    )  # fmt: skip
    assert verdict(facts)["org_member_stackset"][0] is expected


def test_no_stackset_configured_means_no_coverage_finding() -> None:
    assert "org_member_stackset" not in verdict(MANAGED)


def test_an_unreachable_account_is_an_error_finding_of_that_account() -> None:
    finding = access_error_finding(MEMBER, "cannot assume arn:aws:iam::222233334444:role/r: deploy the StackSet", NOW)
    assert (finding.check_id, finding.status, finding.account_id) == ("member_audit_access", Status.ERROR, MEMBER)
    assert finding.resource_arn == f"arn:aws:iam::{MEMBER}:account"
    assert finding.detail.startswith("The hub cannot audit this account: cannot assume")


def test_console_users_of_a_member_account_fail_cis_1_21_outside_the_identity_account() -> None:
    people = [user(f"person-{n}", credentials=creds(password=True)) for n in range(7)]
    service = user("ci-bot", credentials=creds(password=False))
    member = state(*people, service, account_id=MEMBER)
    facts = OrganizationFacts("o-abcdefghij", root_features=frozenset(), identity_account="111122223333")
    [found] = [f for f in run_organization_checks(member, facts, NOW) if f.check_id == "org_member_console_users"]
    assert (found.status, found.severity) == (Status.FAIL, Severity.LOW)
    assert found.detail == (
        "7 IAM users of this member account have a console password: "
        "person-0, person-1, person-2, person-3, person-4 and 2 more."
    )
    identity = OrganizationFacts("o-abcdefghij", root_features=frozenset(), identity_account=MEMBER)
    [home] = [f for f in run_organization_checks(member, identity, NOW) if f.check_id == "org_member_console_users"]
    assert home.status is Status.PASS
    only_service = state(service, account_id=MEMBER)
    [clean] = [f for f in run_organization_checks(only_service, facts, NOW) if f.check_id == "org_member_console_users"]
    assert clean.status is Status.PASS


def test_an_api_exception_of_the_account_applies_to_the_organization_checks_in_its_own_account_only() -> None:
    # Given a coverage check both accounts fail, and exceptions for MEMBER only
    facts = OrganizationFacts(
        "o-abcdefghij", root_features=frozenset(), stackset_name="iamguard-member", stackset_accounts=frozenset()
    )
    sandbox = Exemption(
        check_id="org_member_stackset",
        resource="account",
        reason="sandbox",
        owner="secops",
        source="api",
        expires=NOW.date(),
        account_id=MEMBER,
    )
    ended = sandbox.model_copy(update={"check_id": "org_member_root_credentials", "expires": date(2026, 11, 29)})

    def judged(account_id: str) -> dict[str, Finding]:
        member = state(root=root(password_present=True), account_id=account_id)
        findings = run_organization_checks(member, facts, NOW, exemptions=[sandbox, ended])
        return {f.check_id: f for f in findings}

    # Then MEMBER's coverage finding is exempt, naming the exception; the one that ended reopens with a note
    mine = judged(MEMBER)
    assert mine["org_member_stackset"].status is Status.EXEMPT
    assert (mine["org_member_stackset"].exempt_source, mine["org_member_stackset"].exempt_reason) == ("api", "sandbox")
    assert mine["org_member_root_credentials"].status is Status.FAIL
    assert "expired" in mine["org_member_root_credentials"].detail
    # and another account's same check still fails, with no trace of MEMBER's exceptions
    theirs = judged("999988887777")
    assert theirs["org_member_stackset"].status is Status.FAIL
    assert theirs["org_member_stackset"].exempt_source is None
    assert "expired" not in theirs["org_member_root_credentials"].detail
