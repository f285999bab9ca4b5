"""Console sign-ins from EventBridge: CloudTrail ConsoleLogin events, under either documented detail-type spelling.

Root sign-ins, IAM users signing in without MFA and bursts of failed sign-ins
(iamguard.realtime). Settings are validated at cold start.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.aws import AwsContext, lambda_tracer
from iamguard.notify.factory import announcer_factory
from iamguard.realtime.handler import EventHandler
from iamguard.settings import Settings

logger = Logger()
tracer = lambda_tracer()  # X-Ray only when the stack turns it on (template parameter Tracing)
metrics = Metrics(namespace="iamguard")

AWS = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
HANDLER = EventHandler(
    sources={"aws.signin"},
    settings=Settings.from_env(),  # invalid settings fail the cold start, loudly
    logger=logger,
    metrics=metrics,
    aws=AWS,
    # Slack, the SNS topic, Security Hub - whatever the stack configured (iamguard.notify); each thing told once.
    announcer_factory=announcer_factory(AWS, metrics),
)


@logger.inject_lambda_context(correlation_id_path="detail.eventID", log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return HANDLER(event, context)
