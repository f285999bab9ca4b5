"""The local runtime's SQS event source mapping: the event Lambda delivers, and how it reads the answer."""

from __future__ import annotations

import base64

import boto3
import pytest
from iamguard_cli.local.dispatcher import Invocation, failed_messages, sqs_event
from iamguard_cli.local.routing import QueueRoute
from moto import mock_aws

ARN = "arn:aws:sqs:us-east-1:123456789012:iamguard-AuditQueue"
PARTIAL = QueueRoute("AuditQueueMapping", ARN, batch_size=1, report_batch_item_failures=True)
WHOLE = QueueRoute("Mapping", ARN)


def test_the_event_has_lambdas_sqs_record_shape() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="iamguard-AuditQueue")["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody='{"account_id": "111111111111"}',
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "audit"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )
        messages = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], MessageAttributeNames=["All"])["Messages"]
    (record,) = sqs_event(messages, ARN)["Records"]
    assert record["messageId"] == messages[0]["MessageId"]
    assert record["receiptHandle"] == messages[0]["ReceiptHandle"]
    assert record["body"] == '{"account_id": "111111111111"}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == messages[0]["MD5OfBody"]
    assert record["md5OfMessageAttributes"] == messages[0]["MD5OfMessageAttributes"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= record["attributes"].keys()
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "audit", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }


def _ran(result: object = None, error: str | None = None) -> Invocation:
    return Invocation("audit_account", "SQS", 1.0, result=result, error=error)


@pytest.mark.parametrize(
    ("invocation", "route", "failed"),
    [
        (_ran(error="RuntimeError: boom"), PARTIAL, {"a", "b"}),  # an error fails the batch
        (_ran(error="RuntimeError: boom"), WHOLE, {"a", "b"}),
        (_ran({"batchItemFailures": [{"itemIdentifier": "b"}]}), PARTIAL, {"b"}),
        (_ran({"batchItemFailures": [{"itemIdentifier": "b"}]}), WHOLE, set()),  # not enabled: ignored
        (_ran({"batchItemFailures": []}), PARTIAL, set()),
        (_ran({"batchItemFailures": None}), PARTIAL, set()),
        (_ran(None), PARTIAL, set()),
        (_ran({}), PARTIAL, set()),
        # answers Lambda cannot read fail the whole batch
        (_ran({"batchItemFailures": [{"itemIdentifier": "zzz"}]}), PARTIAL, {"a", "b"}),
        (_ran({"batchItemFailures": [{"itemIdentifier": ""}]}), PARTIAL, {"a", "b"}),
        (_ran({"batchItemFailures": [{"itemIdentifier": None}]}), PARTIAL, {"a", "b"}),
        (_ran({"batchItemFailures": [{"id": "a"}]}), PARTIAL, {"a", "b"}),
        (_ran({"batchItemFailures": "a"}), PARTIAL, {"a", "b"}),
        (_ran("not an object"), PARTIAL, {"a", "b"}),
    ],
)
def test_the_answer_is_read_as_lambda_reads_it(invocation: Invocation, route: QueueRoute, failed: set[str]) -> None:
    assert failed_messages(invocation, ["a", "b"], route) == failed
