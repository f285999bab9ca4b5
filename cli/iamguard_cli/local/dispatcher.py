"""Runs the real Lambda handlers for the events and schedules of template.yaml.

Each function's EventBridge patterns become rules on the local bus whose target
is the function's queue (moto's EventBridge can target SQS, not Lambda). A
poller per queue hands each event to the handler, imported from
`functions/<name>/app.py` the way Lambda imports it: the `iamguard` package
(the layer) importable, the function's directory first on the import path, the
function's environment from the template and its role's credentials in the
environment. A handler that raises leaves the event in its queue; it is tried
again (Lambda's asynchronous retries) and then moved to the function's
on-failure destination. Schedules fire on their rate or cron expression, and
`run_schedules()` fires them now.

An SQS event source mapping (the organization's audit queue) is polled as Lambda
polls it: batches of up to BatchSize messages, in the event shape Lambda
delivers; a batch is deleted when the handler succeeds, except the messages it
names in `batchItemFailures` (with ReportBatchItemFailures). A failed message
stays in its queue, is received again and, after the queue's maxReceiveCount,
moves to its dead-letter queue; locally it is visible again after
RETRY_VISIBILITY_SECONDS rather than the queue's visibility timeout.

Handlers run one at a time: a Lambda process serves one request at a time, and
the environment of the process is the function's while it runs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from iamguard.aws import AwsContext

from iamguard_cli.local.lambda_context import LambdaContext
from iamguard_cli.local.routing import FunctionSpec, QueueRoute, ScheduleRoute

log = logging.getLogger(__name__)

RETRY_VISIBILITY_SECONDS = 1  # how soon a failed event is tried again
_INVOKE_LOCK = threading.RLock()
_module_counter = 0


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """The process environment with `variables` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


LoggerState = dict[str, Any]


def _all_loggers() -> dict[str, logging.Logger]:
    found = {
        name: logger for name, logger in logging.Logger.manager.loggerDict.items() if isinstance(logger, logging.Logger)
    }
    found[""] = logging.getLogger()
    return found


def _state_of(logger: logging.Logger) -> LoggerState:
    """What the standard library lets anyone set on a logger (nothing of Powertools' own)."""
    return {"level": logger.level, "propagate": logger.propagate, "disabled": logger.disabled}


_UNCONFIGURED: LoggerState = {"level": logging.NOTSET, "propagate": True, "disabled": False}


def _apply(logger: logging.Logger, state: LoggerState) -> None:
    logger.setLevel(state["level"])
    logger.propagate = state["propagate"]
    logger.disabled = state["disabled"]


class _WhileAFunctionRuns(logging.Filter):
    """On the handlers functions add: they write only while a function runs."""

    running = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.running


_GATE = _WhileAFunctionRuns()
# The functions' logger levels, for the whole process. Powertools configures the logger named after
# the service once per process (a later Logger of the same service reuses it, as documented); in
# Lambda each function has a process of its own, here they share this one, so what the first cold
# start set up is kept here and applied whenever any function runs.
_FUNCTIONS_LOGGING: dict[str, LoggerState] = {}


@contextmanager
def functions_logging() -> Iterator[None]:
    """The process's logging as the functions configured it, for the duration; set aside afterwards.

    Between runs the loggers' levels are the process's own again and the handlers the
    functions added stay attached (Powertools expects the handler it configured) but
    silent, so neither the runtime nor a test in the same process inherits their setup.
    """
    outside = {name: _state_of(logger) for name, logger in _all_loggers().items()}
    handlers_before = {id(h) for logger in _all_loggers().values() for h in logger.handlers}
    for name, state in _FUNCTIONS_LOGGING.items():
        _apply(logging.getLogger(name or None), state)
    _GATE.running = True
    try:
        yield
    finally:
        _GATE.running = False
        for name, logger in _all_loggers().items():
            inside = _state_of(logger)
            if inside != outside.get(name):
                _FUNCTIONS_LOGGING[name] = inside
            _apply(logger, outside.get(name, _UNCONFIGURED))
            for handler in logger.handlers:
                if id(handler) not in handlers_before and _GATE not in handler.filters:
                    handler.addFilter(_GATE)


@dataclass(frozen=True)
class Invocation:
    """What one handler run did (for the terminal and the tests)."""

    function: str
    trigger: str  # the event name, "Scheduled Event", ...
    duration_ms: float
    result: Any = None
    error: str | None = None
    event: Any = field(default=None, repr=False, compare=False)  # what the handler was given


class LocalFunction:
    """One function of the template, loaded like Lambda loads it, invoked like Lambda invokes it."""

    def __init__(self, spec: FunctionSpec, environment_variables: Mapping[str, str], function_name: str, arn: str):
        self.spec = spec
        self.environment = dict(environment_variables)
        self.function_name = function_name
        self.arn = arn
        self._handler: Callable[[Any, Any], Any] | None = None
        self._module: ModuleType | None = None
        self._default_session: Any = None  # boto3's default session as this function's process would have it

    @contextmanager
    def _own_default_session(self) -> Iterator[None]:
        """`boto3.client(...)` in the handler uses this function's own default session (its role), as in its
        own Lambda process, never one another function or the runtime's process made with other credentials."""
        import boto3

        outside = boto3.DEFAULT_SESSION
        boto3.DEFAULT_SESSION = self._default_session
        try:
            yield
        finally:
            self._default_session = boto3.DEFAULT_SESSION
            boto3.DEFAULT_SESSION = outside

    def load(self) -> None:
        """Import the handler module (the cold start), under the function's environment."""
        global _module_counter
        path = self.spec.handler_file
        if not path.is_file():
            raise FileNotFoundError(f"{self.spec.logical_id}: handler file {path} not found")
        with _INVOKE_LOCK, environment(self.environment), functions_logging(), self._own_default_session():
            _module_counter += 1
            name = f"_iamguard_local_{self.spec.name}_{_module_counter}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            sys.path.insert(0, str(self.spec.code_dir))  # LAMBDA_TASK_ROOT comes first, as in Lambda
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            finally:
                sys.path.remove(str(self.spec.code_dir))
            handler = getattr(module, self.spec.handler_attribute)
        self._module, self._handler = module, handler

    def invoke(self, event: Any) -> Any:
        if self._handler is None:
            self.load()
        assert self._handler is not None
        context = LambdaContext(self.function_name, self.arn, self.spec.memory, self.spec.timeout)
        with _INVOKE_LOCK, environment(self.environment), functions_logging(), self._own_default_session():
            return self._handler(event, context)


def scheduled_event(rule_arn: str, account_id: str, region: str) -> dict[str, Any]:
    """The event EventBridge Scheduler (rules with a schedule) sends."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """What Lambda's SQS event source mapping hands the function for `messages` (ReceiveMessage's)."""
    region = queue_arn.split(":")[3]
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributeValue as Lambda writes it into the event (camel case, binary as base64)."""
    import base64

    attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def failed_messages(invocation: Invocation, message_ids: list[str], route: QueueRoute) -> set[str]:
    """The messages of a batch that go back to the queue, as Lambda reads the function's answer.

    An error fails the batch. With ReportBatchItemFailures, `batchItemFailures` names the failed
    ones; an answer Lambda cannot read (not an object, an item without a known `itemIdentifier`)
    fails the whole batch, and no answer or an empty list is a complete success.
    """
    every = set(message_ids)
    if invocation.error is not None:
        return every
    if not route.report_batch_item_failures or invocation.result is None:
        return set()
    if not isinstance(invocation.result, dict):
        return every
    failures = invocation.result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return every
    named = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in every:
            return every
        named.add(identifier)
    return named


def _trigger_of(event: Any) -> str:
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict) and "eventSourceARN" in records[0]:
            queue = str(records[0]["eventSourceARN"]).rsplit(":", 1)[-1]
            return f"SQS {queue} ({len(records)} message{'s' if len(records) != 1 else ''})"
        detail = event.get("detail")
        if isinstance(detail, dict) and detail.get("eventName"):
            return str(detail["eventName"])
        return str(event.get("detail-type", "event"))
    return "event"


@dataclass
class _Queue:
    function: LocalFunction
    url: str
    arn: str


@dataclass
class _Mapping:
    """An SQS event source mapping: the template's queue, polled for `function`."""

    function: LocalFunction
    route: QueueRoute
    url: str


class FunctionRunner:
    """Rules, queues, pollers and schedules for a set of functions."""

    def __init__(
        self,
        functions: list[LocalFunction],
        aws: AwsContext,
        *,
        account_id: str,
        stack_name: str = "iamguard",
        on_invocation: Callable[[Invocation], None] | None = None,
        run_schedules_on_time: bool = True,
    ) -> None:
        self.functions = functions
        self.aws = aws
        self.account_id = account_id
        self.stack_name = stack_name
        self.on_invocation = on_invocation
        self.run_schedules_on_time = run_schedules_on_time
        self.invocations: list[Invocation] = []
        self.skipped_schedules: list[ScheduleRoute] = []
        self._queues: list[_Queue] = []
        self._mappings: list[_Mapping] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Condition()
        self._sqs = aws.client("sqs")

    # -- set-up ---------------------------------------------------------------------
    def install(self) -> None:
        """Create a queue per function with events, and one rule per pattern targeting it."""
        events = self.aws.client("events")
        for function in self.functions:
            spec = function.spec
            if spec.routes:
                self._queues.append(self._queue_for(function))
            for route in spec.routes:
                rule = f"{self.stack_name}-{spec.logical_id}-{route.name}"[:64]
                events.put_rule(
                    Name=rule,
                    EventPattern=json.dumps(route.pattern),
                    State="ENABLED" if route.enabled else "DISABLED",
                    EventBusName=route.event_bus,
                    Description=f"{spec.logical_id} {route.name} (template.yaml)",
                )
                if route.enabled:
                    events.put_targets(
                        Rule=rule,
                        EventBusName=route.event_bus,
                        Targets=[{"Id": spec.logical_id[:64], "Arn": self._queues[-1].arn}],
                    )
            for schedule in spec.schedules:
                # Listed on the bus like the deployed rule; the dispatcher's clock fires it.
                events.put_rule(
                    Name=f"{self.stack_name}-{spec.logical_id}-{schedule.name}"[:64],
                    ScheduleExpression=schedule.expression,
                    State="ENABLED" if schedule.enabled else "DISABLED",
                )
                if schedule.schedule is None:
                    self.skipped_schedules.append(schedule)
            for mapped in spec.queues:
                if mapped.enabled:
                    self._mappings.append(_Mapping(function, mapped, self._queue_url(mapped.queue_arn)))

    def _queue_url(self, arn: str) -> str:
        _, _, _, _, account, name = arn.split(":", 5)
        url: str = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return url

    def _queue_for(self, function: LocalFunction) -> _Queue:
        spec = function.spec
        attributes = {"VisibilityTimeout": str(RETRY_VISIBILITY_SECONDS)}
        if spec.on_failure and ":sqs:" in spec.on_failure:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": spec.on_failure, "maxReceiveCount": spec.max_retries + 1}
            )
        url: str = self._sqs.create_queue(QueueName=f"{self.stack_name}-local-{spec.name}"[:80], Attributes=attributes)[
            "QueueUrl"
        ]
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _Queue(function, url, arn)

    def start(self) -> FunctionRunner:
        for queue in self._queues:
            thread = threading.Thread(target=self._poll, args=(queue,), name=f"poll-{queue.function.spec.name}")
            thread.daemon = True
            self._threads.append(thread)
        for mapping in self._mappings:
            name = f"poll-{mapping.function.spec.name}-{mapping.route.name}"
            self._threads.append(threading.Thread(target=self._poll_mapping, args=(mapping,), name=name, daemon=True))
        if self.run_schedules_on_time:
            self._threads.append(threading.Thread(target=self._clock, name="schedules", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Take no more events; give handlers that are running up to `grace` seconds to finish.

        Idle pollers are not waited for: they are daemon threads in a receive of at most a
        second, and return at its end (or when the endpoint goes away).
        """
        self._stop.set()
        deadline = time.monotonic() + grace
        with self._busy_lock:
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._busy_lock.wait(left)
        self._threads.clear()

    # -- running handlers ---------------------------------------------------------
    def invoke(self, function: LocalFunction, event: Any) -> Invocation:
        started = time.perf_counter()
        with self._busy_lock:
            self._busy += 1
        try:
            result = function.invoke(event)
            invocation = Invocation(function.spec.name, _trigger_of(event), _ms(started), result=result, event=event)
        except Exception as exc:  # a failing handler is reported and retried, never fatal to the runtime
            if self._stop.is_set():  # cut off by the runtime stopping (its endpoint went away): nothing to report
                log.info("%s interrupted by the runtime stopping: %s", function.spec.name, exc)
                return Invocation(function.spec.name, _trigger_of(event), _ms(started), error="interrupted")
            log.exception("%s failed", function.spec.name)
            invocation = Invocation(
                function.spec.name, _trigger_of(event), _ms(started), error=f"{type(exc).__name__}: {exc}", event=event
            )
        finally:
            with self._busy_lock:
                self._busy -= 1
                self._busy_lock.notify_all()
        self.invocations.append(invocation)
        if self.on_invocation is not None:
            self.on_invocation(invocation)
        return invocation

    def _poll(self, queue: _Queue) -> None:
        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except (BotoCoreError, ClientError):  # the endpoint went away (shutdown) or hiccuped: try again
                if self._stop.wait(0.5):
                    return
                continue
            for message in response.get("Messages", []):
                if self._stop.is_set():
                    return  # the message stays queued, as an undelivered event would
                invocation = self.invoke(queue.function, json.loads(message["Body"]))
                if invocation.error is None:
                    self._sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])

    def _poll_mapping(self, mapping: _Mapping) -> None:
        route = mapping.route
        while not self._stop.is_set():
            try:
                response = self._sqs.receive_message(
                    QueueUrl=mapping.url,
                    MaxNumberOfMessages=max(1, min(route.batch_size, 10)),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except (BotoCoreError, ClientError):
                if self._stop.wait(0.5):
                    return
                continue
            messages = response.get("Messages", [])
            if not messages or self._stop.is_set():
                continue  # a batch received while stopping stays in flight, as an undelivered one would
            invocation = self.invoke(mapping.function, sqs_event(messages, route.queue_arn))
            if invocation.error == "interrupted":
                return
            failed = failed_messages(invocation, [m["MessageId"] for m in messages], route)
            self._settle(mapping, messages, failed)

    def _settle(self, mapping: _Mapping, messages: list[dict[str, Any]], failed: set[str]) -> None:
        """Delete what was handled; what failed is visible again soon, to be retried (or dead-lettered)."""
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        try:
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=mapping.url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)],
                )
            if retry:
                log.info("%s: %d message(s) to retry", mapping.function.spec.name, len(retry))
                self._sqs.change_message_visibility_batch(
                    QueueUrl=mapping.url,
                    Entries=[
                        {
                            "Id": str(n),
                            "ReceiptHandle": m["ReceiptHandle"],
                            "VisibilityTimeout": RETRY_VISIBILITY_SECONDS,
                        }
                        for n, m in enumerate(retry)
                    ],
                )
        except (BotoCoreError, ClientError):  # the endpoint went away: the messages stay as SQS has them
            log.info("%s: the batch could not be settled", mapping.function.spec.name)

    def schedules(self) -> list[tuple[LocalFunction, ScheduleRoute]]:
        return [(f, s) for f in self.functions for s in f.spec.schedules if s.enabled]

    def run_schedules(self, function_name: str | None = None) -> list[Invocation]:
        """Fire the scheduled invocations now (all, or those of one function), waiting for each."""
        fired = []
        for function, schedule in self.schedules():
            if function_name is not None and function_name not in {function.spec.name, function.spec.logical_id}:
                continue
            fired.append(self.invoke(function, self._schedule_event(function, schedule)))
        return fired

    def _schedule_event(self, function: LocalFunction, schedule: ScheduleRoute) -> Any:
        if schedule.input is not None:
            return json.loads(schedule.input)
        rule = f"{self.stack_name}-{function.spec.logical_id}-{schedule.name}"[:64]
        return scheduled_event(
            f"arn:aws:events:{self.aws.region}:{self.account_id}:rule/{rule}", self.account_id, self.aws.region
        )

    def _clock(self) -> None:
        now = datetime.now(UTC)
        due = {
            (function.spec.logical_id, schedule.name): schedule.schedule.next_after(now)
            for function, schedule in self.schedules()
            if schedule.schedule is not None
        }
        while not self._stop.wait(1.0):
            now = datetime.now(UTC)
            for function, schedule in self.schedules():
                key = (function.spec.logical_id, schedule.name)
                if schedule.schedule is None or key not in due or due[key] > now:
                    continue
                due[key] = schedule.schedule.next_after(now)
                self.invoke(function, self._schedule_event(function, schedule))

    # -- waiting ------------------------------------------------------------------
    def pending(self) -> int:
        """Events queued or being retried, plus handlers running now."""
        waiting = 0
        for url in [queue.url for queue in self._queues] + [mapping.url for mapping in self._mappings]:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            waiting += int(attributes.get("ApproximateNumberOfMessages", 0))
            waiting += int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        with self._busy_lock:
            return waiting + self._busy

    def wait_idle(self, timeout: float = 30.0, settle: float = 0.2) -> bool:
        """Block until every queued event was handled (or given up on); False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.pending() == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            time.sleep(0.05)
        return False


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
