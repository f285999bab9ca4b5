"""moto's Query, as iamguard_cli.local.moto_ext runs it: it reads its partition, not the whole table.

moto itself gathers and sorts every item of the table for every page of every Query; the
extension gathers the partition (for an index: the table's items, unsorted, before moto's own
filter and sort). What a Query returns, in which order and page by page, must stay moto's (and
DynamoDB's); a Scan is untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from iamguard.aws import AwsContext
from iamguard.persistence.findings import ACCOUNT_INDEX, FindingsStore
from iamguard_cli.local.bootstrap import ensure_findings_table
from moto.dynamodb.models.dynamo_type import DynamoType

TABLE = "queries-test"
ACCOUNTS = ("111111111111", "222222222222", "333333333333")


@pytest.fixture
def dynamodb(aws: AwsContext) -> Any:
    """Three accounts' items in a findings table (template.yaml's keys and indexes, `account` among them)."""
    client = aws.dynamodb()
    ensure_findings_table(FindingsStore(client, TABLE))
    for account in ACCOUNTS:
        for user in range(12):
            for check in ("mfa", "admin", "keys"):
                item = {
                    "pk": {"S": f"USER#{account}#user{user:02d}"},
                    "sk": {"S": f"CHECK#{check}"},
                    "account_id": {"S": account},
                    "status": {"S": "FAIL" if (user + len(check)) % 3 == 0 else "PASS"},
                }
                client.put_item(TableName=TABLE, Item=item)
    client.put_item(TableName=TABLE, Item={"pk": {"S": "SUMMARY"}, "sk": {"S": "LATEST"}})  # in no index
    return client


def pages(client: Any, operation: str, **request: Any) -> Iterator[list[dict[str, Any]]]:
    key: dict[str, Any] | None = None
    while True:
        answer = getattr(client, operation)(TableName=TABLE, **request, **({"ExclusiveStartKey": key} if key else {}))
        yield [
            {name: TypeDeserializer().deserialize(value) for name, value in item.items()} for item in answer["Items"]
        ]
        key = answer.get("LastEvaluatedKey")
        if not key:
            return


def every(client: Any, operation: str, **request: Any) -> list[tuple[str, str]]:
    return [(item["pk"], item["sk"]) for page in pages(client, operation, **request) for item in page]


def counting(monkeypatch: pytest.MonkeyPatch, method: str) -> Counter[str]:
    """Counts the calls of one of DynamoType's comparisons (moto's per-item work) while the test runs."""
    calls: Counter[str] = Counter()
    original = getattr(DynamoType, method)

    def counted(self: DynamoType, other: Any) -> bool:
        calls[method] += 1
        return bool(original(self, other))

    monkeypatch.setattr(DynamoType, method, counted)
    return calls


def test_a_query_of_a_partition_returns_it_in_key_order_page_by_page(dynamodb: Any) -> None:
    user = f"USER#{ACCOUNTS[1]}#user05"
    key = {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": user}}}
    assert every(dynamodb, "query", **key, Limit=2) == [
        (user, "CHECK#admin"),
        (user, "CHECK#keys"),
        (user, "CHECK#mfa"),
    ]
    assert every(dynamodb, "query", **key, ScanIndexForward=False) == [
        (user, "CHECK#mfa"),
        (user, "CHECK#keys"),
        (user, "CHECK#admin"),
    ]
    begins = {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :k)",
        "ExpressionAttributeValues": {":pk": {"S": user}, ":k": {"S": "CHECK#k"}},
    }
    assert every(dynamodb, "query", **begins) == [(user, "CHECK#keys")]
    assert every(dynamodb, "query", **{**key, "ExpressionAttributeValues": {":pk": {"S": "USER#nobody"}}}) == []


def test_a_query_of_the_index_returns_the_accounts_items_in_index_order_page_by_page(dynamodb: Any) -> None:
    account = ACCOUNTS[2]
    expected = sorted(
        (f"USER#{account}#user{user:02d}", f"CHECK#{check}") for user in range(12) for check in ("admin", "keys", "mfa")
    )
    request = {
        "IndexName": ACCOUNT_INDEX,
        "KeyConditionExpression": "account_id = :a AND begins_with(pk, :u)",
        "ExpressionAttributeValues": {":a": {"S": account}, ":u": {"S": "USER#"}},
    }
    assert every(dynamodb, "query", **request, Limit=7) == expected
    assert every(dynamodb, "query", **request, ScanIndexForward=False) == expected[::-1]
    failing = every(
        dynamodb,
        "query",
        **{**request, "ExpressionAttributeValues": {**request["ExpressionAttributeValues"], ":f": {"S": "FAIL"}}},
        FilterExpression="#s = :f",
        ExpressionAttributeNames={"#s": "status"},
        Limit=5,
    )
    assert failing == [
        (f"USER#{account}#user{user:02d}", f"CHECK#{check}")
        for user in range(12)
        for check in ("admin", "keys", "mfa")
        if (user + len(check)) % 3 == 0
    ]


def test_a_scan_still_reads_every_item_in_key_order(dynamodb: Any) -> None:
    scanned = every(dynamodb, "scan", Limit=10)
    assert len(scanned) == 3 * 12 * 3 + 1 and len(set(scanned)) == len(scanned)


def test_a_query_of_a_partition_does_not_sort_the_rest_of_the_table(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a table of 109 items; count the key comparisons moto makes while it answers
    comparisons = counting(monkeypatch, "__lt__")
    user = f"USER#{ACCOUNTS[0]}#user03"

    # When one user's 3 findings are queried
    found = every(dynamodb, "query", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": user}})

    # Then only those were sorted (moto alone sorts all 109 items first: hundreds of comparisons)
    assert len(found) == 3
    assert comparisons.total() <= 6, comparisons


def test_a_query_of_the_index_compares_only_the_accounts_items(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given three accounts' items; count the typed-value comparisons moto makes while it answers
    comparisons = counting(monkeypatch, "__ne__")
    account = ACCOUNTS[0]

    # When one account's items are queried through the `account` index
    found = every(
        dynamodb,
        "query",
        IndexName=ACCOUNT_INDEX,
        KeyConditionExpression="account_id = :a",
        ExpressionAttributeValues={":a": {"S": account}},
    )

    # Then moto compared the index key of that account's 36 items only (moto alone: all 108 indexed items)
    assert len(found) == 36
    assert comparisons.total() <= 36, comparisons


def test_a_numeric_index_key_matches_by_number_as_dynamodb_compares_it(aws: AwsContext) -> None:
    # Given a table whose index is keyed by a number, an item written with 1 and one with 2
    client = aws.dynamodb()
    client.create_table(
        TableName="numbers",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-n",
                "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    client.put_item(TableName="numbers", Item={"pk": {"S": "one"}, "n": {"N": "1"}})
    client.put_item(TableName="numbers", Item={"pk": {"S": "two"}, "n": {"N": "2"}})

    # When the index is queried for 1.0 (the same number, written otherwise)
    found = client.query(
        TableName="numbers",
        IndexName="by-n",
        KeyConditionExpression="n = :n",
        ExpressionAttributeValues={":n": {"N": "1.0"}},
    )["Items"]

    # Then the item keyed 1 is found, as DynamoDB (and moto alone) finds it
    assert [item["pk"]["S"] for item in found] == ["one"]
