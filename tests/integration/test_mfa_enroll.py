"""`iamguard mfa enroll/list/deactivate` against moto: codes are verified before EnableMFADevice."""

from __future__ import annotations

import io
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from iamguard.aws import AwsContext
from iamguard_cli.local import moto_ext
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.trail import Trail
from iamguard_cli.main import main
from iamguard_cli.mfa import Enrollment, MfaCodeError, authenticator_codes

from tests.integration.local_support import client, trail_server

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"


@pytest.fixture
def local() -> Iterator[tuple[MotoServer, Trail]]:
    with trail_server() as running:
        yield running


class Authenticator:
    """Plays the phone app: reads the secret the terminal showed and answers with its codes."""

    def __init__(self, screen: io.StringIO | None = None, capsys: Any = None) -> None:
        self.screen = screen
        self.capsys = capsys
        self.shown = ""
        self.prompts: list[str] = []
        self.answers: list[str] = []

    def secret(self) -> str:
        if self.capsys is not None:
            self.shown += self.capsys.readouterr().out
        else:
            assert self.screen is not None
            self.shown = self.screen.getvalue()
        match = re.search(r"Secret: ([A-Z2-7 ]+)\n", self.shown)
        assert match, "the secret is shown for manual entry"
        return match.group(1).replace(" ", "")

    def script(self, *answers: str) -> None:
        """Answers to type instead of the app's codes ('ok1'/'ok2' = the app's two consecutive codes)."""
        self.answers = list(answers)

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        first, second = authenticator_codes(self.secret())
        answer = self.answers.pop(0) if self.answers else ("ok1" if len(self.prompts) % 2 else "ok2")
        return {"ok1": first, "ok2": second}.get(answer, answer)


def test_right_codes_enable_the_device(local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    iam.create_user(UserName="wonjun_admin")
    app = Authenticator(capsys=capsys)

    code = _enroll_interactively(["mfa", "enroll", "wonjun_admin", "--endpoint-url", server.url], app)

    assert code == 0
    (device,) = iam.list_mfa_devices(UserName="wonjun_admin")["MFADevices"]
    assert device["SerialNumber"] == f"arn:aws:iam::{ACCOUNT}:mfa/wonjun_admin"
    assert "otpauth://totp/" in app.shown
    assert "█" in app.shown or "▀" in app.shown  # the QR code, drawn in the terminal
    assert f"MFA device {device['SerialNumber']} is enabled for wonjun_admin." in capsys.readouterr().out
    assert [e["detail"]["eventName"] for e in trail.recent] == [
        "CreateUser",
        "CreateVirtualMFADevice",
        "EnableMFADevice",
    ]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (("123456", "654321"), "Neither code is valid"),
        (("ok1", "ok1"), "The two codes are the same"),
        (("ok2", "ok1"), "not consecutive"),
    ],
    ids=["wrong", "same-twice", "non-consecutive"],
)
def test_bad_codes_are_refused_and_the_device_is_not_enabled(
    local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str], answers: tuple[str, str], message: str
) -> None:
    server, trail = local
    iam = client("iam", server.url)
    iam.create_user(UserName="dave")
    app = Authenticator(capsys=capsys)
    app.script(*answers)

    code = _enroll_interactively(["mfa", "enroll", "dave", "--attempts", "1", "--endpoint-url", server.url], app)

    assert code == 1
    err = capsys.readouterr().err
    assert "MFA device not enabled for dave" in err
    assert message in err
    assert iam.list_mfa_devices(UserName="dave")["MFADevices"] == []
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []  # the abandoned device is deleted
    assert "EnableMFADevice" not in [e["detail"]["eventName"] for e in trail.recent]


def test_a_wrong_attempt_can_be_retried(local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = local
    iam = client("iam", server.url)
    iam.create_user(UserName="erin")
    app = Authenticator(capsys=capsys)
    app.script("ok1", "ok1", "ok1", "ok2")

    assert _enroll_interactively(["mfa", "enroll", "erin", "--endpoint-url", server.url], app) == 0
    assert "The two codes are the same" in app.shown + capsys.readouterr().out
    assert len(app.prompts) == 4
    assert len(iam.list_mfa_devices(UserName="erin")["MFADevices"]) == 1


def test_iamguard_checks_the_codes_even_where_the_endpoint_would_accept_anything(server_aws: AwsContext) -> None:
    # Given plain moto (no local trail), which enables a device whatever the codes
    iam = server_aws.iam()
    iam.create_user(UserName="frank")
    enrollment = Enrollment(iam, ACCOUNT)
    device = enrollment.create("frank")

    # When the codes are wrong, iamguard refuses before calling EnableMFADevice
    with pytest.raises(MfaCodeError, match="Neither code is valid"):
        enrollment.enable(device, "111111", "222222")
    assert iam.list_mfa_devices(UserName="frank")["MFADevices"] == []

    # And right codes (from the seed AWS returned) enable it
    enrollment.enable(device, *authenticator_codes(device.seed))
    assert len(iam.list_mfa_devices(UserName="frank")["MFADevices"]) == 1


def test_scripts_enrol_in_two_steps_with_the_secret_in_a_private_file(
    local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server, _ = local
    iam = client("iam", server.url)
    iam.create_user(UserName="gina")
    secret_file = tmp_path / "gina.secret"
    url = ["--endpoint-url", server.url]

    # Step 1: the device is created and its secret kept in a file only its owner can read
    assert main(["mfa", "enroll", "gina", "--secret-file", str(secret_file), *url]) == 0
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/gina"
    assert f"--serial {serial}" in capsys.readouterr().out
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    seed = secret_file.read_text().strip()
    assert main(["mfa", "enroll", "gina", "--secret-file", str(secret_file), *url]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err

    # Step 2: codes that are not right are refused, and the device waits for good ones
    same = pyotp.TOTP(seed).now()
    step2 = ["mfa", "enroll", "gina", "--serial", serial, "--secret-file", str(secret_file), *url]
    assert main([*step2, "--code1", same, "--code2", same]) == 1
    assert "The two codes are the same" in capsys.readouterr().err
    assert iam.list_mfa_devices(UserName="gina")["MFADevices"] == []
    assert main([*step2, "--code1", same]) == 2
    assert "--code2" in capsys.readouterr().err

    code1, code2 = authenticator_codes(seed)
    assert main([*step2, "--code1", code1, "--code2", code2]) == 0
    assert f"MFA device {serial} is enabled for gina." in capsys.readouterr().out
    assert [d["SerialNumber"] for d in iam.list_mfa_devices(UserName="gina")["MFADevices"]] == [serial]


def test_without_a_terminal_the_interactive_enrolment_explains_the_scripted_one(
    local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str]
) -> None:
    server, _ = local
    client("iam", server.url).create_user(UserName="hugo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO())
        assert main(["mfa", "enroll", "hugo", "--endpoint-url", server.url]) == 2
    assert "--secret-file" in capsys.readouterr().err


def test_root_enrols_in_the_local_runtime(local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 0
    app = Authenticator(capsys=capsys)

    assert _enroll_interactively(["mfa", "enroll", "--root", "--endpoint-url", server.url], app) == 0

    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    assert moto_ext.root(ACCOUNT).mfa == "virtual"
    (assigned,) = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    assert assigned["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    enable = next(e for e in trail.recent if e["detail"]["eventName"] == "EnableMFADevice")["detail"]
    assert enable["userIdentity"]["type"] == "Root"
    assert enable["requestParameters"] == {"serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/root-account-mfa-device"}
    assert "root%40123456789012" in app.shown  # the label, URI-encoded
    # root's enrolment is a local-runtime feature: in AWS, root uses the console
    assert main(["mfa", "enroll", "--root"]) == 2


def test_list_and_deactivate(local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    iam.create_user(UserName="hana")
    enrollment = Enrollment(iam, ACCOUNT)
    device = enrollment.create("hana")
    enrollment.enable(device, *authenticator_codes(device.seed))
    root_device = enrollment.create(None)
    enrollment.enable(root_device, *authenticator_codes(root_device.seed))
    capsys.readouterr()

    assert main(["mfa", "list", "--endpoint-url", server.url]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"hana\s+arn:aws:iam::123456789012:mfa/hana\s+\d{4}-", listing)
    assert re.search(r"root\s+arn:aws:iam::123456789012:mfa/root-account-mfa-device\s+\d{4}-", listing)
    assert main(["mfa", "list", "hana", "--endpoint-url", server.url]) == 0
    assert "mfa/hana" in capsys.readouterr().out

    assert main(["mfa", "deactivate", "hana", device.serial_number, "--delete", "--endpoint-url", server.url]) == 0
    assert main(["mfa", "deactivate", "--root", root_device.serial_number, "--endpoint-url", server.url]) == 0
    assert iam.list_mfa_devices(UserName="hana")["MFADevices"] == []
    assert moto_ext.root(ACCOUNT).mfa == "none"
    assert [d["SerialNumber"] for d in iam.list_virtual_mfa_devices()["VirtualMFADevices"]] == [
        root_device.serial_number
    ]
    deactivations = [e["detail"] for e in trail.recent if e["detail"]["eventName"] == "DeactivateMFADevice"]
    assert [d["requestParameters"] for d in deactivations] == [
        {"userName": "hana", "serialNumber": device.serial_number},
        {"serialNumber": root_device.serial_number},
    ]
    assert main(["mfa", "deactivate", "hana", device.serial_number, "--endpoint-url", server.url]) == 1
    assert "NoSuchEntity" in capsys.readouterr().err


def _enroll_interactively(argv: list[str], app: Authenticator) -> int:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("builtins.input", app)
        patch.setattr("sys.stdin", _Tty())
        return main(argv)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_seed_shown_is_the_devices_seed(local: tuple[MotoServer, Trail]) -> None:
    server, _ = local
    iam = client("iam", server.url)
    iam.create_user(UserName="ivan")
    device = Enrollment(iam, ACCOUNT).create("ivan")
    listed = iam.list_virtual_mfa_devices()["VirtualMFADevices"][0]
    assert listed["Base32StringSeed"].decode() == device.seed
    assert pyotp.parse_uri(device.uri).secret == device.seed


@pytest.mark.parametrize("keep", [False, True], ids=["deleted", "kept-on-request"])
def test_the_secret_file_does_not_outlive_the_enrolment_unless_asked(
    local: tuple[MotoServer, Trail], capsys: pytest.CaptureFixture[str], tmp_path: Path, keep: bool
) -> None:
    # Given a device created in step 1 with its seed in a file
    server, _ = local
    iam = client("iam", server.url)
    iam.create_user(UserName="hana")
    secret_file = tmp_path / "hana.secret"
    url = ["--endpoint-url", server.url]
    assert main(["mfa", "enroll", "hana", "--secret-file", str(secret_file), *url]) == 0
    assert "this deletes the file" in capsys.readouterr().out
    seed = secret_file.read_text().strip()
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/hana"
    step2 = ["mfa", "enroll", "hana", "--serial", serial, "--secret-file", str(secret_file), *url]

    # When wrong codes are given, the file stays for the next try
    same = pyotp.TOTP(seed).now()
    assert main([*step2, "--code1", same, "--code2", same]) == 1
    assert secret_file.exists()
    capsys.readouterr()

    # When the device is enabled
    code1, code2 = authenticator_codes(seed)
    assert main([*step2, "--code1", code1, "--code2", code2, *(["--keep-secret-file"] if keep else [])]) == 0
    out, err = capsys.readouterr()

    # Then the seed is gone from disk, or it stays only on request and with a loud warning
    assert f"MFA device {serial} is enabled for hana." in out
    assert secret_file.exists() is keep
    if keep:
        assert f"warning: {secret_file} still holds the MFA secret of an enabled device" in err
    else:
        assert f"Deleted {secret_file}" in out and err == ""
    assert seed not in out + err
