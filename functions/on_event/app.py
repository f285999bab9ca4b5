"""CloudTrail events from EventBridge, for both event functions of template.yaml.

OnIamEventFunction takes IAM changes and sts:AssumeRoot ("AWS API Call via
CloudTrail"); OnSigninEventFunction takes console sign-ins. Each function's
EVENT_SOURCES says which; the event map (iamguard.realtime.event_map) decides
which calls its rule delivers, and iamguard.realtime does the rest. Settings
are validated at cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.aws import lambda_tracer
from iamguard.realtime.handler import EventHandler

logger = Logger()
tracer = lambda_tracer()  # X-Ray only when the stack turns it on (template parameter Tracing)
metrics = Metrics(namespace="iamguard")

HANDLER = EventHandler.from_env(logger=logger, metrics=metrics)


@logger.inject_lambda_context(correlation_id_path="detail.eventID", log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return HANDLER(event, context)
