"""The HTML report (`iamguard audit --format html`, `iamguard serve`'s /report): view, template, rendering."""

from iamguard_cli.report.html import REPORT_CSP, render_html, write_html
from iamguard_cli.report.view import ReportView, build_view, view_from_store

__all__ = ["REPORT_CSP", "ReportView", "build_view", "render_html", "view_from_store", "write_html"]
