"""CloudFormation templates read as CloudFormation reads them: the one reader of template.yaml.

The local runtime (`routing`, `provision`) and the tests (tests/support/template.py,
tests/support/sam_translate.py) all read the template through this module:

    body = load_yaml(Path("template.yaml"))        # short-form tags, Fn::ForEach expanded
    resolver = Resolver.for_template(body, parameters={"Mode": "enforce"}, refs=..., attrs=...)
    resolver.resolve(body["Resources"]["X"]["Properties"])

Intrinsic functions are resolved the way CloudFormation would for one stack in
one account: parameters (overrides, else defaults), pseudo parameters, Ref and
Fn::GetAtt of resources (what the caller created for them, else the name and ARN
CloudFormation would give them), Fn::Sub, Fn::Join, Fn::Split, Fn::Select,
Fn::FindInMap, Fn::If and conditions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


class TemplateError(ValueError):
    """The template cannot be read or resolved."""


# -- loading ------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...) as their long forms."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    """The template with its Fn::ForEach loops expanded (what AWS::LanguageExtensions deploys)."""
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise TemplateError(f"{path} is not a CloudFormation template")
    return expand_for_each(loaded)


# -- AWS::LanguageExtensions ------------------------------------------------------------

_FOR_EACH = "Fn::ForEach::"
_EXPANDED_SECTIONS = ("Conditions", "Resources", "Outputs")


def expand_for_each(template: dict[str, Any]) -> dict[str, Any]:
    """`template` with every Fn::ForEach in Conditions, Resources and Outputs expanded.

    As the transform does: each item of the collection (a literal list) replaces
    ${Identifier} and &{Identifier} in the fragment's keys and strings and a
    `Ref` to the identifier; a `Ref` whose argument is then a constant Fn::Sub
    becomes a plain Ref.
    """
    expanded = dict(template)
    for section in _EXPANDED_SECTIONS:
        if isinstance(template.get(section), dict):
            expanded[section] = _expand_section(template[section])
    return expanded


def _expand_section(section: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in section.items():
        items = _expand_loop(key, value) if key.startswith(_FOR_EACH) else {key: value}
        for name, body in items.items():
            if name in result:
                raise TemplateError(f"Fn::ForEach produces {name} twice")
            result[name] = body
    return result


def _expand_loop(key: str, value: Any) -> dict[str, Any]:
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)):
        raise TemplateError(f"{key}: expected [Identifier, Collection, Fragment]")
    identifier, collection, fragment = value
    if not isinstance(collection, list) or not isinstance(fragment, dict):
        raise TemplateError(f"{key}: the local reader expands literal collections only")
    result: dict[str, Any] = {}
    for item in collection:
        for name, body in _expand_section(_substitute(fragment, identifier, str(item))).items():
            if name in result:
                raise TemplateError(f"Fn::ForEach produces {name} twice")
            result[name] = body
    return result


def _substitute(value: Any, identifier: str, item: str) -> Any:
    if isinstance(value, str):
        text = value.replace(f"${{{identifier}}}", item)
        return text.replace(f"&{{{identifier}}}", re.sub(r"[^A-Za-z0-9]", "", item))
    if isinstance(value, list):
        return [_substitute(v, identifier, item) for v in value]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": identifier}:
        return item
    result = {_substitute(k, identifier, item): _substitute(v, identifier, item) for k, v in value.items()}
    constant = (result.get("Ref") or {}).get("Fn::Sub") if isinstance(result.get("Ref"), dict) else None
    if len(result) == 1 and isinstance(constant, str) and "${" not in constant:
        return {"Ref": constant}
    return result


# -- resolving ------------------------------------------------------------------------

# Where CloudFormation's name for a resource is set, by the resource's properties.
_NAME_PROPERTIES = ("TableName", "TopicName", "QueueName", "FunctionName", "ManagedPolicyName", "Name")
# What Ref of a resource gives (else its physical name).
_REF_IS_ARN = {"AWS::SNS::Topic", "AWS::IAM::ManagedPolicy", "AWS::SecretsManager::Secret"}


def as_str(value: Any) -> str:
    """A resolved value as CloudFormation puts it in a string (true/false for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Resolver:
    """Resolves intrinsic functions for one stack.

    `refs` and `attrs` are what the caller knows of created resources (the local
    runtime: what it provisioned); any other resource of the template gets the
    physical name CloudFormation would give it (its name property, else
    `<stack>-<LogicalId>`) and the ARN or URL of its type.
    """

    parameters: Mapping[str, str]
    conditions: Mapping[str, Any] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)
    attrs: Mapping[tuple[str, str], str] = field(default_factory=dict)
    stack_name: str = "iamguard"
    account_id: str = "123456789012"
    region: str = "us-east-1"
    resources: Mapping[str, Any] = field(default_factory=dict)
    mappings: Mapping[str, Any] = field(default_factory=dict)
    _condition_values: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def for_template(
        cls,
        body: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        *,
        refs: Mapping[str, str] | None = None,
        attrs: Mapping[tuple[str, str], str] | None = None,
        stack_name: str = "iamguard",
        account_id: str = "123456789012",
        region: str = "us-east-1",
    ) -> Resolver:
        """A resolver for `body`: its parameters at their defaults unless given (an unknown name is an error)."""
        known = parameter_defaults(body)
        unknown = set(parameters or {}) - known.keys()
        if unknown:
            raise TemplateError(f"the template has no parameter {', '.join(sorted(unknown))}")
        return cls(
            parameters={**known, **(parameters or {})},
            conditions=body.get("Conditions") or {},
            refs=dict(refs or {}),
            attrs=dict(attrs or {}),
            stack_name=stack_name,
            account_id=account_id,
            region=region,
            resources=body.get("Resources") or {},
            mappings=body.get("Mappings") or {},
        )

    def pseudo(self, name: str) -> Any:
        values: dict[str, Any] = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]

    # -- names CloudFormation would give ---------------------------------------------
    def _type(self, logical_id: str) -> str:
        return str((self.resources.get(logical_id) or {}).get("Type", ""))

    def physical_name(self, logical_id: str) -> str:
        properties = (self.resources.get(logical_id) or {}).get("Properties") or {}
        for key in _NAME_PROPERTIES:
            if isinstance(properties.get(key), str):
                return str(properties[key])
        return f"{self.stack_name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        if logical_id not in self.resources and logical_id.endswith("Role"):
            # A role SAM generates for a function (<FunctionId>Role).
            return f"arn:aws:iam::{self.account_id}:role/{self.stack_name}-{logical_id}"
        name, region, account = self.physical_name(logical_id), self.region, self.account_id
        arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{account}:{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{region}:{account}:function:{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{name}",
            "AWS::IAM::ManagedPolicy": f"arn:aws:iam::{account}:policy/{name}",
            "AWS::SecretsManager::Secret": f"arn:aws:secretsmanager:{region}:{account}:secret:{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{region}:{account}:key/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{region}:{account}:log-group:{name}:*",
        }
        return arns.get(self._type(logical_id), f"{self.stack_name}-{logical_id}.Arn")

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        kind = self._type(name)
        if kind in _REF_IS_ARN:
            return self.arn(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, resource: str, attribute: str) -> str:
        if (resource, attribute) in self.attrs:
            return self.attrs[(resource, attribute)]
        if attribute == "Arn":
            return self.arn(resource)
        if attribute in {"QueueName", "TopicName", "Name"}:
            return self.physical_name(resource)
        return f"{self.stack_name}-{resource}.{attribute}"

    # -- intrinsics --------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def find_in_map(self, mapping: str, top: str, second: str) -> Any:
        try:
            return self.mappings[mapping][top][second]
        except (KeyError, TypeError):
            raise TemplateError(f"Fn::FindInMap: no {mapping}.{top}.{second}") from None

    def sub(self, text: str, variables: Mapping[str, Any] | None = None) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if variables and expression in variables:
                return as_str(self.resolve(variables[expression]))
            if "." in expression and not expression.startswith("AWS::"):
                resource, attribute = expression.split(".", 1)
                return self.get_att(resource, attribute)
            return as_str(self.ref(expression))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function replaced by its value (NO_VALUE items dropped)."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(str(parts[0]), str(self.resolve(parts[1])))
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(str(arg[0]), arg[1] if len(arg) > 1 else None)
                return self.sub(str(arg))
            if key == "Fn::Join":
                return str(arg[0]).join(as_str(item) for item in self.resolve(arg[1]))
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(str(arg[0]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::FindInMap":
                mapping, top, second = (str(self.resolve(part)) for part in arg[:3])
                return self.find_in_map(mapping, top, second)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(str(arg[0])) else arg[2])
            if key == "Fn::Equals":
                left, right = self.resolve(arg[0]), self.resolve(arg[1])
                return as_str(left) == as_str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in arg)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in arg)
            if key == "Condition":
                return self.condition(str(arg))
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local reader")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def parameter_defaults(body: Mapping[str, Any]) -> dict[str, str]:
    """Every parameter of the template and its default ("" when it has none)."""
    return {
        name: as_str(spec.get("Default", ""))
        for name, spec in (body.get("Parameters") or {}).items()
        if isinstance(spec, dict)
    }
