"""Organization mode's scheduled planner: one audit request per ACTIVE member account, onto the audit queue."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.audit.fanout import plan_audits, report_plan, stale_accounts
from iamguard.aws import AwsContext, lambda_tracer
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import ConfigError, Settings

logger = Logger()
tracer = lambda_tracer()
metrics = Metrics(namespace="iamguard")

SETTINGS = Settings.from_env()
AWS = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
SQS = AWS.client("sqs")
if not SETTINGS.organization.audit_queue_url:
    raise ConfigError("AUDIT_QUEUE_URL: the planner needs the audit queue")
QUEUE_URL = SETTINGS.organization.audit_queue_url
STORE = FindingsStore.for_settings(AWS.dynamodb(), SETTINGS)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    accounts, failed = plan_audits(AWS, SQS, QUEUE_URL, now=now)
    stale = stale_accounts(STORE, accounts, SETTINGS.api.stale_after, now)
    return report_plan(accounts, failed, stale, metrics=metrics, logger=logger)
