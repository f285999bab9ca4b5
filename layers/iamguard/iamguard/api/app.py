"""The status API's resolver: routes, error mapping and the OpenAPI document.

One factory builds it for both the Lambda handler (functions/status_api) and the
local server (iamguard.api.server), so both run the same code on the same
API Gateway REST proxy events.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from iamguard import __version__
from iamguard.api.errors import ApiError
from iamguard.api.models import (
    AccountList,
    AuditStarted,
    CheckId,
    ErrorDetail,
    ErrorResponse,
    EventKind,
    EventList,
    ExceptionList,
    ExceptionRecord,
    ExceptionRequest,
    FindingPage,
    StatusReport,
    Trend,
    UserDetail,
    UserPage,
    UserStatus,
)
from iamguard.api.service import StatusService
from iamguard.checks.compliance import FRAMEWORK_IDS, ComplianceReport
from iamguard.domain.findings import Severity, Status
from iamguard.domain.messages import Language

log = logging.getLogger(__name__)

USER_NAME_PATTERN = r"^[A-Za-z0-9_+=,.@-]{1,64}$"  # IAM user names
FRAMEWORK_PATTERN = r"^[a-z0-9.-]{1,32}$"
ACCOUNT_ID_PATTERN = r"^\d{12}$"
MAX_PAGE_SIZE = 100
ServiceProvider = Callable[[], StatusService]
# Every route and its methods, for 405 answers (a test keeps it equal to the OpenAPI paths).
ROUTES: dict[str, tuple[str, ...]] = {
    "/status": ("GET",),
    "/users": ("GET",),
    "/users/<name>": ("GET",),
    "/findings": ("GET",),
    "/events": ("GET",),
    "/trend": ("GET",),
    "/audit": ("POST",),
    "/compliance/<framework>": ("GET",),
    "/accounts": ("GET",),
    "/accounts/<account_id>/status": ("GET",),
    "/exceptions": ("GET",),
    "/exceptions/<check_id>/<resource>": ("PUT", "DELETE"),
}
_ROUTE_RULES = [(re.compile(re.sub(r"<\w+>", "[^/]+", route)), methods) for route, methods in ROUTES.items()]

_ERROR_DESCRIPTIONS = {
    400: "The query is invalid (a parameter fails validation, or next_token is not from this query).",
    404: "No such resource.",
    415: "The body is not JSON: send it with Content-Type: application/json.",
    500: "Something unexpected failed; details are in the function's log, never in the response.",
    503: "Audits cannot be started right now.",
}


def _errors(*codes: int) -> dict[int, OpenAPIResponse]:
    return {
        code: {"description": _ERROR_DESCRIPTIONS[code], "content": {"application/json": {"model": ErrorResponse}}}
        for code in codes
    }


def _ok(model: type[Any], description: str, status: int = 200) -> dict[int, OpenAPIResponse]:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


def error_response(
    status: HTTPStatus, code: str, message: str, details: list[ErrorDetail] | None = None
) -> Response[Any]:
    body = ErrorResponse(error=code, message=message, details=details or [])
    return Response(
        status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body.model_dump(mode="json")
    )


def create_app(service: ServiceProvider) -> APIGatewayRestResolver:
    """A resolver answering from `service()` (called per request, so it may be built lazily)."""
    app = APIGatewayRestResolver(
        enable_validation=True, response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR
    )
    _register_error_handlers(app)

    @app.get(
        "/status",
        summary="Are we compliant? The account's posture",
        description="Root and account-wide checks, user counts, failed findings by severity, the last audit "
        "and whether it is stale, and one verdict: compliant, non_compliant or unknown.",
        operation_id="getStatus",
        tags=["status"],
        responses={**_ok(StatusReport, "The account's posture."), **_errors(500)},
    )
    def get_status() -> StatusReport:
        return service().status()

    @app.get(
        "/users",
        summary="IAM users and the checks they fail",
        description="Paginated: pass next_token from one page to get the next. Order is stable but unspecified.",
        operation_id="listUsers",
        tags=["users"],
        responses={**_ok(UserPage, "One page of users."), **_errors(400, 500)},
    )
    def list_users(
        status: Annotated[UserStatus | None, Query(description="Only users with this standing.")] = None,
        min_severity: Annotated[
            Severity | None, Query(description="Only users failing a check at or above this severity.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Users per page.")] = 50,
        next_token: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
        account: Annotated[
            str | None, Query(pattern=ACCOUNT_ID_PATTERN, description="Only users of this account (12 digits).")
        ] = None,
    ) -> UserPage:
        return service().users(
            status=status, min_severity=min_severity, limit=limit, next_token=next_token, account=account
        )

    @app.get(
        "/users/<name>",
        summary="One user's findings with remediation steps",
        description="Every finding about the user, failures first, each with its title, risk and fix steps "
        "(console and CLI).",
        operation_id="getUser",
        tags=["users"],
        responses={**_ok(UserDetail, "The user and its findings."), **_errors(400, 404, 500)},
    )
    def get_user(
        name: Annotated[str, Path(pattern=USER_NAME_PATTERN, description="IAM user name.")],
        account: Annotated[
            str | None,
            Query(
                pattern=ACCOUNT_ID_PATTERN,
                description="The user's account (12 digits); default: the deployment's own (the hub's in "
                "organization mode).",
            ),
        ] = None,
    ) -> UserDetail:
        return service().user(name, account)

    @app.get(
        "/findings",
        summary="Findings, filtered by check, severity and status",
        description="Paginated: pass next_token from one page to get the next. With check_id, findings come "
        "ordered by status, then resource name.",
        operation_id="listFindings",
        tags=["findings"],
        responses={**_ok(FindingPage, "One page of findings."), **_errors(400, 500)},
    )
    def list_findings(
        check_id: Annotated[CheckId | None, Query(description="A check id from the catalog.")] = None,
        severity: Annotated[Severity | None, Query()] = None,
        status: Annotated[Status | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Findings per page.")] = 50,
        next_token: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
        account: Annotated[
            str | None, Query(pattern=ACCOUNT_ID_PATTERN, description="Only findings of this account (12 digits).")
        ] = None,
    ) -> FindingPage:
        return service().findings(
            check_id=check_id, severity=severity, status=status, limit=limit, next_token=next_token, account=account
        )

    @app.get(
        "/events",
        summary="Latest real-time detections and enforcement actions",
        operation_id="listEvents",
        tags=["events"],
        responses={**_ok(EventList, "Detections and actions, newest first."), **_errors(400, 500)},
    )
    def list_events(
        kind: Annotated[EventKind | None, Query(description="Only detections or only actions.")] = None,
        days: Annotated[int, Query(ge=1, le=90, description="How many days back to look.")] = 7,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> EventList:
        return service().events(kind=kind, days=days, limit=limit)

    @app.get(
        "/trend",
        summary="Open findings over time",
        description="One point per audit run in the window, oldest first: failed findings by severity after "
        "that audit. Audit runs are kept 90 days.",
        operation_id="getTrend",
        tags=["status"],
        responses={**_ok(Trend, "Open findings after each audit."), **_errors(400, 500)},
    )
    def get_trend(
        days: Annotated[int, Query(ge=1, le=90, description="How many days back to look.")] = 30,
    ) -> Trend:
        return service().trend(days=days)

    @app.get(
        "/compliance/<framework>",
        summary="A compliance framework, control by control",
        description=f"Frameworks: {', '.join(FRAMEWORK_IDS)}. Each control of the framework's identity section "
        "with its status from the stored findings (PASS, FAIL with the failing resources, EXEMPT, ERROR, "
        "NO_DATA before the first audit, MANUAL when iamguard does not cover it), and the totals. Control "
        "titles are in the framework's own language; notes follow `language`.",
        operation_id="getCompliance",
        tags=["compliance"],
        responses={**_ok(ComplianceReport, "The framework's controls and totals."), **_errors(400, 404, 500)},
    )
    def get_compliance(
        framework: Annotated[str, Path(pattern=FRAMEWORK_PATTERN, description="A framework id, e.g. cis-5.0.")],
        language: Annotated[Language, Query(description="Language of iamguard's notes.")] = "en",
    ) -> ComplianceReport:
        return service().compliance(framework, language)

    @app.get(
        "/accounts",
        summary="Every account: its verdict, last audit and counts",
        description="One entry per audited account (in organization mode, every member account the hub audits; "
        "otherwise the deployment's own account), each read from its own summary.",
        operation_id="listAccounts",
        tags=["accounts"],
        responses={**_ok(AccountList, "The accounts."), **_errors(500)},
    )
    def list_accounts() -> AccountList:
        return service().accounts()

    @app.get(
        "/accounts/<account_id>/status",
        summary="One account's posture",
        description="What GET /status answers for a single account: root and account-wide checks, counts, the "
        "account's last audit and its verdict.",
        operation_id="getAccountStatus",
        tags=["accounts"],
        responses={**_ok(StatusReport, "The account's posture."), **_errors(400, 404, 500)},
    )
    def get_account_status(
        account_id: Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, description="12-digit AWS account id.")],
    ) -> StatusReport:
        return service().account_status(account_id)

    @app.post(
        "/audit",
        summary="Start a full account audit now",
        description="Returns at once with 202; the audit runs asynchronously. Follow it with GET /status: "
        "last_audit.started_at becomes newer than requested_at when it has finished.",
        operation_id="startAudit",
        tags=["audit"],
        responses={
            202: {
                "description": "The audit was started.",
                "headers": {
                    "Location": {
                        "description": "Where to follow it (GET /status), relative to the request URL.",
                        "schema": {"type": "string"},
                    }
                },
                "content": {"application/json": {"model": AuditStarted}},
            },
            **_errors(500, 503),
        },
    )
    def start_audit() -> Response[AuditStarted]:
        started = service().start_audit()
        return Response(
            status_code=HTTPStatus.ACCEPTED.value,
            content_type=content_types.APPLICATION_JSON,
            body=started,
            # Relative to the request (/v1/audit → /v1/status), so it holds behind any stage or base path.
            headers={"Location": started.follow.lstrip("/")},
        )

    _exception_routes(app, service)
    return app


CHECK_OR_ALL_PATTERN = r"^(\*|[a-z][a-z0-9_]{0,63})$"
RESOURCE_DESCRIPTION = "An IAM user name, or account for the account's own (root and account-wide) checks."
EXCEPTION_ACCOUNT_DESCRIPTION = (
    "The account the exception holds in (12 digits); default: the deployment's own (the hub's in organization "
    "mode). The same user name in another account is another user."
)


def _caller(app: APIGatewayRestResolver) -> str:
    """Who is calling, as API Gateway identified them: the IAM ARN (AWS_IAM), else the API key, else the address."""
    identity = app.current_event.request_context.identity
    if identity.user_arn:
        return identity.user_arn
    if identity.caller:
        return identity.caller
    if identity.api_key_id:
        return f"API key {identity.api_key_id}"
    return f"unauthenticated caller at {identity.source_ip or 'an unknown address'}"


def _exception_routes(app: APIGatewayRestResolver, service: ServiceProvider) -> None:
    """PUT, GET and DELETE /exceptions (iamguard.api.exemptions)."""

    @app.get(
        "/exceptions",
        summary="Exceptions made through the API",
        description="Every exception made with PUT, live or ended in the last 30 days, soonest to end first. "
        "Exceptions by tag (iamguard:exempt*) are shown on the findings they cover (exempt_* fields).",
        operation_id="listExceptions",
        tags=["exceptions"],
        responses={**_ok(ExceptionList, "The exceptions."), **_errors(400, 500)},
    )
    def list_exceptions(
        account: Annotated[
            str | None,
            Query(pattern=ACCOUNT_ID_PATTERN, description="Only the exceptions that hold in this account (12 digits)."),
        ] = None,
    ) -> ExceptionList:
        return service().exemptions.list(account)

    @app.put(
        "/exceptions/<check_id>/<resource>",
        summary="Make (or replace) an exception: a check may fail for a resource until a date",
        description="Owner, reason and expires are required: no exception is open-ended, and it may last at "
        "most EXCEPTION_MAX_DAYS days (default 90). The caller's IAM identity is recorded. The next audit, or "
        "the next event about the user, marks the findings it covers EXEMPT; when it ends, they fail again "
        "and that is announced once (exception expired).",
        operation_id="putException",
        tags=["exceptions"],
        responses={
            **_ok(ExceptionRecord, "The exception replaced an earlier one of the same check and resource."),
            **_ok(ExceptionRecord, "The exception was made.", 201),
            **_errors(400, 404, 415, 500),  # 404: a path no route matches (a resource that is no IAM name)
        },
    )
    def put_exception(
        check_id: Annotated[str, Path(pattern=CHECK_OR_ALL_PATTERN, description="A check id, or * for every check.")],
        resource: Annotated[str, Path(pattern=USER_NAME_PATTERN, description=RESOURCE_DESCRIPTION)],
        request: Annotated[ExceptionRequest, Body(embed=False)],
        account: Annotated[
            str | None, Query(pattern=ACCOUNT_ID_PATTERN, description=EXCEPTION_ACCOUNT_DESCRIPTION)
        ] = None,
    ) -> Response[ExceptionRecord]:
        record, created = service().exemptions.put(check_id, resource, request, _caller(app), account)
        return Response(
            status_code=(HTTPStatus.CREATED if created else HTTPStatus.OK).value,
            content_type=content_types.APPLICATION_JSON,
            body=record,
        )

    @app.delete(
        "/exceptions/<check_id>/<resource>",
        summary="End an exception now",
        description="Returns the exception removed. The findings it covered fail again at the next audit or event.",
        operation_id="deleteException",
        tags=["exceptions"],
        responses={**_ok(ExceptionRecord, "The exception removed."), **_errors(400, 404, 500)},
    )
    def delete_exception(
        check_id: Annotated[str, Path(pattern=CHECK_OR_ALL_PATTERN, description="A check id, or * for every check.")],
        resource: Annotated[str, Path(pattern=USER_NAME_PATTERN, description=RESOURCE_DESCRIPTION)],
        account: Annotated[
            str | None, Query(pattern=ACCOUNT_ID_PATTERN, description=EXCEPTION_ACCOUNT_DESCRIPTION)
        ] = None,
    ) -> ExceptionRecord:
        return service().exemptions.delete(check_id, resource, account)


def _domain_error(exc: ApiError) -> Response[Any]:
    return error_response(exc.status, exc.code, exc.message)


def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    details = [
        ErrorDetail(location=".".join(str(part) for part in error["loc"]), type=str(error["type"]))
        for error in exc.errors()
    ]
    return error_response(HTTPStatus.BAD_REQUEST, "bad_request", "The request is invalid.", details)


def _unsupported_media(exc: RequestUnsupportedContentType) -> Response[Any]:
    return error_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", _ERROR_DESCRIPTIONS[415])


def _malformed_multipart(app: APIGatewayRestResolver) -> Callable[[ValueError], Response[Any]]:
    """Powertools raises a bare ValueError for a multipart body without a boundary: a 400, not a 500."""

    def answer(exc: ValueError) -> Response[Any]:
        content_type = app.current_event.headers.get("content-type") or ""
        if content_type.lower().startswith("multipart/form-data") and "boundary=" not in content_type.lower():
            return error_response(HTTPStatus.BAD_REQUEST, "bad_request", "multipart/form-data without a boundary.")
        return _unexpected(exc)

    return answer


def _no_route(app: APIGatewayRestResolver) -> Callable[[NotFoundError], Response[Any]]:
    def answer(exc: NotFoundError) -> Response[Any]:
        path = app.current_event.path
        allowed = next((methods for rule, methods in _ROUTE_RULES if rule.fullmatch(path)), None)
        if allowed is None or app.current_event.http_method.upper() in allowed:
            return error_response(HTTPStatus.NOT_FOUND, "not_found", "No such route.")
        response = error_response(
            HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", f"{path} allows {', '.join(allowed)} only."
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response

    return answer


def _service_error(exc: ServiceError) -> Response[Any]:
    return error_response(HTTPStatus(exc.status_code), "error", str(exc.msg))


def _invalid_response(exc: ResponseValidationError) -> Response[Any]:
    log.error("response does not match its schema", extra={"errors": exc.errors()})
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "Internal error.")


def _unexpected(exc: Exception) -> Response[Any]:
    log.exception("unexpected error in the status API")
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "Internal error.")


def _register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Domain errors and validation → 4xx with ErrorResponse; anything else → a plain 500, never a traceback."""
    app.exception_handler(ApiError)(_domain_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_media)
    app.exception_handler(ValueError)(_malformed_multipart(app))
    app.not_found(_no_route(app))
    app.exception_handler(ServiceError)(_service_error)
    app.exception_handler(ResponseValidationError)(_invalid_response)
    app.exception_handler(Exception)(_unexpected)


# -- the OpenAPI document --------------------------------------------------------------------
API_TITLE = "iamguard status API"
API_DESCRIPTION = (
    "Where an AWS account stands on IAM: root, password policy, every user's MFA, admin rights and "
    "credentials, as audited by iamguard. Deployed behind API Gateway with AWS_IAM (SigV4) "
    "authorization by default, or an API key (parameter ApiAuth)."
)
_SECURITY_SCHEMES = {
    "sigv4": {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "description": "AWS Signature Version 4 (service execute-api), checked by API Gateway (ApiAuth=AWS_IAM).",
        "x-amazon-apigateway-authtype": "awsSigv4",
    },
    "api_key": {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
        "description": "An API Gateway API key (ApiAuth=API_KEY).",
    },
}


def _unused_service() -> StatusService:
    raise RuntimeError("the OpenAPI document is generated without a service")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API, as committed in docs/openapi.json."""
    app = create_app(_unused_service)
    schema: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=API_TITLE, version=__version__, description=API_DESCRIPTION)
    )
    # Validation errors are answered with 400 and ErrorResponse (see _register_error_handlers),
    # and a response that fails its own schema with a plain 500: document that, not Powertools' defaults.
    internal = _errors(500)[500]
    for operation in (op for path in schema["paths"].values() for op in path.values()):
        responses = operation["responses"]
        responses.pop("422", None)
        responses["500"] = {
            "description": internal["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }
        operation["security"] = [{"sigv4": []}, {"api_key": []}]
        for parameter in operation.get("parameters", []):
            _not_nullable(parameter["schema"])
    components = schema["components"]
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        components["schemas"].pop(unused, None)
    components["securitySchemes"] = _SECURITY_SCHEMES
    return schema


def _not_nullable(schema: dict[str, Any]) -> None:
    """An optional parameter is absent, never null: `anyOf: [X, null]` → X."""
    variants = schema.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest


def openapi_json() -> str:
    """The document as text, exactly as committed (sorted keys, two-space indent, final newline)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
