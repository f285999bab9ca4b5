"""`iamguard demo`: DESIGN.md's walkthrough against the local runtime, through real calls and real routing.

Every step is an ordinary AWS call to the local endpoint (or a simulated
console sign-in), seen by the local CloudTrail, routed by the rules of
template.yaml to the real handlers; what iamguard says is what arrived in the
local Slack receiver. The narration comes from demo_messages.json (en, ko); the
bot's own words come from its message catalog, in the same language.

At the end the demo checks that each step had the effect the walkthrough
promises (alerts, resolved findings, the guardrail in enforce mode, /status)
and says which did not.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TextIO

from iamguard.checks import CATALOG
from iamguard.domain.account import ADMINISTRATOR_ACCESS_ARN, CHANGE_PASSWORD_POLICY_ARN
from iamguard.domain.alerts import Detection
from iamguard.domain.messages import Language

from iamguard_cli.local.runtime import LocalRuntime
from iamguard_cli.mfa import Enrollment, authenticator_codes

ADMIN = "wonjun_admin"
ALIAS = "iamguard-demo"
# A password for the demo account only: it exists in this process and the local moto, nowhere else.
DEMO_PASSWORD = "Demo-Walkthrough-Password-1!"
KNOWN_IDS = frozenset(CATALOG) | {detection.value for detection in Detection}
_ID_TOKEN = re.compile(r"[a-z][a-z_]+[a-z]")


@cache
def narration(language: Language) -> dict[str, str]:
    """The demo's own sentences, from demo_messages.json."""
    text = resources.files("iamguard_cli.local").joinpath("demo_messages.json").read_text(encoding="utf-8")
    catalog: dict[str, dict[str, str]] = json.loads(text)
    return catalog[language]


def message_ids(payload: dict[str, Any]) -> set[str]:
    """Check and detection ids a Slack message is about (its context line names them)."""
    ids: set[str] = set()
    for block in payload.get("blocks", []):
        if block.get("type") == "context":
            for element in block.get("elements", []):
                ids.update(token for token in _ID_TOKEN.findall(str(element.get("text", ""))) if token in KNOWN_IDS)
    return ids


def one_line(payload: dict[str, Any]) -> str:
    """A Slack message in one line: its fallback text, else its header."""
    text = str(payload.get("text") or "")
    if not text:
        headers = [b["text"]["text"] for b in payload.get("blocks", []) if b.get("type") == "header"]
        text = headers[0] if headers else "(message)"
    return text.replace("*", "").replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")


@dataclass
class StepOutcome:
    key: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return set().union(*(message_ids(m) for m in self.messages)) if self.messages else set()


@dataclass
class DemoResult:
    steps: dict[str, StepOutcome]
    expectations: list[tuple[str, bool]]
    status: dict[str, Any]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(met for _, met in self.expectations)


class Demo:
    """Runs the walkthrough against a started LocalRuntime and tells it on `out`."""

    def __init__(self, runtime: LocalRuntime, out: TextIO, *, language: Language = "en") -> None:
        self.runtime = runtime
        self.out = out
        self.language = language
        self.text = narration(language)
        self.aws = runtime.root_aws()
        self.iam = self.aws.iam()
        self.steps: dict[str, StepOutcome] = {}
        self._seeds: dict[str, str] = {}  # what the authenticator app holds; never printed
        self._guardrail: dict[str, bool] = {}  # enforce mode: attached after create_admin, removed after MFA
        self._seen = 0
        self._number = 0

    # -- output ------------------------------------------------------------------
    def say(self, key: str, **values: Any) -> None:
        self.out.write(self.text[key].format(**values) + "\n")
        self.out.flush()

    def did(self, key: str, **values: Any) -> None:
        self.say("did", text=self.text[key].format(**values))

    def said(self, key: str, **values: Any) -> None:
        self.say("said", text=self.text[key].format(**values))

    # -- steps ---------------------------------------------------------------------
    STEPS = (
        "audit",
        "root_signin",
        "root_mfa",
        "create_admin",
        "admin_signin",
        "alias",
        "admin_mfa",
        "admin_signin_mfa",
        "status",
    )

    def _step(self, key: str, action: Callable[[], None], **title_values: Any) -> StepOutcome:
        self._number += 1
        self.out.write("\n")
        self.say("step", n=self._number, total=len(self.STEPS), title=self.text[f"{key}.title"].format(**title_values))
        action()
        self.runtime.wait_idle()
        outcome = StepOutcome(key, self._new_messages())
        for message in outcome.messages:
            self.say("said", text=one_line(message))
        if not outcome.messages and key != "status":
            self.say("said_nothing")
        self.steps[key] = outcome
        return outcome

    def _new_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = list(self.runtime.slack.messages)
        new, self._seen = messages[self._seen :], len(messages)
        return new

    def run(self) -> DemoResult:
        started = time.monotonic()
        self._step("audit", self.audit)
        self._step("root_signin", self.root_signs_in)
        self._step("root_mfa", self.root_enrolls_mfa)
        self._step("create_admin", self.create_admin)
        self._step("admin_signin", lambda: self.sign_in(ADMIN, "admin_signin.did"))
        self._step("alias", self.create_alias)
        self._step("admin_mfa", self.admin_enrolls_mfa)
        self._step("admin_signin_mfa", self.admin_signs_in_with_mfa)
        status: dict[str, Any] = {}
        self._step("status", lambda: status.update(self.show_status()), url=f"{self.runtime.api_url}/status")
        expectations = self.expectations(status)
        result = DemoResult(self.steps, expectations, status, time.monotonic() - started)
        self.summary(result)
        return result

    def root_signs_in(self) -> None:
        self.sign_in("root", "root_signin.did")

    def sign_in(self, user: str, key: str, code: str | None = None) -> None:
        result = self.runtime.sign_in(user, mfa_code=code)
        self.did(key, mfa=result.mfa_used)

    def audit(self) -> None:
        (invocation,) = self.runtime.run_audit()
        if invocation.error is not None:
            raise RuntimeError(f"the audit failed: {invocation.error}")
        result = invocation.result if isinstance(invocation.result, dict) else {}
        summary = result.get("summary", {})
        failed = sum(summary.get("failed_by_severity", {}).values())
        self.did("audit.did", total=summary.get("total", 0), failed=failed, changes=result.get("changes", 0))

    def _enroll(self, user: str | None) -> str:
        """What a person does with an authenticator app: scan, read two consecutive codes, type them."""
        enrollment = Enrollment(self.iam, self.runtime.account_id)
        device = enrollment.create(user)
        enrollment.enable(device, *authenticator_codes(device.seed))
        self._seeds[user or "root"] = device.seed
        return device.serial_number

    def root_enrolls_mfa(self) -> None:
        serial = self._enroll(None)
        self.did("root_mfa.did.create", serial=serial)
        self.did("root_mfa.did.codes")

    def create_admin(self) -> None:
        self.iam.create_user(UserName=ADMIN)
        self.did("create_admin.did.user")
        self.iam.create_login_profile(UserName=ADMIN, Password=DEMO_PASSWORD, PasswordResetRequired=True)
        self.did("create_admin.did.profile")
        for arn in (ADMINISTRATOR_ACCESS_ARN, CHANGE_PASSWORD_POLICY_ARN):
            self.iam.attach_user_policy(UserName=ADMIN, PolicyArn=arn)
            self.did("create_admin.did.attach", policy=arn.rsplit("/", 1)[-1])
        self.runtime.wait_idle()
        guardrail = self.guardrail_attached()
        if self.runtime.options.mode == "enforce":
            self._guardrail["attached"] = guardrail is not None
            if guardrail:
                self.did("create_admin.guardrail", policy=guardrail.rsplit("/", 1)[-1])
        else:
            self.did("create_admin.monitor")

    def guardrail_attached(self) -> str | None:
        guardrail = self.runtime.provisioned.refs.get("GuardrailPolicy")
        attached = self.iam.list_attached_user_policies(UserName=ADMIN)["AttachedPolicies"]
        return guardrail if guardrail and any(p["PolicyArn"] == guardrail for p in attached) else None

    def create_alias(self) -> None:
        self.iam.create_account_alias(AccountAlias=ALIAS)
        self.did("alias.did", alias=ALIAS)

    def admin_enrolls_mfa(self) -> None:
        serial = self._enroll(ADMIN)
        self.did("admin_mfa.did", serial=serial)
        if self.runtime.options.mode == "enforce" and self._guardrail.get("attached"):
            self.runtime.wait_idle()
            self._guardrail["removed"] = self.guardrail_attached() is None
            if self._guardrail["removed"]:
                policy = str(self.runtime.provisioned.refs.get("GuardrailPolicy", "")).rsplit("/", 1)[-1]
                self.did("admin_mfa.guardrail_removed", policy=policy)

    def admin_signs_in_with_mfa(self) -> None:
        _, current = authenticator_codes(self._seeds[ADMIN])
        self.sign_in(ADMIN, "admin_signin_mfa.did", current)

    def show_status(self) -> dict[str, Any]:
        from iamguard.domain.findings import Severity
        from iamguard.notify.catalog import fill, load_catalog

        with urllib.request.urlopen(f"{self.runtime.api_url}/status", timeout=30) as response:  # noqa: S310 - 127.0.0.1
            status: dict[str, Any] = json.loads(response.read())
        bot = load_catalog(self.language)  # the bot's own words for severities and checks
        last = status.get("last_audit") or {}
        verdict = self.text.get(f"verdict.{status['verdict']}", status["verdict"])
        self.said("status.verdict", verdict=verdict, age=last.get("age_seconds", "?"))
        self.said("status.users", **status["users"])
        failing = [(Severity(severity), n) for severity, n in status["failed_by_severity"].items() if n]
        if failing:
            self.said("status.failing", counts=", ".join(f"{bot.severity[severity]} {n}" for severity, n in failing))
        else:
            self.said("status.none_failing")
        for check in status.get("root", []) + status.get("account", []):
            passed = check["status"] == "PASS"
            resource = check["resource_name"]
            detail = check["detail"]
            if self.language != "en" and check["check_id"] in bot.checks:
                text = bot.check(check["check_id"])
                detail = fill(text.passed if passed else text.failed, resource=resource)
            mark = "✓" if passed else "✗"
            self.said("status.check", mark=mark, check_id=check["check_id"], resource=resource, detail=detail)
        return status

    # -- verdict -------------------------------------------------------------------
    def _finding(self, check_id: str, user: str | None = None) -> str | None:
        """The stored status of a check: of `user`, or of root / the account (named by id or alias)."""
        from iamguard.persistence.findings import FindingsStore

        store = FindingsStore(self.aws.dynamodb(), self.runtime.findings_table)
        for finding in store.findings():
            if finding.check_id == check_id and (user is None or finding.resource_name == user):
                return finding.status.value
        return None

    def expectations(self, status: dict[str, Any]) -> list[tuple[str, bool]]:
        ids = {key: outcome.ids for key, outcome in self.steps.items()}
        checks = [
            ("expect.root_mfa_flagged", "root_mfa_enabled" in ids["audit"]),
            (
                "expect.root_signin",
                {Detection.ROOT_CONSOLE_SIGN_IN.value, "root_not_used_recently"} <= ids["root_signin"]
                and self._finding("root_not_used_recently") == "FAIL",
            ),
            (
                "expect.root_mfa_resolved",
                "root_mfa_enabled" in ids["root_mfa"] and self._finding("root_mfa_enabled") == "PASS",
            ),
            (
                "expect.admin_alerts",
                {"user_console_mfa", "user_admin_without_mfa", "user_no_direct_policies"} <= ids["create_admin"],
            ),
        ]
        if self.runtime.options.mode == "enforce":
            checks.append(
                ("expect.guardrail", self._guardrail.get("attached", False) and self._guardrail.get("removed", False))
            )
        checks += [
            ("expect.admin_signin", Detection.CONSOLE_SIGN_IN_WITHOUT_MFA.value in ids["admin_signin"]),
            (
                "expect.alias_resolved",
                "account_alias_set" in ids["alias"] and self._finding("account_alias_set") == "PASS",
            ),
            (
                "expect.admin_resolved",
                self._finding("user_console_mfa", ADMIN) == "PASS"
                and self._finding("user_admin_without_mfa", ADMIN) == "PASS",
            ),
            ("expect.status", bool(status.get("verdict"))),
        ]
        return checks

    def summary(self, result: DemoResult) -> None:
        self.out.write("\n")
        self.say("summary.title")
        messages = list(self.runtime.slack.messages)
        detections = {d.value for d in Detection}
        alerts = sum(1 for m in messages if message_ids(m) & detections)
        actions = sum(self._guardrail.values())  # the guardrail attached, then taken off again
        self.say("summary.messages", count=len(messages), alerts=alerts, actions=actions)
        for key, met in result.expectations:
            self.say("summary.expect", mark="✓" if met else "✗", text=self.text[key])
        self.say("summary.took", seconds=result.seconds)
        self.say("summary.ok" if result.ok else "summary.failed")
