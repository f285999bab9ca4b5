"""`iamguard demo` (what `make demo` runs): the walkthrough of DESIGN.md against the local runtime."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from iamguard_cli.commands.common import EXIT_OK, EXIT_RUNTIME_ERROR
from iamguard_cli.commands.local import check_ports, language_from_env, start_runtime


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch iamguard react to an account being set up, step by step (local, under a minute)",
        description="Start the local runtime and walk through setting up an account: the first audit flags root "
        "without MFA, root signs in, root enrols MFA, wonjun_admin is created with a console password and "
        "AdministratorAccess, signs in without MFA, an alias is created, wonjun_admin enrols MFA, GET /status. "
        "Every step is a real call; every reaction is iamguard's. Exits 0 when iamguard reacted to every step.",
    )
    parser.add_argument("--language", choices=["en", "ko"], default=language_from_env())
    parser.add_argument("--mode", choices=["monitor", "enforce"], default="enforce")
    parser.add_argument("--keep-running", action="store_true", help="leave the runtime up afterwards (Ctrl-C stops)")
    parser.add_argument("--port", type=int, default=0, help="AWS endpoint port (default: any free port)")
    parser.add_argument("--api-port", type=int, default=0, help="status API port (default: any free port)")
    parser.add_argument("--template", type=Path, default=None, help="SAM template (default: the repository's)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
        result = Demo(runtime, out, language=args.language).run()
        if args.keep_running:
            out.write("\n" + runtime.banner() + text["keep_running"] + "\n")
            out.flush()
            runtime.terminal.stream = out
            threading.Event().wait()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        runtime.stop()
    return EXIT_OK if result.ok else EXIT_RUNTIME_ERROR
