"""The event functions read the findings table by key only: no code path of theirs scans it, no grant lets them.

A Scan reads (and bills) the whole table; the event path needs one resource's findings
(FindingsStore.record_resources). The audit reads one account's findings from the
`account` index (to resolve deleted users); whole-table reads stay with the status API and the digest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.derive_permissions import derive
from tests.support.template import REPO, deployed, function_role, functions

PACKAGE_ROOT = REPO / "layers" / "iamguard"
EVENT_FUNCTIONS = {f.logical_id: f.handler_file for f in functions() if f.name in {"on_iam_event", "on_signin_event"}}


@pytest.mark.parametrize(("logical_id", "handler_file"), EVENT_FUNCTIONS.items())
def test_the_event_functions_never_scan_the_findings_table(logical_id: str, handler_file: Path) -> None:
    derived = derive(handler_file, PACKAGE_ROOT)
    assert "dynamodb:Scan" not in derived.actions, derived.where("dynamodb:Scan")
    assert "dynamodb:Query" in derived.actions  # they do read, by key
    granted = {g.action for g in function_role(deployed(), logical_id).grants if g.effect == "Allow"}
    assert "dynamodb:Scan" not in granted


def test_the_audit_reads_its_own_accounts_findings_by_query_not_by_scan() -> None:
    derived = derive(REPO / "functions" / "audit_account" / "app.py", PACKAGE_ROOT)
    assert "dynamodb:Scan" not in derived.actions, derived.where("dynamodb:Scan")
    assert any("FindingsStore.account_findings" in where for where in derived.where("dynamodb:Query"))
    granted = {g.action for g in function_role(deployed(), "AuditAccountFunction").grants if g.effect == "Allow"}
    assert "dynamodb:Scan" not in granted
