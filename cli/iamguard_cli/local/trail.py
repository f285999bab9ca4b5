"""A local CloudTrail: IAM write calls to the local endpoint become CloudTrail events on EventBridge.

`CloudTrailMiddleware` wraps moto's WSGI app (`MotoServer(wrap=...)`), so any
client on this machine — boto3 in another process, the aws CLI, Terraform —
is recorded, not only iamguard's own calls. For each IAM call that succeeds
and is not a read (Get*, List*, Generate*, Simulate*), it builds the event
CloudTrail would deliver to EventBridge ("AWS API Call via CloudTrail",
source aws.iam) and puts it on the local default event bus, where the rules
read from template.yaml pick it up.

What the event holds follows CloudTrail:
- `requestParameters` / `responseElements` in camelCase, typed by the IAM API
  model (`passwordResetRequired` is a boolean, `minimumPasswordLength` a number);
- no secrets: passwords, MFA codes, MFA seeds and QR codes, secret access keys
  and private keys are left out, as CloudTrail leaves them out;
- `userIdentity` from the access key in the SigV4 `Credential=`: an IAM user's
  key → IAMUser, an assumed-role session's key → AssumedRole, any other key
  (moto's default `testing`, or a key root created) → Root.

Like AWS, the middleware also refuses EnableMFADevice / ResyncMFADevice when the
two codes are not consecutive codes of the device (moto accepts any strings).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from iamguard_cli.local import moto_ext

log = logging.getLogger(__name__)

API_CALL = "AWS API Call via CloudTrail"
CONSOLE_SIGN_IN = "AWS Console Sign In via CloudTrail"
IAM_REGION = "us-east-1"  # IAM (a global service) records its events in us-east-1
READ_PREFIXES = ("Get", "List", "Generate", "Simulate")
# Never recorded, whatever the API model says about them.
SECRET_MEMBERS = frozenset(
    {
        "Password",
        "NewPassword",
        "OldPassword",
        "AuthenticationCode1",
        "AuthenticationCode2",
        "SecretAccessKey",
        "Base32StringSeed",
        "QRCodePNG",
        "PrivateKey",
        "ServicePassword",
    }
)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_CLOUDTRAIL_TIME = "%Y-%m-%dT%H:%M:%SZ"
_ELEMENT_TIME = "%b %d, %Y, %I:%M:%S %p"  # how CloudTrail writes dates inside responseElements

Listener = Callable[[dict[str, Any]], None]
WsgiApp = Callable[..., Any]


# -- the IAM API model ---------------------------------------------------------------


@cache
def _iam_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("iam")


def _operation(action: str) -> Any | None:
    from botocore.model import OperationNotFoundError

    try:
        return _iam_model().operation_model(action)
    except OperationNotFoundError:
        return None


def is_write(action: str) -> bool:
    return bool(action) and not action.startswith(READ_PREFIXES)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _secret(name: str, shape: Any) -> bool:
    return name in SECRET_MEMBERS or bool(shape.metadata.get("sensitive")) or shape.type_name == "blob"


def _scalar(text: str, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "boolean":
        return text.lower() == "true"
    if kind in {"integer", "long"}:
        try:
            return int(text)
        except ValueError:
            return text
    if kind in {"float", "double"}:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _from_query(params: Mapping[str, str], shape: Any, key: str) -> Any:
    """One value of a Query-protocol request (`Tags.member.1.Key=...`), typed by its shape."""
    kind = shape.type_name
    if kind == "structure":
        found = {}
        for name, member in shape.members.items():
            if _secret(name, member):
                continue
            member_key = f"{key}.{name}" if key else name
            value = _from_query(params, member, member_key)
            if value is not None:
                found[_camel(name)] = value
        return found or None
    if kind == "list":
        items, index = [], 1
        while any(k.startswith(f"{key}.member.{index}") for k in params):
            items.append(_from_query(params, shape.member, f"{key}.member.{index}"))
            index += 1
        return items if items or key in params else None
    if kind == "map":
        entries, index = {}, 1
        while f"{key}.entry.{index}.key" in params:
            entries[params[f"{key}.entry.{index}.key"]] = _from_query(params, shape.value, f"{key}.entry.{index}.value")
            index += 1
        return entries or None
    return _scalar(params[key], shape) if key in params else None


def _to_elements(value: Any, shape: Any) -> Any:
    """A parsed response value, CloudTrail-style: camelCase keys, readable dates, no secrets."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        result = {}
        for name, member in shape.members.items():
            if name in value and not _secret(name, member):
                result[_camel(name)] = _to_elements(value[name], member)
        return result
    if kind == "list" and isinstance(value, list):
        return [_to_elements(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, Mapping):
        return {key: _to_elements(item, shape.value) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_ELEMENT_TIME)
    return value


def request_parameters(action: str, params: Mapping[str, str]) -> dict[str, Any] | None:
    """The call's parameters as CloudTrail records them (None when there are none)."""
    operation = _operation(action)
    if operation is None or operation.input_shape is None:
        return None
    recorded: dict[str, Any] | None = _from_query(params, operation.input_shape, "")
    if recorded and recorded.get("userName") == moto_ext.ROOT_USER_NAME:
        del recorded["userName"]  # root acting on itself: CloudTrail shows no user name
    return recorded or None


def response_elements(action: str, body: bytes) -> dict[str, Any] | None:
    """What the call returned, as CloudTrail records it (None for calls that return nothing)."""
    operation = _operation(action)
    if operation is None or operation.output_shape is None or not body:
        return None
    from botocore.parsers import QueryParser

    parsed = QueryParser().parse({"body": body, "headers": {}, "status_code": 200}, operation.output_shape)
    parsed.pop("ResponseMetadata", None)
    elements: dict[str, Any] = _to_elements(parsed, operation.output_shape)
    return elements or None


# -- who made the call ----------------------------------------------------------------


def account_for_key(access_key_id: str) -> str:
    """The moto account an access key belongs to (moto's default account for unknown keys)."""
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key_id)


def user_identity(access_key_id: str, account_id: str) -> dict[str, Any]:
    """CloudTrail's userIdentity for a request signed with `access_key_id`."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    key = backend.access_keys.get(access_key_id)
    if key is not None and key.user_name:
        user = backend.get_user(key.user_name)
        return {
            "type": "IAMUser",
            "principalId": user.id,
            "arn": user.arn,
            "accountId": account_id,
            "accessKeyId": access_key_id,
            "userName": user.name,
        }
    if key is not None and key.role_arn:
        return _assumed_role_identity(access_key_id, key.role_arn, account_id)
    return {
        "type": "Root",
        "principalId": account_id,
        "arn": f"arn:aws:iam::{account_id}:root",
        "accountId": account_id,
        "accessKeyId": access_key_id,
    }


def _assumed_role_identity(access_key_id: str, role_arn: str, account_id: str) -> dict[str, Any]:
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    session = next(
        (r for r in sts_backends[account_id]["global"].assumed_roles if r.access_key_id == access_key_id), None
    )
    session_name = session.session_name if session is not None else "session"
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        role_id = iam_backends[account_id]["aws"].get_role_by_arn(role_arn).id
    except NotFoundException:  # the role was deleted after the session began
        role_id = "AROA" + role_name.upper()[:16]
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session_name}",
        "arn": f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}",
        "accountId": account_id,
        "accessKeyId": access_key_id,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": role_arn,
                "accountId": account_id,
                "userName": role_name,
            },
            "attributes": {"creationDate": _now_text(), "mfaAuthenticated": "false"},
        },
    }


def _now_text(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime(_CLOUDTRAIL_TIME)


# -- the trail ------------------------------------------------------------------------


class Trail:
    """Builds CloudTrail events and puts them on the local EventBridge default bus.

    Keeps the most recent events (for `iamguard local` and tests) and tells
    listeners about each one.
    """

    def __init__(self, keep: int = 1000) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def api_call(
        self,
        *,
        action: str,
        params: Mapping[str, str],
        access_key_id: str,
        source_ip: str,
        user_agent: str,
        response_body: bytes,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Record one successful IAM write call; returns the EventBridge event."""
        account_id = account_for_key(access_key_id)
        now = datetime.now(UTC)
        detail = {
            "eventVersion": "1.09",
            "userIdentity": user_identity(access_key_id, account_id),
            "eventTime": _now_text(now),
            "eventSource": "iam.amazonaws.com",
            "eventName": action,
            "awsRegion": IAM_REGION,
            "sourceIPAddress": source_ip,
            "userAgent": user_agent,
            "requestParameters": request_parameters(action, params),
            "responseElements": response_elements(action, response_body),
            "requestID": request_id or str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account_id,
            "eventCategory": "Management",
        }
        return self.publish(API_CALL, "aws.iam", detail, account_id, IAM_REGION, now)

    def publish(
        self,
        detail_type: str,
        source: str,
        detail: dict[str, Any],
        account_id: str,
        region: str = IAM_REGION,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Put one CloudTrail record on the default bus of the local EventBridge."""
        from moto.events.models import events_backends

        when = at or datetime.now(UTC)
        entry = {
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
            "Time": when.timestamp(),
            "EventBusName": "default",
            "Resources": [],
        }
        with self._lock:
            result = events_backends[account_id][region].put_events([entry])
        event = {
            "version": "0",
            "id": result[0].get("EventId", ""),
            "detail-type": detail_type,
            "source": source,
            "account": account_id,
            "time": _now_text(when),
            "region": region,
            "resources": [],
            "detail": detail,
        }
        self.recent.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a printing problem must not fail the caller's API call
                log.exception("trail listener failed")
        return event


# -- the middleware -------------------------------------------------------------------


def _iam_error(code: str, message: str, status: str = "403 Forbidden") -> tuple[str, list[tuple[str, str]], bytes]:
    from xml.sax.saxutils import escape

    body = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
    return status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def _check_mfa_codes(action: str, params: Mapping[str, str], access_key_id: str) -> str | None:
    """Why AWS would refuse these MFA codes, or None when they are right (or the device is unknown)."""
    from moto.iam.models import iam_backends

    from iamguard_cli.mfa import MfaCodeError, verify_consecutive_codes

    if action not in {"EnableMFADevice", "ResyncMFADevice"}:
        return None
    backend = iam_backends[account_for_key(access_key_id)]["aws"]
    device = backend.virtual_mfa_devices.get(params.get("SerialNumber", ""))
    if device is None:
        return None  # moto answers NoSuchEntity itself
    try:
        verify_consecutive_codes(
            device.base32_string_seed, params.get("AuthenticationCode1", ""), params.get("AuthenticationCode2", "")
        )
    except MfaCodeError as exc:
        return f"Authentication code for device is not valid. {exc}"
    return None


class CloudTrailMiddleware:
    """WSGI middleware around moto's app that records IAM write calls in a `Trail`."""

    def __init__(self, app: WsgiApp, trail: Trail, *, verify_mfa_codes: bool = True) -> None:
        self.app = app
        self.trail = trail
        self.verify_mfa_codes = verify_mfa_codes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match is None or match.group(3) != "iam":
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        if not is_write(action):
            return self.app(environ, start_response)  # type: ignore[no-any-return]

        access_key_id = match.group(1)
        if self.verify_mfa_codes:
            problem = _check_mfa_codes(action, params, access_key_id)
            if problem is not None:
                status, error_headers, error_body = _iam_error("InvalidAuthenticationCode", problem)
                start_response(status, error_headers)
                return [error_body]

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return start_response(status, headers, exc_info)

        chunks = self.app(environ, capture)
        try:
            response_body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if str(captured.get("status", "")).startswith("2"):
            headers = {name.lower(): value for name, value in captured.get("headers", [])}
            try:
                self.trail.api_call(
                    action=action,
                    params=params,
                    access_key_id=access_key_id,
                    source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
                    user_agent=environ.get("HTTP_USER_AGENT", ""),
                    response_body=response_body,
                    request_id=headers.get("x-amzn-requestid"),
                )
            except Exception:  # the call itself succeeded: never turn a recording problem into its failure
                log.exception("could not record %s in the local trail", action)
        return [response_body]
