"""moto's TransactWriteItems, as iamguard_cli.local.moto_ext runs it: all or nothing, at the cost of its own items.

moto itself deep-copies the whole table for every step of a transaction; the extension
keeps copies of the touched items only. What the transaction accepts, writes, and answers
when it is cancelled must stay moto's (and AWS's).
"""

from __future__ import annotations

from typing import Any

import pytest
from iamguard.aws import AwsContext
from moto.dynamodb.models.table import Table

TABLE = "transactions-test"


@pytest.fixture
def dynamodb(aws: AwsContext) -> Any:
    client = aws.dynamodb()
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(3):
        client.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": str(n)}, "version": {"N": "1"}})
    return client


def items(client: Any) -> dict[str, dict[str, Any]]:
    found = client.query(
        TableName=TABLE, KeyConditionExpression="pk = :a", ExpressionAttributeValues={":a": {"S": "A"}}
    )["Items"]
    return {item["sk"]["S"]: item for item in found}


def key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "A"}, "sk": {"S": sk}}


def test_a_cancelled_transaction_puts_back_every_item_it_touched(dynamodb: Any) -> None:
    before = items(dynamodb)
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**key("new"), "version": {"N": "1"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key("0"),
                        "UpdateExpression": "SET version = version + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Delete": {"TableName": TABLE, "Key": key("1")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": key("2"),
                        "ConditionExpression": "version = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        )
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "None", "None", "ConditionalCheckFailed"]
    assert reasons[3]["Item"]["version"] == {"N": "1"}
    assert items(dynamodb) == before  # the Put undone, the Update undone, the Delete undone


def test_a_transaction_that_holds_writes_all_and_never_copies_the_table(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Table, memo: Any) -> Table:
        raise AssertionError(f"the whole table {self.name} was copied for a transaction")

    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**key("new"), "version": {"N": "1"}}}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key("0"),
                    "UpdateExpression": "SET version = version + :one",
                    "ConditionExpression": "version = :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {"Delete": {"TableName": TABLE, "Key": key("1")}},
        ]
    )
    after = items(dynamodb)
    assert set(after) == {"0", "2", "new"}
    assert after["0"]["version"] == {"N": "2"}


def test_two_steps_on_one_item_are_refused_and_leave_nothing_behind(dynamodb: Any) -> None:
    before = items(dynamodb)
    with pytest.raises(dynamodb.exceptions.ClientError, match="multiple operations on one item"):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**key("0"), "version": {"N": "9"}}}},
                {"Delete": {"TableName": TABLE, "Key": key("0")}},
            ]
        )
    assert items(dynamodb) == before


def test_more_than_100_actions_are_refused_as_aws_refuses_them(dynamodb: Any) -> None:
    before = items(dynamodb)
    with pytest.raises(dynamodb.exceptions.ClientError, match="less than or equal to 100") as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**key(f"new{n}"), "version": {"N": "1"}}}} for n in range(101)
            ]
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert items(dynamodb) == before
