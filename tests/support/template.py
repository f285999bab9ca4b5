"""template.yaml as written (SAM) and as deployed (the CloudFormation `sam deploy` creates).

The translation uses aws-sam-translator from .venv-sam (beside aws-sam-cli, which
`make test` installs before pytest runs): tests see exactly the roles, policies
and alarms that SAM generates, policy templates and DLQ permissions included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from iamguard_cli.local.cfn import Resolver, as_str, load_yaml
from iamguard_cli.local.routing import function_name

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
TRANSLATE = Path(__file__).with_name("sam_translate.py")

# Managed policies SAM attaches by itself (logs, X-Ray tracing, SQS event sources).
SAM_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": "CloudWatch Logs for the function",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": "Tracing: Active",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": "an SQS event source",
}
# What SAM grants for a dead-letter queue or an on-failure destination.
DELIVERY_ACTIONS = frozenset({"sqs:SendMessage", "sns:Publish", "lambda:InvokeFunction", "events:PutEvents"})


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing - except in CI, where that is a failure."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI never skips this)")
    pytest.skip(reason)


@cache
def sam_template() -> dict[str, Any]:
    """template.yaml with its Fn::ForEach loops expanded, as the local runtime reads it."""
    return load_yaml(TEMPLATE)


@cache
def _translated(overrides: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    require(SAM_PYTHON.exists(), f"{SAM_PYTHON} is missing: run `make .venv-sam` (make test does)")
    args = [str(SAM_PYTHON), str(TRANSLATE), str(TEMPLATE), *(f"{k}={v}" for k, v in overrides)]
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    if done.returncode != 0:
        pytest.fail(f"SAM translation of template.yaml failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def deployed(**overrides: str) -> dict[str, Any]:
    """The CloudFormation template SAM deploys, with parameter overrides."""
    return _translated(tuple(sorted(overrides.items())))


# ---------------------------------------------------------------- functions
@dataclass(frozen=True)
class FunctionSource:
    logical_id: str
    code_dir: Path
    handler_file: Path
    handler_name: str
    own_settings: dict[str, str]  # the function's own variables written as literals (EVENT_SOURCES)

    @property
    def name(self) -> str:
        return function_name(self.logical_id)


def functions() -> list[FunctionSource]:
    """Every AWS::Serverless::Function with its code directory and handler (Globals applied)."""
    template = sam_template()
    defaults = template.get("Globals", {}).get("Function", {})
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**defaults, **(resource.get("Properties") or {})}
        code_dir = REPO / str(props["CodeUri"])
        module, _, name = str(props["Handler"]).rpartition(".")
        variables = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        own = {key: value for key, value in variables.items() if isinstance(value, str)}
        found.append(FunctionSource(logical_id, code_dir, code_dir / f"{module.replace('.', '/')}.py", name, own))
    return sorted(found, key=lambda f: f.logical_id)


def load_handler(name: str, *, prefix: str = "handler") -> ModuleType:
    """The handler module of function `name` (on_iam_event, audit_account, ...) imported the way Lambda
    does: a fresh module (a cold start), the package from the layer, the process environment plus the
    function's own literal settings from template.yaml (which is how two functions share one module)."""
    source = next((f for f in functions() if f.name == name), None)
    if source is None:
        raise KeyError(f"template.yaml has no function {name}")
    spec = importlib.util.spec_from_file_location(f"{prefix}_{name}", source.handler_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    with pytest.MonkeyPatch.context() as patch:
        for key, value in source.own_settings.items():
            patch.setenv(key, value)
        spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- conditions
def evaluate_condition(template: dict[str, Any], expr: Any, params: dict[str, str]) -> bool | None:
    """Kleene evaluation of a condition: None where it depends on a parameter not in `params`."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Condition":
            return evaluate_condition(template, template["Conditions"][arg], params)
        if fn == "Fn::Not":
            inner = evaluate_condition(template, arg[0], params)
            return None if inner is None else not inner
        if fn in {"Fn::And", "Fn::Or"}:
            values = [evaluate_condition(template, a, params) for a in arg]
            decisive = fn == "Fn::Or"  # Or: any True decides; And: any False decides
            if decisive in values:
                return bool(decisive)
            return None if None in values else not decisive
        if fn == "Fn::Equals":
            left, right = (_value(a, params) for a in arg)
            return None if left is None or right is None else left == right
    return None


def _value(expr: Any, params: dict[str, str]) -> str | None:
    if isinstance(expr, str | int | float | bool):
        return str(expr)
    if isinstance(expr, dict) and set(expr) == {"Ref"}:
        return params.get(expr["Ref"])
    return None


# ---------------------------------------------------------------- role statements
Guard = tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Grant:
    """One action of one Allow/Deny statement in a function's role, with the conditions it sits under."""

    action: str
    effect: str
    resources: tuple[Any, ...]
    condition: Any
    sid: str
    source: str  # inline policy name, managed policy ARN or policy resource id
    guards: Guard


def branches(value: Any, guards: Guard = ()) -> Iterator[tuple[Any, Guard]]:
    """Every value an Fn::If can take, with the conditions that lead to it (AWS::NoValue dropped)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        yield from branches(when_true, (*guards, (condition, True)))
        yield from branches(when_false, (*guards, (condition, False)))
    elif isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield value, guards


def _items(value: Any, guards: Guard) -> Iterator[tuple[Any, Guard]]:
    """A list (or one value) whose members may each be an Fn::If."""
    for resolved, outer in branches(value, guards):
        members = resolved if isinstance(resolved, list) else [resolved]
        for member in members:
            yield from branches(member, outer)


def document_grants(document: Any, source: str, guards: Guard = ()) -> Iterator[Grant]:
    for doc, doc_guards in branches(document, guards):
        for statement, guard in _items(doc.get("Statement", []), doc_guards):
            resources = tuple(r for r, _ in _items(statement.get("Resource", []), ()))
            for action, action_guard in _items(statement.get("Action", []), guard):
                yield Grant(
                    action=str(action),
                    effect=str(statement.get("Effect")),
                    resources=resources,
                    condition=statement.get("Condition"),
                    sid=str(statement.get("Sid", "")),
                    source=source,
                    guards=action_guard,
                )


@dataclass(frozen=True)
class Role:
    function: str
    logical_id: str
    grants: tuple[Grant, ...]
    managed_arns: tuple[str, ...]
    delivery_targets: tuple[Any, ...]  # DLQ and on-failure destinations of the function
    has_sqs_source: bool
    event_sources: tuple[Any, ...] = ()  # the EventSourceArn of each event source mapping to the function


def function_role(cfn: dict[str, Any], function_id: str) -> Role:
    resources = cfn["Resources"]
    function = resources[function_id]
    role_ref = function["Properties"]["Role"]
    if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
        raise AssertionError(f"{function_id}: its role must be created in this template (got {role_ref!r})")
    role_id = role_ref["Fn::GetAtt"][0]
    role = resources[role_id]["Properties"]
    grants: list[Grant] = []
    for policy, guard in _items(role.get("Policies", []), ()):
        grants.extend(document_grants(policy["PolicyDocument"], str(policy.get("PolicyName")), guard))
    managed: list[str] = []
    for arn, guard in _items(role.get("ManagedPolicyArns", []), ()):
        if isinstance(arn, dict) and set(arn) == {"Ref"} and arn["Ref"] in resources:
            doc = resources[arn["Ref"]]["Properties"]["PolicyDocument"]
            grants.extend(document_grants(doc, arn["Ref"], guard))
        else:
            managed.append(str(arn))
    for other_id, other in resources.items():
        if other.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            roles = other["Properties"].get("Roles", [])
            if {"Ref": role_id} in roles:
                grants.extend(document_grants(other["Properties"]["PolicyDocument"], other_id))
    targets: list[Any] = []
    dead_letter = function["Properties"].get("DeadLetterConfig", {}).get("TargetArn")
    if dead_letter is not None:
        targets.append(dead_letter)
    for other in resources.values():
        if other.get("Type") == "AWS::Lambda::EventInvokeConfig" and other["Properties"].get("FunctionName") == {
            "Ref": function_id
        }:
            for destination in other["Properties"].get("DestinationConfig", {}).values():
                targets.append(destination.get("Destination"))
    sqs_source = any(
        other.get("Type") == "AWS::Lambda::EventSourceMapping"
        and other["Properties"].get("FunctionName") == {"Ref": function_id}
        and "sqs" in json.dumps(other["Properties"].get("EventSourceArn"))
        for other in resources.values()
    )
    sources = tuple(
        other["Properties"].get("EventSourceArn")
        for other in resources.values()
        if other.get("Type") == "AWS::Lambda::EventSourceMapping"
        and other["Properties"].get("FunctionName") == {"Ref": function_id}
    )
    return Role(function_id, role_id, tuple(grants), tuple(managed), tuple(targets), sqs_source, sources)


# What Lambda's poller does with an SQS event source, with the function's role (Lambda developer guide).
POLLER_ACTIONS = frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"})


def is_event_source_grant(grant: Grant, role: Role) -> bool:
    """A permission Lambda's poller needs to read the function's SQS event source (not the code)."""
    return (
        grant.action in POLLER_ACTIONS
        and bool(grant.resources)
        and all(resource in role.event_sources for resource in grant.resources)
    )


def is_delivery_grant(grant: Grant, role: Role) -> bool:
    """A permission SAM adds so Lambda can deliver failed events to the function's DLQ/destination."""
    return (
        grant.action in DELIVERY_ACTIONS
        and bool(grant.resources)
        and all(resource in role.delivery_targets for resource in grant.resources)
    )


def function_environment(logical_id: str, **overrides: str) -> dict[str, str]:
    """A function's environment variables as deployed (Globals merged), resolved for a stack named
    `iamguard` in moto's account (parameters at their defaults, or `overrides`)."""
    template = sam_template()
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    props = template["Resources"][logical_id].get("Properties") or {}
    variables.update((props.get("Environment") or {}).get("Variables", {}))
    resolved = Resolver.for_template(template, overrides).resolve(variables)
    return {k: as_str(v) for k, v in resolved.items()}
