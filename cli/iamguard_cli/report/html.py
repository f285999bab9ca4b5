"""The HTML report: one self-contained page (inline CSS and SVG, no script, no request), escaped throughout.

Jinja2 with autoescape on for the whole template: user names, tags and details come from the account
and are never trusted as markup. The page's Content-Security-Policy forbids scripts and every fetch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TextIO

from iamguard import __version__
from jinja2 import Environment, PackageLoader, StrictUndefined

from iamguard_cli.report.view import ReportView

TEMPLATE = "report.html.j2"
OPEN_FINDINGS = 100  # up to this many findings are shown unfolded (and so printed) with their risk and fix
# In the page (a meta element) and, where a server sends it, in the response's header too.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_ENV = Environment(
    loader=PackageLoader("iamguard_cli.report", ""),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_html(view: ReportView) -> str:
    return _ENV.get_template(TEMPLATE).render(
        view=view, version=__version__, when=_when, csp=REPORT_CSP, OPEN_FINDINGS=OPEN_FINDINGS
    )


def write_html(out: TextIO, view: ReportView) -> None:
    out.write(render_html(view))
