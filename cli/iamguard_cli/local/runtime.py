"""The whole of iamguard on this machine: `iamguard local` and `iamguard demo` run this.

    with LocalRuntime(LocalOptions(mode="enforce", echo=sys.stdout)) as runtime:
        runtime.endpoint_url   # moto on 127.0.0.1, for any client (aws CLI, boto3, Terraform)
        runtime.api_url        # the status API
        runtime.slack          # the local Slack receiver (runtime.slack.messages)
        runtime.sign_in("wonjun_admin")
        runtime.run_audit()
        runtime.wait_idle()

What starts, all bound to 127.0.0.1:
- moto (AWS managed policies, root state), wrapped in the local CloudTrail and in
  a small control API under `/_iamguard/` that other processes use (sign-ins,
  audits on demand, waiting for the bot to finish);
- the resources of template.yaml the functions use (tables, queues, topic,
  guardrail policy, execution roles), a Slack secret pointing at the local
  receiver, and the template's routing with a dispatcher running the real
  handlers;
- the status API (the resolver the Lambda uses) and the Slack receiver, which
  prints each message readably;
- with `accounts=N`, an organization (iamguard_cli.local.organization): the hub's
  account manages it, N member accounts join it and get the member stack
  (member/template.yaml), whose rules forward their events to the hub's bus.

The runtime owns this process's moto state: starting it resets every moto backend.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, cast

from iamguard.aws import AwsContext
from iamguard.domain.messages import Language
from iamguard.settings import Mode

from iamguard_cli.local.cfn import TemplateError
from iamguard_cli.local.dispatcher import FunctionRunner, Invocation, LocalFunction
from iamguard_cli.local.organization import (
    LocalOrganization,
    MemberAccount,
    OrganizationError,
    default_member_template,
)
from iamguard_cli.local.provision import Provisioned, Provisioner
from iamguard_cli.local.routing import FunctionSpec, Template
from iamguard_cli.local.server import LOCAL_ACCOUNT_ID, MotoServer
from iamguard_cli.local.signin import SignInError, SignInResult, console_sign_in
from iamguard_cli.local.trail import CloudTrailMiddleware, Trail

if TYPE_CHECKING:
    from iamguard_cli.local.api_server import ApiServer
    from iamguard_cli.local.channel_receivers import PagerDutyReceiver, TeamsReceiver, WebhookReceiver
    from iamguard_cli.local.receiver import HttpReceiver
    from iamguard_cli.local.slack_receiver import SlackReceiver

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_iamguard/"
REGION = "us-east-1"
ROOT_ACCESS_KEY = "testing"  # moto's default credentials: they sign as root here
ROOT_SECRET_KEY = "testing"
# Everything to Slack locally, so every change can be watched (the deployed default keeps
# medium and below for the digest).
# Teams and the webhook get what Slack gets; PagerDuty pages for critical and high, as deployed.
LOCAL_SEVERITY_ROUTING = ",".join(
    f"{severity}={channels}"
    for severity, channels in (
        ("critical", "slack+email+teams+pagerduty+webhook"),
        ("high", "slack+email+teams+pagerduty+webhook"),
        ("medium", "slack+teams+webhook"),
        ("low", "slack+teams+webhook"),
        ("informational", "slack+teams+webhook"),
    )
)
AUDIT_FUNCTION = "audit_account"
PLAN_AUDIT_FUNCTION = "plan_audit"  # organization mode: the schedule queues one audit per account
# `iamguard local` stops within two seconds of Ctrl-C or SIGTERM: a running handler gets one of them.
STOP_SECONDS = 2.0
STOP_HANDLER_GRACE = 1.0


def default_template() -> Path:
    """template.yaml of the repository this package runs from, else of the working directory."""
    repository = Path(__file__).resolve().parents[3] / "template.yaml"
    return repository if repository.is_file() else Path.cwd() / "template.yaml"


@dataclass
class LocalOptions:
    port: int = 0  # moto; 0 = any free port
    api_port: int = 0
    slack_port: int = 0
    mode: Mode = "monitor"
    language: Language = "en"
    template: Path = field(default_factory=default_template)
    stack_name: str = "iamguard"
    severity_routing: str = LOCAL_SEVERITY_ROUTING
    run_schedules_on_time: bool = True
    log_level: str = "ERROR"  # the handlers' Powertools log level
    echo: TextIO | None = None  # where the trail, the handlers' runs and Slack messages are shown
    show_trail: bool = True
    accounts: int = 0  # member accounts of a local organization; 0 = one account, no organization
    member_template: Path = field(default_factory=default_member_template)


class Terminal:
    """Thread-safe lines to the terminal (or nowhere)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        if self.stream is None:
            return
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")


class _SlackEcho(io.TextIOBase):
    """What the Slack receiver prints, framed so it stands out from the rest of the output."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def write(self, text: str) -> int:
        body = text.rstrip("\n")
        if body:
            framed = "\n".join(f"  │ {line}" if line else "  │" for line in body.splitlines())
            self.terminal.write(f"  ┌─ Slack ─────────────────────────────────────\n{framed}\n  └────────\n")
        return len(text)


class _ChannelEcho(io.TextIOBase):
    """What the Teams, PagerDuty and webhook receivers got: one line each (Slack shows the whole message)."""

    def __init__(self, terminal: Terminal, name: str) -> None:
        self.terminal = terminal
        self.name = name

    def write(self, text: str) -> int:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if first:
            self.terminal.write(f"  → {self.name:<10} {first}\n")
        return len(text)


def describe_event(event: dict[str, Any]) -> str:
    """One line for a CloudTrail event: who did what to whom (no secrets are in the event)."""
    detail = event.get("detail", {})
    identity = detail.get("userIdentity", {})
    kind = identity.get("type")
    if kind == "Root":
        who = "root"
    elif kind == "IAMUser":
        who = str(identity.get("userName"))
    elif kind == "AssumedRole":
        who = "role " + str(identity.get("sessionContext", {}).get("sessionIssuer", {}).get("userName"))
    else:
        who = str(kind)
    name = detail.get("eventName", "?")
    if name == "ConsoleLogin":
        outcome = (detail.get("responseElements") or {}).get("ConsoleLogin", "?")
        mfa = (detail.get("additionalEventData") or {}).get("MFAUsed", "?")
        return f"ConsoleLogin {outcome} by {who} (MFAUsed={mfa})"
    params = detail.get("requestParameters") or {}
    shown = ", ".join(f"{key}={_short(value)}" for key, value in params.items() if isinstance(value, str | bool | int))
    return f"{name} by {who}" + (f" ({shown})" if shown else "")


def _short(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ControlMiddleware:
    """`/_iamguard/...` on the moto endpoint: what other processes ask of the running runtime."""

    def __init__(self, app: Callable[..., Any], runtime: LocalRuntime) -> None:
        self.app = app
        self.runtime = runtime

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(CONTROL_PREFIX):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            request = json.loads(raw or b"{}")
            status, body = self.runtime.control(
                environ.get("REQUEST_METHOD", "GET"), path.removeprefix(CONTROL_PREFIX), request
            )
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            status, body = 400, {"error": str(exc)}
        except Exception as exc:  # answered as JSON, and logged: the caller is another process
            log.exception("/_iamguard/ request failed")
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(body).encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]


class _ScheduleLauncher:
    """POST /audit of the status API: the audit function, as its schedule would run it."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime

    def start(self, run_id: str) -> str:
        threading.Thread(target=self.runtime.run_audit, name=f"audit-{run_id}", daemon=True).start()
        return run_id


class LocalRuntime:
    """moto + local CloudTrail + template routing + handlers + status API + Slack receiver."""

    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self.terminal = Terminal(self.options.echo)
        self.account_id = LOCAL_ACCOUNT_ID
        self.trail = Trail()
        self.server: MotoServer | None = None
        self._slack: SlackReceiver | None = None
        self._channels: dict[str, HttpReceiver] = {}
        self.api: ApiServer | None = None
        self.dispatcher: FunctionRunner | None = None
        self.provisioned = Provisioned()
        self.functions: list[LocalFunction] = []
        self.findings_table = ""
        self.organization: LocalOrganization | None = None
        self.provisioned_parameters: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LocalRuntime:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from iamguard_cli.local.channel_receivers import PagerDutyReceiver, TeamsReceiver, WebhookReceiver
        from iamguard_cli.local.slack_receiver import SlackReceiver

        template = Template.load(self.options.template)
        self.server = MotoServer(
            self.options.port,
            wrap=lambda app: _ControlMiddleware(CloudTrailMiddleware(app, self.trail), self),
        ).start()
        self.server.reset()
        aws = self.root_aws()
        if self.options.accounts:
            if not self.options.member_template.is_file():
                raise TemplateError(f"no member template at {self.options.member_template}")
            self.organization = LocalOrganization(aws, hub_account_id=self.account_id)
            self.organization.create()

        self._slack = SlackReceiver(self.options.slack_port, echo=cast(TextIO, _SlackEcho(self.terminal))).start()
        secret_arn = aws.client("secretsmanager").create_secret(
            Name=f"{self.options.stack_name}/slack-webhook", SecretString=self._slack.url
        )["ARN"]
        secrets = aws.client("secretsmanager")
        teams = TeamsReceiver(echo=cast(TextIO, _ChannelEcho(self.terminal, "Teams"))).start()
        pagerduty = PagerDutyReceiver(echo=cast(TextIO, _ChannelEcho(self.terminal, "PagerDuty"))).start()
        webhook = WebhookReceiver(echo=cast(TextIO, _ChannelEcho(self.terminal, "webhook"))).start()
        self._channels = {"teams": teams, "pagerduty": pagerduty, "webhook": webhook}
        channel_secrets = {
            "TeamsSecretArn": ("teams-webhook", teams.url),
            "PagerDutySecretArn": (
                "pagerduty",
                json.dumps({"routing_key": pagerduty.routing_key, "url": pagerduty.url}),
            ),
            "WebhookSecretArn": ("webhook", json.dumps({"url": webhook.url, "signing_key": webhook.signing_key})),
        }
        arns = {
            parameter: secrets.create_secret(Name=f"{self.options.stack_name}/{name}", SecretString=value)["ARN"]
            for parameter, (name, value) in channel_secrets.items()
        }
        parameters = self._parameters(template, secret_arn, arns)
        self.provisioned_parameters = {**template.parameter_defaults(), **parameters}
        self.provisioned = Provisioner(
            template, aws, parameters, stack_name=self.options.stack_name, account_id=self.account_id
        ).run()
        resolver = template.resolver(
            parameters,
            refs=self.provisioned.refs,
            attrs=self.provisioned.attrs,
            stack_name=self.options.stack_name,
            account_id=self.account_id,
            region=REGION,
        )
        specs = template.functions(resolver)
        self.functions = [self._local_function(spec) for spec in specs]
        self.findings_table = next(
            (spec.environment["FINDINGS_TABLE"] for spec in specs if spec.environment.get("FINDINGS_TABLE")), ""
        )
        self.dispatcher = FunctionRunner(
            self.functions,
            aws,
            account_id=self.account_id,
            stack_name=self.options.stack_name,
            on_invocation=self._show_invocation,
            run_schedules_on_time=self.options.run_schedules_on_time,
        )
        self.dispatcher.install()
        for number in range(1, self.options.accounts + 1):
            self.join_organization(f"member-{number}")
        for function in self.functions:
            function.load()
        self.api = self._start_api(aws, specs)
        if self.options.show_trail:
            self.trail.subscribe(
                lambda event: self.terminal.line(f"  trail   {self._account_tag(event)}{describe_event(event)}")
            )
        self.dispatcher.start()

    def _account_tag(self, event: dict[str, Any]) -> str:
        """In an organization, which account an event happened in (one account needs no saying)."""
        return f"[{event.get('account', '?')}] " if self.organization is not None else ""

    def join_organization(self, name: str) -> MemberAccount:
        """A new member account: CreateAccount, then the member stack in it (StackSets' automatic deployment)."""
        if self.organization is None:
            raise RuntimeError("the local runtime runs without an organization (start it with accounts=N)")
        template = Template.load(self.options.member_template)
        known = template.parameter_defaults()
        hub_parameters = self.provisioned_parameters
        wanted = {
            "HubStackName": self.options.stack_name,
            "HubEventBusArn": self.hub_bus_arn(),
            "Mode": self.options.mode,
            "RequiredPolicyArns": hub_parameters.get("RequiredPolicyArns", ""),
        }
        parameters = {key: value for key, value in wanted.items() if key in known}
        return self.organization.join(name, template, parameters)

    def hub_bus_arn(self) -> str:
        """The bus the hub's event functions listen on: members forward their events there."""
        buses = sorted({route.event_bus for f in self.functions for route in f.spec.routes} - {"default"})
        return f"arn:aws:events:{REGION}:{self.account_id}:event-bus/{buses[0] if buses else 'default'}"

    def stop(self) -> None:
        """Stop within STOP_SECONDS: a running handler gets STOP_HANDLER_GRACE, the servers stop together."""
        if self.dispatcher is not None:
            self.dispatcher.stop(grace=STOP_HANDLER_GRACE)
        # Each HTTP server notices a shutdown at its next poll (half a second): stop them side by side.
        receivers = list(self._channels.values())
        servers = [server for server in (self.api, self._slack, *receivers, self.server) if server is not None]
        stoppers = [threading.Thread(target=server.stop, name="stop-server", daemon=True) for server in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        self.dispatcher, self.api, self._slack, self.server = None, None, None, None
        self._channels = {}

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    # -- pieces ------------------------------------------------------------------------
    def root_aws(self) -> AwsContext:
        """An AwsContext that signs as root (moto's default `testing` keys) against the local endpoint."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_SECRET_KEY, region_name=REGION
        )
        return AwsContext(
            region=REGION, endpoint_url=self.endpoint_url, retry_mode="standard", max_attempts=3, _session=session
        )

    def _parameters(self, template: Template, slack_secret_arn: str, channel_secrets: dict[str, str]) -> dict[str, str]:
        wanted = {
            **channel_secrets,
            "Mode": self.options.mode,
            "Language": self.options.language,
            "SlackSecretArn": slack_secret_arn,
            "SeverityRouting": self.options.severity_routing,
        }
        if self.organization is not None:
            wanted["OrganizationId"] = self.organization.organization_id
        known = template.parameter_defaults()
        missing = sorted(set(wanted) - known.keys())
        if missing:
            log.warning("template.yaml has no parameter %s; the local runtime leaves it out", ", ".join(missing))
        return {name: value for name, value in wanted.items() if name in known}

    def _local_function(self, spec: FunctionSpec) -> LocalFunction:
        name = self.provisioned.refs.get(spec.logical_id, f"{self.options.stack_name}-{spec.logical_id}")
        arn = self.provisioned.attrs.get(
            (spec.logical_id, "Arn"), f"arn:aws:lambda:{REGION}:{self.account_id}:function:{name}"
        )
        session = self.provisioned.sessions.get(spec.logical_id)
        environment = {
            **spec.environment,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "LOG_LEVEL": self.options.log_level,
            "POWERTOOLS_LOG_LEVEL": self.options.log_level,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_METRICS_DISABLED": "true",  # no CloudWatch: keep EMF lines off the terminal
            **(session.environment() if session else {}),
        }
        return LocalFunction(spec, environment, name, arn)

    def _start_api(self, aws: AwsContext, specs: list[FunctionSpec]) -> ApiServer:
        from iamguard.api.service import StatusService
        from iamguard.persistence.findings import FindingsStore
        from iamguard.settings import Settings

        from iamguard_cli.local.api_server import ApiServer

        status_spec = next((spec for spec in specs if spec.name == "status_api"), None)
        settings = Settings.from_env(status_spec.environment if status_spec else {})
        table = self.findings_table or settings.findings_table
        service = StatusService(
            FindingsStore(aws.dynamodb(), table, home_account=settings.organization.home_account),
            settings.api,
            _ScheduleLauncher(self),
            organization_id=settings.organization.organization_id,  # GET /status: the organization's verdict
        )
        return ApiServer(service, self.options.api_port).start()

    def _show_invocation(self, invocation: Invocation) -> None:
        if invocation.error is not None:
            self.terminal.line(
                f"  lambda  {invocation.function} ← {invocation.trigger}: FAILED {invocation.error} (will retry)"
            )
        else:
            self.terminal.line(
                f"  lambda  {invocation.function} ← {invocation.trigger} ({invocation.duration_ms:.0f} ms)"
            )

    # -- what the runtime offers ------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        if self.server is None:
            raise RuntimeError("the local runtime is not running")
        return self.server.url

    @property
    def slack(self) -> SlackReceiver:
        """The local Slack receiver (its `messages` are what iamguard posted)."""
        if self._slack is None:
            raise RuntimeError("the local runtime is not running")
        return self._slack

    def _channel(self, name: str) -> HttpReceiver:
        if name not in self._channels:
            raise RuntimeError("the local runtime is not running")
        return self._channels[name]

    @property
    def teams(self) -> TeamsReceiver:
        """The local Teams receiver (a Workflows webhook)."""
        return cast("TeamsReceiver", self._channel("teams"))

    @property
    def pagerduty(self) -> PagerDutyReceiver:
        """The local PagerDuty Events API v2 (`alerts`: each dedup key's state)."""
        return cast("PagerDutyReceiver", self._channel("pagerduty"))

    @property
    def webhook(self) -> WebhookReceiver:
        """The local signed-webhook endpoint (checks every signature)."""
        return cast("WebhookReceiver", self._channel("webhook"))

    @property
    def api_url(self) -> str:
        return str(self.api.url) if self.api is not None else ""

    def function(self, name: str) -> LocalFunction:
        for function in self.functions:
            if name in {function.spec.name, function.spec.logical_id}:
                return function
        raise KeyError(name)

    def sign_in(
        self, user: str, *, mfa_code: str | None = None, fail: bool = False, source_ip: str = "127.0.0.1"
    ) -> SignInResult:
        """Simulate a console sign-in (see iamguard_cli.local.signin)."""
        return console_sign_in(self.trail, self.account_id, user, mfa_code=mfa_code, fail=fail, source_ip=source_ip)

    def run_audit(self, timeout: float | None = None) -> list[Invocation]:
        """Run the scheduled audit now, through its function, and wait for it.

        In an organization the schedule runs the planner, which queues one audit per ACTIVE
        account; the audit queue's mapping hands them to the audit function. This waits until the
        queue is drained and returns the planner's run followed by the audit function's runs.
        """
        if self.dispatcher is None:
            raise RuntimeError("the local runtime is not running")
        if self.organization is None:
            return self.dispatcher.run_schedules(AUDIT_FUNCTION)
        before = len(self.dispatcher.invocations)
        planned = self.dispatcher.run_schedules(PLAN_AUDIT_FUNCTION)
        self.wait_idle(timeout if timeout is not None else 60.0 + 30.0 * (len(self.organization.members) + 1))
        audits = [
            i
            for i in self.dispatcher.invocations[before:]
            if i.function == AUDIT_FUNCTION and i.trigger.startswith("SQS ")
        ]
        return planned + audits

    def run_schedules(self, function: str | None = None) -> list[Invocation]:
        if self.dispatcher is None:
            raise RuntimeError("the local runtime is not running")
        return self.dispatcher.run_schedules(function)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every event the trail published was handled."""
        return self.dispatcher.wait_idle(timeout) if self.dispatcher is not None else True

    def info(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "api_url": self.api_url,
            "account_id": self.account_id,
            "region": REGION,
            "mode": self.options.mode,
            "language": self.options.language,
            **self._organization_info(),
            "functions": {
                f.spec.name: {
                    "routes": [r.name for r in f.spec.routes],
                    "schedules": [s.expression for s in f.spec.schedules],
                    "queues": [q.queue_arn for q in f.spec.queues if q.enabled],
                }
                for f in self.functions
            },
        }

    def _organization_info(self) -> dict[str, Any]:
        if self.organization is None:
            return {}
        return {
            "organization": {
                "id": self.organization.organization_id,
                "management_account_id": self.account_id,
                "hub_event_bus_arn": self.hub_bus_arn(),
                "accounts": [
                    {"account_id": m.account_id, "name": m.name, "role_arn": m.session.role_arn}
                    for m in self.organization.members
                ],
            }
        }

    def control(self, method: str, command: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The `/_iamguard/` API: info, signin, audit, schedules, wait, join (a new member account)."""
        if method == "GET" and command in {"", "info"}:
            return 200, self.info()
        if method != "POST":
            return 405, {"error": f"{method} /_iamguard/{command} is not supported"}
        if command == "signin":
            try:
                result = self.sign_in(
                    str(request["user"]),
                    mfa_code=str(request["mfa_code"]) if request.get("mfa_code") is not None else None,
                    fail=bool(request.get("fail", False)),
                )
            except SignInError as exc:
                return 400, {"error": str(exc)}
            except KeyError:
                return 400, {"error": "user is required"}
            return 200, result.to_dict()
        if command in {"audit", "schedules"}:
            invocations = self.run_audit() if command == "audit" else self.run_schedules(request.get("function"))
            return 200, {"invocations": [_invocation_dict(i) for i in invocations]}
        if command == "wait":
            return 200, {"idle": self.wait_idle(float(request.get("timeout", 30)))}
        if command == "join":
            return self._join(request)
        return 404, {"error": f"unknown command {command!r}"}

    def _join(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A new member account, with an administrator's session in it (moto's keys, this machine only)."""
        if self.organization is None:
            return 400, {"error": "this local runtime has no organization (start it with --accounts N)"}
        name = request.get("name")
        if not isinstance(name, str):
            return 400, {"error": "name is required"}
        try:
            member = self.join_organization(name)
        except OrganizationError as exc:
            return 400, {"error": str(exc)}
        session = member.session
        return 200, {
            "account_id": member.account_id,
            "name": member.name,
            "role_arn": session.role_arn,
            "environment": {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": REGION,
                **session.environment(),
            },
        }

    def banner(self) -> str:
        endpoint = self.endpoint_url
        lines = [
            "iamguard local runtime is up (everything on 127.0.0.1; nothing leaves this machine)",
            "",
            f"  AWS endpoint   {endpoint}        (IAM, STS, EventBridge, SQS, SNS, DynamoDB, Secrets Manager)",
            f"  account        {self.account_id}   region {REGION}   mode {self.options.mode}   "
            f"language {self.options.language}",
            f"  credentials    AWS_ACCESS_KEY_ID={ROOT_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={ROOT_SECRET_KEY}"
            "   (these sign as root; keys you create for users sign as those users)",
            f"  status API     {self.api_url}/status   /users   /findings   /events   /trend   POST /audit",
            f"                 {self.api_url}/compliance/cis-5.0   (cis-3.0, cis-7.0, fsbp, isms-p)",
            f"  Slack          messages are printed below (receiver on 127.0.0.1:{self.slack.port})",
            f"  Teams, PagerDuty, webhook   one line each below (127.0.0.1:{self.teams.port}, "
            f"{self.pagerduty.port}, {self.webhook.port})",
            "",
            "  Try it from another terminal:",
            f"    export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID={ROOT_ACCESS_KEY} "
            f"AWS_SECRET_ACCESS_KEY={ROOT_SECRET_KEY} AWS_DEFAULT_REGION={REGION}",
            "    aws iam create-user --user-name alice",
            "    aws iam create-login-profile --user-name alice --password 'Choose-A-Long-One-1!' "
            "--password-reset-required",
            f"    iamguard mfa enroll alice --endpoint-url {endpoint}",
            f"    iamguard local signin alice --endpoint-url {endpoint}",
            f"    iamguard local audit --endpoint-url {endpoint}",
            f"    curl -s {self.api_url}/status",
            "",
            *self._organization_banner(),
            "  Stop with Ctrl-C.",
        ]
        return "\n".join(lines) + "\n"

    def _organization_banner(self) -> list[str]:
        if self.organization is None:
            return []
        lines = [
            f"  Organization {self.organization.organization_id}: the account above is its management account and"
            " runs the hub;",
            f"  each member account forwards its IAM and sign-in events to the hub's bus ({self.hub_bus_arn()}).",
            "  An administrator's session in each member (OrganizationAccountAccessRole), for another terminal:",
        ]
        for member in self.organization.members:
            session = member.session
            lines += [
                f"    {member.name}  account {member.account_id}",
                f"      export AWS_ENDPOINT_URL={self.endpoint_url} AWS_DEFAULT_REGION={REGION} "
                f"AWS_ACCESS_KEY_ID={session.access_key_id} AWS_SECRET_ACCESS_KEY={session.secret_access_key} "
                f"AWS_SESSION_TOKEN={session.session_token}",
            ]
        lines += ["    aws iam create-user --user-name alice   # seen by the hub, in that account", ""]
        return lines


def _invocation_dict(invocation: Invocation) -> dict[str, Any]:
    result = invocation.result if isinstance(invocation.result, dict | list | str | int | float | None) else None
    answer = {
        "function": invocation.function,
        "trigger": invocation.trigger,
        "duration_ms": invocation.duration_ms,
        "error": invocation.error,
        "result": json.loads(json.dumps(result, default=str)),
    }
    event = invocation.event
    if isinstance(event, dict) and isinstance(event.get("Records"), list):  # an SQS batch: what it carried
        answer["messages"] = [str(r.get("body", "")) for r in event["Records"] if isinstance(r, dict)]
    return answer


def control_request(endpoint_url: str, command: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask a runtime running in another process (`iamguard local`) to do something."""
    url = f"{endpoint_url.rstrip('/')}{CONTROL_PREFIX}{command}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 - a local endpoint given by the user
        url, data=data, method="POST" if payload is not None else "GET", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            message = json.loads(body).get("error", body.decode())
        except (json.JSONDecodeError, AttributeError):
            message = body.decode("utf-8", "replace")
        raise ControlError(str(message), exc.code) from exc


class ControlError(RuntimeError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


__all__ = [
    "ControlError",
    "LocalOptions",
    "LocalRuntime",
    "TemplateError",
    "control_request",
    "default_template",
]
