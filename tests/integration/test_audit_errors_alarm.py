"""An audit that could not read part of the account raises the AuditErrors alarm of template.yaml.

The audit handler runs on moto with a credential report that never became available
(LimitExceeded past the polling deadline); its Powertools metrics (EMF on stdout, as
CloudWatch receives them from Lambda) are matched against the alarm as deployed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.iam.inventory import CredentialReportUnavailable, Inventory
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local.seed import seed_walkthrough

from tests.support.template import load_handler, sam_template

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def emitted(output: str, metric: str) -> list[tuple[str, set[tuple[str, str]], float]]:
    """(namespace, dimensions, value) of every data point of `metric` in the EMF lines."""
    points = []
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            if any(m["Name"] == metric for m in directive["Metrics"]):
                for dimension_set in directive["Dimensions"]:
                    dimensions = {(name, str(blob[name])) for name in dimension_set}
                    value = blob[metric]
                    for one in value if isinstance(value, list) else [value]:
                        points.append((directive["Namespace"], dimensions, float(one)))
    return points


def alarm() -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for r in sam_template()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "AuditErrors"
    ]
    return found


def breaches(props: dict[str, Any], value: float) -> bool:
    threshold = float(props["Threshold"])
    return {
        "GreaterThanThreshold": value > threshold,
        "GreaterThanOrEqualToThreshold": value >= threshold,
        "LessThanThreshold": value < threshold,
    }[props["ComparisonOperator"]]


@pytest.mark.parametrize("report_available", [False, True], ids=["report-unavailable", "all-read"])
def test_an_audit_with_unreadable_parts_breaches_the_audit_errors_alarm(
    aws: AwsContext,
    store: FindingsStore,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    report_available: bool,
) -> None:
    # Given an account whose credential report stays LimitExceeded past the deadline (or not)
    seed_walkthrough(aws.iam())
    if not report_available:

        def unavailable(self: Inventory) -> Any:
            raise CredentialReportUnavailable("credential report not available after 60s (LimitExceeded: Rate)")

        monkeypatch.setattr(Inventory, "credential_report", unavailable)
    handler = load_handler("audit_account")
    capsys.readouterr()

    # When the scheduled audit runs
    result = handler.lambda_handler(SCHEDULED, lambda_context)

    # Then it emits AuditErrors exactly where the alarm looks, and the alarm breaches only on errors
    props = alarm()
    [(namespace, dimensions, value)] = emitted(capsys.readouterr().out, "AuditErrors")
    assert namespace == props["Namespace"]
    assert dimensions == {(d["Name"], d["Value"]) for d in props["Dimensions"]}
    assert value == len(result["errors"]) == (0 if report_available else 1)
    assert breaches(props, value) is not report_available
    assert props["AlarmActions"] == [{"Ref": "AlertTopic"}]
    # An hour without an audit neither raises nor clears it (the StaleAudit alarm covers silence)
    assert props["TreatMissingData"] == "ignore"
