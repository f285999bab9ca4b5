"""Least privilege, derived: each function's role grants exactly the AWS actions its code calls.

The actions come from reading the code (tests/support/derive_permissions.py: the
import and call graph from functions/<name>/app.py, botocore's service models);
the grants come from the CloudFormation SAM deploys (tests/support/template.py).
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from iamguard.checks import CATALOG
from iamguard_cli.local.cfn import Resolver

from tests.support.derive_permissions import (
    LIBRARY_CALLS,
    Derivation,
    derive,
    is_iam_action,
    library_operations,
    supports_resource_scoping,
)
from tests.support.template import (
    REPO,
    SAM_MANAGED_POLICIES,
    FunctionSource,
    Grant,
    Role,
    deployed,
    evaluate_condition,
    function_environment,
    function_role,
    functions,
    is_delivery_grant,
    is_event_source_grant,
    sam_template,
)

PACKAGE_ROOT = REPO / "layers" / "iamguard"
FUNCTIONS = functions()
IDS = [f.logical_id for f in FUNCTIONS]
# Operation verbs that only read (Service Authorization Reference access levels Read/List).
READ_VERBS = ("Get", "List", "Describe", "BatchGet", "Query", "Scan", "Generate", "Simulate")
POLICY_ARN_OPERATORS = {"arnequals", "arnlike", "stringequals", "stringlike"}


@cache
def derivation(logical_id: str) -> Derivation:
    source = next(f for f in FUNCTIONS if f.logical_id == logical_id)
    return derive(source.handler_file, PACKAGE_ROOT, source.handler_name)


def role(logical_id: str) -> Role:
    return function_role(deployed(), logical_id)


def code_grants(r: Role) -> list[Grant]:
    """Allow grants the code needs (not the ones SAM adds for delivering failed events, nor the SQS poller's)."""
    return [
        g for g in r.grants if g.effect == "Allow" and not is_delivery_grant(g, r) and not is_event_source_grant(g, r)
    ]


def is_write(action: str) -> bool:
    return not action.split(":", 1)[1].startswith(READ_VERBS)


def test_there_are_functions_to_check() -> None:
    assert any(f.logical_id == "AuditAccountFunction" for f in FUNCTIONS)


@pytest.mark.parametrize("source", FUNCTIONS, ids=IDS)
def test_each_function_has_its_handler(source: FunctionSource) -> None:
    assert source.handler_file.is_file(), f"{source.logical_id}: {source.handler_file} is missing"
    assert f"def {source.handler_name}(" in source.handler_file.read_text()


@pytest.mark.parametrize("logical_id", IDS)
def test_role_grants_exactly_the_actions_the_code_calls(logical_id: str) -> None:
    # Given the actions the code reaches and the role SAM creates
    derived = derivation(logical_id)
    grants = code_grants(role(logical_id))
    granted = {g.action for g in grants}

    # Then no grant is a wildcard, every call is granted, and every grant is called
    wildcards = sorted(a for a in granted if "*" in a or "?" in a)
    assert not wildcards, f"{logical_id}: wildcard actions {wildcards}; grant the exact actions the code calls"
    unknown = sorted(a for a in granted if not is_iam_action(a))
    assert not unknown, f"{logical_id}: {unknown} are not IAM actions"
    missing = {a: derived.where(a) for a in sorted(derived.actions - granted)}
    assert not missing, (
        f"{logical_id}: the code calls actions its role does not grant:\n{json.dumps(missing, indent=1)}"
    )
    unused = sorted(granted - derived.actions)
    assert not unused, (
        f"{logical_id}: its role grants actions no reachable code calls: {unused}\n(modules reached: {derived.modules})"
    )


@pytest.mark.parametrize("logical_id", IDS)
def test_managed_policies_are_only_the_ones_sam_adds(logical_id: str) -> None:
    r = role(logical_id)
    unexpected = [arn for arn in r.managed_arns if arn not in SAM_MANAGED_POLICIES]
    assert not unexpected, f"{logical_id}: managed policies {unexpected}; use inline statements the test can compare"
    if not r.has_sqs_source:
        assert "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole" not in r.managed_arns


@pytest.mark.parametrize("logical_id", IDS)
def test_no_wildcard_resource_where_the_action_can_be_scoped(logical_id: str) -> None:
    offending = sorted(
        {
            f"{g.sid or g.source}: {g.action}"
            for g in code_grants(role(logical_id))
            if "*" in g.resources and (supports_resource_scoping(g.action) or is_write(g.action))
        }
    )
    assert not offending, f"{logical_id}: Resource '*' on actions that take resource ARNs (or write): {offending}"


@pytest.mark.parametrize("logical_id", IDS)
def test_delivery_grants_name_their_queue(logical_id: str) -> None:
    r = role(logical_id)
    for grant in r.grants:
        if is_delivery_grant(grant, r):
            assert "*" not in grant.resources


@pytest.mark.parametrize("logical_id", IDS)
def test_iam_writes_only_in_enforce_mode_and_only_for_listed_policies(logical_id: str) -> None:
    cfn = deployed()
    writes = [g for g in code_grants(role(logical_id)) if g.action.startswith("iam:") and is_write(g.action)]
    for grant in writes:
        label = f"{logical_id} {grant.sid or grant.source} {grant.action}"

        def reachable(mode: str, grant: Grant = grant) -> bool:
            """False only when some guard is certainly false in that mode."""
            return all(
                evaluate_condition(cfn, {"Condition": name}, {"Mode": mode}) is not (not expected)
                for name, expected in grant.guards
            )

        assert not reachable("monitor"), f"{label}: granted in monitor mode; put it under Fn::If on a Mode condition"
        assert reachable("enforce"), f"{label}: never granted in enforce mode"
        assert "*" not in grant.resources, f"{label}: Resource '*'"
        operators = {op.lower(): keys for op, keys in (grant.condition or {}).items()}
        arns = [
            value
            for op, keys in operators.items()
            if op in POLICY_ARN_OPERATORS
            for key, values in keys.items()
            if key.lower() == "iam:policyarn"
            for value in (values if isinstance(values, list) else [values])
        ]
        assert arns, f"{label}: no iam:PolicyARN condition limiting which policies it may attach"
        literal = json.dumps(arns)
        assert "*" not in literal and "?" not in literal, f"{label}: wildcard in iam:PolicyARN {arns}"


def test_mode_parameter_defaults_to_monitor() -> None:
    mode = sam_template()["Parameters"]["Mode"]
    assert mode["Default"] == "monitor"
    assert sorted(mode["AllowedValues"]) == ["enforce", "monitor"]


def audit_functions() -> list[str]:
    return [fid for fid in IDS if derivation(fid).reaches("iamguard.audit.run", "run_audit")]


def test_audit_function_is_granted_every_permission_the_checks_declare() -> None:
    # Given the functions that run the whole catalog
    auditors = audit_functions()
    assert auditors, "no function reaches iamguard.audit.run_audit"
    declared = {permission for check in CATALOG.values() for permission in check.permissions}
    assert declared, "the checks declare no permissions"
    for fid in auditors:
        # Then what the checks declare is both called by the code and granted by the role
        granted = {g.action for g in code_grants(role(fid))}
        assert declared <= derivation(fid).actions, (
            f"{fid}: declared but never called {declared - derivation(fid).actions}"
        )
        assert declared <= granted, f"{fid}: declared but not granted {declared - granted}"


@pytest.mark.parametrize("name", sorted(LIBRARY_CALLS))
def test_library_calls_match_the_library_code(name: str) -> None:
    module, service, methods, exact = LIBRARY_CALLS[name]
    called = library_operations(module, service)
    assert called == set(methods) if exact else set(methods) <= called


def test_derivation_sees_the_audit_path() -> None:
    # A tripwire for the derivation itself on the real code: the bulk read is found, the
    # event-path reads (one user) are not reachable from the scheduled audit.
    actions = derivation("AuditAccountFunction").actions
    assert {"iam:GetAccountAuthorizationDetails", "iam:GenerateCredentialReport", "dynamodb:PutItem"} <= actions
    # (The audit reads some users' credentials live — those the credential report does not describe
    # yet — but never a user's policies and groups one by one.)
    assert "iam:ListGroupsForUser" not in actions


def test_enforcement_is_granted_where_the_code_enforces() -> None:
    # The IAM-write test above is not vacuous: some function's code attaches policies, and its
    # role carries that grant (under the enforce condition).
    enforcers = [fid for fid in IDS if "iam:AttachUserPolicy" in derivation(fid).actions]
    assert enforcers, "no function's code calls iam:AttachUserPolicy"
    for fid in enforcers:
        assert any(g.action == "iam:AttachUserPolicy" for g in code_grants(role(fid)))


def _policy_arn_condition(grant: Grant, parameters: dict[str, str]) -> tuple[set[tuple[str, str]], set[str]]:
    """(operator, key) pairs of a grant's iam:PolicyARN condition, and the ARNs it allows as deployed."""
    resolved = Resolver.for_template(sam_template(), parameters).resolve(grant.condition or {})
    keys, arns = set(), set()
    for operator, entries in resolved.items():
        for key, values in entries.items():
            if key.lower() == "iam:policyarn":
                keys.add((operator, key))
                arns.update(values if isinstance(values, list) else [values])
    return keys, arns


def test_the_stacks_guardrail_is_the_only_policy_iamguard_may_detach() -> None:
    # Given an enforcing deployment that also requires a policy
    parameters = {"Mode": "enforce", "RequiredPolicyArns": "arn:aws:iam::aws:policy/IAMUserChangePassword"}
    guardrail = Resolver.for_template(sam_template(), parameters).ref("GuardrailPolicy")
    detachers = sorted(fid for fid in IDS if "iam:DetachUserPolicy" in derivation(fid).actions)
    assert detachers == ["AuditAccountFunction", "OnIamEventFunction", "OnSigninEventFunction"]
    for fid in detachers:
        grants = code_grants(role(fid))
        detach = [g for g in grants if g.action == "iam:DetachUserPolicy"]
        attach = [g for g in grants if g.action == "iam:AttachUserPolicy"]
        assert detach and attach, fid
        attach_keys = set().union(*(_policy_arn_condition(g, parameters)[0] for g in attach))
        for grant in detach:
            keys, arns = _policy_arn_condition(grant, parameters)
            # Then each detach grant carries the attach grant's iam:PolicyARN condition, naming the guardrail only
            assert keys == attach_keys == {("ArnEquals", "iam:PolicyARN")}, fid
            assert arns == {guardrail}, f"{fid} may detach {arns}"
        assert all(guardrail in _policy_arn_condition(g, parameters)[1] for g in attach), fid


def test_the_event_functions_ignore_the_events_of_every_role_that_enforces() -> None:
    # iamguard's own attach and detach come back through CloudTrail; none of them may look like an
    # administrator's decision (a detach by hand is remembered and respected).
    enforcers = {fid for fid in IDS if {"iam:AttachUserPolicy", "iam:DetachUserPolicy"} & derivation(fid).actions}
    assert "AuditAccountFunction" in enforcers
    resolver = Resolver.for_template(sam_template(), {"Mode": "enforce"})
    for fid in ("OnIamEventFunction", "OnSigninEventFunction"):
        ignored = set(function_environment(fid, Mode="enforce")["IAMGUARD_ROLE_ARNS"].split(","))
        assert {resolver.arn(f"{enforcer}Role") for enforcer in enforcers} <= ignored, fid


def test_required_policy_arns_cannot_carry_wildcards() -> None:
    # The iam:PolicyARN condition is built from RequiredPolicyArns: its pattern must refuse "*".
    pattern = sam_template()["Parameters"]["RequiredPolicyArns"]["AllowedPattern"]
    assert re.fullmatch(pattern, "arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert re.fullmatch(pattern, "arn:aws:iam::aws:policy/*") is None
    assert re.fullmatch(pattern, "arn:aws:iam::aws:policy/Read?nlyAccess") is None
