"""Root's own IAM calls in the local runtime act on root (moto_ext), and the audit sees the result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from iamguard.aws import AwsContext
from iamguard.iam.inventory import Inventory
from iamguard.settings import Settings
from iamguard_cli.local import moto_ext
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.trail import Trail

from tests.integration.local_support import client, trail_server

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"


@pytest.fixture
def local() -> Iterator[tuple[MotoServer, Trail]]:
    with trail_server() as running:
        yield running


def _root_checks(url: str) -> dict[str, str]:
    from iamguard.audit.run import run_audit

    ctx = AwsContext(region="us-east-1", endpoint_url=url, retry_mode="standard", max_attempts=2)
    result = run_audit(Inventory(ctx), Settings())
    return {f.check_id: f.status.value for f in result.findings if f.resource_type == "root"}


def test_root_creates_uses_and_removes_its_own_access_key(local: tuple[MotoServer, Trail]) -> None:
    server, trail = local
    iam = client("iam", server.url)
    assert _root_checks(server.url)["root_no_access_keys"] == "PASS"

    key = iam.create_access_key()["AccessKey"]  # no UserName, root's credentials: root's own key
    assert [k.access_key_id for k in moto_ext.root(ACCOUNT).access_keys] == [key["AccessKeyId"]]
    assert iam.get_account_summary()["SummaryMap"]["AccountAccessKeysPresent"] == 1
    assert iam.list_access_keys()["AccessKeyMetadata"][0]["AccessKeyId"] == key["AccessKeyId"]
    assert _root_checks(server.url)["root_no_access_keys"] == "FAIL"

    # the new key signs as root too
    as_root_key = client("iam", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    as_root_key.create_user(UserName="made_with_root_key")
    identity = trail.recent[-1]["detail"]["userIdentity"]
    assert (identity["type"], identity["accessKeyId"]) == ("Root", key["AccessKeyId"])

    iam.update_access_key(AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert moto_ext.root(ACCOUNT).access_keys[0].active is False
    iam.delete_access_key(AccessKeyId=key["AccessKeyId"])
    assert iam.get_account_summary()["SummaryMap"]["AccountAccessKeysPresent"] == 0
    assert _root_checks(server.url)["root_no_access_keys"] == "PASS"


def test_root_mfa_through_the_api(local: tuple[MotoServer, Trail]) -> None:
    from iamguard_cli.mfa import authenticator_codes

    server, _ = local
    iam = client("iam", server.url)
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="root-account-mfa-device")["VirtualMFADevice"]
    code1, code2 = authenticator_codes(device["Base32StringSeed"].decode())
    iam.enable_mfa_device(
        UserName=moto_ext.ROOT_USER_NAME,  # boto3 insists on a name; this one means root
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=code1,
        AuthenticationCode2=code2,
    )
    state = moto_ext.root(ACCOUNT)
    assert (state.mfa, state.mfa_serial) == ("virtual", device["SerialNumber"])
    assert state.mfa_enabled_at is not None
    assert iam.list_mfa_devices()["MFADevices"][0]["SerialNumber"] == device["SerialNumber"]
    assert _root_checks(server.url)["root_mfa_enabled"] == "PASS"
    assert _root_checks(server.url)["root_hardware_mfa"] == "FAIL"  # virtual only

    iam.resync_mfa_device(
        UserName=moto_ext.ROOT_USER_NAME,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=code1,
        AuthenticationCode2=code2,
    )
    iam.deactivate_mfa_device(SerialNumber=device["SerialNumber"])
    assert moto_ext.root(ACCOUNT).mfa == "none"
    assert (
        iam.list_virtual_mfa_devices(AssignmentStatus="Unassigned")["VirtualMFADevices"][0]["SerialNumber"]
        == (device["SerialNumber"])
    )
    assert _root_checks(server.url)["root_mfa_enabled"] == "FAIL"


def test_an_iam_users_calls_without_a_name_stay_the_users(local: tuple[MotoServer, Trail]) -> None:
    server, _ = local
    iam = client("iam", server.url)
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    as_alice = client("iam", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    assert as_alice.create_access_key()["AccessKey"]["UserName"] == "alice"
    assert moto_ext.root(ACCOUNT).access_keys == []
