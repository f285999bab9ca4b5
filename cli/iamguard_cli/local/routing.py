"""What template.yaml deploys, read for the local runtime: functions, their events, their environment.

The local runtime takes the routing from the template itself, so running it
locally exercises the deployed EventBridge patterns and schedules rather than a
copy of them:

    template = Template.load(Path("template.yaml"))
    resolver = template.resolver(parameters={"Mode": "enforce"}, refs=..., attrs=...)
    for function in template.functions(resolver):
        function.routes      # EventBridgeRule / CloudWatchEvent patterns, exactly as written
        function.schedules   # Schedule / ScheduleV2 expressions
        function.queues      # SQS event source mappings (AWS::Lambda::EventSourceMapping, SAM SQS events)
        function.environment # Globals + the function's variables, intrinsics resolved

The template is read and its intrinsic functions resolved by `iamguard_cli.local.cfn`
(the one reader the tests use too); schedule expressions are evaluated with croniter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import CroniterBadDateError, croniter

from iamguard_cli.local.cfn import Resolver, TemplateError, as_str, load_yaml, parameter_defaults

# -- schedules ------------------------------------------------------------------------

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


def _croniter_fields(fields: list[str]) -> str:
    """EventBridge's `minutes hours day-of-month month day-of-week year` as croniter's seven fields.

    croniter takes `minute hour day month weekday second year`, numbers Sunday 0
    (EventBridge: 1) and writes "last Friday" as L5 (EventBridge: 6L); `?`, L, W,
    # and the names mean the same in both.
    """
    minutes, hours, days, months, weekdays, years = fields

    def weekday(match: re.Match[str]) -> str:
        return str(int(match.group(0)) - 1)

    # Day numbers only: not the n of `#n` nor a step after `/`.
    weekdays = re.sub(r"(?<![#/\d])\d+", weekday, weekdays)
    weekdays = re.sub(r"^(\d)L$", r"L\1", weekdays)
    return " ".join([minutes, hours, days, months, weekdays, "0", years])


@dataclass(frozen=True)
class Schedule:
    """An EventBridge schedule expression: rate(...) or cron(minutes hours dom month dow year), in UTC."""

    expression: str
    interval: timedelta | None = None
    cron: str | None = None  # the expression in croniter's notation

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
            notation = _croniter_fields(fields)
            if not croniter.is_valid(notation):
                raise TemplateError(f"{expression}: not a cron expression the local runtime can evaluate")
            return cls(text, cron=notation)
        raise TemplateError(f"{expression!r} is not a rate(...) or cron(...) expression")

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` that the schedule fires (rate: counted from `moment`)."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        try:
            when: datetime = croniter(self.cron, moment.astimezone(UTC)).get_next(datetime)
        except CroniterBadDateError as exc:
            raise TemplateError(f"{self.expression} never fires") from exc
        return when


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
class QueueRoute:
    """An SQS event source mapping of a function: Lambda polls the queue and hands it batches of messages."""

    name: str
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    maximum_concurrency: int | None = None  # ScalingConfig (the local runtime runs one handler at a time anyway)
    enabled: bool = True


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
    queues: tuple[QueueRoute, ...] = ()
    max_retries: int = 2
    on_failure: str | None = None  # ARN of the on-failure destination (an SQS queue)

    @property
    def name(self) -> str:
        """How people call the function: its logical id in snake case, without "Function" (on_iam_event)."""
        return function_name(self.logical_id)

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]


def function_name(logical_id: str) -> str:
    """OnIamEventFunction -> on_iam_event (two functions may share one code directory)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id.removesuffix("Function")).lower()


def _function_reference(value: Any) -> str | None:
    """The logical id an event source mapping's FunctionName names (Ref, or Fn::GetAtt ... Arn)."""
    if isinstance(value, Mapping):
        if "Ref" in value:
            return str(value["Ref"])
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, str):
            attribute = attribute.split(".", 1)
        if isinstance(attribute, list) and attribute:
            return str(attribute[0])
    return None


def _queue_route(name: str, properties: Mapping[str, Any], arn_key: str) -> QueueRoute | None:
    """An SQS mapping's settings (resolved properties); None when its source is not an SQS queue."""
    arn = properties.get(arn_key)
    if not isinstance(arn, str):
        return None
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":  # arn:partition:sqs:region:account:name
        return None
    scaling = properties.get("ScalingConfig") or {}
    concurrency = scaling.get("MaximumConcurrency")
    return QueueRoute(
        name=name,
        queue_arn=arn,
        batch_size=int(properties.get("BatchSize", 10)),
        report_batch_item_failures="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []),
        maximum_concurrency=int(concurrency) if concurrency is not None else None,
        enabled=str(properties.get("Enabled", True)).lower() != "false",
    )


def _enabled(properties: Mapping[str, Any]) -> bool:
    state = properties.get("State")
    if state is not None:
        return str(state).upper() == "ENABLED"
    return str(properties.get("Enabled", True)).lower() != "false"


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
        return parameter_defaults(self.body)

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
        return Resolver.for_template(
            self.body,
            parameters,
            refs=refs,
            attrs=attrs,
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
            spec = self._function(logical_id, {**globals_, **properties}, globals_, properties, resolver)
            mapped = tuple(self._mappings(logical_id, resolver))
            specs.append(replace(spec, queues=spec.queues + mapped) if mapped else spec)
        return specs

    def _mappings(self, function_id: str, resolver: Resolver) -> list[QueueRoute]:
        """The template's AWS::Lambda::EventSourceMapping resources on an SQS queue that invoke `function_id`."""
        found = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Lambda::EventSourceMapping" or not self.included(logical_id, resolver):
                continue
            properties = resource.get("Properties") or {}
            if _function_reference(properties.get("FunctionName")) != function_id:
                continue
            route = _queue_route(logical_id, resolver.resolve(properties), "EventSourceArn")
            if route is not None:
                found.append(route)
        return found

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
        environment = {name: as_str(value) for name, value in resolver.resolve(variables).items()}
        routes: list[EventRoute] = []
        schedules: list[ScheduleRoute] = []
        queues: list[QueueRoute] = []
        for event_name, event in (properties.get("Events") or {}).items():
            kind = event.get("Type")
            event_properties = resolver.resolve(event.get("Properties") or {})
            if kind in {"EventBridgeRule", "CloudWatchEvent"}:
                bus = str(event_properties.get("EventBusName", "default"))
                routes.append(
                    EventRoute(event_name, event_properties["Pattern"], _enabled(event_properties), bus.split("/")[-1])
                )
            elif kind == "SQS":
                route = _queue_route(event_name, event_properties, "Queue")
                if route is not None:
                    queues.append(route)
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
            queues=tuple(queues),
            max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
            on_failure=str(on_failure) if on_failure else None,
        )
