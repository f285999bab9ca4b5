"""The local runtime runs a template's handlers as Lambda would: routing, environment, role, retries."""

from __future__ import annotations

import json
import logging
import os
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from iamguard_cli.local.dispatcher import FunctionRunner, LocalFunction
from iamguard_cli.local.routing import Schedule, ScheduleRoute
from iamguard_cli.local.runtime import LocalOptions, LocalRuntime

from tests.integration.local_support import client, queue_events

pytestmark = pytest.mark.integration

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        GREETING: !Ref Greeting
        TABLE: !Ref Table
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Failures:
    Type: AWS::SQS::Queue
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo
      Handler: app.lambda_handler
      Environment:
        Variables:
          FAILURES: !Ref Failures
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        DestinationConfig:
          OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}
      Events:
        Tests:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [test.local]
              detail: {kind: [echo, boom]}
        Daily:
          Type: Schedule
          Properties:
            Schedule: rate(1 day)
"""

HANDLER = """
import logging
import os

import boto3
import helper  # a module next to app.py: the function's directory is on the import path
from iamguard.domain.findings import Severity  # the layer's package

COLD_START_GREETING = os.environ["GREETING"]
LOG = logging.getLogger("echo.handler")
LOG.setLevel(logging.ERROR)
LOG.addHandler(logging.NullHandler())


def lambda_handler(event, context):
    if event.get("detail", {}).get("kind") == "boom":
        raise RuntimeError("boom")
    caller = boto3.client("sts").get_caller_identity()["Arn"]
    boto3.client("dynamodb").put_item(
        TableName=os.environ["TABLE"], Item={"pk": {"S": event["id"]}, "caller": {"S": caller}}
    )
    return {
        "greeting": COLD_START_GREETING,
        "caller": caller,
        "function": context.function_name,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "helper": helper.VALUE,
        "severity": Severity.HIGH.value,
        "detail_type": event["detail-type"],
        "account": event["account"],
        "log_level": LOG.level,
    }
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    root = tmp_path_factory.mktemp("stack")
    (root / "template.yaml").write_text(TEMPLATE)
    code = root / "functions" / "echo"
    code.mkdir(parents=True)
    (code / "app.py").write_text(textwrap.dedent(HANDLER))
    (code / "helper.py").write_text("VALUE = 'from helper.py'\n")
    with LocalRuntime(LocalOptions(template=root / "template.yaml", run_schedules_on_time=False)) as running:
        yield running


def _put(runtime: LocalRuntime, kind: str) -> None:
    events = client("events", runtime.endpoint_url)
    entry = {"Source": "test.local", "DetailType": "Test", "Detail": json.dumps({"kind": kind})}
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def test_an_event_matching_the_pattern_runs_the_handler_as_lambda_would(runtime: LocalRuntime) -> None:
    assert runtime.dispatcher is not None
    before = len(runtime.dispatcher.invocations)

    _put(runtime, "echo")
    _put(runtime, "something-else")  # not in the pattern
    assert runtime.wait_idle()

    (invocation,) = runtime.dispatcher.invocations[before:]
    assert invocation.error is None
    assert invocation.function == "echo"
    assert invocation.result == {
        "greeting": "hello",
        "caller": "arn:aws:sts::123456789012:assumed-role/iamguard-EchoRole/iamguard-Echo",
        "function": "iamguard-Echo",
        "arn": "arn:aws:lambda:us-east-1:123456789012:function:iamguard-Echo",
        "remaining_ms": invocation.result["remaining_ms"],
        "helper": "from helper.py",
        "severity": "high",
        "detail_type": "Test",
        "account": "123456789012",
        "log_level": logging.ERROR,
    }
    assert 0 < invocation.result["remaining_ms"] <= 10_000
    # the template's table was created with its key schema, and the handler wrote to it with its role
    items = client("dynamodb", runtime.endpoint_url).scan(TableName="iamguard-Table")["Items"]
    assert [item["caller"]["S"] for item in items] == [invocation.result["caller"]]
    # the function's environment lives only while it runs
    assert "GREETING" not in os.environ
    assert os.environ.get("AWS_ACCESS_KEY_ID") == "testing"


def test_a_failing_handler_is_retried_then_its_event_goes_to_the_on_failure_queue(runtime: LocalRuntime) -> None:
    assert runtime.dispatcher is not None
    before = len(runtime.dispatcher.invocations)

    _put(runtime, "boom")
    assert runtime.wait_idle(timeout=30)

    attempts = runtime.dispatcher.invocations[before:]
    assert [a.error for a in attempts] == ["RuntimeError: boom", "RuntimeError: boom"]  # 1 try + 1 retry
    failures_url = runtime.provisioned.queues["Failures"]
    (failed,) = queue_events(client("sqs", runtime.endpoint_url), failures_url, expect=1)
    assert failed["detail"] == {"kind": "boom"}


def test_schedules_run_on_demand(runtime: LocalRuntime) -> None:
    (invocation,) = runtime.run_schedules("echo")
    assert invocation.result["detail_type"] == "Scheduled Event"
    rules = client("events", runtime.endpoint_url).list_rules()["Rules"]
    assert {"iamguard-Echo-Tests", "iamguard-Echo-Daily"} <= {rule["Name"] for rule in rules}
    daily = next(rule for rule in rules if rule["Name"] == "iamguard-Echo-Daily")
    assert daily["ScheduleExpression"] == "rate(1 day)"


def test_schedules_fire_on_their_own_clock(runtime: LocalRuntime) -> None:
    # Given the echo function with a schedule much faster than EventBridge allows, for the test's sake
    echo = runtime.function("echo")
    every_second = ScheduleRoute("Fast", Schedule("rate(1 second)", interval=timedelta(seconds=1)), "rate(1 second)")
    spec = replace(echo.spec, routes=(), schedules=(every_second,))
    dispatcher = FunctionRunner(
        [LocalFunction(spec, echo.environment, echo.function_name, echo.arn)],
        runtime.root_aws(),
        account_id="123456789012",
        stack_name="clock-test",
    )
    # When its clock runs for a few seconds (no install(): EventBridge itself would refuse such a rate)
    dispatcher.start()
    time.sleep(3.5)
    dispatcher.stop()
    # Then the function ran on each tick, with EventBridge's scheduled event
    assert 2 <= len(dispatcher.invocations) <= 4
    assert {i.trigger for i in dispatcher.invocations} == {"Scheduled Event"}
    assert all(i.error is None for i in dispatcher.invocations)


def test_a_functions_logging_setup_stays_its_own(runtime: LocalRuntime) -> None:
    # In Lambda each function has its own process: what its code sets up for logging is its own
    outside = logging.getLogger("echo.handler")
    record = logging.LogRecord("echo.handler", logging.ERROR, __file__, 1, "logged outside the function", None, None)

    def set_aside() -> bool:
        # Its level is the process's again, and the handler it added (kept attached: Powertools
        # expects the handler it configured to stay) writes nothing outside its runs.
        return outside.level == logging.NOTSET and not any(handler.filter(record) for handler in outside.handlers)

    assert set_aside()  # set up at import, then set aside
    (invocation,) = runtime.run_schedules("echo")
    assert invocation.result["log_level"] == logging.ERROR  # the function runs with its own setup
    assert set_aside()


def test_a_default_boto3_session_of_the_process_is_not_the_functions(runtime: LocalRuntime) -> None:
    # Given a default boto3 session made in the runtime's process with other (root's) credentials
    import boto3

    boto3.setup_default_session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    assert runtime.dispatcher is not None
    before = len(runtime.dispatcher.invocations)
    try:
        _put(runtime, "echo")
        assert runtime.wait_idle()
    finally:
        boto3.DEFAULT_SESSION = None
    # Then the handler's boto3.client(...) still signs with the function's role, as in its own Lambda process
    (invocation,) = runtime.dispatcher.invocations[before:]
    assert invocation.result["caller"] == "arn:aws:sts::123456789012:assumed-role/iamguard-EchoRole/iamguard-Echo"
