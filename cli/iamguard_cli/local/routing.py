"""What template.yaml deploys, read for the local runtime: functions, their events, their environment.

The local runtime takes the routing from the template itself, so running it
locally exercises the deployed EventBridge patterns and schedules rather than a
copy of them:

    template = Template.load(Path("template.yaml"))
    resolver = template.resolver(parameters={"Mode": "enforce"}, refs=..., attrs=...)
    for function in template.functions(resolver):
        function.routes      # EventBridgeRule / CloudWatchEvent patterns, exactly as written
        function.schedules   # Schedule / ScheduleV2 expressions
        function.environment # Globals + the function's variables, intrinsics resolved

Intrinsic functions are resolved the way CloudFormation would for one stack in
one account: parameters (overrides, else defaults), pseudo parameters, Ref and
Fn::GetAtt of resources (what the runtime created for them, else a stable
placeholder), Fn::Sub, Fn::Join, Fn::Split, Fn::Select, Fn::If and conditions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


class TemplateError(ValueError):
    """The template cannot be read or resolved for the local runtime."""


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
    becomes a plain Ref. Tests and the local runtime both read the template this way.
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


@dataclass
class Resolver:
    """Resolves intrinsic functions for one local stack."""

    parameters: Mapping[str, str]
    conditions: Mapping[str, Any]
    refs: Mapping[str, str] = field(default_factory=dict)
    attrs: Mapping[tuple[str, str], str] = field(default_factory=dict)
    stack_name: str = "iamguard"
    account_id: str = "123456789012"
    region: str = "us-east-1"
    _condition_values: dict[str, bool] = field(default_factory=dict)

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

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        return self.refs.get(name, f"{self.stack_name}-{name}")

    def get_att(self, resource: str, attribute: str) -> str:
        return self.attrs.get((resource, attribute), f"{self.stack_name}-{resource}.{attribute}")

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def sub(self, text: str, variables: Mapping[str, Any] | None = None) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if variables and expression in variables:
                return str(self.resolve(variables[expression]))
            if "." in expression and not expression.startswith("AWS::"):
                resource, attribute = expression.split(".", 1)
                return self.get_att(resource, attribute)
            return str(self.ref(expression))

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
                return str(arg[0]).join(str(item) for item in self.resolve(arg[1]))
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(str(arg[0]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(str(arg[0])) else arg[2])
            if key == "Fn::Equals":
                left, right = self.resolve(arg[0]), self.resolve(arg[1])
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in arg)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in arg)
            if key == "Condition":
                return self.condition(str(arg))
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local runtime")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


# -- schedules ------------------------------------------------------------------------

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_MONTHS = {
    name: i
    for i, name in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)
}
_DAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}


def _cron_field(text: str, low: int, high: int, names: Mapping[str, int] | None = None) -> frozenset[int] | None:
    """The values a cron field allows (None = any). Raises TemplateError for what is not supported."""
    if text in {"*", "?"}:
        return None
    values: set[int] = set()
    for part in text.upper().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1

        def number(token: str) -> int:
            if names and token in names:
                return names[token]
            if not token.isdigit():
                raise TemplateError(f"cron field {text!r} is not supported locally")
            return int(token)

        if base in {"*", "?"}:
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    if not values or min(values) < low or max(values) > high:
        raise TemplateError(f"cron field {text!r} is out of range")
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """An EventBridge schedule expression: rate(...) or cron(minutes hours dom month dow year), in UTC."""

    expression: str
    interval: timedelta | None = None
    cron: tuple[frozenset[int] | None, ...] | None = None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        text = expression.strip()
        rate = _RATE.match(text)
        if rate:
            amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
            if amount < 1:
                raise TemplateError(f"{expression}: the rate must be at least 1")
            return cls(text, interval=timedelta(**{f"{unit}s": amount}))
        cron = _CRON.match(text)
        if cron:
            fields = cron.group(1).split()
            if len(fields) != 6:
                raise TemplateError(f"{expression}: a cron expression has 6 fields")
            minutes, hours, days, months, weekdays, years = fields
            return cls(
                text,
                cron=(
                    _cron_field(minutes, 0, 59),
                    _cron_field(hours, 0, 23),
                    _cron_field(days, 1, 31),
                    _cron_field(months, 1, 12, _MONTHS),
                    _cron_field(weekdays, 1, 7, _DAYS),
                    _cron_field(years, 1970, 2199),
                ),
            )
        raise TemplateError(f"{expression!r} is not a rate(...) or cron(...) expression")

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` that the schedule fires (rate: counted from `moment`)."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        minutes, hours, days, months, weekdays, years = self.cron
        when = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = when + timedelta(days=366 * 5)
        while when < limit:
            if (years is not None and when.year not in years) or (months is not None and when.month not in months):
                when = (when.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif (days is not None and when.day not in days) or (
                weekdays is not None and (when.isoweekday() % 7) + 1 not in weekdays
            ):
                when = when.replace(hour=0, minute=0) + timedelta(days=1)
            elif hours is not None and when.hour not in hours:
                when = when.replace(minute=0) + timedelta(hours=1)
            elif minutes is not None and when.minute not in minutes:
                when += timedelta(minutes=1)
            else:
                return when
        raise TemplateError(f"{self.expression} never fires")


# -- functions ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRoute:
    """An EventBridge rule of a function: its pattern, exactly as in the template."""

    name: str
    pattern: dict[str, Any]
    enabled: bool = True
    event_bus: str = "default"


@dataclass(frozen=True)
class ScheduleRoute:
    """A scheduled invocation of a function."""

    name: str
    schedule: Schedule | None  # None: an expression the local runtime cannot evaluate (runs on demand only)
    expression: str
    enabled: bool = True
    input: str | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function, resolved."""

    logical_id: str
    code_dir: Path
    handler: str  # module.attribute, e.g. app.lambda_handler
    environment: dict[str, str]
    timeout: int
    memory: int
    routes: tuple[EventRoute, ...] = ()
    schedules: tuple[ScheduleRoute, ...] = ()
    max_retries: int = 2
    on_failure: str | None = None  # ARN of the on-failure destination (an SQS queue)

    @property
    def name(self) -> str:
        """The function directory's name (functions/<name>/), which is how people call it."""
        return self.code_dir.name

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]


def _enabled(properties: Mapping[str, Any]) -> bool:
    state = properties.get("State")
    if state is not None:
        return str(state).upper() == "ENABLED"
    return str(properties.get("Enabled", True)).lower() != "false"


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Template:
    """A SAM template and the directory its CodeUri paths are relative to."""

    path: Path
    body: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Template:
        return cls(path, load_yaml(path))

    @property
    def root(self) -> Path:
        return self.path.resolve().parent

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.body.get("Resources", {})
        return resources

    def parameter_defaults(self) -> dict[str, str]:
        return {
            name: _as_str(spec.get("Default", ""))
            for name, spec in (self.body.get("Parameters") or {}).items()
            if isinstance(spec, dict)
        }

    def resolver(
        self,
        parameters: Mapping[str, str] | None = None,
        *,
        refs: Mapping[str, str] | None = None,
        attrs: Mapping[tuple[str, str], str] | None = None,
        stack_name: str = "iamguard",
        account_id: str = "123456789012",
        region: str = "us-east-1",
    ) -> Resolver:
        known = self.parameter_defaults()
        unknown = set(parameters or {}) - known.keys()
        if unknown:
            raise TemplateError(f"the template has no parameter {', '.join(sorted(unknown))}")
        return Resolver(
            parameters={**known, **(parameters or {})},
            conditions=self.body.get("Conditions") or {},
            refs=dict(refs or {}),
            attrs=dict(attrs or {}),
            stack_name=stack_name,
            account_id=account_id,
            region=region,
        )

    def included(self, logical_id: str, resolver: Resolver) -> bool:
        """False when the resource's Condition is false (CloudFormation would not create it)."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or resolver.condition(str(condition))

    def functions(self, resolver: Resolver) -> list[FunctionSpec]:
        globals_ = (self.body.get("Globals") or {}).get("Function") or {}
        specs = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function" or not self.included(logical_id, resolver):
                continue
            properties = resource.get("Properties") or {}
            specs.append(self._function(logical_id, {**globals_, **properties}, globals_, properties, resolver))
        return specs

    def _function(
        self,
        logical_id: str,
        merged: Mapping[str, Any],
        globals_: Mapping[str, Any],
        properties: Mapping[str, Any],
        resolver: Resolver,
    ) -> FunctionSpec:
        code_uri = resolver.resolve(properties.get("CodeUri") or globals_.get("CodeUri"))
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: the local runtime needs a local CodeUri directory")
        variables = {
            **((globals_.get("Environment") or {}).get("Variables") or {}),
            **((properties.get("Environment") or {}).get("Variables") or {}),
        }
        environment = {name: _as_str(value) for name, value in resolver.resolve(variables).items()}
        routes: list[EventRoute] = []
        schedules: list[ScheduleRoute] = []
        for event_name, event in (properties.get("Events") or {}).items():
            kind = event.get("Type")
            event_properties = resolver.resolve(event.get("Properties") or {})
            if kind in {"EventBridgeRule", "CloudWatchEvent"}:
                bus = str(event_properties.get("EventBusName", "default"))
                routes.append(
                    EventRoute(event_name, event_properties["Pattern"], _enabled(event_properties), bus.split("/")[-1])
                )
            elif kind in {"Schedule", "ScheduleV2"}:
                expression = str(event_properties.get("Schedule") or event_properties.get("ScheduleExpression"))
                try:
                    schedule: Schedule | None = Schedule.parse(expression)
                except TemplateError:
                    schedule = None
                schedules.append(
                    ScheduleRoute(
                        event_name, schedule, expression, _enabled(event_properties), event_properties.get("Input")
                    )
                )
        invoke_config = resolver.resolve(merged.get("EventInvokeConfig") or {})
        on_failure = ((invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        return FunctionSpec(
            logical_id=logical_id,
            code_dir=(self.root / code_uri).resolve(),
            handler=str(resolver.resolve(merged.get("Handler", "app.lambda_handler"))),
            environment=environment,
            timeout=int(resolver.resolve(merged.get("Timeout", 3))),
            memory=int(resolver.resolve(merged.get("MemorySize", 128))),
            routes=tuple(routes),
            schedules=tuple(schedules),
            max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
            on_failure=str(on_failure) if on_failure else None,
        )
