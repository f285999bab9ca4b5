"""What every subcommand shares: AWS connection flags and turning AWS errors into one-line messages."""

from __future__ import annotations

import argparse
import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from iamguard.aws import AwsContext, error_code

EXIT_OK = 0
EXIT_RUNTIME_ERROR = 1
EXIT_USAGE = 2
EXIT_FINDINGS = 3
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_RUNTIME_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_aws_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS connection")
    group.add_argument("--endpoint-url", help="AWS endpoint, e.g. a local moto server (http://127.0.0.1:5000)")
    group.add_argument("--region", default=None, help="AWS region (default: us-east-1 or AWS_REGION)")
    group.add_argument("--profile", default=None, help="named AWS profile")


def is_local_endpoint(endpoint_url: str | None) -> bool:
    if not endpoint_url:
        return False
    return (urllib.parse.urlparse(endpoint_url).hostname or "") in LOCAL_HOSTS


def aws_context(args: argparse.Namespace) -> AwsContext:
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if is_local_endpoint(args.endpoint_url) and not args.profile and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # A local emulator accepts any credentials; these sign as the account's root user there.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        return AwsContext(region=region, endpoint_url=args.endpoint_url, profile=args.profile)
    except ProfileNotFound as exc:
        raise CliError(str(exc)) from exc


@contextmanager
def aws_errors(endpoint_url: str | None = None) -> Iterator[None]:
    """Turn AWS failures into one-line CLI errors (exit 1), never a traceback."""
    try:
        yield
    except NoCredentialsError as exc:
        raise CliError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or use --endpoint-url "
            "with a local emulator)"
        ) from exc
    except EndpointConnectionError as exc:
        raise CliError(f"cannot reach {endpoint_url or 'AWS'}: {exc}") from exc
    except NoRegionError as exc:
        raise CliError("no AWS region configured (use --region)") from exc
    except ProfileNotFound as exc:
        raise CliError(str(exc)) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error_code(exc) or "Error"
        operation = getattr(exc, "operation_name", "AWS call")
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            raise CliError(f"access denied calling {operation}: {error.get('Message', '')}") from exc
        raise CliError(f"{operation} failed: {code}: {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise CliError(f"AWS error: {exc}") from exc
