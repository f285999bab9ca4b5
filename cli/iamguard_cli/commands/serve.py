"""`iamguard serve`: the status API on 127.0.0.1, over the findings that `iamguard audit --store` recorded."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from iamguard.settings import DEFAULT_FINDINGS_TABLE, ConfigError, Settings

from iamguard_cli.commands.common import (
    EXIT_OK,
    CliError,
    add_aws_arguments,
    aws_context,
    aws_errors,
    is_local_endpoint,
)
from iamguard_cli.local.api_server import ApiServer, local_service, serve_in_thread

__all__ = ["register", "run", "serve_in_thread"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the status API on 127.0.0.1 (the same resolver as the Lambda function)",
        description="Serve the status API (GET /status, /users, /findings, /events, /trend; POST /audit) and the HTML "
        "report (GET /report?days=30) on 127.0.0.1, reading the findings table at --endpoint-url. There is no "
        "authorization: it binds to loopback only.",
    )
    add_aws_arguments(parser)
    parser.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (default 8080; 0 = any free)")
    parser.add_argument(
        "--table", default=None, help=f"findings table (default: $FINDINGS_TABLE or {DEFAULT_FINDINGS_TABLE})"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    parser.set_defaults(run=run)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, not {args.port}", exit_code=2)
    ctx = aws_context(args)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    table = args.table or settings.findings_table
    try:
        with aws_errors(args.endpoint_url):
            service = local_service(ctx, table, settings=settings, create_table=is_local_endpoint(args.endpoint_url))
            server = ApiServer(service, args.port, verbose=not args.quiet)
    except OSError as exc:
        raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from exc
    where = args.endpoint_url or f"AWS ({ctx.region})"
    print(f"iamguard status API on {server.url} - findings table {table} at {where}", file=sys.stderr)  # noqa: T201
    print(f"  try: curl {server.url}/status", file=sys.stderr)  # noqa: T201
    print(f"  the HTML report: {server.url}/report", file=sys.stderr)  # noqa: T201
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return EXIT_OK
