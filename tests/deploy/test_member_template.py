"""The member template (member/template.yaml): what the hub may do in each account, derived from the code."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]
from iamguard.realtime.event_map import event_patterns
from iamguard.settings import Settings
from iamguard_cli.local.cfn import Resolver

from tests.support.derive_permissions import derive
from tests.support.template import REPO, Grant, document_grants, functions, sam_template

MEMBER = REPO / "member" / "template.yaml"
GUARDRAIL_JSON = REPO / "layers" / "iamguard" / "iamguard" / "enforcement" / "guardrail.json"
PACKAGE_ROOT = REPO / "layers" / "iamguard"
# IAM writes iamguard makes: the enforcement role's, never the audit role's.
ENFORCEMENT_WRITES = frozenset({"iam:AttachUserPolicy", "iam:DetachUserPolicy"})
HUB = "111122223333"
PARAMETERS = {
    "HubAccountId": HUB,
    "HubStackName": "iamguard",
    "HubEventBusArn": f"arn:aws:events:us-east-1:{HUB}:event-bus/iamguard-hub",
    "OrganizationId": "o-abcdef1234",
}


@cache
def member() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(MEMBER))
    return loaded


def resource(name: str) -> dict[str, Any]:
    found: dict[str, Any] = member()["Resources"][name]
    return found


def role_grants(name: str) -> list[Grant]:
    policies = resource(name)["Properties"].get("Policies", [])
    return [g for p in policies for g in document_grants(p["PolicyDocument"], p["PolicyName"])]


@cache
def iam_actions_of_the_code() -> frozenset[str]:
    """Every IAM action the hub's functions call (each acts in a member account through these roles)."""
    actions: set[str] = set()
    for source in functions():
        derived = derive(source.handler_file, PACKAGE_ROOT, source.handler_name)
        actions |= {a for a in derived.actions if a.startswith("iam:")}
    return frozenset(actions)


MEMBER_ACCOUNT = "222233334444"
GUARDRAIL_ARN = f"arn:aws:iam::{MEMBER_ACCOUNT}:policy/iamguard-mfa-guardrail"


def resolver(**parameters: str) -> Resolver:
    # The guardrail's Ref is its ARN, named as test_the_guardrail_is_the_enforcers_document checks.
    return Resolver.for_template(
        member(), {**PARAMETERS, **parameters}, refs={"GuardrailPolicy": GUARDRAIL_ARN}, account_id=MEMBER_ACCOUNT
    )


def test_it_is_plain_cloudformation_for_a_service_managed_stackset() -> None:
    assert "Transform" not in member()
    assert member()["Rules"]["OnlyInUsEast1"]["Assertions"][0]["Assert"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]
    }


def test_parameters_are_the_contracts_with_the_hubs_defaults() -> None:
    parameters = member()["Parameters"]
    assert {"HubAccountId", "HubStackName", "HubEventBusArn", "Mode", "OrganizationId"} <= parameters.keys()
    organization = Settings.from_env({}).organization
    assert parameters["AuditRoleName"]["Default"] == organization.member_audit_role_name
    assert parameters["EnforceRoleName"]["Default"] == organization.member_enforce_role_name
    assert parameters["Mode"]["AllowedValues"] == ["monitor", "enforce"]
    assert parameters["Mode"]["Default"] == "monitor"
    # The required policies are refused in the same shapes as the hub refuses them (no wildcards).
    hub = sam_template()["Parameters"]
    assert parameters["RequiredPolicyArns"]["AllowedPattern"] == hub["RequiredPolicyArns"]["AllowedPattern"]
    assert re.fullmatch(parameters["OrganizationId"]["AllowedPattern"], "o-abcdef1234")
    assert re.fullmatch(parameters["OrganizationId"]["AllowedPattern"], "") is None


def test_the_guardrail_is_the_enforcers_document() -> None:
    # Given the document the enforcer attaches and the hub's own guardrail
    expected = json.loads(GUARDRAIL_JSON.read_text())
    document = resource("GuardrailPolicy")["Properties"]["PolicyDocument"]
    # Then the member's guardrail is the same document, named like the hub's
    assert json.loads(json.dumps(document)) == expected
    assert document == sam_template()["Resources"]["GuardrailPolicy"]["Properties"]["PolicyDocument"]
    name = resolver().resolve(resource("GuardrailPolicy")["Properties"]["ManagedPolicyName"])
    hub_name = Resolver.for_template(sam_template(), {}, stack_name="iamguard").resolve(
        sam_template()["Resources"]["GuardrailPolicy"]["Properties"]["ManagedPolicyName"]
    )
    assert name == hub_name == "iamguard-mfa-guardrail"
    # and the hub looks for it in each member under that name
    hub_variables = sam_template()["Globals"]["Function"]["Environment"]["Variables"]
    looked_for = Resolver.for_template(sam_template(), {}, stack_name="iamguard").resolve(
        hub_variables["MEMBER_GUARDRAIL_POLICY_NAME"]
    )
    assert looked_for == name


def test_the_audit_role_grants_exactly_the_iam_reads_the_code_makes() -> None:
    # ListOrganizationsFeatures is the hub's own call (the organization's settings), never made in a member.
    reads = iam_actions_of_the_code() - ENFORCEMENT_WRITES - {"iam:ListOrganizationsFeatures"}
    assert {"iam:GetAccountAuthorizationDetails", "iam:GetUser", "iam:GetCredentialReport"} <= reads
    grants = role_grants("AuditRole")
    assert {g.effect for g in grants} == {"Allow"}
    granted = {g.action for g in grants}
    assert not sorted(reads - granted), f"the code reads {sorted(reads - granted)}; the audit role does not grant it"
    assert not sorted(granted - reads), f"the audit role grants {sorted(granted - reads)}; no code calls it"


def test_the_audit_role_cannot_write() -> None:
    assert not [g.action for g in role_grants("AuditRole") if g.action in ENFORCEMENT_WRITES]
    assert "ManagedPolicyArns" not in resource("AuditRole")["Properties"]


def test_the_enforcement_role_grants_exactly_the_iam_writes_the_code_makes() -> None:
    writes = iam_actions_of_the_code() & ENFORCEMENT_WRITES
    assert writes == ENFORCEMENT_WRITES  # the enforcer attaches and detaches
    grants = role_grants("EnforceRole")
    assert {g.action for g in grants} == set(writes)
    assert {g.effect for g in grants} == {"Allow"}
    assert "ManagedPolicyArns" not in resource("EnforceRole")["Properties"]
    for grant in grants:
        assert resolver().resolve(list(grant.resources)) == ["arn:aws:iam::222233334444:user/*"], grant.sid


def test_the_enforcement_role_exists_only_in_enforce_mode() -> None:
    assert resource("EnforceRole")["Condition"] == "EnforceMode"
    assert member()["Outputs"]["EnforceRoleArn"]["Condition"] == "EnforceMode"
    assert resolver(Mode="enforce").condition("EnforceMode")
    assert not resolver(Mode="monitor").condition("EnforceMode")
    # Nothing else may write: only the enforcement role holds an IAM write.
    for name, found in member()["Resources"].items():
        if found["Type"] == "AWS::IAM::Role" and name != "EnforceRole":
            assert not {g.action for g in role_grants(name)} & ENFORCEMENT_WRITES, name


def _policy_arns(grant: Grant, **parameters: str) -> tuple[set[str], list[str]]:
    condition = resolver(**parameters).resolve(grant.condition or {})
    keys = {f"{operator}:{key}" for operator, entries in condition.items() for key in entries}
    arns = [value for entries in condition.values() for key, value in entries.items() if key == "iam:PolicyARN"]
    flat = [a for value in arns for a in (value if isinstance(value, list) else [value])]
    return keys, flat


@pytest.mark.parametrize("required", ["", "arn:aws:iam::aws:policy/IAMUserChangePassword,arn:aws:iam::aws:policy/X"])
def test_enforcement_writes_are_limited_to_the_guardrail_and_the_required_policies(required: str) -> None:
    guardrail = GUARDRAIL_ARN
    grants = {g.action: g for g in role_grants("EnforceRole")}
    attach_keys, attach = _policy_arns(grants["iam:AttachUserPolicy"], Mode="enforce", RequiredPolicyArns=required)
    detach_keys, detach = _policy_arns(grants["iam:DetachUserPolicy"], Mode="enforce", RequiredPolicyArns=required)
    assert attach_keys == detach_keys == {"ArnEquals:iam:PolicyARN"}
    assert attach == [guardrail, *(required.split(",") if required else [])]
    assert detach == [guardrail]  # a required policy is never taken off


@pytest.mark.parametrize("name", ["AuditRole", "EnforceRole"])
def test_roles_trust_only_the_hubs_function_roles_in_the_organization(name: str) -> None:
    properties = resource(name)["Properties"]
    assert resolver().resolve(properties["RoleName"]) == (
        "iamguard-member-audit" if name == "AuditRole" else "iamguard-member-enforce"
    )
    (statement,) = resolver().resolve(properties["AssumeRolePolicyDocument"])["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{HUB}:root"}
    assert statement["Condition"] == {
        "StringLike": {"aws:PrincipalArn": f"arn:aws:iam::{HUB}:role/iamguard-*"},
        "StringEquals": {"aws:PrincipalOrgID": "o-abcdef1234"},
    }


def test_the_hubs_function_roles_are_the_ones_trusted() -> None:
    # SAM names each function's role <stack>-<Function>Role-<suffix>: the trust's pattern covers them.
    pattern = resource("AuditRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert pattern["StringLike"]["aws:PrincipalArn"]["Fn::Sub"].endswith(":role/${HubStackName}-*")


@pytest.mark.parametrize(
    ("rule", "handler"), [("IamForwardRule", "on_iam_event"), ("SignInForwardRule", "on_signin_event")]
)
def test_the_forward_rules_select_what_the_hubs_functions_receive(rule: str, handler: str) -> None:
    properties = resource(rule)["Properties"]
    assert properties["EventPattern"] == event_patterns()[handler]
    assert properties["EventBusName"] == "default" and properties["State"] == "ENABLED"
    (target,) = properties["Targets"]
    assert target["Arn"] == {"Ref": "HubEventBusArn"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ForwarderDeadLetterQueue", "Arn"]}}


def test_every_hub_event_function_has_its_forward_rule() -> None:
    forwarded = [
        r["Properties"]["EventPattern"] for r in member()["Resources"].values() if r["Type"] == "AWS::Events::Rule"
    ]
    assert sorted(map(json.dumps, forwarded)) == sorted(json.dumps(p) for p in event_patterns().values())


def test_the_forwarder_role_may_only_put_events_on_the_hub_bus() -> None:
    properties = resource("ForwarderRole")["Properties"]
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    grants = role_grants("ForwarderRole")
    assert [(g.effect, g.action, g.resources) for g in grants] == [
        ("Allow", "events:PutEvents", ({"Ref": "HubEventBusArn"},))
    ]


def test_the_dead_letter_queue_accepts_only_the_forward_rules() -> None:
    statements = resource("ForwarderDeadLetterQueuePolicy")["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        {"Fn::GetAtt": ["IamForwardRule", "Arn"]},
        {"Fn::GetAtt": ["SignInForwardRule", "Arn"]},
    ]


def test_the_hub_bus_parameter_accepts_what_the_sign_in_forwarder_targets() -> None:
    # Sign-ins in other regions: forwarder/signin-forwarder.yaml, deployed with TargetEventBusArn = the hub bus.
    forwarder = cfn_yaml.load(str(REPO / "forwarder" / "signin-forwarder.yaml"))
    bus = PARAMETERS["HubEventBusArn"]
    assert re.fullmatch(forwarder["Parameters"]["TargetEventBusArn"]["AllowedPattern"], bus)
    assert re.fullmatch(member()["Parameters"]["HubEventBusArn"]["AllowedPattern"], bus)


def test_make_lints_and_scans_the_member_template() -> None:
    makefile = (REPO / "Makefile").read_text()
    (templates,) = re.findall(r"^TEMPLATES := (.*)$", makefile, flags=re.MULTILINE)
    assert "member/template.yaml" in templates.split()


@pytest.mark.parametrize("careless", ["*", "iamguard*", "iam?guard", "", "-x", "a/b"])
def test_the_trusted_stack_name_cannot_widen_the_trust(careless: str) -> None:
    # HubStackName is written into the trust's aws:PrincipalArn pattern: no wildcard may get in.
    assert re.fullmatch(member()["Parameters"]["HubStackName"]["AllowedPattern"], careless) is None
    assert re.fullmatch(member()["Parameters"]["HubStackName"]["AllowedPattern"], "iamguard-prod")
