"""The scheduled audit Lambda handler on moto: it audits, stores and reports what changed."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.seed import seed_walkthrough

from tests.conftest import REPO


def load_handler(name: str) -> ModuleType:
    """Import functions/<name>/app.py the way Lambda does (fresh module, package from the layer)."""
    path = REPO / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"handler_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_audit_handler_stores_findings_and_reports_changes(
    aws: AwsContext, store: FindingsStore, lambda_context: Any
) -> None:
    seed_walkthrough(aws.iam())
    handler = load_handler("audit_account")
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

    first = handler.lambda_handler(scheduled, lambda_context)
    assert first["account_id"] == "123456789012"
    assert first["summary"]["failed_by_severity"]["critical"] == 2  # root MFA, wonjun admin without MFA
    assert first["changes"] == first["summary"]["by_status"]["FAIL"]
    assert first["errors"] == {}
    stored = {(f.check_id, f.resource_name): f for f in store.findings()}
    assert stored[("user_admin_without_mfa", "wonjun_admin")].status.value == "FAIL"
    assert stored[("account_alias_set", "123456789012")].status.value == "FAIL"

    aws.iam().create_account_alias(AccountAlias="walkthrough")
    second = handler.lambda_handler(scheduled, lambda_context)
    assert second["changes"] == 1  # only the alias finding resolved
    latest = store.latest_audit()
    assert latest is not None and latest["summary"]["by_status"]["FAIL"] == first["summary"]["by_status"]["FAIL"] - 1
