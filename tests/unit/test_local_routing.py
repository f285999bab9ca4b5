"""Reading template.yaml for the local runtime: intrinsics, schedules, the functions and their routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from iamguard_cli.local.cfn import TemplateError, expand_for_each, load_yaml
from iamguard_cli.local.routing import QueueRoute, Schedule, Template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = """
Parameters:
  Mode: {Type: String, Default: monitor}
  Size: {Type: Number, Default: 3}
  Email: {Type: String, Default: ""}
Conditions:
  Enforce: !Equals [!Ref Mode, enforce]
  HasEmail: !Not [!Equals [!Ref Email, ""]]
  Both: !And [!Condition Enforce, !Condition HasEmail]
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        MODE: !Ref Mode
        SIZE: !Ref Size
        TABLE: !Ref Table
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Alerts:
    Type: AWS::SNS::Topic
    Condition: HasEmail
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker
      Handler: app.handler
      Environment:
        Variables:
          TOPIC: !If [HasEmail, !Ref Alerts, !Ref AWS::NoValue]
          STACK: !Sub "${AWS::StackName}-${AWS::Region}-${!Literal}"
          ROLE: !GetAtt WorkerRole.Arn
          JOINED: !Join [",", [a, !Select [1, !Split ["/", "x/y/z"]]]]
          BOTH: !If [Both, "yes", "no"]
      Events:
        Changes:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.iam]
              detail: {errorCode: [{exists: false}]}
        Off:
          Type: CloudWatchEvent
          Properties:
            State: DISABLED
            Pattern: {source: [other]}
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
        Odd:
          Type: Schedule
          Properties:
            Schedule: cron(0 12 L * ? *)
        Never:
          Type: Schedule
          Properties:
            Schedule: cron(0 12 LW * ? *)
"""


@pytest.fixture
def template(tmp_path: Path) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return Template.load(path)


def test_short_form_tags_become_long_form_intrinsics(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text('A: !Ref X\nB: !GetAtt R.Arn\nC: !Sub ["${v}", {v: 1}]\nD: !If [C, 1, 2]\n')
    assert load_yaml(path) == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["R", "Arn"]},
        "C": {"Fn::Sub": ["${v}", {"v": 1}]},
        "D": {"Fn::If": ["C", 1, 2]},
    }


def test_a_function_gets_globals_and_its_own_environment_resolved(template: Template) -> None:
    resolver = template.resolver(
        {"Mode": "enforce", "Email": "sec@example.com"},
        refs={"Table": "local-table", "Alerts": "arn:aws:sns:us-east-1:123456789012:alerts"},
        attrs={("WorkerRole", "Arn"): "arn:aws:iam::123456789012:role/worker"},
    )
    (worker,) = template.functions(resolver)
    assert worker.environment == {
        "MODE": "enforce",
        "SIZE": "3",
        "TABLE": "local-table",
        "TOPIC": "arn:aws:sns:us-east-1:123456789012:alerts",
        "STACK": "iamguard-us-east-1-${Literal}",
        "ROLE": "arn:aws:iam::123456789012:role/worker",
        "JOINED": "a,y",
        "BOTH": "yes",
    }
    assert worker.timeout == 30
    assert worker.handler_attribute == "handler"
    assert worker.handler_file == template.root / "functions/worker/app.py"


def test_no_value_leaves_a_variable_out_and_conditions_follow_parameters(template: Template) -> None:
    (worker,) = template.functions(template.resolver())
    assert "TOPIC" not in worker.environment
    assert worker.environment["BOTH"] == "no"
    assert worker.environment["TABLE"] == "iamguard-Table"  # not created: a stable placeholder
    assert not template.included("Alerts", template.resolver())


def test_routes_keep_the_templates_patterns_exactly(template: Template) -> None:
    (worker,) = template.functions(template.resolver())
    changes, off = worker.routes
    assert changes.pattern == {"source": ["aws.iam"], "detail": {"errorCode": [{"exists": False}]}}
    assert changes.enabled and not off.enabled
    tick, odd, never = worker.schedules
    assert tick.schedule is not None and tick.schedule.interval == timedelta(minutes=5)
    assert odd.schedule is not None and odd.expression == "cron(0 12 L * ? *)"
    assert odd.schedule.next_after(datetime(2025, 2, 3, tzinfo=UTC)) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    # LW (the last weekday), which croniter cannot evaluate: that schedule runs on demand only.
    assert never.schedule is None and never.expression == "cron(0 12 LW * ? *)"


def test_unknown_parameters_and_intrinsics_are_errors(template: Template, tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no parameter Colour"):
        template.resolver({"Colour": "blue"})
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        template.resolver().resolve({"Fn::ImportValue": "x"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(TemplateError, match="not a CloudFormation template"):
        load_yaml(bad)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("rate(1 hour)", datetime(2025, 1, 1, 10, 30, tzinfo=UTC), datetime(2025, 1, 1, 11, 30, tzinfo=UTC)),
        ("rate(2 days)", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)),
        ("cron(0 0 * * ? *)", datetime(2025, 1, 1, 12, 30, tzinfo=UTC), datetime(2025, 1, 2, 0, 0, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2025, 1, 1, 12, 31, tzinfo=UTC), datetime(2025, 1, 1, 12, 45, tzinfo=UTC)),
        # Saturday 4 January 2025 → Monday 6 January, 08:00 (EventBridge: 1 = SUN)
        ("cron(0 8 ? * MON-FRI *)", datetime(2025, 1, 4, 9, 0, tzinfo=UTC), datetime(2025, 1, 6, 8, 0, tzinfo=UTC)),
        ("cron(30 6 ? * 1 *)", datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 12, 6, 30, tzinfo=UTC)),
        ("cron(0 0 1 JAN,JUL ? *)", datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)),
        # EventBridge's own forms: numbered weekdays (2-6 = MON-FRI), the n-th weekday, the last Friday, a year
        ("cron(0 8 ? * 2-6 *)", datetime(2025, 1, 4, 9, 0, tzinfo=UTC), datetime(2025, 1, 6, 8, 0, tzinfo=UTC)),
        ("cron(0 9 ? * 2#1 *)", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 6, 9, 0, tzinfo=UTC)),
        ("cron(0 18 ? * 6L *)", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 31, 18, 0, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2027)", datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 12 15W * ? *)", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 14, 12, 0, tzinfo=UTC)),
    ],
)
def test_schedules_fire_when_eventbridge_would(expression: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


@pytest.mark.parametrize("expression", ["rate(0 minutes)", "cron(0 0 * *)", "every hour", "cron(99 * * * ? *)"])
def test_bad_schedules_are_refused(expression: str) -> None:
    with pytest.raises(TemplateError):
        Schedule.parse(expression)


def test_a_schedule_that_never_fires_again_says_so() -> None:
    with pytest.raises(TemplateError, match="never fires"):
        Schedule.parse("cron(0 0 1 1 ? 2020)").next_after(datetime(2025, 1, 1, tzinfo=UTC))


def test_the_repository_template_routes_every_function_to_its_handler() -> None:
    template = Template.load(REPO / "template.yaml")
    functions = {f.name: f for f in template.functions(template.resolver())}
    for function in functions.values():
        assert function.handler_file.is_file(), function.logical_id
    events = template.body["Resources"]["OnIamEventFunction"]["Properties"]["Events"]
    on_iam = functions["on_iam_event"]
    assert [r.pattern for r in on_iam.routes] == [events["IamChanges"]["Properties"]["Pattern"]]
    assert [s.expression for s in functions["audit_account"].schedules] == ["rate(1 hour)"]
    # Until the runtime creates the queue: the ARN CloudFormation would give it.
    assert on_iam.on_failure == "arn:aws:sqs:us-east-1:123456789012:iamguard-EventsDeadLetterQueue"


def test_for_each_expands_keys_strings_and_refs_as_language_extensions_does() -> None:
    template = {
        "Resources": {
            "Fn::ForEach::Alarms": [
                "Name",
                ["Audit", "Api"],
                {
                    "${Name}ErrorsAlarm": {
                        "Type": "AWS::CloudWatch::Alarm",
                        "Properties": {
                            "AlarmDescription": "the ${Name} function failed",
                            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": {"Fn::Sub": "${Name}Function"}}}],
                            "Tag": {"Ref": "Name"},
                            "Stack": {"Fn::Sub": "${AWS::StackName}-${Name}"},
                        },
                    }
                },
            ],
            "Topic": {"Type": "AWS::SNS::Topic"},
        },
        "Outputs": {"Fn::ForEach::Out": ["Id", ["a-b"], {"Out&{Id}": {"Value": "${Id}"}}]},
    }
    expanded = expand_for_each(template)
    assert list(expanded["Resources"]) == ["AuditErrorsAlarm", "ApiErrorsAlarm", "Topic"]
    api = expanded["Resources"]["ApiErrorsAlarm"]["Properties"]
    assert api["AlarmDescription"] == "the Api function failed"
    assert api["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ApiFunction"}}]  # a plain Ref again
    assert api["Tag"] == "Api"
    assert api["Stack"] == {"Fn::Sub": "${AWS::StackName}-Api"}  # other intrinsics are left to the resolver
    assert expanded["Outputs"] == {"Outab": {"Value": "a-b"}}
    assert "Fn::ForEach::Alarms" in template["Resources"]  # the input is not changed


def test_for_each_refuses_what_it_cannot_expand() -> None:
    twice = {"Resources": {"Fn::ForEach::L": ["N", ["A", "A"], {"${N}Queue": {"Type": "AWS::SQS::Queue"}}]}}
    with pytest.raises(TemplateError, match="AQueue twice"):
        expand_for_each(twice)
    from_parameter = {"Resources": {"Fn::ForEach::L": ["N", {"Ref": "Names"}, {"${N}Queue": {}}]}}
    with pytest.raises(TemplateError, match="literal collections"):
        expand_for_each(from_parameter)


def test_the_default_templates_are_the_repositorys_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iamguard_cli.local.organization import default_member_template
    from iamguard_cli.local.runtime import default_template

    monkeypatch.chdir(tmp_path)  # `iamguard local` started outside the checkout
    assert default_template() == REPO / "template.yaml"
    assert default_member_template() == REPO / "member" / "template.yaml"


def test_the_audit_queue_mapping_is_read_in_organization_mode_only() -> None:
    template = Template.load(REPO / "template.yaml")
    single = {f.name: f for f in template.functions(template.resolver())}
    assert all(not f.queues for f in single.values())
    organization = template.resolver({"OrganizationId": "o-abcdefghij", "AuditConcurrency": "4"})
    functions = {f.name: f for f in template.functions(organization)}
    (route,) = functions["audit_account"].queues
    assert route == QueueRoute(
        name="AuditQueueMapping",
        queue_arn="arn:aws:sqs:us-east-1:123456789012:iamguard-AuditQueue",
        batch_size=1,
        report_batch_item_failures=True,
        maximum_concurrency=4,
    )
    assert [s.enabled for s in functions["audit_account"].schedules] == [False]  # the planner runs on the schedule
    assert [s.enabled for s in functions["plan_audit"].schedules] == [True]
    assert all(not f.queues for name, f in functions.items() if name != "audit_account")


def test_sam_sqs_events_and_mappings_by_get_att_are_queue_routes(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Resources:
  Jobs: {Type: AWS::SQS::Queue}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker
      Handler: app.handler
      Events:
        Work:
          Type: SQS
          Properties: {Queue: !GetAtt Jobs.Arn, BatchSize: 5, Enabled: false}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !GetAtt Worker.Arn
      EventSourceArn: !GetAtt Jobs.Arn
  StreamMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Worker
      EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/s
"""
    )
    template = Template.load(path)
    (worker,) = template.functions(template.resolver())
    arn = "arn:aws:sqs:us-east-1:123456789012:iamguard-Jobs"
    assert worker.queues == (
        QueueRoute("Work", arn, batch_size=5, enabled=False),
        QueueRoute("Mapping", arn),  # SQS's default batch size, no partial batch responses
    )
