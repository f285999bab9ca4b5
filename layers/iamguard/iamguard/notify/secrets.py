"""Channel secrets (the Slack webhook URL or bot token, the Teams URL, the PagerDuty routing key, the
webhook URL and signing key), read from Secrets Manager or an SSM SecureString.

Powertools' parameters utility caches the value for `max_age` seconds, so a warm
Lambda reads the secret about once every few minutes and a rotated secret is
picked up without a deploy. The value is never logged.

The secret (or parameter) holds one of:
  https://hooks.slack.com/services/T…/B…/…         an incoming webhook
  xoxb-…                                            a bot token (channel from SLACK_CHANNEL)
  {"webhook_url": "https://hooks.slack.com/…"}
  {"token": "xoxb-…", "channel": "#security"}
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

from iamguard.aws import AwsContext
from iamguard.notify.base import DeliveryError
from iamguard.notify.redact import ScrubFilter
from iamguard.notify.slack import SlackCredentials

# botocore logs request and response bodies at DEBUG: a GetSecretValue response would carry the
# webhook URL or token into the log of anyone who turns DEBUG on. Those two loggers are scrubbed.
for _wire_logger in ("botocore.parsers", "botocore.endpoint"):
    logging.getLogger(_wire_logger).addFilter(ScrubFilter())


def is_ssm_reference(reference: str) -> bool:
    """SSM parameter names start with '/', ARNs with arn:…:ssm:; anything else is a Secrets Manager secret."""
    return reference.startswith("/") or reference.startswith("ssm:") or ":ssm:" in reference.split("/", 1)[0]


def parse_slack_secret(value: Any, default_channel: str | None = None) -> SlackCredentials:
    """Credentials from a secret's value (see the module docstring for the accepted shapes)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise DeliveryError("the Slack secret is not valid JSON", permanent=True) from None
        elif text.startswith(("https://", "http://")):
            return SlackCredentials(webhook_url=text)
        elif text.startswith("xox"):
            return SlackCredentials(token=text, channel=default_channel)
    if isinstance(value, dict):
        url = value.get("webhook_url") or value.get("url")
        if url:
            return SlackCredentials(webhook_url=str(url))
        token = value.get("token") or value.get("bot_token")
        if token:
            return SlackCredentials(
                token=str(token), channel=str(value.get("channel") or default_channel or "") or None
            )
    raise DeliveryError("the Slack secret holds neither a webhook URL nor a bot token", permanent=True)


class StoredSecret:
    """A callable returning a secret's current value (cached by Powertools for `max_age` seconds).

    `what` names the secret in errors ("the Teams secret"); the value never appears in one.
    """

    def __init__(self, reference: str, aws: AwsContext, *, what: str, max_age: int = 300) -> None:
        self._what = what
        self._max_age = max_age
        self._name = reference.removeprefix("ssm:")
        self._provider: SSMProvider | SecretsProvider = (
            SSMProvider(boto3_client=aws.client("ssm"))
            if is_ssm_reference(reference)
            else SecretsProvider(boto3_client=aws.client("secretsmanager"))
        )

    def __call__(self) -> Any:
        try:
            if isinstance(self._provider, SSMProvider):
                return self._provider.get(self._name, max_age=self._max_age, decrypt=True)
            return self._provider.get(self._name, max_age=self._max_age)
        except Exception as exc:  # noqa: BLE001 - GetParameterError wraps any client error; the message stays pending
            raise DeliveryError(f"cannot read {self._what} {self._name}: {type(exc).__name__}") from None


def secret_fields(value: Any, what: str) -> dict[str, Any]:
    """A secret's value as a mapping: JSON objects as they are, a bare string as {"value": it}."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            return {"value": text}
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise DeliveryError(f"{what} is not valid JSON", permanent=True) from None
    if isinstance(value, dict):
        return value
    raise DeliveryError(f"{what} is neither a string nor a JSON object", permanent=True)


class SlackSecret:
    """A callable returning the current Slack credentials (cached by Powertools for `max_age` seconds)."""

    def __init__(self, reference: str, aws: AwsContext, *, channel: str | None = None, max_age: int = 300) -> None:
        self._channel = channel
        self._secret = StoredSecret(reference, aws, what="the Slack secret", max_age=max_age)

    def __call__(self) -> SlackCredentials:
        return parse_slack_secret(self._secret(), self._channel)
