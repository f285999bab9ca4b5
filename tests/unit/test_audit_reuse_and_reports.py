"""When a kept login-profile fact may stand in for GetLoginProfile, and reports written finding by finding."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import timedelta

from iamguard.audit import report
from iamguard.audit.report import render_csv, render_json, render_table, write_csv, write_json, write_table
from iamguard.audit.run import AuditResult
from iamguard.checks import run_checks
from iamguard.domain.account import LoginProfileFacts
from iamguard.iam.inventory import LOGIN_PROFILE_FACTS_MAX_AGE, login_profile_facts_hold
from iamguard.settings import Settings

from tests.factories import NOW, creds, days_ago, state, user

CHANGED = days_ago(2)  # the report's password_last_changed
NEW = user("nina", credentials=creds(password=True, password_last_changed=CHANGED))


def facts(**fields: object) -> LoginProfileFacts:
    base = LoginProfileFacts("nina", NEW.user_id, True, CHANGED, NOW - timedelta(hours=1))
    return replace(base, **fields)


def test_facts_hold_while_the_password_is_the_one_they_were_read_for() -> None:
    assert login_profile_facts_hold(facts(), NEW, NOW)


def test_a_password_set_after_the_read_invalidates_them() -> None:
    later = NOW - timedelta(minutes=30)
    changed = replace(NEW, credentials=creds(password=True, password_last_changed=later))
    assert not login_profile_facts_hold(facts(), changed, NOW)
    # the report has whole seconds: a password set in the second of the read may be the newer one
    same_second = replace(NEW, credentials=creds(password=True, password_last_changed=NOW - timedelta(hours=1)))
    assert not login_profile_facts_hold(facts(), same_second, NOW)


def test_a_user_recreated_under_the_same_name_starts_afresh() -> None:
    assert not login_profile_facts_hold(facts(user_id="AIDAOTHER"), NEW, NOW)


def test_facts_expire_with_the_report_age_and_never_come_from_the_future() -> None:
    assert login_profile_facts_hold(facts(observed_at=NOW - LOGIN_PROFILE_FACTS_MAX_AGE), NEW, NOW)
    too_old = NOW - LOGIN_PROFILE_FACTS_MAX_AGE - timedelta(seconds=1)
    assert not login_profile_facts_hold(facts(observed_at=too_old), NEW, NOW)
    assert not login_profile_facts_hold(facts(observed_at=NOW + timedelta(minutes=1)), NEW, NOW)


def test_without_a_report_row_nothing_is_reused() -> None:
    assert not login_profile_facts_hold(facts(), replace(NEW, credentials=None), NOW)


class Writes(io.StringIO):
    """A stream that remembers how many writes it took and its largest one."""

    largest = 0
    writes = 0

    def write(self, text: str) -> int:
        self.largest = max(self.largest, len(text))
        self.writes += 1
        return super().write(text)


def _audit(users: int) -> AuditResult:
    account = state(*(user(f"user{n:04d}") for n in range(users)))
    findings = run_checks(account, Settings.from_env({}), NOW)
    return AuditResult(account_id="123456789012", generated_at=NOW, findings=findings, errors={}, api_calls=9)


def test_reports_are_written_finding_by_finding() -> None:
    result = _audit(300)
    for write in (
        lambda out: write_csv(out, result.findings),
        lambda out: write_table(out, result, result.findings),
    ):
        out = Writes()
        write(out)
        # the report is thousands of lines; no write holds more than one finding
        assert len(out.getvalue()) > 100 * out.largest
        assert out.largest < 4096
    # JSON goes out a bounded batch of findings at a time: memory stays flat however many users there are
    out = Writes()
    write_json(out, result, result.findings)
    assert out.writes >= len(result.findings) // report._LINES_PER_WRITE
    assert out.largest < report._LINES_PER_WRITE * 4096


def test_the_written_reports_are_complete() -> None:
    result = _audit(3)
    data = json.loads(render_json(result, result.findings))
    assert data["summary"] == result.summary()
    assert len(data["findings"]) == len(result.findings)
    assert data["findings"][0]["status"] == "FAIL" and "remediation" in data["findings"][0]
    rows = list(csv.DictReader(io.StringIO(render_csv(result.findings))))
    assert len(rows) == len(result.findings) and set(rows[0]) >= {"check_id", "status", "resource_name", "detail"}
    table = render_table(result, result.findings).splitlines()
    assert table[0].split() == ["STATUS", "SEVERITY", "CHECK", "RESOURCE", "DETAIL"]
    assert len(table) == len(result.findings) + 3 and table[-1].startswith("Account 123456789012: ")
    empty = json.loads(render_json(result, []))
    assert empty["findings"] == []
