"""Exceptions: tags with an end, an owner, a reason and checks; API exceptions; what expiry does."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, cast

import pytest
from iamguard.checks import CATALOG, run_checks
from iamguard.checks.exemptions import by_resource, read_tags
from iamguard.domain.account import User
from iamguard.domain.exemptions import Exemption
from iamguard.domain.findings import Change, Finding, Status, Transition
from iamguard.domain.messages import Language
from iamguard.enforcement.enforcer import ATTACH_GUARDRAIL, ATTACH_REQUIRED, plan
from iamguard.notify import sns, teams
from iamguard.notify.render import MessageBuilder
from iamguard.persistence.exemptions import CachedExemptions, ExemptionStore, exemption_item, item_exemption
from iamguard.settings import Settings

from tests.factories import ACCOUNT, NOW, creds, finding, state, user

TODAY = NOW.date()
GUARDRAIL = "arn:aws:iam::123456789012:policy/iamguard-mfa-guardrail"
REQUIRED = "arn:aws:iam::aws:policy/IAMUserChangePassword"
SETTINGS = Settings(guardrail_policy_arn=GUARDRAIL, required_policy_arns=(REQUIRED,), mode="enforce")


def console_user(**tags: str) -> User:
    return user("erin", tags=dict(tags), credentials=creds(password=True))


def by_check(*users: User, **kwargs: Any) -> dict[tuple[str, str], Finding]:
    return {(f.resource_name, f.check_id): f for f in run_checks(state(*users), SETTINGS, NOW, **kwargs)}


# -- reading the tags --------------------------------------------------------------------------
def test_full_tags_make_one_exception_per_named_check() -> None:
    reading = read_tags(
        console_user(
            **{
                "iamguard:exempt": "true",
                "iamguard:exempt-until": "2026-06-30",
                "iamguard:exempt-reason": "vendor onboarding",
                "iamguard:exempt-owner": "secops@example.com",
                "iamguard:exempt-checks": "user_console_mfa, user_mfa",
            }
        ),
        CATALOG,
    )
    assert reading.problem is None
    assert [(e.check_id, e.expires, e.owner, e.reason, e.source) for e in reading.exemptions] == [
        ("user_console_mfa", date(2026, 6, 30), "secops@example.com", "vendor onboarding", "tag"),
        ("user_mfa", date(2026, 6, 30), "secops@example.com", "vendor onboarding", "tag"),
    ]


def test_the_old_tag_alone_is_an_open_ended_exception_of_every_check() -> None:
    [exemption] = read_tags(console_user(**{"iamguard:exempt": "TRUE"}), CATALOG).exemptions
    assert (exemption.check_id, exemption.expires, exemption.owner) == ("*", None, None)
    assert exemption.reason == "tagged iamguard:exempt=true"


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ({"iamguard:exempt": "yes"}, "iamguard:exempt='yes' is neither true nor false"),
        ({"iamguard:exempt": "true", "iamguard:exempt-until": "31/12/2026"}, "not a date written YYYY-MM-DD"),
        ({"iamguard:exempt": "true", "iamguard:exempt-until": "20261231"}, "not a date written YYYY-MM-DD"),
        ({"iamguard:exempt": "true", "iamguard:exempt-until": "2026-02-30"}, "day is out of range"),
        ({"iamguard:exempt": "true", "iamguard:exempt-checks": "user_mfa,usr_console_mfa"}, "'usr_console_mfa'"),
        ({"iamguard:exempt": "true", "iamguard:exempt-checks": " , "}, "names no check id"),
        ({"iamguard:exempt-until": "2026-12-31"}, "iamguard:exempt-until set without iamguard:exempt=true"),
    ],
    ids=["flag-typo", "day-first", "no-dashes", "no-such-day", "check-typo", "no-checks", "until-without-flag"],
)
def test_a_careless_tag_exempts_nothing_and_the_finding_says_why(tags: dict[str, str], problem: str) -> None:
    reading = read_tags(console_user(**tags), CATALOG)
    assert reading.exemptions == () and reading.problem is not None and problem in reading.problem
    console = by_check(console_user(**tags))[("erin", "user_console_mfa")]
    assert console.status is Status.FAIL
    assert "not exempt:" in console.detail and problem in console.detail


def test_false_turns_the_exception_off_without_complaint() -> None:
    tags = {"iamguard:exempt": "false", "iamguard:exempt-until": "2026-12-31"}
    assert read_tags(console_user(**tags), CATALOG) == read_tags(console_user(), CATALOG)
    assert "not exempt" not in by_check(console_user(**tags))[("erin", "user_console_mfa")].detail


# -- applying them -------------------------------------------------------------------------------
def test_a_live_tag_exception_marks_only_its_checks_exempt_with_who_why_and_until() -> None:
    tags = {
        "iamguard:exempt": "true",
        "iamguard:exempt-until": TODAY.isoformat(),  # its last day: still holds
        "iamguard:exempt-owner": "secops",
        "iamguard:exempt-reason": "break-glass account",
        "iamguard:exempt-checks": "user_console_mfa",
    }
    findings = by_check(console_user(**tags))
    console, mfa = findings[("erin", "user_console_mfa")], findings[("erin", "user_mfa")]
    assert console.status is Status.EXEMPT
    assert (console.exempt_source, console.exempt_owner, console.exempt_reason, console.exempt_until) == (
        "tag",
        "secops",
        "break-glass account",
        TODAY,
    )
    assert f"owner secops; until {TODAY}" in console.detail
    assert mfa.status is Status.FAIL and mfa.exempt_source is None  # not one of its checks


def test_an_expired_tag_exception_fails_and_names_the_exception_that_ran_out() -> None:
    yesterday = TODAY - timedelta(days=1)
    tags = {
        "iamguard:exempt": "true",
        "iamguard:exempt-until": yesterday.isoformat(),
        "iamguard:exempt-owner": "ops",
        "iamguard:exempt-reason": "wait until the token arrives",
    }
    console = by_check(console_user(**tags))[("erin", "user_console_mfa")]
    assert console.status is Status.FAIL and console.exemption_expired
    assert console.exempt_until == yesterday and console.exempt_owner == "ops"
    assert f"wait until the token arrives; owner ops; expired after {yesterday}" in console.detail


def test_api_exceptions_cover_a_user_or_the_account_and_end_on_their_day() -> None:
    exemptions = [
        Exemption(check_id="user_console_mfa", resource="erin", reason="r", owner="o", expires=TODAY, source="api"),
        Exemption(check_id="*", resource="account", reason="alias later", owner="o", expires=TODAY, source="api"),
    ]
    bare_root = replace(state().root, mfa_enabled=False)
    findings = {
        (f.resource_name, f.check_id): f
        for f in run_checks(state(console_user(), root=bare_root), SETTINGS, NOW, exemptions=exemptions)
    }
    assert findings[("erin", "user_console_mfa")].status is Status.EXEMPT
    assert findings[("erin", "user_console_mfa")].exempt_source == "api"
    assert findings[("root", "root_mfa_enabled")].status is Status.EXEMPT
    tomorrow = NOW + timedelta(days=1)
    later = {
        (f.resource_name, f.check_id): f
        for f in run_checks(state(console_user(), root=bare_root), SETTINGS, tomorrow, exemptions=exemptions)
    }
    assert later[("erin", "user_console_mfa")].status is Status.FAIL
    assert later[("erin", "user_console_mfa")].exemption_expired
    assert later[("root", "root_mfa_enabled")].status is Status.FAIL


def test_the_longest_live_exception_wins() -> None:
    exemptions = [
        Exemption(check_id="*", resource="erin", reason="short", expires=TODAY, source="api"),
        Exemption(
            check_id="user_console_mfa", resource="erin", reason="long", expires=TODAY + timedelta(9), source="api"
        ),
    ]
    console = by_check(console_user(), exemptions=exemptions)[("erin", "user_console_mfa")]
    assert console.exempt_reason == "long"


OTHER = "210987654321"


def test_an_api_exception_holds_only_in_its_own_account() -> None:
    def made(resource: str, account: str | None) -> Exemption:
        check = "*" if resource == "account" else "user_console_mfa"
        return Exemption(check_id=check, resource=resource, reason="r", expires=TODAY, source="api", account_id=account)

    bare_root = replace(state().root, mfa_enabled=False)
    audited = state(console_user(), root=bare_root)  # ACCOUNT's erin and root

    def statuses(exemptions: list[Exemption]) -> tuple[Status, Status]:
        found = {
            (f.resource_name, f.check_id): f.status for f in run_checks(audited, SETTINGS, NOW, exemptions=exemptions)
        }
        return found[("erin", "user_console_mfa")], found[("root", "root_mfa_enabled")]

    # Another account's exceptions for erin and for the account say nothing about this account's
    assert statuses([made("erin", OTHER), made("account", OTHER)]) == (Status.FAIL, Status.FAIL)
    assert statuses([made("erin", ACCOUNT), made("account", ACCOUNT)]) == (Status.EXEMPT, Status.EXEMPT)
    # A single-account deployment's exception (no account) holds in its one account
    assert statuses([made("erin", None), made("account", None)]) == (Status.EXEMPT, Status.EXEMPT)


def test_the_home_accounts_exceptions_keep_their_old_key_and_another_accounts_are_qualified() -> None:
    def stored(account: str | None, home: str | None) -> dict[str, Any]:
        exemption = Exemption(
            check_id="*", resource="admin", reason="r", expires=TODAY, source="api", account_id=account
        )
        return exemption_item(exemption, home)

    assert stored(None, None)["sk"] == "*#admin" and "account_id" not in stored(None, None)
    assert stored(ACCOUNT, None)["sk"] == "*#admin"  # a single-account table: one account, today's key
    assert stored(ACCOUNT, ACCOUNT)["sk"] == "*#admin" and "account_id" not in stored(ACCOUNT, ACCOUNT)
    assert stored(OTHER, ACCOUNT)["sk"] == f"{OTHER}#*#admin" and stored(OTHER, ACCOUNT)["account_id"] == OTHER
    # An item of the old layout is the home account's; a qualified one keeps its account whatever the home
    old = stored(None, None)
    assert item_exemption(old, None).account_id is None and item_exemption(old, ACCOUNT).account_id == ACCOUNT
    assert item_exemption(stored(OTHER, ACCOUNT), None).account_id == OTHER


# -- enforcement respects live exceptions only ---------------------------------------------------
def test_enforcement_spares_a_live_exception_and_not_an_expired_one() -> None:
    live = console_user(**{"iamguard:exempt": "true", "iamguard:exempt-until": TODAY.isoformat()})
    assert plan(live, {}, SETTINGS, now=NOW) == []
    expired = plan(live, {}, SETTINGS, now=NOW + timedelta(days=1))
    assert {step.action for step in expired} == {ATTACH_GUARDRAIL, ATTACH_REQUIRED}


def test_enforcement_spares_only_the_action_whose_check_is_excepted() -> None:
    api = {"erin": [Exemption(check_id="user_console_mfa", resource="erin", reason="r", expires=TODAY, source="api")]}
    steps = plan(console_user(), {}, SETTINGS, now=NOW, exemptions=api)
    assert [step.action for step in steps] == [ATTACH_REQUIRED]  # the guardrail is excepted, the policy is not


def test_enforcement_is_given_only_the_exceptions_of_the_account_it_judges() -> None:
    def exempt(account: str) -> list[Exemption]:
        return [Exemption(check_id="*", resource="erin", reason="r", expires=TODAY, source="api", account_id=account)]

    # What run_audit hands enforce_account and the event path hands Enforcer.enforce
    assert plan(console_user(), {}, SETTINGS, now=NOW, exemptions=by_resource(exempt(ACCOUNT), ACCOUNT)) == []
    judged = plan(console_user(), {}, SETTINGS, now=NOW, exemptions=by_resource(exempt(OTHER), ACCOUNT))
    assert {step.action for step in judged} == {ATTACH_GUARDRAIL, ATTACH_REQUIRED}


# -- announcing ------------------------------------------------------------------------------------
def expired_change() -> Change:
    before = finding(status=Status.EXEMPT, exempt_source="api", exempt_owner="secops", exempt_until=TODAY)
    after = finding(
        status=Status.FAIL,
        at=NOW + timedelta(days=1),
        exempt_source="api",
        exempt_owner="secops",
        exempt_reason="vendor",
        exempt_until=TODAY,
    )
    return Change(after, before, Transition.OPENED)


@pytest.mark.parametrize(
    ("language", "headline", "ended"),
    [
        ("en", "⏰ 🟠 High · Exception expired: bob", "Exception ended after"),
        ("ko", "⏰ 🟠 [높음] 예외 기간 만료: bob", "예외 종료일"),
    ],
)
def test_an_expired_exception_is_announced_as_such(language: Language, headline: str, ended: str) -> None:
    [message] = MessageBuilder(language, clock=lambda: NOW).finding_messages([expired_change()])
    assert message.headline == headline
    assert message.attributes["transition"] == "expired"
    fields = {f.label: f.value for f in message.fields}
    assert fields[ended] == TODAY.isoformat()
    assert "secops" in fields.values() and "vendor" in fields.values()  # people's own words, in every language
    assert message.sections  # failing again: how to fix it


def test_a_reopened_finding_without_an_exception_is_just_opened() -> None:
    before = finding(status=Status.PASS)
    after = finding(status=Status.FAIL, at=NOW + timedelta(hours=1))
    [message] = MessageBuilder("en").finding_messages([Change(after, before, Transition.OPENED)])
    assert message.attributes["transition"] == "opened"


def test_the_digest_lists_exceptions_that_end_within_seven_days() -> None:
    soon = finding(user="erin", status=Status.EXEMPT, exempt_owner="secops", exempt_until=TODAY + timedelta(days=7))
    later = finding(user="frank", status=Status.EXEMPT, exempt_owner="ops", exempt_until=TODAY + timedelta(days=8))
    open_ended = finding(user="gina", status=Status.EXEMPT, exempt_source="tag")
    languages: list[tuple[Language, str]] = [
        ("en", "Exceptions that end within 7 days"),
        ("ko", "7일 이내에 끝나는 예외"),
    ]
    for language, title in languages:
        digest = MessageBuilder(language, clock=lambda: NOW).digest_message(
            [soon, later, open_ended], [], account_id="123456789012", ref="d"
        )
        assert digest is not None
        [section] = [s for s in digest.sections if s.title == title]
        assert len(section.lines) == 1 and "erin" in section.lines[0] and "secops" in section.lines[0]
        assert (TODAY + timedelta(days=7)).isoformat() in section.lines[0]


@pytest.mark.parametrize(("language", "label"), [("en", "Exception owner"), ("ko", "예외 담당자")])
def test_teams_and_email_carry_who_why_and_until(language: Language, label: str) -> None:
    [message] = MessageBuilder(language, clock=lambda: NOW).finding_messages([expired_change()])
    facts = {
        fact["title"]: fact["value"]
        for element in teams.card(message)["body"]
        if element.get("type") == "FactSet"
        for fact in element["facts"]
    }
    assert facts[label] == "secops"
    email = json.loads(sns.publish_arguments("arn:aws:sns:us-east-1:123456789012:t", message)["Message"])["email"]
    assert f"{label}" in email and "vendor" in email and TODAY.isoformat() in email


def test_the_event_path_rereads_the_stored_exceptions_at_most_once_a_minute() -> None:
    reads: list[int] = []

    class Table:
        def all(self) -> list[Exemption]:
            reads.append(1)
            return [Exemption(check_id="*", resource="erin", reason=f"read {len(reads)}", source="api")]

    now = [0.0]
    cached = CachedExemptions(cast(ExemptionStore, Table()), clock=lambda: now[0])
    assert cached.all()[0].reason == "read 1"
    now[0] = 59.9
    assert cached.all()[0].reason == "read 1" and len(reads) == 1
    now[0] = 60.0  # a PUT or DELETE through the API reaches warm event functions within the minute
    assert cached.all()[0].reason == "read 2"
