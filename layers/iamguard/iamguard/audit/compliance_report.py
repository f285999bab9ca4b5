"""A compliance view as text (control by control, in the framework's order) or JSON."""

from __future__ import annotations

import io
import json
from typing import TextIO

from iamguard.checks.compliance import ComplianceReport, ControlResult, ControlStatus, Coverage
from iamguard.domain.findings import Status
from iamguard.domain.messages import Language
from iamguard.notify.catalog import Catalog, fill, load_catalog


def write_compliance_json(out: TextIO, report: ComplianceReport) -> None:
    out.write(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    out.write("\n")


def write_compliance_table(out: TextIO, report: ComplianceReport, language: Language = "en") -> None:
    catalog = load_catalog(language)
    framework = report.framework
    out.write(catalog.text("compliance.title", name=framework.name, version=framework.version) + "\n")
    if report.accounts:
        out.write(catalog.text("compliance.accounts", accounts=", ".join(report.accounts)) + "\n")
    out.write(catalog.text("compliance.totals", **report.totals.model_dump()) + "\n\n")
    labels = {status: catalog.text(f"compliance.status.{status.value}") for status in ControlStatus}
    width = max((_width(labels[control.status]) for control in report.controls), default=0) + 2
    id_width = max(len(control.id) for control in report.controls)
    for control in report.controls:
        label = f"[{labels[control.status]}]"
        out.write(f"{label}{' ' * (width - _width(label) + 1)}{control.id.ljust(id_width)}  {control.title}\n")
        for line in _details(control, catalog, language, labels[ControlStatus.EXEMPT]):
            out.write(f"{' ' * (width + 1)}{' ' * id_width}  {line}\n")
    sources = "; ".join(f"{s.title} <{s.url}>" for s in framework.sources)
    out.write("\n" + catalog.text("compliance.sources", sources=sources) + "\n")


def render_compliance_table(report: ComplianceReport, language: Language = "en") -> str:
    buffer = io.StringIO()
    write_compliance_table(buffer, report, language)
    return buffer.getvalue()


def _details(control: ControlResult, catalog: Catalog, language: Language, exempt: str) -> list[str]:
    if control.status is ControlStatus.MANUAL:
        return [catalog.text("compliance.manual"), *([control.note] if control.note else [])]
    lines = [catalog.text("compliance.checks", checks=", ".join(control.checks))]
    if control.note:
        partial = control.coverage is Coverage.PARTIAL
        lines.append(catalog.text("compliance.partial", note=control.note) if partial else control.note)
    for resource in control.resources:
        # Our words in the reader's language: a check's failure sentence; in English the finding's own detail.
        detail = resource.detail
        if language != "en" and resource.status in {Status.FAIL, Status.EXEMPT}:
            detail = fill(catalog.check(resource.check_id).failed, resource=resource.resource_name)
            if resource.status is Status.EXEMPT:
                detail = f"{detail} ({exempt})"
        lines.append(
            catalog.text("compliance.resource", resource=resource.resource_name, check=resource.check_id, detail=detail)
        )
    return lines


def _width(text: str) -> int:
    """Columns on a terminal: Hangul and other wide characters take two."""
    return sum(2 if "\u1100" <= ch <= "\ud7a3" or "\u3000" <= ch <= "\u9fff" else 1 for ch in text)
