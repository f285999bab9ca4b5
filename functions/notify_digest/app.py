"""Scheduled digest of open critical/high findings, and delivery of notifications earlier runs could not send."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.aws import AwsContext, lambda_tracer
from iamguard.notify.factory import build_dispatcher
from iamguard.persistence.findings import FindingsStore
from iamguard.settings import Settings

logger = Logger()
tracer = lambda_tracer()  # X-Ray only when the stack turns it on (template parameter Tracing)
metrics = Metrics(namespace="iamguard")

SETTINGS = Settings.from_env()
AWS = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
STORE = FindingsStore.for_settings(AWS.dynamodb(), SETTINGS)
NOTIFY = build_dispatcher(SETTINGS, AWS, store=STORE, metrics=metrics, logger=logger)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Announcements an earlier run recorded and never claimed, then what the outbox still holds.
    delivery = NOTIFY.announce(alerts=[], changes=STORE.pending_changes(), actions=[])
    # A retried invocation of the same schedule carries the same time: the digest is sent once.
    ref = str(event.get("time") or f"{datetime.now(UTC):%Y-%m-%dT%H}")
    findings = STORE.findings()
    accounts = sorted({f.account_id for f in findings})
    for account_id in accounts:
        delivery += NOTIFY.send_digest(findings, account_id=account_id, ref=ref)
    logger.info("digest finished", extra={"ref": ref, "accounts": accounts, "notifications": asdict(delivery)})
    return {"ref": ref, "accounts": accounts, "notifications": asdict(delivery)}
