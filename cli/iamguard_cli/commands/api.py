"""`iamguard api openapi`: print the status API's OpenAPI document (docs/openapi.json)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from iamguard_cli.commands.common import EXIT_OK


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "api", help="the status API's contract", description="The status API's contract."
    )
    commands = parser.add_subparsers(dest="api_command", metavar="COMMAND", required=True)
    openapi = commands.add_parser(
        "openapi",
        help="print the OpenAPI document generated from the resolver",
        description="Print the OpenAPI 3.1 document generated from the resolver: "
        "iamguard api openapi > docs/openapi.json",
    )
    openapi.set_defaults(run=print_openapi)


def print_openapi(args: argparse.Namespace) -> int:
    from iamguard.api import openapi_json

    sys.stdout.write(openapi_json())
    return EXIT_OK
