"""The one seam where boto3 clients are made.

Every client gets botocore's own retry mode (adaptive by default: it also
rate-limits the client when IAM throttles) and explicit timeouts, and can be
pointed at a local emulator with an endpoint URL. Responses' ISO 8601 timestamps
are parsed with `datetime.fromisoformat` (see `parse_timestamp`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.utils import parse_timestamp as botocore_parse_timestamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

RetryMode = Literal["standard", "adaptive", "legacy"]


@dataclass(frozen=True)
class AwsContext:
    """Where and how to reach AWS (or a moto server standing in for it)."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    profile: str | None = None
    retry_mode: RetryMode = "adaptive"
    max_attempts: int = 8
    _session: Any = field(default=None, compare=False, repr=False)

    def session(self) -> boto3.session.Session:
        if self._session is None:
            core = botocore.session.get_session()
            core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
            object.__setattr__(
                self,
                "_session",
                boto3.session.Session(botocore_session=core, profile_name=self.profile, region_name=self.region),
            )
        session: boto3.session.Session = self._session
        return session

    def client(self, service: str) -> Any:
        config = Config(
            retries={"mode": self.retry_mode, "max_attempts": self.max_attempts},
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra="iamguard",
            max_pool_connections=32,
        )
        return self.session().client(
            service,  # type: ignore[call-overload]
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=config,
        )

    def iam(self) -> IAMClient:
        client: IAMClient = self.client("iam")
        return client

    def sts(self) -> STSClient:
        client: STSClient = self.client("sts")
        return client

    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client


def parse_timestamp(value: Any) -> datetime:
    """A response's timestamp: ISO 8601 with a zone by `fromisoformat`, anything else as botocore parses it.

    botocore's own parser goes through dateutil, about 0.3 ms a value: a 2,000-user account's
    bulk reads carry thousands of dates (users, keys, MFA devices, policies). The instant is the
    same either way (an aware datetime); only the tzinfo object differs (timezone.utc, not tzutc).
    """
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    parsed_by_botocore: datetime = botocore_parse_timestamp(value)
    return parsed_by_botocore


def error_code(exc: ClientError) -> str:
    """The service's error code ("" if the response has none): for code sets that span services or operations.

    Where one client's modeled error is meant, catch `client.exceptions.<Name>Exception` instead.
    """
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_text(exc: ClientError) -> str:
    """`Code: Message`, as a finding or an API response reports an AWS error."""
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()


Handler = TypeVar("Handler", bound=Callable[..., Any])


class HandlerTracer(Protocol):
    """What a handler module uses of Powertools' Tracer."""

    def capture_lambda_handler(self, handler: Handler) -> Handler: ...


class _NoTracer:
    """What a handler decorates with while X-Ray tracing is off: nothing happens, nothing is imported."""

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        return handler


def lambda_tracer() -> HandlerTracer:
    """Powertools' Tracer when the stack turns tracing on (template parameter Tracing), else a no-op.

    Creating a Tracer imports aws_xray_sdk (about 120 ms of every cold start) even when it
    is disabled, so tracing is opt-in: only POWERTOOLS_TRACE_DISABLED=false (template.yaml
    sets it from the parameter) creates one. Tests and the local runtime never pay for it.
    """
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in {"0", "false", "no", "off"}:
        return _NoTracer()
    from aws_lambda_powertools import Tracer

    return cast(HandlerTracer, Tracer())
