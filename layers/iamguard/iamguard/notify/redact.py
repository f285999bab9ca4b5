"""Keep secrets out of logs and messages: webhook URLs, Slack tokens, MFA seeds."""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    (re.compile(r"https?://[^\s\"'<>]*hooks\.slack\.com[^\s\"'<>]*", re.IGNORECASE), "<slack-webhook>"),
    (re.compile(r"https?://[^\s\"'<>]+/services/[^\s\"'<>]+"), "<webhook>"),
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]+"), "<slack-token>"),
    (re.compile(r"(secret=)[^&\s\"']+", re.IGNORECASE), r"\1<redacted>"),  # otpauth:// URIs
    (re.compile(r"([?&]sig=)[^&\s\"']+", re.IGNORECASE), r"\1<redacted>"),  # Teams Workflows URLs
    (re.compile(r"\b[A-Z2-7]{32,}={0,6}"), "<redacted-seed>"),  # Base32StringSeed and the like
)


def scrub(text: str, *secrets: str) -> str:
    """`text` with known secret values and anything shaped like a webhook, token or MFA seed removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# A wire log of a secret's value (GetSecretValue, GetParameter of a SecureString): no pattern can know
# every secret's shape (a PagerDuty routing key, a signing key), so the whole line goes.
_SECRET_RESPONSE = re.compile(r"SecretString|SecretBinary|SecureString")


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs each record's rendered message (for third-party loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET_RESPONSE.search(message):
            message = "<a request or response carrying a secret value: not logged>"
        record.msg = scrub(message)
        record.args = None
        return True
