"""The scheduled audit Lambda handler on moto: it audits, stores and reports what changed."""

from __future__ import annotations

from typing import Any

from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.seed import seed_walkthrough

from tests.support.template import load_handler


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


def test_audit_handler_reads_through_one_client_and_counts_each_run_afresh(
    aws: AwsContext, store: FindingsStore, lambda_context: Any
) -> None:
    # Given the audit function after its cold start, on an account that does not change
    seed_walkthrough(aws.iam())
    handler = load_handler("audit_account")
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    made: list[str] = []
    handler.AWS.session().events.register("creating-client-class", lambda **kw: made.append("client"))

    # When it runs three times
    calls = []
    for _ in range(3):
        handler.lambda_handler(scheduled, lambda_context)
        calls.append((store.latest_audit() or {})["api_calls"])

    # Then no run makes an IAM client (the one from the cold start serves them all), and each
    # run counts only its own calls (the same number for the same account)
    assert made.count("client") <= 3  # at most the STS client that finds the account id, once a run
    assert calls[1] == calls[2] > 0
