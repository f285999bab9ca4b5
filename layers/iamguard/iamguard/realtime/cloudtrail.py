"""Typed models of CloudTrail events as EventBridge delivers them.

Two detail types reach iamguard: "AWS API Call via CloudTrail" (IAM writes) and
the console sign-in type (ConsoleLogin), which AWS spells two ways: "AWS Console
Sign In via CloudTrail" and, in the EventBridge User Guide, "AWS Console Signin
via CloudTrail". IAM Identity Center's sign-in steps come as "AWS Service Event
via CloudTrail". The envelope is Powertools' `EventBridgeModel`; the `detail` is
CloudTrail's record, whose fields keep their CloudTrail (camelCase) names as aliases.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

API_CALL = "AWS API Call via CloudTrail"
CONSOLE_SIGN_IN = "AWS Console Sign In via CloudTrail"
CONSOLE_SIGN_IN_EVENTBRIDGE_GUIDE = "AWS Console Signin via CloudTrail"
CONSOLE_SIGN_IN_TYPES = (CONSOLE_SIGN_IN, CONSOLE_SIGN_IN_EVENTBRIDGE_GUIDE)
DetailType = Literal[
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Console Signin via CloudTrail",
    "AWS Service Event via CloudTrail",
]
HIDDEN_USER_NAME = "HIDDEN_DUE_TO_SECURITY_REASONS"
# IAM Identity Center's permission-set roles: role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_<set>_<id>.
_IDENTITY_CENTER_ROLE = "AWSReservedSSO_"

# Bounds that keep a hostile or corrupt event from costing more than a rejection.
_ID = 256
_NAME = 256
_TEXT = 4096
# A whole event: EventBridge's size limit (256 KB), far deeper and wider than any CloudTrail record,
# numbers that fit 64 bits, and times between IAM's launch and a day of clock skew ahead of now.
MAX_EVENT_CHARS = 256 * 1024
MAX_EVENT_VALUES = 20_000
MAX_EVENT_DEPTH = 32
MAX_INTEGER = 2**63
EARLIEST_EVENT_TIME = datetime(2010, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)


class EventBoundsError(ValueError):
    """The raw event is larger, deeper or stranger than any CloudTrail record (the message says where)."""


def printable(text: str, limit: int = 80) -> str:
    """`text` shortened and safe to print or encode (a lone surrogate becomes "?")."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return short.encode("utf-8", "replace").decode("utf-8") if not short.isascii() else short


def _valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can carry it ("\ud800"), UTF-8 cannot
        return False
    return True


# Where a value sits: (parent, key or index), built without formatting; shown only in a rejection.
_Where = tuple[Any, str | int] | None


def _shown(where: _Where) -> str:
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key[:40]}")
    path = "".join(reversed(parts)).lstrip(".")
    return printable(path, 120) if path else "the event"


def check_bounds(raw: Any) -> None:
    """Raise EventBoundsError unless `raw` is a JSON value of a size and shape a CloudTrail event can have.

    Iterative, and it stops at the first excess: the check itself costs at most the bounds.
    """
    chars = 0
    values = 1
    stack: list[tuple[Any, int, _Where]] = [(raw, 1, None)]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_EVENT_DEPTH:
            raise EventBoundsError(f"{_shown(where)} is nested more than {MAX_EVENT_DEPTH} levels deep")
        if isinstance(value, dict | list):
            values += len(value)
            if values > MAX_EVENT_VALUES:
                raise EventBoundsError(f"the event holds more than {MAX_EVENT_VALUES} values")
            if isinstance(value, list):
                stack.extend((child, depth + 1, (where, index)) for index, child in enumerate(value))
                continue
            for key, child in value.items():
                if not isinstance(key, str) or not _valid_unicode(key):
                    raise EventBoundsError(f"{_shown(where)} has a key that is not valid Unicode text")
                chars += len(key)
                stack.append((child, depth + 1, (where, key)))
        elif isinstance(value, str):
            chars += len(value)
            if not _valid_unicode(value):
                raise EventBoundsError(f"{_shown(where)} is not valid Unicode text (a lone surrogate)")
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not -MAX_INTEGER <= value < MAX_INTEGER:
                raise EventBoundsError(f"{_shown(where)} is a number beyond 64 bits")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise EventBoundsError(f"{_shown(where)} is not a finite number")
        else:
            raise EventBoundsError(f"{_shown(where)} is a {type(value).__name__}, not a JSON value")
        if chars > MAX_EVENT_CHARS:
            raise EventBoundsError(f"the event is larger than {MAX_EVENT_CHARS // 1024} KB of text")


class _CloudTrailModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SessionIssuer(_CloudTrailModel):
    type: str | None = Field(default=None, max_length=_NAME)
    arn: str | None = Field(default=None, max_length=_TEXT)
    user_name: str | None = Field(default=None, max_length=_NAME)


class SessionContext(_CloudTrailModel):
    session_issuer: SessionIssuer | None = None
    web_id_federation_data: dict[str, Any] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    assumed_root: str | None = Field(default=None, max_length=_NAME)  # "true": an sts:AssumeRoot session


class UserIdentity(_CloudTrailModel):
    """Who made the call: Root, IAMUser, AssumedRole, FederatedUser, SAMLUser, IdentityCenterUser, AWSService, …"""

    type: str = Field(default="Unknown", max_length=_NAME)
    principal_id: str | None = Field(default=None, max_length=_TEXT)
    arn: str | None = Field(default=None, max_length=_TEXT)
    account_id: str | None = Field(default=None, max_length=_ID)
    user_name: str | None = Field(default=None, max_length=_TEXT)
    invoked_by: str | None = Field(default=None, max_length=_TEXT)
    identity_provider: str | None = Field(default=None, max_length=_TEXT)
    session_context: SessionContext | None = None

    @property
    def readable(self) -> str:
        """'root', 'IAM user alice', 'role Admin (session bob)', … — for alert text."""
        if self.type == "Root":
            return "root"
        if self.type == "IAMUser":
            return f"IAM user {self.user_name or self.arn or 'unknown'}"
        if self.type == "AssumedRole":
            issuer = self.session_context.session_issuer if self.session_context else None
            role = issuer.user_name if issuer and issuer.user_name else "unknown role"
            session = (self.arn or "").rsplit("/", 1)[-1]
            return f"role {role}" + (f" (session {session})" if session else "")
        return f"{self.type} {self.user_name or self.principal_id or self.arn or ''}".strip()


class CloudTrailDetail(_CloudTrailModel):
    """The CloudTrail record carried in `detail` (only the fields iamguard reads are typed)."""

    event_version: str | None = Field(default=None, max_length=_ID)
    user_identity: UserIdentity
    event_time: datetime
    event_source: str = Field(max_length=_NAME)
    event_name: str = Field(max_length=_NAME)
    aws_region: str | None = Field(default=None, max_length=_ID)
    source_ip_address: str | None = Field(default=None, alias="sourceIPAddress", max_length=_TEXT)
    user_agent: str | None = Field(default=None, max_length=_TEXT)
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    additional_event_data: dict[str, Any] | None = None
    error_code: str | None = Field(default=None, max_length=_TEXT)
    error_message: str | None = Field(default=None, max_length=_TEXT)
    request_id: str | None = Field(default=None, alias="requestID", max_length=_ID)
    event_id: str = Field(alias="eventID", min_length=1, max_length=_ID)
    read_only: bool | None = None
    event_type: str | None = Field(default=None, max_length=_NAME)
    management_event: bool | None = None
    recipient_account_id: str | None = Field(default=None, max_length=_ID)

    @field_validator("event_time")
    @classmethod
    def _sane_event_time(cls, value: datetime) -> datetime:
        """Aware, in UTC, and within [EARLIEST_EVENT_TIME, now + CLOCK_SKEW]: later arithmetic cannot overflow."""
        if value.utcoffset() is None:
            raise ValueError("eventTime has no timezone (CloudTrail writes UTC: 2026-06-01T10:00:00Z)")
        latest = datetime.now(UTC) + CLOCK_SKEW
        if not EARLIEST_EVENT_TIME <= value <= latest:
            raise ValueError(
                f"eventTime {value.isoformat()} is not between {EARLIEST_EVENT_TIME:%Y-%m-%d} and a day from now"
            )
        return value.astimezone(UTC)

    def request(self, name: str) -> Any:
        """A request parameter, or None."""
        return (self.request_parameters or {}).get(name)

    @property
    def console_login_result(self) -> str | None:
        """'Success' or 'Failure' for ConsoleLogin (responseElements.ConsoleLogin)."""
        value = (self.response_elements or {}).get("ConsoleLogin")
        return value if isinstance(value, str) else None

    @property
    def mfa_used(self) -> bool | None:
        """additionalEventData.MFAUsed: 'Yes' / 'YES' / 'No' → True / False; absent → None."""
        value = (self.additional_event_data or {}).get("MFAUsed")
        if not isinstance(value, str):
            return None
        lowered = value.strip().lower()
        return True if lowered == "yes" else False if lowered == "no" else None

    @property
    def saml_provider_arn(self) -> str | None:
        """additionalEventData.SamlProviderArn: the IAM SAML provider a console sign-in came through."""
        value = (self.additional_event_data or {}).get("SamlProviderArn")
        return value[:_NAME] if isinstance(value, str) and value else None

    @property
    def federation(self) -> str | None:
        """How a federated console sign-in was made; None for root's and IAM users' own sign-ins.

        A SAML sign-in names its provider in additionalEventData.SamlProviderArn even when
        userIdentity.type says IAMUser. Root never federates: a root record stays root's.
        IAM Identity Center sessions are AWSReservedSSO_ roles, web identity (OIDC) sessions
        carry webIdFederationData.
        """
        identity = self.user_identity
        kind = identity.type
        if kind == "Root":
            return None
        saml = self.saml_provider_arn
        if saml:
            return f"SAML federation ({saml})"
        if kind == "IAMUser":
            return None
        context = identity.session_context
        issuer = context.session_issuer if context else None
        roles = [identity.arn, issuer.arn, issuer.user_name] if issuer else [identity.arn]
        if kind == "IdentityCenterUser" or any(_IDENTITY_CENTER_ROLE in (role or "") for role in roles):
            return "IAM Identity Center"
        web = (context.web_id_federation_data if context else None) or {}
        if kind == "WebIdentityUser" or web:
            provider = web.get("federatedProvider") or identity.identity_provider
            return "web identity (OIDC) federation" + (f" ({str(provider)[:_NAME]})" if provider else "")
        if kind == "SAMLUser":
            return "SAML federation" + (f" ({identity.identity_provider})" if identity.identity_provider else "")
        if kind == "FederatedUser":
            return "a federation broker's GetFederationToken session"
        if kind == "AssumedRole":
            return "an assumed-role session (a federation broker through the AWS federation endpoint)"
        return f"an identity of type {kind}"


class CloudTrailEvent(EventBridgeModel):
    """An EventBridge event wrapping one CloudTrail record."""

    detail_type: DetailType = Field(alias="detail-type")
    detail: CloudTrailDetail

    @property
    def account_id(self) -> str:
        """The account the event happened in (CloudTrail's recipient account, else the envelope's)."""
        return self.detail.recipient_account_id or self.account


def parse_event(raw: Any) -> CloudTrailEvent:
    """Validate a raw EventBridge event with Powertools' parser.

    Raises EventBoundsError (too large, too deep, not JSON-representable), TypeError (not an
    object) or pydantic's ValidationError (not a CloudTrail event via EventBridge).
    """
    if not isinstance(raw, dict):
        raise TypeError(f"an EventBridge event is a JSON object, not {type(raw).__name__}")
    check_bounds(raw)
    return parse(event=raw, model=CloudTrailEvent)
