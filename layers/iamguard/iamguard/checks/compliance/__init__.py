"""Compliance frameworks: the controls each check evidences, and a framework's verdict from findings.

`load_framework(id)` reads one framework's catalog (frameworks/<id>.json: controls, titles in the
framework's own language, the checks evidencing each, sources); `evaluate(id, findings, language)`
judges it control by control into a `ComplianceReport` — what `iamguard audit --compliance`,
`GET /compliance/{framework}` and the HTML report show.
"""

from __future__ import annotations

from iamguard.checks.compliance.catalog import (
    FRAMEWORK_IDS,
    Control,
    Coverage,
    Evidence,
    Framework,
    LocalizedText,
    Source,
    UnknownFramework,
    load_framework,
)
from iamguard.checks.compliance.evaluate import (
    ComplianceReport,
    ComplianceTotals,
    ControlResult,
    ControlStatus,
    FrameworkInfo,
    ResourceResult,
    evaluate,
)

__all__ = [
    "FRAMEWORK_IDS",
    "ComplianceReport",
    "ComplianceTotals",
    "Control",
    "ControlResult",
    "ControlStatus",
    "Coverage",
    "Evidence",
    "Framework",
    "FrameworkInfo",
    "LocalizedText",
    "ResourceResult",
    "Source",
    "UnknownFramework",
    "evaluate",
    "load_framework",
]
