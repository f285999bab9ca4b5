"""Scheduled account audit: read the whole account, run every check, enforce, store the findings, announce."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.audit import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.config import Settings
from iamguard.enforce import Enforcer
from iamguard.inventory import Inventory
from iamguard.notify.factory import build_dispatcher
from iamguard.store import FindingsStore

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="iamguard")

SETTINGS = Settings.from_env()  # invalid settings fail the cold start, loudly
AWS = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
STORE = FindingsStore(AWS.dynamodb(), SETTINGS.findings_table) if SETTINGS.findings_table else None
# Slack (secret read lazily, cached), the SNS topic, Security Hub: whatever the stack configured.
NOTIFY = build_dispatcher(SETTINGS, AWS, store=STORE, metrics=metrics, logger=logger)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if STORE is None:  # before the audit: a misconfigured stack fails at once, not after a full read
        raise RuntimeError("FINDINGS_TABLE is not set")
    inventory = Inventory(AWS)
    # MODE=enforce: attach the MFA guardrail when due (grace period), take it off once users have MFA.
    enforcer = Enforcer(inventory.iam, SETTINGS, memory=STORE)
    result = run_audit(inventory, SETTINGS, enforcer=enforcer)
    changes = store_audit(result, STORE)
    # Tell people what changed (each change once, with what an earlier run recorded and never announced),
    # and what enforcement did; then deliver what earlier runs left in the outbox.
    delivery = NOTIFY.announce(alerts=[], changes=changes, actions=result.announced_actions)

    summary = result.summary()
    for severity, count in summary["failed_by_severity"].items():
        metrics.add_metric(name=f"FailedFindings_{severity}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="AuditErrors", unit=MetricUnit.Count, value=len(result.errors))
    metrics.add_metric(name="AuditApiCalls", unit=MetricUnit.Count, value=result.api_calls)
    performed = sum(1 for action in result.actions if action.performed)
    if performed:
        metrics.add_metric(name="EnforcementActions", unit=MetricUnit.Count, value=performed)
    for part, reason in result.errors.items():
        logger.error("inventory part unavailable", extra={"part": part, "reason": reason})
    logger.info(
        "audit finished",
        extra={
            "account_id": result.account_id,
            "summary": summary,
            "changes": [
                {"check_id": c.finding.check_id, "resource": c.finding.resource_name, "transition": c.transition.value}
                for c in changes
            ],
            "api_calls": result.api_calls,
            "actions": [f"{a.action}:{a.user_name}:{a.outcome}" for a in result.actions],
            "actions_left_for_next_audit": enforcer.deferred,
            "duration_seconds": round(result.duration_seconds, 3),
            "notifications": asdict(delivery),
        },
    )
    return {
        "account_id": result.account_id,
        "summary": summary,
        "changes": len(changes),
        "actions": [a.model_dump(mode="json", exclude_none=True) for a in result.actions],
        "errors": result.errors,
        "notifications": asdict(delivery),
    }
