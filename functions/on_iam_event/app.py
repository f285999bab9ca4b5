"""IAM changes in near real time: CloudTrail "AWS API Call via CloudTrail" events from EventBridge.

The event map (iamguard.events) decides which calls arrive here; the logic is
iamguard.realtime. Settings are validated at cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.config import Settings
from iamguard.event_handler import EventHandler

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="iamguard")

HANDLER = EventHandler(sources={"aws.iam"}, settings=Settings.from_env(), logger=logger, metrics=metrics)


@logger.inject_lambda_context(correlation_id_path="detail.eventID", log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return HANDLER(event, context)
