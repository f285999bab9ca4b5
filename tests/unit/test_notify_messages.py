"""What people read: Block Kit payloads, e-mail text and subjects, in English and Korean."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from iamguard.domain.alerts import Action, Detection
from iamguard.domain.findings import Change, Severity, Status, Transition
from iamguard.domain.messages import MessageKind
from iamguard.notify import slack_blocks
from iamguard.notify.base import DeliveryError
from iamguard.notify.render import MessageBuilder
from iamguard.notify.slack_blocks import FIELD_TEXT_LIMIT, MESSAGE_BLOCK_LIMIT, payload
from iamguard.notify.sns import publish_arguments

from tests.integration.notify_support import ACCOUNT, NOW, alert, finding, opened

EN = MessageBuilder("en", clock=lambda: NOW)
KO = MessageBuilder("ko", clock=lambda: NOW)


def blocks_of(kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in body["blocks"] if b["type"] == kind]


def fields(body: dict[str, Any]) -> dict[str, str]:
    cells = [cell["text"] for block in blocks_of("section", body) for cell in block.get("fields", [])]
    return {label.strip("*"): value for label, _, value in (cell.partition("\n") for cell in cells)}


def sections(body: dict[str, Any]) -> dict[str, str]:
    texts = [b["text"]["text"] for b in blocks_of("section", body) if "text" in b]
    return {text.partition("\n")[0].strip("*"): text.partition("\n")[2] for text in texts[1:]}


def test_an_opened_finding_says_what_who_why_and_how_to_fix() -> None:
    f = finding(
        "user_admin_without_mfa",
        "wonjun_admin",
        severity=Severity.CRITICAL,
        detail="User wonjun_admin has full administrator access but no MFA device.",
    )
    [message] = EN.finding_messages([opened(f)])
    body = payload(message)

    assert blocks_of("header", body)[0]["text"]["text"] == "🔴 Critical · New finding: wonjun_admin"
    assert "*User wonjun_admin has full administrator access but no MFA device.*" in json.dumps(body)
    assert fields(body) == {
        "Severity": "Critical",
        "Resource": "`wonjun_admin`",
        "Account": f"`{ACCOUNT}`",
        "Check": "No administrator works without MFA",
        "First seen": "2026-06-01 12:00 UTC",
        "Standards": "Prowler iam_administrator_access_with_mfa",
    }
    parts = sections(body)
    assert parts["Why it matters"].startswith("• An administrator without MFA")
    assert parts["How to fix (console)"].splitlines()[0] == (
        "1. Open IAM &gt; Users &gt; wonjun_admin &gt; Security credentials &gt; Multi-factor authentication (MFA) "
        "&gt; Assign MFA device."
    )
    # the command names the user, and < > are escaped so Slack does not read <arn> as a link
    assert parts["CLI"].startswith("```aws iam create-virtual-mfa-device --virtual-mfa-device-name wonjun_admin")
    assert "--serial-number &lt;arn&gt;" in parts["CLI"]
    assert body["text"].startswith("🔴 Critical · New finding: wonjun_admin — ")
    assert blocks_of("context", body)[0]["elements"][-1]["text"] == (
        f"iamguard · account {ACCOUNT} · user_admin_without_mfa"
    )
    assert message.attributes["check_id"] == "user_admin_without_mfa"
    assert message.attributes["transition"] == "opened"


def test_the_korean_message_is_korean_from_headline_to_fix_steps() -> None:
    f = finding("user_admin_without_mfa", "wonjun_admin", severity=Severity.CRITICAL)
    [message] = KO.finding_messages([opened(f)])
    body = payload(message)
    text = json.dumps(body, ensure_ascii=False)

    assert blocks_of("header", body)[0]["text"]["text"] == "🔴 [심각] 새 보안 문제: wonjun_admin"
    assert "*사용자 wonjun_admin에게 전체 관리자 권한이 있지만 MFA 장치가 없습니다.*" in text
    assert fields(body)["심각도"] == "심각"
    assert fields(body)["점검 항목"] == "MFA 없이 일하는 관리자가 없음"
    parts = sections(body)
    assert set(parts) == {"왜 중요한가요", "해결 방법 (콘솔)", "CLI 명령"}
    assert "IAM &gt; 사용자 &gt; wonjun_admin &gt; 보안 자격 증명" in parts["해결 방법 (콘솔)"]
    assert "(또는 `iamguard mfa enroll wonjun_admin`)" in parts["CLI 명령"]
    # no English prose leaks in: not the check's sentence, risk or the finding's (English) detail
    for english in ("Why it matters", "has full administrator access", "An administrator without MFA", "Detail"):
        assert english not in text


def test_a_resolved_finding_says_so_without_fix_steps() -> None:
    before = finding(at=NOW)
    after = finding(
        status=Status.PASS, at=NOW + timedelta(hours=5), detail="User bob has a console password and an MFA device."
    )
    [message] = EN.finding_messages([Change(after, before, Transition.RESOLVED)])
    body = payload(message)
    assert blocks_of("header", body)[0]["text"]["text"] == "✅ Resolved: bob"
    assert fields(body)["Open since"] == "2026-06-01 12:00 UTC"
    assert sections(body) == {}
    assert message.attributes["transition"] == "resolved"
    [korean] = KO.finding_messages([Change(after, before, Transition.RESOLVED)])
    assert korean.headline == "✅ 해결됨: bob"


def test_resolved_to_exempt_or_unknown_is_not_called_fixed() -> None:
    before = finding()
    exempt = finding(status=Status.EXEMPT, at=NOW + timedelta(hours=1))
    error = finding(status=Status.ERROR, at=NOW + timedelta(hours=1), detail="Could not be evaluated — report: busy.")
    [m1] = EN.finding_messages([Change(exempt, before, Transition.RESOLVED)])
    [m2] = EN.finding_messages([Change(error, before, Transition.RESOLVED)])
    assert m1.headline == "⚪ Now exempt: bob"
    assert m2.headline == "⚠️ Could not be checked: bob"
    assert "Resolved" not in m1.headline + m2.headline


def test_escalation_is_its_own_message_with_its_own_key() -> None:
    high = finding(severity=Severity.HIGH)
    critical = finding(severity=Severity.CRITICAL, at=NOW + timedelta(hours=1))
    [first] = EN.finding_messages([opened(high)])
    [second] = EN.finding_messages([Change(critical, high, Transition.ESCALATED)])
    assert second.headline == "🔴 Escalated to Critical: bob"
    assert first.key != second.key


def test_one_check_failing_for_many_users_is_one_message_listing_them() -> None:
    changes = [
        opened(
            finding("user_mfa", f"user{i:02d}", severity=Severity.LOW, detail=f"User user{i:02d} has no MFA device.")
        )
        for i in range(12)
    ]
    [message] = EN.finding_messages(changes)
    assert message.headline == "🔵 Low · 12 new findings: Every IAM user has MFA"
    resources = sections(payload(message))["Affected resources"].splitlines()
    assert resources[0] == "• user00 — User user00 has no MFA device."
    assert resources[-1] == "• …and 2 more"
    assert len(message.findings) == 12
    # the fix steps name no user; they show where the user goes
    assert "Users &gt; &lt;user&gt; &gt; Security credentials" in sections(payload(message))["How to fix (console)"]


def test_findings_are_grouped_by_check_and_outcome_and_unchanged_ones_ignored() -> None:
    unchanged = Change(
        finding("user_mfa", "carol", severity=Severity.LOW), finding("user_mfa", "carol"), Transition.UNCHANGED
    )
    messages = EN.finding_messages(
        [
            opened(finding(user="a")),
            opened(finding(user="b")),
            opened(finding("user_mfa", "a", severity=Severity.LOW)),
            unchanged,
        ]
    )
    assert [(m.attributes["check_id"], m.attributes["count"]) for m in messages] == [
        ("user_console_mfa", "2"),
        ("user_mfa", "1"),
    ]


def test_an_alert_names_the_actor_the_source_and_the_response_steps() -> None:
    message = EN.alert_message(alert())
    body = payload(message)
    assert message.kind is MessageKind.ALERT
    assert blocks_of("header", body)[0]["text"]["text"] == "🔴 Critical · Root signed in to the console"
    assert fields(body)["Who"] == "root"
    assert fields(body)["Source IP"] == "`203.0.113.7`"
    assert fields(body)["Event"] == "`ConsoleLogin`"
    assert fields(body)["Detail"] == "The root user signed in to the console without MFA."
    assert "change the root password" in sections(body)["How to fix (console)"]
    assert message.key == "alert:123456789012#0f7b6c1e-1111-2222-3333-444455556666#root_console_sign_in#root"

    korean = payload(KO.alert_message(alert(detection=Detection.MFA_REMOVED, resource_name="alice", actor="admin-bob")))
    assert blocks_of("header", korean)[0]["text"]["text"] == "🔴 [심각] MFA 장치 제거"
    assert fields(korean)["수행자"] == "admin-bob"
    assert "IAM &gt; 사용자 &gt; alice &gt; 보안 자격 증명" in sections(korean)["해결 방법 (콘솔)"]
    assert "signed in" not in json.dumps(korean)


def test_an_enforcement_action_says_what_was_done_and_how_to_undo_it() -> None:
    policy = f"arn:aws:iam::{ACCOUNT}:policy/iamguard-mfa-guardrail"
    done = Action(
        action="attach_guardrail_policy",
        user_name="bob",
        policy_arn=policy,
        performed=True,
        reason="console password without MFA",
        event_id="e-1",
        at=NOW,
    )
    message = EN.action_message(done, ACCOUNT)
    body = payload(message)
    assert message.headline == "🛡️ Enforced: MFA guardrail policy on bob"
    assert message.severity is Severity.HIGH
    assert sections(body)["Undo with the CLI"] == (
        f"```aws iam detach-user-policy --user-name bob --policy-arn {policy}```"
    )
    assert "remove iamguard-mfa-guardrail" in sections(body)["How to undo (console)"]

    monitor = EN.action_message(done.model_copy(update={"performed": False}), ACCOUNT)
    assert monitor.headline.startswith("👀 Would enforce (monitor mode)")
    assert monitor.severity is Severity.MEDIUM and not monitor.sections
    assert monitor.key != message.key


def test_the_digest_lists_open_serious_findings_and_counts_the_rest() -> None:
    findings = [
        finding("user_admin_without_mfa", "wonjun_admin", severity=Severity.CRITICAL),
        finding("user_console_mfa", "dave", severity=Severity.HIGH),
        finding("user_mfa", "dave", severity=Severity.LOW),
        finding("user_mfa", "erin", status=Status.PASS, severity=Severity.LOW),
    ]
    held = EN.finding_messages([opened(finding("password_policy", "example", severity=Severity.MEDIUM))])
    message = EN.digest_message(findings, held, account_id=ACCOUNT, ref="2026-06-01T00:00:00Z")
    assert message is not None
    parts = sections(payload(message))
    assert message.headline == "📋 iamguard digest: 2 open critical/high findings"
    assert parts["Open critical and high findings"].splitlines() == [
        "• 🔴 wonjun_admin — No administrator works without MFA (`user_admin_without_mfa`), open since 2026-06-01",
        "• 🟠 dave — Every user with a console password has MFA (`user_console_mfa`), open since 2026-06-01",
    ]
    assert parts["Also since the last digest"] == "• 🟡 Medium · New finding: example"
    assert parts["All open findings by severity"].splitlines() == ["• Critical: 1", "• High: 1", "• Low: 1"]
    assert EN.digest_message([findings[3]], [], account_id=ACCOUNT, ref="x") is None


def test_slack_limits_hold_for_huge_inputs() -> None:
    long = "x" * 5000
    f = finding(user="u" * 200, detail=long)
    [message] = EN.finding_messages([opened(f)])
    body = payload(message)
    # Slack's numbers, written out: the test holds the library's limits to what Slack documents.
    assert len(blocks_of("header", body)[0]["text"]["text"]) == 150
    assert len(body["blocks"]) <= MESSAGE_BLOCK_LIMIT == 50
    for block in blocks_of("section", body):
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert len(block.get("fields", [])) <= 10
        for cell in block.get("fields", []):
            assert len(cell["text"]) <= FIELD_TEXT_LIMIT == 2000  # Slack answers invalid_blocks above it
    assert fields(body)["Detail"].endswith("x…")


def test_many_fields_are_split_over_sections_of_ten_and_notes_are_capped() -> None:
    [message] = EN.finding_messages([opened(finding())])
    many = message.model_copy(
        update={"fields": message.fields[:1] * 23, "notes": tuple(f"note {n}" for n in range(12))}
    )
    body = payload(many)
    assert [len(b["fields"]) for b in blocks_of("section", body) if "fields" in b] == [10, 10, 3]
    [context] = blocks_of("context", body)  # ten elements at most: the notes crowd out the footer
    assert [e["text"] for e in context["elements"]] == [f"note {n}" for n in range(10)]


def test_slack_sdk_checks_the_limits_and_a_block_over_one_fails_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a text not cut, slack_sdk's validation stops it before any request, as a permanent failure."""
    [message] = EN.finding_messages([opened(finding(detail="x" * 5000))])
    monkeypatch.setattr(slack_blocks, "cut", lambda text, limit: text)
    with pytest.raises(DeliveryError, match="breaks a Block Kit limit") as failure:
        payload(message.model_copy(update={"summary": "y" * 3001}))
    assert failure.value.permanent


def test_the_email_has_a_short_subject_a_readable_body_and_machine_attributes() -> None:
    f = finding("user_admin_without_mfa", "a-very-long-user-name-" * 4, severity=Severity.CRITICAL)
    [message] = EN.finding_messages([opened(f)])
    request = publish_arguments("arn:aws:sns:us-east-1:123456789012:alerts", message)
    assert len(request["Subject"]) < 100 and "\n" not in request["Subject"]
    assert request["Subject"].startswith("[iamguard] Critical · New finding: a-very-long-user-name-")
    structured = json.loads(request["Message"])
    assert structured["email"].splitlines()[0] == message.headline
    assert "How to fix (console)" in structured["email"] and "  1. Open IAM > Users > " in structured["email"]
    machine = json.loads(structured["sqs"])
    assert machine["attributes"]["check_id"] == "user_admin_without_mfa"
    assert machine["findings"][0]["resource_arn"] == f.resource_arn
    assert request["MessageAttributes"]["iamguard.severity"] == {"DataType": "String", "StringValue": "critical"}
    assert request["MessageAttributes"]["iamguard.language"]["StringValue"] == "en"
    assert len(request["MessageAttributes"]) <= 10
    korean = publish_arguments("arn:aws:sns:us-east-1:123456789012:alerts", KO.finding_messages([opened(f)])[0])
    assert korean["Subject"].startswith("[iamguard] [심각] 새 보안 문제")


def test_a_withheld_enforcement_says_why_and_what_to_do_instead() -> None:
    policy = f"arn:aws:iam::{ACCOUNT}:policy/iamguard-mfa-guardrail"
    deferred = Action(
        action="attach_guardrail_policy",
        user_name="bob",
        policy_arn=policy,
        performed=False,
        reason="grace period",
        event_id="e-2",
        at=NOW,
        withheld="grace_period",
        due_at=NOW + timedelta(hours=24),
    )
    due = f"{NOW + timedelta(hours=24):%Y-%m-%d %H:%M} UTC"
    english = EN.action_message(deferred, ACCOUNT)
    assert english.headline == "✋ Not enforced: MFA guardrail policy on bob"
    assert english.summary == (
        f"User bob has a console password but no MFA device. iamguard attaches the MFA guardrail policy at {due} "
        "unless the user enables MFA before then."
    )
    body = payload(english)
    assert "Ask bob to enable MFA" in sections(body)["How to fix (console)"]
    assert f"--serial-number arn:aws:iam::{ACCOUNT}:mfa/bob" in sections(body)["CLI"]
    korean = KO.action_message(deferred, ACCOUNT)
    assert korean.headline == "✋ 조치 보류: 사용자 bob에게 MFA 가드레일 정책 적용"
    assert due in korean.summary and "MFA 가드레일 정책을 연결합니다" in korean.summary
    # An administrator's detach names who and when; the message differs from the deferral's
    detached = deferred.model_copy(
        update={"withheld": "admin_detached", "due_at": None, "detached_by": "IAM user alice", "detached_at": NOW}
    )
    message = EN.action_message(detached, ACCOUNT)
    assert message.summary.startswith(
        f"IAM user alice detached the MFA guardrail policy from user bob ({NOW:%Y-%m-%d %H:%M} UTC)"
    )
    assert f"aws iam attach-user-policy --user-name bob --policy-arn {policy}" in sections(payload(message))["CLI"]
    assert message.key != english.key


def test_slack_sdk_is_imported_on_the_first_send_not_at_cold_start() -> None:
    """Building the dispatcher (every event function's cold start) must not pay slack_sdk's import."""
    probe = (
        "import sys\n"
        "import iamguard.notify.factory, iamguard.notify.slack, iamguard.notify.render\n"
        "print(sorted(m for m in sys.modules if m.startswith('slack_sdk')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
