"""The shared DynamoDB helpers: expressions built by boto3, merged with a hand-written update's names/values."""

from __future__ import annotations

from boto3.dynamodb.conditions import Attr, Key
from iamguard.persistence.table import expression, from_ddb, item_key, to_ddb


def test_key_filter_and_condition_share_one_numbering() -> None:
    built = expression(
        key_condition=Key("gsi1pk").eq("CHECK#x") & Key("gsi1sk").begins_with("FAIL#"),
        filter_condition=Attr("kind").eq("finding"),
    )
    assert built["KeyConditionExpression"] == "(#n0 = :v0 AND begins_with(#n1, :v1))"
    assert built["FilterExpression"] == "#n2 = :v2"
    assert built["ExpressionAttributeNames"] == {"#n0": "gsi1pk", "#n1": "gsi1sk", "#n2": "kind"}
    assert built["ExpressionAttributeValues"] == {
        ":v0": {"S": "CHECK#x"},
        ":v1": {"S": "FAIL#"},
        ":v2": {"S": "finding"},
    }


def test_an_update_keeps_its_own_placeholders_next_to_the_conditions() -> None:
    built = expression(
        update="SET #p = if_not_exists(#p, :zero) + :one",
        condition=Attr("lease_until").eq("2026-01-01T00:00:00.000+00:00") & Attr("posts_slack").lt(3),
        names={"#p": "posts_slack"},
        values={":zero": 0, ":one": 1},
    )
    assert built["UpdateExpression"] == "SET #p = if_not_exists(#p, :zero) + :one"
    assert built["ConditionExpression"] == "(#n0 = :v0 AND #n1 < :v1)"
    assert built["ExpressionAttributeNames"] == {"#p": "posts_slack", "#n0": "lease_until", "#n1": "posts_slack"}
    assert built["ExpressionAttributeValues"] == {
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
        ":v0": {"S": "2026-01-01T00:00:00.000+00:00"},
        ":v1": {"N": "3"},
    }


def test_none_attributes_are_left_out_and_items_round_trip() -> None:
    wire = to_ddb({"pk": "USER#bob", "told": None, "version": 2, "targets": ["slack"]})
    assert wire == {"pk": {"S": "USER#bob"}, "version": {"N": "2"}, "targets": {"L": [{"S": "slack"}]}}
    assert from_ddb(wire) == {"pk": "USER#bob", "version": 2, "targets": ["slack"]}
    assert item_key("USER#bob", "GUARDRAIL") == {"pk": {"S": "USER#bob"}, "sk": {"S": "GUARDRAIL"}}
