"""`iamguard local`: run the whole bot on this machine, and talk to a running one (signin, audit)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iamguard_cli.commands.common import EXIT_OK, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from iamguard_cli.local.runtime import LocalOptions, LocalRuntime

DEFAULT_PORT = 5000
DEFAULT_API_PORT = 8080
MAX_ACCOUNTS = 50  # each member account adds its stack and a few seconds to the start


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "local",
        help="run iamguard on this machine: a local AWS endpoint, CloudTrail, the handlers, the status API, Slack",
        description="Start the local runtime on 127.0.0.1: moto with a local CloudTrail, the routing and handlers "
        "of template.yaml, the status API and a Slack receiver that prints every message. Point the aws CLI, "
        "boto3 or Terraform at the endpoint it prints and watch iamguard react. Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"AWS endpoint port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--api-port", type=int, default=DEFAULT_API_PORT, help=f"status API port (default {DEFAULT_API_PORT})"
    )
    parser.add_argument("--slack-port", type=int, default=0, help="Slack receiver port (default: any free port)")
    parser.add_argument("--mode", choices=["monitor", "enforce"], default=os.environ.get("MODE") or "monitor")
    parser.add_argument("--language", choices=["en", "ko"], default=language_from_env())
    parser.add_argument("--template", type=Path, default=None, help="SAM template (default: the repository's)")
    parser.add_argument(
        "--accounts",
        type=int,
        default=0,
        metavar="N",
        help="run an organization: this account manages it and runs the hub, N member accounts get the member "
        "stack (member/template.yaml) and forward their events to the hub; their credentials are printed",
    )
    parser.add_argument(
        "--member-template", type=Path, default=None, help="member template (default: the repository's)"
    )
    parser.add_argument("--no-schedules", action="store_true", help="run scheduled functions only on demand")
    parser.add_argument("--quiet", action="store_true", help="do not print each CloudTrail event")
    parser.add_argument("--verbose", action="store_true", help="show the handlers' own log lines (JSON)")
    parser.set_defaults(run=run_local)

    commands = parser.add_subparsers(dest="local_command", metavar="ACTION")
    signin = commands.add_parser(
        "signin",
        help="simulate a console sign-in (a ConsoleLogin event) in a running local runtime",
        description="Sign USER (or 'root') in to the console of a running local runtime. With an MFA device, "
        "--mfa-code must be a current code from it; MFAUsed is 'Yes' only when the code is right.",
    )
    signin.add_argument("user", metavar="USER", help="IAM user name, or root")
    signin.add_argument("--mfa-code", metavar="CODE", help="the current code of the user's MFA device")
    signin.add_argument("--fail", action="store_true", help="a failed sign-in (wrong password)")
    _add_endpoint(signin)
    signin.set_defaults(run=run_signin)

    audit = commands.add_parser("audit", help="run the scheduled audit of a running local runtime now")
    _add_endpoint(audit)
    audit.set_defaults(run=run_audit)

    join = commands.add_parser(
        "join",
        help="a new member account joins the organization of a running `iamguard local --accounts N`",
        description="Create an account in the running local organization; it gets the member stack, as a "
        "service-managed StackSet deploys it to an account that joins. Prints an administrator's session in it.",
    )
    join.add_argument("name", metavar="NAME", help="the account's name")
    _add_endpoint(join)
    join.set_defaults(run=run_join)


def start_runtime(options: LocalOptions) -> LocalRuntime:
    """Start a runtime, with problems as one-line CLI errors; Ctrl-C and SIGTERM stop it from now on."""
    from iamguard_cli.local.cfn import TemplateError
    from iamguard_cli.local.organization import OrganizationError
    from iamguard_cli.local.runtime import LocalRuntime

    install_stop_signals()
    if not options.template.is_file():
        raise CliError(f"no template at {options.template} (use --template)", exit_code=EXIT_USAGE)
    if options.accounts and not options.member_template.is_file():
        raise CliError(f"no member template at {options.member_template} (use --member-template)", exit_code=EXIT_USAGE)
    runtime = LocalRuntime(options)
    try:
        runtime.start()
    except TemplateError as exc:
        raise CliError(f"template.yaml: {exc}") from exc
    except OrganizationError as exc:
        raise CliError(f"the local organization: {exc}") from exc
    except OSError as exc:
        raise CliError(f"cannot start the local runtime: {exc.strerror or exc}") from exc
    return runtime


def language_from_env() -> str:
    value = os.environ.get("LANGUAGE", "")
    return value if value in {"en", "ko"} else "en"


def _add_endpoint(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{DEFAULT_PORT}"
    parser.add_argument("--endpoint-url", default=default, help=f"the local runtime (default {default})")


def check_ports(args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """Valid and free, or a clear usage error before anything starts."""
    for flag in flags:
        port = getattr(args, flag)
        option = f"--{flag.replace('_', '-')}"
        if not 0 <= port <= 65535:
            raise CliError(f"{option} must be between 0 and 65535", exit_code=EXIT_USAGE)
        if port and not _free(port):
            raise CliError(
                f"127.0.0.1:{port} is in use: choose another {option} (0 = any free port)", exit_code=EXIT_USAGE
            )


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def install_stop_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the runtime: KeyboardInterrupt in the main thread, once.

    Installed explicitly: a process started as a background job (`cmd &` in a script) inherits
    SIGINT as ignored, and Python then installs no KeyboardInterrupt handler of its own.
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    # A second signal while stopping must not cut the (bounded) shutdown short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_local(args: argparse.Namespace) -> int:
    from iamguard_cli.local.organization import default_member_template
    from iamguard_cli.local.runtime import LocalOptions, default_template

    check_ports(args, ("port", "api_port", "slack_port"))
    if not 0 <= args.accounts <= MAX_ACCOUNTS:
        raise CliError(f"--accounts must be between 0 and {MAX_ACCOUNTS}", exit_code=EXIT_USAGE)
    options = LocalOptions(
        port=args.port,
        api_port=args.api_port,
        slack_port=args.slack_port,
        mode=args.mode,
        language=args.language,
        template=args.template or default_template(),
        run_schedules_on_time=not args.no_schedules,
        log_level="INFO" if args.verbose else "ERROR",
        echo=sys.stdout,
        show_trail=not args.quiet,
        accounts=args.accounts,
        member_template=args.member_template or default_member_template(),
    )
    sys.stdout.write("starting the local runtime...\n")
    sys.stdout.flush()
    try:
        runtime = start_runtime(options)
    except KeyboardInterrupt:  # stopped while starting (start() cleaned up after itself)
        sys.stdout.write("\nstopped before the local runtime was up\n")
        return EXIT_OK
    try:
        sys.stdout.write(runtime.banner() + "\n")
        sys.stdout.flush()
        runtime.run_audit()  # the first audit, as a new deployment would run it
        threading.Event().wait()
    except KeyboardInterrupt:
        sys.stdout.write("\nstopping the local runtime\n")
        sys.stdout.flush()
    finally:
        runtime.stop()
    # The interpreter's last garbage collection would walk the whole emulated account (seconds): skip it.
    gc.freeze()
    return EXIT_OK


def _control(args: argparse.Namespace, command: str, payload: dict[str, Any]) -> dict[str, Any]:
    from iamguard_cli.local.runtime import ControlError, control_request

    try:
        return control_request(args.endpoint_url, command, payload)
    except ControlError as exc:
        if exc.status == 404:
            raise CliError(f"{args.endpoint_url} is not an iamguard local runtime (start one: iamguard local)") from exc
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot reach the local runtime at {args.endpoint_url} (start it: iamguard local)") from exc


def run_signin(args: argparse.Namespace) -> int:
    answer = _control(args, "signin", {"user": args.user, "mfa_code": args.mfa_code, "fail": args.fail})
    who = "root" if args.user == "root" else args.user
    if answer["console_login"] == "Success":
        sys.stdout.write(f"{who} signed in to the console (MFAUsed={answer['mfa_used']}).\n")
    else:
        sys.stdout.write(f"{who} failed to sign in (ConsoleLogin Failure).\n")
    if answer.get("note"):
        sys.stdout.write(f"note: {answer['note']}\n")
    sys.stdout.write(f"ConsoleLogin event {answer['event_id']} sent to the local EventBridge.\n")
    return EXIT_OK


def run_audit(args: argparse.Namespace) -> int:
    answer = _control(args, "audit", {})
    for invocation in answer["invocations"]:
        if invocation.get("error"):
            raise CliError(f"the audit failed: {invocation['error']}")
        result = invocation.get("result") or {}
        if "queued" in result:  # organization: the planner
            sys.stdout.write(f"organization audit: {result['queued']} of {result['accounts']} accounts queued\n")
            continue
        if "messages" in invocation:  # organization: one account's audit, from the audit queue
            accounts = ", ".join(_queued_account(body) for body in invocation["messages"])
            retried = len(result.get("batchItemFailures") or [])
            sys.stdout.write(
                f"audit of account {accounts} done in {invocation['duration_ms']:.0f} ms"
                + (f" ({retried} to retry)" if retried else "")
                + "\n"
            )
            continue
        summary = result.get("summary", {})
        failed = summary.get("failed_by_severity", {})
        shown = ", ".join(f"{count} {severity}" for severity, count in failed.items() if count) or "none"
        sys.stdout.write(
            f"audit done in {invocation['duration_ms']:.0f} ms: {summary.get('total', 0)} findings, failed: {shown}\n"
        )
    return EXIT_OK


def _queued_account(body: str) -> str:
    try:
        return str(json.loads(body)["account_id"])
    except (ValueError, KeyError, TypeError):
        return "?"


def run_join(args: argparse.Namespace) -> int:
    answer = _control(args, "join", {"name": args.name})
    sys.stdout.write(
        f"account {answer['account_id']} ({answer['name']}) joined the organization and has the member stack.\n"
        "An administrator's session in it (OrganizationAccountAccessRole):\n"
        "  export " + " ".join(f"{key}={value}" for key, value in answer["environment"].items()) + "\n"
    )
    return EXIT_OK
