"""The HTML report in a real browser: Debian's headless Chromium, driven by Selenium.

The page as `iamguard audit --format html` writes it (opened from a file) and as `iamguard serve`
serves it at /report (over HTTP on 127.0.0.1): it renders, the charts are drawn with one point per
stored audit run, its numbers are the JSON report's, the console is clean and it requests nothing.
The browser is never skipped: without it these tests fail and say how to install it (`make browser`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iamguard.audit.run import AuditResult
from iamguard.aws import AwsContext
from iamguard_cli.local.api_server import serve_in_thread
from iamguard_cli.local.seed import seed_designed_account
from iamguard_cli.local.server import MotoServer
from iamguard_cli.report import build_view, render_html
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.factories import ACCOUNT, NOW, finding
from tests.integration.api_support import audit
from tests.integration.test_cli_audit import iamguard
from tests.support import browser

pytestmark = pytest.mark.e2e
TABLE = "report-findings"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    reason = browser.missing()
    if reason is not None:
        pytest.fail(reason)  # never a skip: the report's browser test is part of `make test`
    with browser.chromium() as driver:
        yield driver


@pytest.fixture
def history(server_aws: AwsContext, moto_server: MotoServer, tmp_path: Path) -> dict[str, Any]:
    """Two stored audits of the designed account, carol out of the admin group between them, then the HTML."""
    iam = server_aws.iam()
    seed_designed_account(iam)
    first = audit(moto_server.url, TABLE)
    iam.remove_user_from_group(GroupName="ops", UserName="carol_ops")
    second = audit(moto_server.url, TABLE)
    page = tmp_path / "report.html"
    html = ("--table", TABLE, "--format", "html", "--output", str(page), "--fail-on", "none")
    assert iamguard("audit", "--endpoint-url", moto_server.url, *html).returncode == 0
    assert first["summary"]["by_status"]["FAIL"] > second["summary"]["by_status"]["FAIL"]
    return {"aws": server_aws, "runs": [first, second], "page": page}


def text(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def open_count(report: dict[str, Any]) -> int:
    return sum(report["summary"]["failed_by_severity"].values())


def assert_page_matches(driver: WebDriver, report: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    summary = report["summary"]
    assert driver.title == f"iamguard report: account {report['account_id']}"
    assert text(driver, "#account-id") == report["account_id"]
    assert driver.find_element(By.ID, "verdict").get_attribute("data-verdict") == "fail"
    assert f"{summary['by_status']['FAIL']} open findings" in text(driver, "#verdict")
    for status, count in summary["by_status"].items():
        assert text(driver, f'#summary .n[data-status="{status}"]') == str(count), status
    assert text(driver, "#total-findings") == str(summary["total"])
    assert text(driver, "#user-count") == str(summary["users"])
    # the severity chart: one drawn bar per severity, as tall as its share
    bars = driver.find_elements(By.CSS_SELECTOR, "#severity-chart rect.bar")
    assert {b.get_attribute("data-severity"): int(b.get_attribute("data-count") or -1) for b in bars} == summary[
        "failed_by_severity"
    ]
    heights = {b.get_attribute("data-severity"): b.rect["height"] for b in bars}
    assert all((heights[sev] > 0) == (n > 0) for sev, n in summary["failed_by_severity"].items())
    # the trend: one drawn point per stored audit run, oldest first, at that run's open count
    points = driver.find_elements(By.CSS_SELECTOR, "#trend-chart circle.point")
    assert [int(p.get_attribute("data-open") or -1) for p in points] == [open_count(run) for run in runs]
    assert all(p.rect["width"] > 0 and p.is_displayed() for p in points)
    assert [p.rect["x"] for p in points] == sorted(p.rect["x"] for p in points)
    line = driver.find_element(By.CSS_SELECTOR, "#trend-chart polyline.line")
    assert len((line.get_attribute("points") or "").split()) == len(runs)
    assert line.rect["width"] > 0
    # every finding that did not pass is listed; every user has a row
    findings = report["findings"]
    listed = driver.find_elements(By.CSS_SELECTOR, "#findings details.finding")
    assert len(listed) == sum(1 for f in findings if f["status"] != "PASS")
    users = {f["resource_name"] for f in findings if f["resource_type"] == "user"}
    assert {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#by-user td.user-name")} == users
    # nothing ran, nothing was blocked, nothing was logged
    assert driver.execute_script("return document.scripts.length") == 0


def test_the_cli_page_opened_from_a_file(chromium: WebDriver, history: dict[str, Any], tmp_path: Path) -> None:
    browser.console_errors(chromium), browser.requested_urls(chromium)  # start clean
    chromium.get(history["page"].as_uri())
    assert_page_matches(chromium, history["runs"][-1], history["runs"])
    assert browser.console_errors(chromium) == []
    assert browser.requested_urls(chromium) == [history["page"].as_uri()]
    chromium.save_screenshot(str(Path(os.environ.get("IAMGUARD_SCREENSHOTS", tmp_path)) / "report.png"))


def test_serve_report_over_http(chromium: WebDriver, history: dict[str, Any]) -> None:
    server = serve_in_thread(history["aws"], TABLE)
    try:
        browser.console_errors(chromium), browser.requested_urls(chromium)
        chromium.get(f"{server.url}/report?days=7")
        # the stored findings are the second audit's: the same numbers as its JSON report
        assert_page_matches(chromium, history["runs"][-1], history["runs"])
        assert "2 audit runs of the last 7 days" in text(chromium, "#trend-source")
        assert browser.console_errors(chromium) == []
        assert browser.requested_urls(chromium) == [f"{server.url}/report?days=7"]
    finally:
        server.stop()


def test_hostile_names_render_as_text_and_never_run(chromium: WebDriver, tmp_path: Path) -> None:
    findings = [finding("user_console_mfa", user=HOSTILE, detail=f"User {HOSTILE} has no MFA.")]
    page = tmp_path / "hostile.html"
    view = build_view(AuditResult(ACCOUNT, NOW, findings, {}, 0), [], history="none")
    page.write_text(render_html(view), encoding="utf-8")
    browser.console_errors(chromium), browser.requested_urls(chromium)
    chromium.get(page.as_uri())
    assert chromium.execute_script("return window.pwned === undefined")
    assert chromium.execute_script("return document.querySelectorAll('script, img').length") == 0
    assert text(chromium, "#by-user td.user-name") == HOSTILE
    assert HOSTILE in text(chromium, "#findings details.finding summary")
    assert browser.console_errors(chromium) == []  # not even a blocked inline script: there was none
    assert browser.requested_urls(chromium) == [page.as_uri()]
