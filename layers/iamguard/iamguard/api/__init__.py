"""The status API: "are we compliant?" over API Gateway (and locally over HTTP)."""

from iamguard.api.app import create_app, openapi_document, openapi_json
from iamguard.api.service import StatusService

__all__ = ["StatusService", "create_app", "openapi_document", "openapi_json"]
