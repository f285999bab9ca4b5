"""E-mail (and any other subscriber) through the stack's SNS topic.

People get a readable subject and body; machines subscribed over SQS, Lambda,
HTTP(S) or email-json get the same message as JSON, and every delivery carries
message attributes (kind, severity, check, resource …) that subscription filter
policies can match on.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.aws import error_code
from iamguard.domain.messages import Channel, Message, MessageKind
from iamguard.notify.base import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

MACHINE_PROTOCOLS = ("sqs", "lambda", "http", "https", "email-json", "firehose", "application")
ATTRIBUTES = ("kind", "severity", "account_id", "check_id", "detection", "action", "transition", "resource")
PERMANENT_CODES = {
    "NotFound",
    "AuthorizationError",
    "InvalidParameter",
    "KMSDisabled",
    "KMSNotFound",
    "KMSAccessDenied",
    "InvalidSecurity",
}


def machine_document(message: Message) -> dict[str, Any]:
    """The message for programs: everything but the full findings, which are summarised."""
    document = message.model_dump(mode="json", exclude={"findings"})
    document["findings"] = [
        {
            "check_id": f.check_id,
            "severity": f.severity.value,
            "status": f.status.value,
            "resource_type": f.resource_type,
            "resource_name": f.resource_name,
            "resource_arn": f.resource_arn,
        }
        for f in message.findings
    ]
    return document


def publish_arguments(topic_arn: str, message: Message) -> dict[str, Any]:
    """The Publish request for one message."""
    text = message.plain_text()
    machine = json.dumps(machine_document(message), ensure_ascii=False)
    body = {"default": text, "email": text, **{protocol: machine for protocol in MACHINE_PROTOCOLS}}
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        f"iamguard.{name}": {"DataType": "String", "StringValue": message.attributes[name]}
        for name in ATTRIBUTES
        if message.attributes.get(name)
    }
    attributes["iamguard.language"] = {"DataType": "String", "StringValue": message.language}
    return {
        "TopicArn": topic_arn,
        "Subject": message.subject,
        "Message": json.dumps(body, ensure_ascii=False),
        "MessageStructure": "json",
        "MessageAttributes": attributes,
    }


class SnsNotifier:
    """Publishes to one topic; botocore's retry mode (from AwsContext) retries throttling and 5xx."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    @property
    def channel(self) -> Channel:
        return Channel.EMAIL

    @property
    def max_posts(self) -> int | None:
        return None  # bounded by NOTIFY_MAX_ATTEMPTS / NOTIFY_MAX_AGE_HOURS (see docs/notifications.md)

    def accepts(self, message: Message) -> bool:
        return message.kind is not MessageKind.FINDINGS_SYNC

    def send(self, message: Message) -> None:
        try:
            self._client.publish(**publish_arguments(self._topic_arn, message))
        except ClientError as exc:
            code = error_code(exc) or "Error"
            raise DeliveryError(f"SNS Publish failed: {code}", permanent=code in PERMANENT_CODES) from None
        except BotoCoreError as exc:
            raise DeliveryError(f"SNS unreachable: {type(exc).__name__}") from None
