"""The DynamoDB plumbing every writer of the findings table shares: items, times and expressions.

Items go through boto3's own TypeSerializer/TypeDeserializer; conditions (key, filter and
condition expressions) are built from `boto3.dynamodb.conditions` (`Key`, `Attr`) by boto3's
ConditionExpressionBuilder, so no writer spells placeholders by hand. Update expressions
(which boto3 has no builder for) stay strings; their names and values go in `expression`'s
`names` and `values` and are merged with the conditions'.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.paginator import QueryPaginator, ScanPaginator

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's wire format; None-valued attributes are left out."""
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def from_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as plain Python (numbers come back as Decimal)."""
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def read_items(paginator: QueryPaginator | ScanPaginator, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query or Scan returns, page after page, as plain Python (stop early by not reading on).

    The caller names the operation (`client.get_paginator("query")`), so the permission
    derivation of tests/support/derive_permissions.py sees it where it is used.
    """
    for page in paginator.paginate(**params):
        for raw in page.get("Items", []):
            yield from_ddb(raw)


def iso(value: datetime) -> str:
    """How the table stores a time: UTC, milliseconds (sorts as text)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def expression(
    *,
    key_condition: ConditionBase | None = None,
    filter_condition: ConditionBase | None = None,
    condition: ConditionBase | None = None,
    update: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of a low-level call for these expressions, placeholders and values serialized.

    One builder numbers the placeholders of all of them, so they never collide; `names` and
    `values` (plain Python values) are what a hand-written `update` refers to.
    """
    builder = ConditionExpressionBuilder()
    arguments: dict[str, Any] = {}
    all_names: dict[str, str] = dict(names or {})
    all_values: dict[str, Any] = dict(values or {})
    for parameter, built_from, is_key in (
        ("KeyConditionExpression", key_condition, True),
        ("FilterExpression", filter_condition, False),
        ("ConditionExpression", condition, False),
    ):
        if built_from is None:
            continue
        built = builder.build_expression(built_from, is_key_condition=is_key)
        arguments[parameter] = built.condition_expression
        all_names.update(built.attribute_name_placeholders)
        all_values.update(built.attribute_value_placeholders)
    if update is not None:
        arguments["UpdateExpression"] = update
    if all_names:
        arguments["ExpressionAttributeNames"] = all_names
    if all_values:
        arguments["ExpressionAttributeValues"] = {name: _serializer.serialize(v) for name, v in all_values.items()}
    return arguments


def item_key(pk: str, sk: str) -> dict[str, Any]:
    """The primary key of an item, in the wire format."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}
