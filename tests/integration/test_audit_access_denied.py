"""AccessDenied on any IAM read of the audit: `iamguard audit` exits 1 with one line, at once.

README: "errors (unreachable endpoint, missing credentials, access denied) with a one-line
message". The credential report used to treat every error of GenerateCredentialReport as
rate limiting: a minute of polling, then ERROR findings and nothing on stderr.

The moto server answers one chosen IAM action with AWS's AccessDenied (403, the XML IAM
sends); every other request reaches moto.
"""

from __future__ import annotations

import io
import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from iamguard.aws import AwsContext
from iamguard.iam.inventory import Inventory
from iamguard_cli.local.seed import seed_designed_account
from iamguard_cli.local.server import MotoServer

from tests.integration.test_cli_audit import iamguard


class Recorder:
    """WSGI middleware: records each IAM action, and denies the ones in `deny`."""

    def __init__(self) -> None:
        self.deny: set[str] = set()
        self.seen: list[str] = []

    def wrap(self, app: Any) -> Any:
        def middleware(environ: dict[str, Any], start_response: Any) -> Any:
            if "/iam/" in environ.get("HTTP_AUTHORIZATION", ""):
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length > 0 else b""
                environ["wsgi.input"] = io.BytesIO(body)
                action = urllib.parse.parse_qs(body.decode()).get("Action", [""])[0]
                self.seen.append(action)
                if action in self.deny:
                    message = f"User: arn:aws:iam::123456789012:user/auditor is not authorized to perform: iam:{action}"
                    error = (
                        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
                        f"<Code>AccessDenied</Code><Message>{message}</Message></Error>"
                        "<RequestId>4f8e2a10-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
                    ).encode()
                    start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(error)))])
                    return [error]
            return app(environ, start_response)

        return middleware


@pytest.fixture(scope="module")
def denying() -> Iterator[tuple[MotoServer, Recorder]]:
    recorder = Recorder()
    with MotoServer(wrap=recorder.wrap) as server:
        seed_designed_account(AwsContext(region="us-east-1", endpoint_url=server.url).iam())
        yield server, recorder


def audit_reads(denying: tuple[MotoServer, Recorder]) -> list[str]:
    """The IAM actions one audit of the designed account makes, in order, each once."""
    server, recorder = denying
    recorder.seen.clear()
    done = iamguard("audit", "--endpoint-url", server.url, "--format", "json")
    assert done.returncode == 3, done.stderr  # findings, no error
    return list(dict.fromkeys(recorder.seen))


# Every IAM read `iamguard audit` makes on the designed account (checked below against a real run).
AUDIT_READS = [
    "GetAccountSummary",
    "GenerateCredentialReport",
    "GetCredentialReport",
    "GetAccountAuthorizationDetails",
    "ListVirtualMFADevices",
    "GetPolicy",  # AWS managed policies whose documents iamguard does not carry
    "GetPolicyVersion",
    "GetAccountPasswordPolicy",
    "GetLoginProfile",  # PasswordResetRequired, for users who could not change a password
    "ListAccountAliases",
]


def test_the_list_is_every_iam_read_of_an_audit(denying: tuple[MotoServer, Recorder]) -> None:
    reads = audit_reads(denying)
    assert sorted(reads) == sorted(AUDIT_READS), " ".join(reads)


@pytest.mark.parametrize("action", AUDIT_READS)
def test_access_denied_on_any_audit_read_is_one_line_exit_1(action: str, denying: tuple[MotoServer, Recorder]) -> None:
    # Given a role that may not call `action`
    server, recorder = denying
    recorder.deny = {action}
    try:
        started = time.monotonic()
        done = iamguard("audit", "--endpoint-url", server.url, "--format", "json")
        elapsed = time.monotonic() - started
    finally:
        recorder.deny = set()

    # Then the audit stops at once with exit 1 and one line naming the call, and prints no report
    assert done.returncode == 1, (done.stdout[-500:], done.stderr)
    assert done.stderr.startswith(f"iamguard: error: access denied calling {action}: User: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert elapsed < 30  # no minute of polling (a subprocess start on a busy machine takes a few seconds)


def test_access_denied_on_the_report_generation_is_not_waited_on() -> None:
    # Given IAM's answer to a role without iam:GenerateCredentialReport (Stubber: the exact shape)
    client = AwsContext().iam()
    stubber = Stubber(client)
    stubber.add_client_error(
        "generate_credential_report",
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/auditor is not authorized to perform: iam:GenerateCredentialReport",
        http_status_code=403,
    )
    sleeps: list[float] = []

    # Then it is raised at once, without a single poll
    with stubber, pytest.raises(Exception, match="AccessDenied") as caught:
        Inventory(AwsContext(), iam_client=client, sleep=sleeps.append).credential_report()
    assert type(caught.value).__name__ == "ClientError"
    assert sleeps == []
    stubber.assert_no_pending_responses()


def test_limit_exceeded_is_still_waited_on() -> None:
    client = AwsContext().iam()
    stubber = Stubber(client)
    stubber.add_client_error("generate_credential_report", "LimitExceeded", "Rate exceeded", http_status_code=409)
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_response(
        "get_credential_report", {"Content": b"user,arn,mfa_active\nbob,arn:aws:iam::1:user/bob,true\n"}
    )
    sleeps: list[float] = []
    with stubber:
        report = Inventory(AwsContext(), iam_client=client, sleep=sleeps.append).credential_report()
    assert report["bob"].mfa_active is True and sleeps == [0.25]


def test_a_denied_report_is_not_a_report_of_error_findings(denying: tuple[MotoServer, Recorder]) -> None:
    # The old behaviour: exit 3 with every credential-report check as ERROR. Now: no findings at all.
    server, recorder = denying
    recorder.deny = {"GenerateCredentialReport"}
    try:
        done = iamguard("audit", "--endpoint-url", server.url, "--format", "json")
    finally:
        recorder.deny = set()
    assert done.returncode == 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)
