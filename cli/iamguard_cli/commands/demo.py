"""`iamguard demo` (what `make demo` runs): the walkthrough of DESIGN.md against the local runtime."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from iamguard_cli.commands.common import EXIT_OK, EXIT_RUNTIME_ERROR
from iamguard_cli.commands.local import check_ports, language_from_env, start_runtime

MAX_DEMO_MEMBERS = 10


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch iamguard react to an account being set up, step by step (local, under a minute)",
        description="Start the local runtime and walk through setting up an account: the first audit flags root "
        "without MFA, root signs in, root enrols MFA, wonjun_admin is created with a console password and "
        "AdministratorAccess, signs in without MFA, an alias is created, wonjun_admin enrols MFA, GET /status. "
        "Every step is a real call; every reaction is iamguard's. Exits 0 when iamguard reacted to every step.",
    )
    parser.add_argument(
        "--organization",
        action="store_true",
        help="the organization walkthrough: a new account joins, gets the member stack, an admin without MFA is "
        "created in it, iamguard names the account, /accounts and /status show the organization's verdict",
    )
    parser.add_argument(
        "--accounts",
        type=_member_count,
        default=2,
        help="with --organization: member accounts before the new one joins (1-10, default 2)",
    )
    parser.add_argument("--language", choices=["en", "ko"], default=language_from_env())
    parser.add_argument("--mode", choices=["monitor", "enforce"], default="enforce")
    parser.add_argument("--keep-running", action="store_true", help="leave the runtime up afterwards (Ctrl-C stops)")
    parser.add_argument("--port", type=int, default=0, help="AWS endpoint port (default: any free port)")
    parser.add_argument("--api-port", type=int, default=0, help="status API port (default: any free port)")
    parser.add_argument("--template", type=Path, default=None, help="SAM template (default: the repository's)")
    parser.add_argument(
        "--member-template",
        type=Path,
        default=None,
        help="with --organization: the member accounts' template (default: the repository's member/template.yaml)",
    )
    parser.set_defaults(run=run)


def _member_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 1 <= count <= MAX_DEMO_MEMBERS:
        raise argparse.ArgumentTypeError(f"--accounts must be between 1 and {MAX_DEMO_MEMBERS}")
    return count


def run(args: argparse.Namespace) -> int:
    if args.organization:
        return run_organization(args)
    from iamguard_cli.local.demo import Demo, narration
    from iamguard_cli.local.runtime import LocalOptions, default_template

    check_ports(args, ("port", "api_port"))
    options = LocalOptions(
        port=args.port,
        api_port=args.api_port,
        mode=args.mode,
        language=args.language,
        template=args.template or default_template(),
        run_schedules_on_time=args.keep_running,
        echo=None,  # the demo tells the story itself; --keep-running shows everything afterwards
    )
    text = narration(args.language)
    out = sys.stdout
    out.write(text["title"] + "\n\n" + text["starting"] + "\n")
    out.flush()
    started = time.monotonic()
    runtime = start_runtime(options)
    try:
        out.write(
            text["started"].format(
                seconds=time.monotonic() - started,
                mode=args.mode,
                language=args.language,
                endpoint=runtime.endpoint_url,
                api=runtime.api_url,
            )
            + "\n"
        )
        ok = Demo(runtime, out, language=args.language).run().ok
        return _after_walkthrough(ok, runtime, args, out, text["keep_running"])
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        runtime.stop()


def _after_walkthrough(ok: bool, runtime: Any, args: argparse.Namespace, out: TextIO, keep_running: str) -> int:
    """Both walkthroughs end alike: with --keep-running, hand the terminal to the runtime until Ctrl-C."""
    if args.keep_running:
        out.write("\n" + runtime.banner() + keep_running + "\n")
        out.flush()
        runtime.terminal.stream = out
        threading.Event().wait()
    return EXIT_OK if ok else EXIT_RUNTIME_ERROR


def run_organization(args: argparse.Namespace) -> int:
    """`iamguard demo --organization`: exits 0 only when every step had the effect it promises."""
    from iamguard_cli.local.demo import narration
    from iamguard_cli.local.demo_organization import OrganizationDemo
    from iamguard_cli.local.organization import default_member_template
    from iamguard_cli.local.runtime import LocalOptions, default_template

    check_ports(args, ("port", "api_port"))
    options = LocalOptions(
        port=args.port,
        api_port=args.api_port,
        mode=args.mode,
        language=args.language,
        template=args.template or default_template(),
        run_schedules_on_time=args.keep_running,
        echo=None,
        accounts=args.accounts,
        member_template=args.member_template or default_member_template(),
    )
    text = narration(args.language)
    out = sys.stdout
    out.write(text["org.title"] + "\n\n" + text["org.starting"].format(members=args.accounts) + "\n")
    out.flush()
    started = time.monotonic()
    runtime = start_runtime(options)
    try:
        organization = runtime.organization
        assert organization is not None
        out.write(
            text["org.started"].format(
                seconds=time.monotonic() - started,
                organization=organization.organization_id,
                hub=runtime.account_id,
                members=", ".join(f"{m.account_id} ({m.name})" for m in organization.members),
                mode=args.mode,
                language=args.language,
                endpoint=runtime.endpoint_url,
                api=runtime.api_url,
            )
            + "\n"
        )
        ok = OrganizationDemo(runtime, out, language=args.language).run().ok
        return _after_walkthrough(ok, runtime, args, out, text["keep_running"])
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        runtime.stop()
