"""Create-if-missing for what the stack would have made: for runs against an emulator or an empty account.

In AWS, template.yaml creates the findings table, the idempotency table and the guardrail policy.
`iamguard audit --store`, `iamguard events replay`, `iamguard serve` and the tests create them
here, with the template's key schema, when they are missing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from iamguard.enforcement.guardrail import GUARDRAIL_DESCRIPTION, GUARDRAIL_POLICY_NAME, guardrail_document
from iamguard.persistence.findings import ACCOUNT_INDEX, FindingsStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient


def _create_table_if_missing(client: DynamoDBClient, name: str, ttl_attribute: str | None, **spec: Any) -> bool:
    """True when the table was created; an existing table is left as it is."""
    try:
        client.describe_table(TableName=name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    if ttl_attribute:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
        )
    return True


def ensure_findings_table(store: FindingsStore) -> bool:
    """The findings table with template.yaml's key schema and its indexes (gsi1, account)."""
    return _create_table_if_missing(
        store.client,
        store.table,
        None,
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk", "account_id")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": ACCOUNT_INDEX,
                "KeySchema": [
                    {"AttributeName": "account_id", "KeyType": "HASH"},
                    {"AttributeName": "pk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


def ensure_idempotency_table(client: DynamoDBClient, table_name: str) -> bool:
    """The idempotency table as template.yaml makes it (key `id`, TTL `expiration`)."""
    return _create_table_if_missing(
        client,
        table_name,
        "expiration",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )


def ensure_guardrail_policy(iam: IAMClient, account_id: str) -> str:
    """The stack's MFA guardrail policy, created if missing; its ARN."""
    arn = f"arn:aws:iam::{account_id}:policy/{GUARDRAIL_POLICY_NAME}"
    try:
        iam.get_policy(PolicyArn=arn)
        return arn
    except iam.exceptions.NoSuchEntityException:
        pass
    created: str = iam.create_policy(
        PolicyName=GUARDRAIL_POLICY_NAME,
        PolicyDocument=json.dumps(guardrail_document()),
        Description=GUARDRAIL_DESCRIPTION,
    )["Policy"]["Arn"]
    return created
