"""The compliance catalogs against their sources, and a framework's verdict from findings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from iamguard.audit.compliance_report import render_compliance_table
from iamguard.checks import CATALOG, run_checks
from iamguard.checks.compliance import (
    FRAMEWORK_IDS,
    ControlStatus,
    Coverage,
    UnknownFramework,
    evaluate,
    load_framework,
)
from iamguard.domain.account import PasswordPolicy
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.settings import Settings

from tests.factories import NOW, finding, state

SOURCES = Path(__file__).parent / "compliance_sources"
PACKAGE_DATA = Path(__file__).resolve().parents[2] / "layers/iamguard/iamguard/checks/compliance/frameworks"
# framework → (the source file copied from Prowler, which of its requirements are the framework's identity controls)
SOURCE_OF = {
    "cis-3.0": ("cis_3.0_aws", lambda r: r["section"].startswith("1 Identity")),
    "cis-5.0": ("cis_5.0_aws", lambda r: r["section"].startswith("1 Identity")),
    "cis-7.0": ("cis_7.0_aws", lambda r: r["section"].startswith("2 Identity")),
    "fsbp": ("aws_foundational_security_best_practices_aws", lambda r: r["id"].startswith("IAM.")),
    "isms-p": ("kisa_isms_p_2023_korean_aws", lambda r: r["id"].startswith("2.5.")),
}
COUNTS = {"cis-3.0": 22, "cis-5.0": 21, "cis-7.0": 26, "fsbp": 14, "isms-p": 6}


def source(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SOURCES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def test_every_framework_id_has_its_catalog_and_nothing_else_is_shipped() -> None:
    assert sorted(p.stem for p in PACKAGE_DATA.glob("*.json")) == sorted(FRAMEWORK_IDS)
    for framework_id in FRAMEWORK_IDS:
        framework = load_framework(framework_id)
        assert framework.id == framework_id
        assert framework.sources and all(s.url.startswith("https://") for s in framework.sources)
        assert len(framework.controls) == COUNTS[framework_id]
        assert len({c.id for c in framework.controls}) == len(framework.controls)
    with pytest.raises(UnknownFramework, match=re.escape("cis-3.0, cis-5.0, cis-7.0, fsbp, isms-p")):
        load_framework("cis-9.9")


@pytest.mark.parametrize("framework_id", FRAMEWORK_IDS)
def test_every_check_is_mapped_or_deliberately_unmapped(framework_id: str) -> None:
    framework = load_framework(framework_id)
    mapped, unmapped = framework.mapped_checks, set(framework.unmapped_checks)
    assert mapped | unmapped == set(CATALOG), "map the new check or say why it is unmapped"
    assert mapped & unmapped == set(), "a check is both mapped and unmapped"
    assert all(len(reason) > 30 for reason in framework.unmapped_checks.values())


@pytest.mark.parametrize("framework_id", FRAMEWORK_IDS)
def test_controls_are_the_sources_controls_none_invented(framework_id: str) -> None:
    name, wanted = SOURCE_OF[framework_id]
    requirements = [r for r in source(name)["requirements"] if wanted(r)]
    framework = load_framework(framework_id)
    ours = {c.source_id or c.id: c for c in framework.controls if c.source_id is None}
    corrected = [c for c in framework.controls if c.source_id is not None]
    # The only correction: Prowler's CIS v5.0 file writes 1.10 as a second "1.1" (Steampipe's cis_v500 has 1.10).
    assert [(c.source_id, c.id) for c in corrected] == ([("1.1", "1.10")] if framework_id == "cis-5.0" else [])
    from_source: dict[str, str] = {}
    for r in requirements:
        if r["id"] in from_source:  # the duplicate id
            assert framework_id == "cis-5.0" and r["id"] == "1.1"
            assert corrected[0].title == r["title"]
            continue
        from_source[r["id"]] = r["title"]
    assert {cid: c.title for cid, c in ours.items()} == from_source
    assert len(framework.controls) == len(requirements)


def test_fsbp_ids_exist_in_the_whole_source_list_and_isms_p_titles_match_both_languages() -> None:
    all_ids = set(source("aws_foundational_security_best_practices_aws")["all_ids"])
    assert {c.id for c in load_framework("fsbp").controls} <= all_ids
    english = {r["id"]: r["title"] for r in source("kisa_isms_p_2023_aws")["requirements"]}
    for control in load_framework("isms-p").controls:
        assert english[control.id] == control.title_en
        assert re.search("[\uac00-\ud7a3]", control.title), control.title


def test_the_readme_cis_numbers_are_the_v3_catalogs() -> None:
    """Each check's declared CIS (v3.0) numbers are controls the cis-3.0 catalog maps to that check."""
    framework = load_framework("cis-3.0")
    mapped = {(c.id, check) for c in framework.controls for check in c.check_ids}
    declared = {
        (number.strip(), check.id)
        for check in CATALOG.values()
        if check.standards.cis
        for number in check.standards.cis.split(",")
    }
    assert declared and declared <= mapped


def _password_detail(policy: PasswordPolicy | None) -> Finding:
    findings = run_checks(state(password_policy=policy), Settings(), NOW, only=["password_policy"])
    (result,) = findings
    return result


def test_password_rules_count_against_their_own_control_only() -> None:
    short = _password_detail(PasswordPolicy(minimum_length=8, password_reuse_prevention=24))
    no_reuse = _password_detail(PasswordPolicy(minimum_length=14, password_reuse_prevention=None))
    missing = _password_detail(None)
    assert {short.status, no_reuse.status, missing.status} == {Status.FAIL}

    def verdicts(f: Finding) -> tuple[ControlStatus, ControlStatus]:
        controls = {c.id: c.status for c in evaluate("cis-5.0", [f]).controls}
        return controls["1.7"], controls["1.8"]  # length, reuse

    assert verdicts(short) == (ControlStatus.FAIL, ControlStatus.PASS)
    assert verdicts(no_reuse) == (ControlStatus.PASS, ControlStatus.FAIL)
    assert verdicts(missing) == (ControlStatus.FAIL, ControlStatus.FAIL)


def test_a_control_fails_with_its_failing_resources_and_passes_otherwise() -> None:
    findings = [
        finding("root_mfa_enabled", user=None, status=Status.PASS, severity=Severity.CRITICAL),
        finding("user_console_mfa", user="bob", detail="User bob has a console password but no MFA device."),
        finding("user_console_mfa", user="alice", status=Status.PASS),
        finding("user_console_mfa", user="erin", status=Status.EXEMPT, detail="… (exempt: tagged)"),
    ]
    report = evaluate("cis-5.0", findings)
    controls = {c.id: c for c in report.controls}
    assert controls["1.4"].status is ControlStatus.PASS and controls["1.4"].resources == ()
    console = controls["1.9"]
    assert console.status is ControlStatus.FAIL and console.passed == 1
    assert [(r.resource_name, r.status) for r in console.resources] == [("bob", Status.FAIL), ("erin", Status.EXEMPT)]
    assert console.resources[0].resource_arn == "arn:aws:iam::123456789012:user/bob"
    assert controls["1.1"].status is ControlStatus.MANUAL and controls["1.1"].coverage is Coverage.NONE
    # A user check without findings after an audit: no users to fail. An account-wide one: no data.
    assert controls["1.11"].status is ControlStatus.PASS
    assert controls["1.3"].status is ControlStatus.NO_DATA
    assert report.accounts == ("123456789012",)
    assert report.totals.model_dump() == {
        "controls": 21,
        "passed": sum(c.status is ControlStatus.PASS for c in report.controls),
        "failed": 1,
        "exempt": 0,
        "error": 0,
        "no_data": sum(c.status is ControlStatus.NO_DATA for c in report.controls),
        "manual": 9,
    }


def test_exempt_only_and_unevaluated_controls_say_so() -> None:
    exempt = evaluate("fsbp", [finding("user_mfa", user="erin", status=Status.EXEMPT)])
    assert {c.id: c.status for c in exempt.controls}["IAM.19"] is ControlStatus.EXEMPT
    error = evaluate("fsbp", [finding("user_mfa", user="bob", status=Status.ERROR, detail="Could not be evaluated")])
    assert {c.id: c.status for c in error.controls}["IAM.19"] is ControlStatus.ERROR
    nothing = evaluate("fsbp", [])
    assert {c.status for c in nothing.controls} == {ControlStatus.NO_DATA, ControlStatus.MANUAL}


def test_the_table_speaks_the_readers_language_and_titles_stay_in_the_frameworks() -> None:
    findings = [
        finding("user_console_mfa", user="bob", detail="User bob has a console password but no MFA device."),
        finding("password_policy", user=None, status=Status.PASS),
    ]
    english = render_compliance_table(evaluate("cis-5.0", findings), "en")
    assert "21 controls: " in english and "9 not covered by iamguard (manual)" in english
    assert re.search(r"^\[failed\] +1\.9 +Ensure multi-factor authentication", english, re.M)
    assert "bob (user_console_mfa): User bob has a console password but no MFA device." in english
    assert re.search(r"^\[manual\] +1\.1 +Maintain current contact details$", english, re.M)
    korean = render_compliance_table(evaluate("isms-p", findings, "ko"), "ko")
    assert re.search(r"^\[실패\] +2\.5\.3 +사용자 인증$", korean, re.M)
    assert "대상 bob (user_console_mfa): 사용자 bob에게 콘솔 비밀번호는 있지만 MFA 장치가 없습니다." in korean
    assert re.search(r"^\[수동 확인\] +2\.5\.2 +사용자 식별$", korean, re.M)
    assert "일부만 점검: iamguard는" in korean
    fsbp = render_compliance_table(evaluate("fsbp", findings, "ko"), "ko")
    iam8 = re.search(r"^\[수동 확인\] +IAM\.8 .*?\n(.*?)\n\[", fsbp, re.M | re.S)
    assert iam8 is not None and "IAM.8은 90일 기준입니다." in iam8.group(1)
    # English readers get the same Korean control titles; our notes in English.
    assert "2.5.3  사용자 인증" in render_compliance_table(evaluate("isms-p", findings), "en")


DOC = Path(__file__).resolve().parents[2] / "docs" / "compliance.md"


def mapping_tables() -> str:
    """docs/compliance.md's mapping section, from the catalogs (so the page cannot drift from them)."""
    out: list[str] = []
    for framework_id in FRAMEWORK_IDS:
        framework = load_framework(framework_id)
        out += [f"### `{framework.id}`: {framework.name} {framework.version}", "", framework.scope, ""]
        out += [f"- Source: [{s.title}]({s.url}) ({s.version})" for s in framework.sources]
        out += ["", "| control | title | iamguard checks | coverage |", "|---|---|---|---|"]
        for control in framework.controls:
            title = control.title + (f" ({control.title_en})" if control.title_en else "")
            checks = ", ".join(
                f"`{e.check}`"
                + (f" (failing when the detail names {' or '.join(e.failing_when)})" if e.failing_when else "")
                for e in control.evidence
            )
            out.append(f"| {control.id} | {title.replace('|', '/')} | {checks or '-'} | {control.coverage.value} |")
        out += ["", "Checks that evidence no control of this framework:", ""]
        out += [f"- `{check}`: {reason}" for check, reason in sorted(framework.unmapped_checks.items())]
        out.append("")
    return "\n".join(out)


def test_the_docs_mapping_tables_are_the_catalogs() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = "<!-- mapping:start -->\n", "<!-- mapping:end -->"
    assert text[text.index(start) + len(start) : text.index(end)] == mapping_tables(), (
        "regenerate the section between the markers from mapping_tables() (sys.stdout.write, no extra newline)"
    )
