"""`iamguard mfa`: enrol, list and deactivate virtual MFA devices, with codes checked before enabling."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from iamguard_cli.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_aws_arguments,
    aws_context,
    aws_errors,
    is_local_endpoint,
)
from iamguard_cli.mfa import Enrollment, EnrollmentError, MfaCodeError, NewDevice, qr_ascii

DEFAULT_ATTEMPTS = 3


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mfa",
        help="enrol, list and deactivate virtual MFA devices (codes are verified before a device is enabled)",
        description="Manage virtual MFA devices of IAM users (and of root in the local runtime).",
    )
    commands = parser.add_subparsers(dest="mfa_command", metavar="ACTION", required=True)

    enroll = commands.add_parser(
        "enroll",
        help="create a virtual MFA device, show its QR code, verify two consecutive codes, enable it",
        description="Create a virtual MFA device for USER, show its QR code and secret in this terminal, "
        "ask for two consecutive codes from the authenticator app, check them, and only then enable the device.",
    )
    enroll.add_argument("user", nargs="?", metavar="USER", help="IAM user name (omit with --root)")
    enroll.add_argument("--root", action="store_true", help="enrol for the root user (local runtime only)")
    enroll.add_argument("--device-name", help="name of the virtual device (default: the user name)")
    scripted = enroll.add_argument_group(
        "without a terminal (scripts)",
        "Step 1: --secret-file FILE creates the device and writes its secret to FILE (mode 600). "
        "Step 2: --serial SERIAL --secret-file FILE --code1 CODE --code2 CODE checks the codes, enables it "
        "and deletes FILE (copy the secret first if something else must generate codes).",
    )
    scripted.add_argument("--secret-file", type=Path, metavar="FILE", help="where the device's secret is kept")
    scripted.add_argument("--serial", metavar="SERIAL", help="the device created in step 1")
    scripted.add_argument("--code1", metavar="CODE", help="a code computed from the secret")
    scripted.add_argument("--code2", metavar="CODE", help="the next code after --code1")
    scripted.add_argument(
        "--keep-secret-file",
        action="store_true",
        help="step 2: leave FILE in place once the device is enabled (it is then yours to keep safe)",
    )
    enroll.add_argument(
        "--attempts", type=int, default=DEFAULT_ATTEMPTS, help=f"tries to type the codes (default {DEFAULT_ATTEMPTS})"
    )
    add_aws_arguments(enroll)
    enroll.set_defaults(run=run_enroll)

    listing = commands.add_parser("list", help="list MFA devices (of USER, of root, or every virtual device)")
    listing.add_argument("user", nargs="?", metavar="USER")
    listing.add_argument("--root", action="store_true", help="root's devices (local runtime: root's credentials)")
    add_aws_arguments(listing)
    listing.set_defaults(run=run_list)

    deactivate = commands.add_parser("deactivate", help="deactivate (and optionally delete) an MFA device")
    deactivate.add_argument("user", nargs="?", metavar="USER", help="IAM user name (omit with --root)")
    deactivate.add_argument("serial", metavar="SERIAL", help="serial number (ARN) of the device")
    deactivate.add_argument("--root", action="store_true", help="root's device (local runtime: root's credentials)")
    deactivate.add_argument("--delete", action="store_true", help="also delete the virtual device")
    add_aws_arguments(deactivate)
    deactivate.set_defaults(run=run_deactivate)


def _target(args: argparse.Namespace) -> str | None:
    """The user to act on, or None for root; usage errors exit 2."""
    if args.root and args.user:
        raise CliError("give either USER or --root, not both", exit_code=EXIT_USAGE)
    if not args.root and not args.user:
        raise CliError("give a USER (or --root)", exit_code=EXIT_USAGE)
    if args.root and not is_local_endpoint(args.endpoint_url):
        raise CliError(
            "--root works against the local runtime only (--endpoint-url http://127.0.0.1:PORT); "
            "in AWS, root manages its MFA in the console",
            exit_code=EXIT_USAGE,
        )
    user: str | None = args.user
    return user


def show_device(device: NewDevice, out: TextIO) -> None:
    """What an authenticator app needs, to this terminal only (never to a log)."""
    out.write(qr_ascii(device.uri))
    out.write("\nScan the QR code with your authenticator app (Google Authenticator, Authy, Duo, ...),\n")
    out.write("or add the account by hand:\n")
    out.write(f"  URI:    {device.uri}\n")
    out.write(f"  Secret: {device.grouped_seed}\n\n")
    out.flush()


def prompt_codes(read: Callable[[str], str]) -> tuple[str, str]:
    first = read("First code from the app: ")
    second = read("Wait for the next code, then type it: ")
    return first, second


def enroll(
    enrollment: Enrollment,
    user: str | None,
    *,
    out: TextIO,
    read: Callable[[str], str] | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    device_name: str | None = None,
) -> str:
    """Create, show, ask for codes, verify, enable; returns the serial. The device is deleted if enrolment fails."""
    device = enrollment.create(user, device_name)
    tries = max(1, attempts)
    try:
        show_device(device, out)
        attempt = 1
        while True:
            code1, code2 = prompt_codes(read or input)
            try:
                enrollment.enable(device, code1, code2)
            except MfaCodeError as exc:
                if attempt >= tries:
                    raise
                out.write(f"{exc}\nTry again ({tries - attempt} left).\n")
                attempt += 1
                continue
            return device.serial_number
    except BaseException:
        enrollment.abandon(device)
        raise


def _account_id(ctx: Any) -> str:
    account: str = ctx.sts().get_caller_identity()["Account"]
    return account


def run_enroll(args: argparse.Namespace) -> int:
    user = _target(args)
    owner = user or "root"
    scripted = args.code1 is not None or args.code2 is not None or args.serial is not None
    if scripted and None in (args.code1, args.code2, args.serial, args.secret_file):
        raise CliError(
            "to enable a device created earlier give --serial, --secret-file, --code1 and --code2 "
            f"(step 1 creates it: iamguard mfa enroll {user or '--root'} --secret-file FILE)",
            exit_code=EXIT_USAGE,
        )
    if not scripted and args.secret_file is None and not sys.stdin.isatty():
        raise CliError(
            "no terminal to type the codes in: use --secret-file (see iamguard mfa enroll --help)", exit_code=EXIT_USAGE
        )
    if not scripted and args.secret_file is not None and args.secret_file.exists():
        raise CliError(f"{args.secret_file} exists; choose a new file for the secret", exit_code=EXIT_USAGE)
    ctx = aws_context(args)
    with aws_errors(args.endpoint_url):
        enrollment = Enrollment(ctx.iam(), _account_id(ctx))
        try:
            if scripted:
                seed = _read_secret(args.secret_file)
                enrollment.enable(NewDevice(args.serial, seed, owner, enrollment.account_id), args.code1, args.code2)
                serial = args.serial
            elif args.secret_file is not None:
                return _create_for_script(enrollment, user, args)
            else:
                serial = enroll(enrollment, user, out=sys.stdout, attempts=args.attempts, device_name=args.device_name)
        except MfaCodeError as exc:
            raise CliError(f"MFA device not enabled for {owner}: {exc}") from exc
        except EnrollmentError as exc:
            raise CliError(str(exc)) from exc
    sys.stdout.write(f"MFA device {serial} is enabled for {owner}.\n")
    if scripted:
        _dispose_of_secret(args.secret_file, keep=args.keep_secret_file)
    return EXIT_OK


def _dispose_of_secret(path: Path, *, keep: bool) -> None:
    """The seed of an enabled device is a second factor: it does not stay on disk unless asked to."""
    if keep:
        sys.stderr.write(
            f"warning: {path} still holds the MFA secret of an enabled device (--keep-secret-file): anyone who "
            "reads it can generate this user's codes. Keep it safe or delete it.\n"
        )
        return
    try:
        path.unlink()
    except OSError as exc:
        sys.stderr.write(
            f"warning: could not delete {path} ({exc.strerror}): it holds the MFA secret of an enabled device; "
            "delete it yourself.\n"
        )
        return
    sys.stdout.write(f"Deleted {path}: the secret now lives only where you put it (an authenticator app).\n")


def _read_secret(path: Path) -> str:
    try:
        return "".join(path.read_text(encoding="utf-8").split())
    except OSError as exc:
        raise CliError(f"cannot read the secret from {path}: {exc.strerror}") from exc


def _create_for_script(enrollment: Enrollment, user: str | None, args: argparse.Namespace) -> int:
    """Step 1 of a scripted enrolment: create the device and keep its secret in a file only its owner reads."""
    path: Path = args.secret_file
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CliError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        device = enrollment.create(user, args.device_name)
    except BaseException:
        os.close(descriptor)
        path.unlink()
        raise
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(device.seed + "\n")
    target = user or "--root"
    sys.stdout.write(
        f"Created MFA device {device.serial_number}; its secret is in {path} (readable by you only).\n"
        "Compute two consecutive codes from it (any TOTP tool), then enable the device (this deletes the file;\n"
        "copy the secret first if something else must generate codes, or add --keep-secret-file):\n"
        f"  iamguard mfa enroll {target} --serial {device.serial_number} --secret-file {path} "
        "--code1 CODE --code2 NEXT_CODE\n"
    )
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    if args.root and args.user:
        raise CliError("give either USER or --root, not both", exit_code=EXIT_USAGE)
    ctx = aws_context(args)
    with aws_errors(args.endpoint_url):
        iam = ctx.iam()
        rows: list[tuple[str, str, str]] = []
        if args.user or args.root:
            owner = args.user or "root"
            response = iam.list_mfa_devices(UserName=args.user) if args.user else iam.list_mfa_devices()
            rows = [(owner, d["SerialNumber"], f"{d['EnableDate']:%Y-%m-%d %H:%M}") for d in response["MFADevices"]]
        else:
            for page in iam.get_paginator("list_virtual_mfa_devices").paginate(AssignmentStatus="Any"):
                for d in page["VirtualMFADevices"]:
                    user = d.get("User", {})
                    arn = user.get("Arn", "")
                    owner = "root" if arn.endswith(":root") else user.get("UserName", "(unassigned)")
                    enable_date = d.get("EnableDate")
                    rows.append((owner, d["SerialNumber"], f"{enable_date:%Y-%m-%d %H:%M}" if enable_date else "-"))
    if not rows:
        sys.stdout.write("no MFA devices\n")
        return EXIT_OK
    width = max(len("OWNER"), *(len(row[0]) for row in rows))
    serial_width = max(len("SERIAL"), *(len(row[1]) for row in rows))
    sys.stdout.write(f"{'OWNER':<{width}}  {'SERIAL':<{serial_width}}  ENABLED (UTC)\n")
    for owner, serial, enabled in rows:
        sys.stdout.write(f"{owner:<{width}}  {serial:<{serial_width}}  {enabled}\n")
    return EXIT_OK


def run_deactivate(args: argparse.Namespace) -> int:
    user = _target(args)
    ctx = aws_context(args)
    with aws_errors(args.endpoint_url):
        iam = ctx.iam()
        if user is None:
            iam.deactivate_mfa_device(SerialNumber=args.serial)
        else:
            iam.deactivate_mfa_device(UserName=user, SerialNumber=args.serial)
        if args.delete:
            iam.delete_virtual_mfa_device(SerialNumber=args.serial)
    done = "deactivated and deleted" if args.delete else "deactivated"
    sys.stdout.write(f"MFA device {args.serial} of {user or 'root'} {done}.\n")
    return EXIT_OK
