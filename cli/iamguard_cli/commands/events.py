"""`iamguard events`: replay CloudTrail events through the event Lambdas' own code, seed a local sample account.

`replay` prints one JSON object per event (JSON lines). A file that cannot be
read or parsed (not UTF-8, not JSON, nested past Python's recursion limit,
integers past its digit limit, empty), or an event that is malformed, is
reported as "rejected" and the replay goes on; only an unreachable or failing
AWS endpoint stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iamguard.aws import AwsContext
from iamguard.domain.alerts import Announcer, LogOnlyAnnouncer
from iamguard.notify.dispatcher import Dispatcher
from iamguard.persistence.findings import FindingsStore
from iamguard.realtime.cloudtrail import printable
from iamguard.realtime.processor import EventProcessor, EventResult
from iamguard.settings import DEFAULT_FINDINGS_TABLE, Settings

from iamguard_cli.commands.audit import settings_from
from iamguard_cli.commands.common import EXIT_OK, EXIT_USAGE, CliError, add_aws_arguments, aws_context, aws_errors
from iamguard_cli.commands.common import is_local_endpoint as _is_local
from iamguard_cli.commands.notify_options import add_notify_arguments, announcer_from_args, report_delivery
from iamguard_cli.local.bootstrap import ensure_findings_table, ensure_guardrail_policy, ensure_idempotency_table
from iamguard_cli.local.lambda_context import LambdaContext

DEFAULT_IDEMPOTENCY_TABLE = "iamguard-idempotency"
# Each event gets what a Lambda invocation gets (template.yaml: Timeout 60): an in-progress
# idempotency record left by a killed replay expires after it, as a timed-out invocation's does.
EVENT_DEADLINE_MS = 60_000
logger = logging.getLogger("iamguard.events")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "events",
        help="replay CloudTrail events through the real-time path; seed a local sample account",
        description="Work with CloudTrail events the way the event Lambdas do.",
    )
    commands = parser.add_subparsers(dest="events_command", metavar="COMMAND", required=True)

    replay = commands.add_parser(
        "replay",
        help="run events (EventBridge-wrapped CloudTrail JSON) through exactly the handler logic",
        description="Run each event through the event Lambdas' logic against an endpoint; print one JSON "
        "object per event. A FILE holds one event or a JSON array of events.",
    )
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_aws_arguments(replay)
    replay.add_argument("--mode", choices=["monitor", "enforce"], default=None, help="default: $MODE or monitor")
    replay.add_argument("--format", choices=["json", "text"], default="json", help="json: JSON lines (default)")
    replay.add_argument(
        "--table", default=None, help=f"findings table (default: $FINDINGS_TABLE or {DEFAULT_FINDINGS_TABLE})"
    )
    replay.add_argument(
        "--idempotency-table",
        default=None,
        help=f"idempotency table (default: $IDEMPOTENCY_TABLE or {DEFAULT_IDEMPOTENCY_TABLE})",
    )
    replay.add_argument(
        "--guardrail-policy-arn",
        default=None,
        help="the MFA guardrail policy (default: $GUARDRAIL_POLICY_ARN; on a local endpoint it is created if missing)",
    )
    replay.add_argument(
        "--iamguard-role",
        action="append",
        default=[],
        metavar="ARN",
        help="a role iamguard runs as; its events are ignored (repeatable; adds to $IAMGUARD_ROLE_ARNS)",
    )
    replay.add_argument(
        "--required-policy",
        action="append",
        default=[],
        metavar="ARN",
        help="a policy ARN every user must have (repeatable; adds to $REQUIRED_POLICY_ARNS)",
    )
    replay.add_argument(
        "--exempt",
        action="append",
        default=[],
        metavar="USER",
        help="an exempt user (repeatable; adds to $EXEMPT_USERS)",
    )
    replay.add_argument("--account-id", default=None, help="the watched account (default: the caller's, from STS)")
    replay.add_argument("--verbose", action="store_true", help="also write iamguard's structured log to stderr")
    add_notify_arguments(replay)
    replay.set_defaults(run=run_replay)

    seed = commands.add_parser(
        "seed",
        help="create the account the samples in events/ describe (local endpoints only)",
        description="Create the users, groups and settings the sample events refer to, in an empty local account.",
    )
    add_aws_arguments(seed)
    seed.set_defaults(run=run_seed)


def replay_settings(args: argparse.Namespace) -> Settings:
    """The audit's settings (required policies, exemptions) plus the event path's own flags."""
    base = settings_from(args)
    try:
        return base.model_validate(
            {
                **base.model_dump(),
                "mode": args.mode or base.mode,
                "findings_table": args.table or base.findings_table,
                "idempotency_table": args.idempotency_table or base.idempotency_table or DEFAULT_IDEMPOTENCY_TABLE,
                "guardrail_policy_arn": args.guardrail_policy_arn or base.guardrail_policy_arn,
                "iamguard_role_arns": tuple(base.iamguard_role_arns) + tuple(args.iamguard_role),
            }
        )
    except ValueError as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from exc


def make_announcer(args: argparse.Namespace, settings: Settings, ctx: AwsContext, store: FindingsStore) -> Announcer:
    """Where the replay's alerts and actions are announced: --slack-webhook, else the structured log."""
    return announcer_from_args(args, settings, ctx, store=store) or LogOnlyAnnouncer(logger)


def read_events(path: Path) -> Iterator[tuple[Any, str | None]]:
    """(event, None) for each event in the file, or (None, reason) when the file cannot be used."""
    shown = printable(str(path), 200)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        yield None, f"cannot read {shown}: {exc.strerror or exc}"
        return
    except UnicodeDecodeError as exc:
        yield None, f"{shown} is not JSON: not UTF-8 text ({exc.reason} at byte {exc.start})"
        return
    except RecursionError:
        yield None, f"{shown} is not usable JSON: nested deeper than Python can read"
        return
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's digit limit
        yield None, f"{shown} is not usable JSON: {printable(str(exc), 200)}"
        return
    events = loaded if isinstance(loaded, list) else [loaded]
    if not events:
        yield None, f"{shown} holds no events (an empty JSON array)"
    for event in events:
        yield event, None


def _printable_line(result: EventResult, output_format: str) -> str:
    """The result as one line that stdout can encode, whatever the event carried."""
    encoding = sys.stdout.encoding or "utf-8"
    if output_format == "json":
        line = json.dumps(result.line(), ensure_ascii=False)
        try:
            line.encode(encoding)
        except UnicodeEncodeError:  # a lone surrogate, or a terminal that cannot show the text
            line = json.dumps(result.line())
        return line
    return _text(result).encode(encoding, "backslashreplace").decode(encoding)


_ACTION_WORDS = {"performed": "done", "failed": "failed", "withheld": "withheld", "monitor": "would"}


def _text(result: EventResult) -> str:
    head = f"{result.outcome:<9} {result.event_name or '-'} {result.event_id or '-'}: {result.reason}"
    lines = [head]
    lines += [f"  ALERT  {a.severity.value:<13} {a.detection.value}: {a.summary}" for a in result.alerts]
    lines += [
        f"  ACTION {_ACTION_WORDS[a.outcome]}: {a.action} {a.user_name} "
        f"{a.policy_arn}" + (f" ({a.error})" if a.error else f" ({a.withheld})" if a.withheld else "")
        for a in result.actions
    ]
    return "\n".join(lines)


def _configure_logging(verbose: bool) -> None:
    log = logging.getLogger("iamguard")
    log.propagate = False
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        log.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    log.handlers = [handler]


def build_processor(args: argparse.Namespace, settings: Settings, ctx: AwsContext) -> EventProcessor:
    """The processor the Lambdas use, pointed at the endpoint; local tables and guardrail made if missing."""
    assert settings.idempotency_table is not None
    account_id = args.account_id or ctx.sts().get_caller_identity()["Account"]
    store = FindingsStore.for_settings(ctx.dynamodb(), settings)
    if _is_local(args.endpoint_url):
        ensure_findings_table(store)
        ensure_idempotency_table(ctx.dynamodb(), settings.idempotency_table)
        if settings.guardrail_policy_arn is None:
            arn = ensure_guardrail_policy(ctx.iam(), account_id)
            settings = settings.model_copy(update={"guardrail_policy_arn": arn})
    return EventProcessor(
        ctx,
        settings,
        account_id=account_id,
        store=store,
        announcer=make_announcer(args, settings, ctx, store),
        logger=logger,
    )


def run_replay(args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    settings = replay_settings(args)
    ctx = aws_context(args)
    with aws_errors(args.endpoint_url):
        processor = build_processor(args, settings, ctx)
        for path in args.files:
            for event, problem in read_events(path):
                # Each event gets a fresh deadline, as each Lambda invocation does.
                processor.register_lambda_context(
                    LambdaContext.for_function(
                        "iamguard-events-replay", processor.account_id, timeout_seconds=EVENT_DEADLINE_MS / 1000
                    )
                )
                result = (
                    EventResult(outcome="rejected", reason=problem) if problem is not None else processor.process(event)
                )
                sys.stdout.write(_printable_line(result, args.format) + "\n")
                sys.stdout.flush()
        if isinstance(processor.announcer, Dispatcher):
            processor.announcer.flush()
            report_delivery(processor.announcer.total)
    return EXIT_OK


def run_seed(args: argparse.Namespace) -> int:
    if not _is_local(args.endpoint_url):
        raise CliError("seed only writes to a local emulator: give --endpoint-url http://127.0.0.1:PORT", EXIT_USAGE)
    from iamguard_cli.local.samples import seed_sample_account

    ctx = aws_context(args)
    with aws_errors(args.endpoint_url):
        seed_sample_account(ctx.iam())
    sys.stdout.write(f"seeded the sample account at {args.endpoint_url}\n")
    return EXIT_OK
