"""template.yaml refuses every region but us-east-1, the only one whose default bus receives IAM's events."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.template import REPO, deployed, evaluate_condition, sam_template

REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-north-1", "eu-central-1", "ap-northeast-2", "ap-southeast-2"]


def region_assertion(template: dict[str, Any]) -> dict[str, Any]:
    (assertion,) = template["Rules"]["DeployInUsEast1"]["Assertions"]
    return assertion


@pytest.mark.parametrize("region", REGIONS)
def test_the_stack_deploys_in_us_east_1_and_nowhere_else(region: str) -> None:
    assertion = region_assertion(sam_template())
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    assert evaluate_condition(sam_template(), assertion["Assert"], {"AWS::Region": region}) is (region == "us-east-1")


def test_the_refusal_says_why_and_where_other_regions_sign_ins_go() -> None:
    message = region_assertion(sam_template())["AssertDescription"]
    assert message.startswith("Deploy iamguard in us-east-1.")
    assert "CloudTrail events" in message and "default event bus in us-east-1" in message
    assert "forwarder/signin-forwarder.yaml" in message
    assert (REPO / "forwarder" / "signin-forwarder.yaml").is_file()


def test_the_rule_survives_the_sam_transform() -> None:
    # CloudFormation evaluates Rules on the template SAM hands it, before creating anything.
    assert deployed()["Rules"] == sam_template()["Rules"]


def test_the_rule_holds_for_every_parameter_value() -> None:
    # No RuleCondition: no parameter can switch the region check off.
    assert set(sam_template()["Rules"]["DeployInUsEast1"]) == {"Assertions"}
