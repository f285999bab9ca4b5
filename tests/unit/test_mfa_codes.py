"""Enrolment codes are checked as AWS checks them: valid, different, consecutive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from iamguard_cli.mfa import MfaCodeError, NewDevice, authenticator_codes, code_is_valid, verify_consecutive_codes

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2025, 3, 1, 12, 0, 10, tzinfo=UTC)
TOTP = pyotp.TOTP(SEED)
STEP = TOTP.timecode(NOW)


def code(offset: int) -> str:
    """The device's code `offset` time steps from NOW."""
    return TOTP.generate_otp(STEP + offset)


def test_two_consecutive_codes_from_the_device_are_accepted() -> None:
    assert verify_consecutive_codes(SEED, code(-1), code(0), NOW) == STEP
    assert verify_consecutive_codes(SEED, *authenticator_codes(SEED, NOW), NOW) == STEP


def test_codes_typed_slowly_are_still_accepted() -> None:
    assert verify_consecutive_codes(SEED, code(-3), code(-2), NOW) == STEP - 2


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("000000", "999999", "Neither code is valid for this device"),
        ("000000", code(0), "The first code is not valid"),
        (code(-1), "000000", "The second code is not valid"),
        (code(-1), code(-1), "The two codes are the same"),
        (code(-2), code(0), "not consecutive"),
        (code(0), code(-1), "not consecutive"),
        (code(-30), code(-29), "Neither code is valid"),
        ("12345", code(0), "must be exactly 6 digits"),
        (code(-1), "abcdef", "The second code must be exactly 6 digits"),
    ],
    ids=["both-wrong", "first-wrong", "second-wrong", "same-twice", "gap", "reversed", "expired", "short", "letters"],
)
def test_bad_codes_are_refused_with_a_clear_message(first: str, second: str, message: str) -> None:
    with pytest.raises(MfaCodeError, match=message):
        verify_consecutive_codes(SEED, first, second, NOW)


def test_a_sign_in_code_is_valid_near_its_time_only() -> None:
    assert code_is_valid(SEED, code(0), NOW)
    assert code_is_valid(SEED, code(-1), NOW)
    assert not code_is_valid(SEED, code(-20), NOW)
    assert not code_is_valid(SEED, code(0), NOW + timedelta(hours=1))
    assert not code_is_valid(SEED, "not-a-code", NOW)


def test_the_uri_is_what_an_authenticator_reads() -> None:
    device = NewDevice("arn:aws:iam::123456789012:mfa/alice", SEED, "alice", "123456789012")
    parsed = pyotp.parse_uri(device.uri)
    assert parsed.secret == SEED
    assert parsed.issuer == "Amazon Web Services"
    assert "alice@123456789012" in parsed.name
    assert device.grouped_seed.replace(" ", "") == SEED
