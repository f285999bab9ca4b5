"""The `iamguard` command line.

Each subcommand lives in its own module with `register(subparsers)`. Only the
named subcommand's module is imported (all of them for `iamguard --help` or a
mistyped name), so `iamguard audit` does not pay for the local runtime's or the
status API's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from iamguard import __version__

from iamguard_cli.commands.common import EXIT_RUNTIME_ERROR, CliError

# subcommand → module that registers it
SUBCOMMANDS = {
    "audit": "iamguard_cli.commands.audit",
    "events": "iamguard_cli.commands.events",
    "serve": "iamguard_cli.commands.serve",
    "api": "iamguard_cli.commands.api",
    "mfa": "iamguard_cli.commands.mfa",
    "local": "iamguard_cli.commands.local",
    "demo": "iamguard_cli.commands.demo",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or only `command`'s when it is one of them."""
    parser = argparse.ArgumentParser(
        prog="iamguard",
        description="IAM enforcement for AWS: audit an account, replay CloudTrail events, run the local runtime.",
    )
    parser.add_argument("--version", action="version", version=f"iamguard {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [SUBCOMMANDS[command]] if command in SUBCOMMANDS else SUBCOMMANDS.values()
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(arguments))
    args = parser.parse_args(arguments)
    try:
        code: int = args.run(args)
    except CliError as exc:
        print(f"iamguard: error: {exc}", file=sys.stderr)  # noqa: T201
        return exc.exit_code
    except KeyboardInterrupt:
        print("iamguard: interrupted", file=sys.stderr)  # noqa: T201
        return EXIT_RUNTIME_ERROR
    return code


def _command_of(arguments: list[str]) -> str | None:
    """The subcommand named first (the top-level parser takes only flags without values before it)."""
    return next((argument for argument in arguments if not argument.startswith("-")), None)


if __name__ == "__main__":
    sys.exit(main())
