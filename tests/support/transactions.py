"""DynamoDB's transaction cancellations, which moto never produces, injected where AWS sends them.

A before-call hook on a client answers its TransactWriteItems with the TransactionCanceledException
AWS sends (HTTP 400, one cancellation reason per action), or lets the call through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def cancelled(reasons: list[str]) -> tuple[AWSResponse, dict[str, Any]]:
    """AWS's answer to a cancelled TransactWriteItems: HTTP 400 and one cancellation reason per action."""
    return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 400, {}, None), {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(reasons)}]",
        },
        "CancellationReasons": [
            {"Code": code} if code == "None" else {"Code": code, "Message": f"{code} for this action"}
            for code in reasons
        ],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def answer_transactions(client: DynamoDBClient, answer: Callable[[list[dict[str, Any]]], Any]) -> None:
    """Hand each TransactWriteItems of the client to `answer` before it is sent: a response it returns replaces AWS's."""

    def hook(params: dict[str, Any], **_: Any) -> Any:
        return answer(json.loads(params["body"])["TransactItems"])

    client.meta.events.register_first("before-call.dynamodb.TransactWriteItems", hook)
