"""Status API: API Gateway (REST) → the iamguard status resolver → the findings table."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.api import create_app
from iamguard.api.service import service_from_env
from iamguard.aws import lambda_tracer

logger = Logger()
tracer = lambda_tracer()  # X-Ray only when the stack turns it on (template parameter Tracing)
app = create_app(cache(service_from_env))  # clients are made on the first request, settings read once


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
