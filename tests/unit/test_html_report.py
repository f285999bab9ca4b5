"""The HTML report: what it shows, that it is self-contained, and that account data never becomes markup."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from iamguard.api.models import SeverityCounts, TrendPoint
from iamguard.audit.run import AuditResult
from iamguard.checks.compliance import FRAMEWORK_IDS, evaluate
from iamguard.domain.findings import Finding, Severity, Status
from iamguard_cli.report import render_html
from iamguard_cli.report.view import TrendChart, build_view

from tests.factories import ACCOUNT, NOW, finding

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of elements by id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in wanted.items())]


def audit(findings: list[Finding], errors: dict[str, str] | None = None) -> AuditResult:
    return AuditResult(ACCOUNT, NOW, findings, errors or {}, api_calls=12)


def point(days_ago: int, critical: int = 0, high: int = 0, low: int = 0) -> TrendPoint:
    counts = SeverityCounts(critical=critical, high=high, medium=0, low=low, informational=0)
    return TrendPoint(
        at=NOW - timedelta(days=days_ago), open=critical + high + low, failed_by_severity=counts, errors=0
    )


def sample() -> list[Finding]:
    return [
        finding("root_mfa_enabled", user=None, severity=Severity.CRITICAL),
        finding("user_console_mfa", user="bob"),
        finding("user_mfa", user="bob", severity=Severity.LOW),
        finding("user_mfa", user="alice", status=Status.PASS, severity=Severity.LOW),
        finding("user_console_mfa", user="erin", status=Status.EXEMPT, detail="User erin ... (exempt: tagged)"),
        finding("user_access_keys_rotated", user="carol", status=Status.ERROR, severity=Severity.MEDIUM),
    ]


def render(findings: list[Finding], trend: list[TrendPoint] | None = None, **kw: Any) -> str:
    result = audit(findings, **kw)
    return render_html(build_view(result, trend or [], history="test history"))


def test_counts_verdict_and_groups_match_the_audit_summary() -> None:
    findings = sample()
    html = render(findings)
    page = Page(html)
    summary = audit(findings).summary()
    for status, count in summary["by_status"].items():
        assert re.search(rf'data-status="{status}">{count}</span>', html), status
    assert summary["by_status"] == {"PASS": 1, "FAIL": 3, "EXEMPT": 1, "ERROR": 1}
    assert page.all("section", id="verdict")[0]["data-verdict"] == "fail"
    assert "3 open findings (1 critical, 1 high, 1 low)." in html
    bars = {a["data-severity"]: a["data-count"] for a in page.all("rect", **{"class": "bar"})}
    assert bars == {"critical": "1", "high": "1", "medium": "0", "low": "1", "informational": "0"}
    # by user: bob worst (two failures), carol ERROR, erin EXEMPT, alice PASS
    users = [a["data-status"] for a in page.all("tr", **{"class": "user"})]
    assert users == ["FAIL", "ERROR", "EXEMPT", "PASS"]
    # every finding that did not pass is listed with its check's risk and the fix for its resource
    assert [a["data-check"] for a in page.all("details", **{"class": "finding"})] == [
        "root_mfa_enabled",
        "user_console_mfa",
        "user_mfa",
        "user_access_keys_rotated",
        "user_console_mfa",
    ]
    assert "--virtual-mfa-device-name bob" in html
    assert "Open IAM &gt; Users &gt; bob &gt; Security credentials" in html


def test_a_clean_account_passes_and_errors_are_named() -> None:
    clean = [finding("user_mfa", user="alice", status=Status.PASS, severity=Severity.LOW)]
    assert 'data-verdict="pass"' in render(clean)
    html = render(clean, errors={"credential_report": "AccessDenied"})
    assert 'data-verdict="error"' in html and "credential_report" in html and "AccessDenied" in html


def test_hostile_names_and_details_are_text_never_markup() -> None:
    # Given names and details an attacker could have chosen (stored findings, future data sources)
    findings = [
        finding("user_console_mfa", user=HOSTILE, detail=f"User {HOSTILE} has no MFA."),
        finding("user_mfa", user='x" onmouseover="window.pwned=3', severity=Severity.LOW),
    ]
    html = render(findings, errors={HOSTILE: HOSTILE})
    page = Page(html)
    # Then no element, attribute or handler comes from them ...
    assert page.all("script") == [] and page.all("img") == []
    assert not [a for _, a in page.tags for name in a if name.startswith("on")]
    assert "<script>window" not in html and "<img src=x" not in html
    # ... and they are shown as the text they are
    assert HOSTILE in "".join(page.text)
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


def test_the_page_is_self_contained() -> None:
    html = render(sample(), [point(2, high=2), point(1, critical=1, high=1)])
    page = Page(html)
    assert page.all("script") == [] and page.all("iframe") == []
    assert page.all("link") == [{"rel": "icon", "href": "data:,"}]  # no favicon request either
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href", "action", "srcset"):
            assert name not in attrs or tag == "link", (tag, attrs)
    assert "url(" not in html and "@import" not in html and "http://" not in html and "https://" not in html
    csp = page.all("meta", http_equiv="Content-Security-Policy")[0]["content"]
    assert csp is not None and "default-src 'none'" in csp and "script-src" not in csp


def test_trend_chart_has_one_point_per_audit_run_in_time_order() -> None:
    trend = [point(10, high=4), point(5, high=2, low=1), point(0, critical=1)]
    page = Page(render(sample(), trend))
    circles = page.all("circle", **{"class": "point"})
    assert [c["data-open"] for c in circles] == ["4", "3", "1"]
    xs = [float(str(c["cx"])) for c in circles]
    ys = [float(str(c["cy"])) for c in circles]
    assert xs == sorted(xs) and xs[0] == TrendChart.LEFT and xs[-1] == TrendChart.WIDTH - TrendChart.RIGHT
    assert ys[0] < ys[1] < ys[2]  # more open findings are drawn higher
    assert xs[1] == pytest.approx(TrendChart.LEFT + (xs[-1] - xs[0]) / 2, abs=0.1)  # day 5 of 10 is halfway
    polyline = page.all("polyline", **{"class": "line"})[0]["points"]
    assert polyline is not None and len(polyline.split()) == 3
    assert page.all("svg", id="trend-chart")[0]["data-points"] == "3"


def test_one_run_is_a_centered_point_and_no_run_says_how_to_keep_history() -> None:
    single = Page(render(sample(), [point(0, low=2)]))
    (circle,) = single.all("circle", **{"class": "point"})
    assert float(str(circle["cx"])) == TrendChart.LEFT + (TrendChart.WIDTH - TrendChart.LEFT - TrendChart.RIGHT) / 2
    html = render(sample(), [])
    assert 'id="trend-empty"' in html and "iamguard audit --store" in html and "<circle" not in html


def test_chart_scale_rounds_up() -> None:
    chart = TrendChart.of([point(1, high=37), point(0, high=12)])
    assert [value for _, value in chart.y_ticks] == [0, 12, 25, 37, 50]
    plot_height = TrendChart.HEIGHT - TrendChart.TOP - TrendChart.BOTTOM
    assert chart.points[0].y == pytest.approx(TrendChart.TOP + plot_height * (1 - 37 / 50))
    assert TrendChart.of([point(0)]).y_ticks == [(TrendChart.HEIGHT - TrendChart.BOTTOM, 0), (TrendChart.TOP, 1)]


def test_findings_are_unfolded_for_print_up_to_a_hundred() -> None:
    few = Page(render(sample()))
    assert all("open" in a for a in few.all("details", **{"class": "finding"}))
    many = [finding("user_mfa", user=f"u{i:03}", severity=Severity.LOW) for i in range(101)]
    folded = Page(render(many))
    assert not any("open" in a for a in folded.all("details", **{"class": "finding"}))
    assert "more than 100" in "".join(folded.text)


def test_nothing_audited_is_not_a_pass() -> None:
    html = render([])
    assert 'data-verdict="error"' in html and "No findings" in html


def test_the_compliance_view_is_each_framework_judged_from_the_findings() -> None:
    findings = sample()
    page = Page(render(findings))
    shown = {a["data-framework"] for a in page.all("h3") if a.get("data-framework")}
    assert shown == set(FRAMEWORK_IDS)
    totals = page.all("p", **{"class": "compliance-totals"})
    assert len(totals) == len(FRAMEWORK_IDS)
    for framework_id, shown_totals in zip(FRAMEWORK_IDS, totals, strict=True):
        expected = evaluate(framework_id, findings).totals
        assert (shown_totals["data-passed"], shown_totals["data-failed"], shown_totals["data-manual"]) == (
            str(expected.passed),
            str(expected.failed),
            str(expected.manual),
        )
    # every failing control has its row
    cis5 = evaluate("cis-5.0", findings)
    failed = [c.id for c in cis5.controls if c.status.value == "FAIL"]
    assert failed and all(page.all("tr", data_control=control_id) for control_id in failed)
