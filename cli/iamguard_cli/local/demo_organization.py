"""`iamguard demo --organization`: a new account joins the organization and is watched from the hub at once.

Against a LocalRuntime started with `accounts=N` (an organization on moto, the hub as its
management account), every step is a real call to the local endpoint:

1. the organization audit: the planner queues one audit per ACTIVE account, the audit queue's
   mapping hands each to the audit function;
2. a new account joins: Organizations CreateAccount, then the member stack in it (the StackSet's
   automatic deployment) — checked from inside the account: audit role, guardrail, forward rules;
3. its owner gives it an alias;
4. someone in it creates an administrator with a console password and no MFA: the events go to the
   member's default bus, its forward rule carries them to the hub's bus, the hub's handler
   evaluates them in that account, and the Slack message names the account (id and alias);
5. the organization audit again, the new account included;
6. GET /accounts and GET /status over HTTP: the new account fails, and so does the organization.

The demo is a check: each step's expectation is verified, and `DemoResult.ok` is False when any
was not met (the command then exits non-zero).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from iamguard.domain.account import ADMINISTRATOR_ACCESS_ARN
from iamguard.domain.messages import Language

from iamguard_cli.local.demo import DEMO_PASSWORD, StepOutcome, narration, one_line
from iamguard_cli.local.organization import MemberAccount
from iamguard_cli.local.runtime import AUDIT_FUNCTION, PLAN_AUDIT_FUNCTION, LocalRuntime

NEW_ACCOUNT = "payments-sandbox"
NEW_ALIAS = "acme-payments-sandbox"
ADMIN = "dev_admin"
AUDIT_ROLE = "iamguard-member-audit"
WAIT_SECONDS = 120.0  # for the hub to handle what a step caused (a loaded machine is slow)


@dataclass
class OrganizationDemoResult:
    steps: dict[str, StepOutcome]
    expectations: list[tuple[str, bool]]
    accounts: list[dict[str, Any]]
    status: dict[str, Any]
    new_account: str
    seconds: float
    problems: list[str] = field(default_factory=list)  # a step that raised: what went wrong

    @property
    def ok(self) -> bool:
        return not self.problems and all(met for _, met in self.expectations)


class OrganizationDemo:
    """Runs the organization walkthrough against a started LocalRuntime (with an organization)."""

    STEPS = ("audit", "join", "alias", "create_admin", "audit_again", "accounts", "status")

    def __init__(self, runtime: LocalRuntime, out: TextIO, *, language: Language = "en") -> None:
        if runtime.organization is None:
            raise ValueError("the organization demo needs a runtime started with accounts=N")
        self.runtime = runtime
        self.organization = runtime.organization
        self.out = out
        self.language = language
        self.text = narration(language)
        self.steps: dict[str, StepOutcome] = {}
        self.checks: list[tuple[str, bool]] = []
        self.problems: list[str] = []
        self.member: MemberAccount | None = None
        self.audits: dict[str, list[str]] = {}  # step → accounts the audit function audited from the queue
        self.planned: dict[str, int] = {}  # step → accounts the planner queued
        self.accounts: list[dict[str, Any]] = []
        self.status: dict[str, Any] = {}
        self._seen = 0
        self._number = 0

    # -- output --------------------------------------------------------------------
    def say(self, key: str, **values: Any) -> None:
        self.out.write(self.text[key].format(**values) + "\n")
        self.out.flush()

    def did(self, key: str, **values: Any) -> None:
        self.say("did", text=self.text[key].format(**values))

    def said(self, key: str, **values: Any) -> None:
        self.say("said", text=self.text[key].format(**values))

    def expect(self, key: str, met: bool) -> None:
        """Record whether a step had the effect it promises, and say so at once."""
        self.checks.append((key, met))
        self.say("org.check", mark="✓" if met else "✗", text=self.text[key])

    # -- steps ---------------------------------------------------------------------
    def _step(self, key: str, action: Callable[[], None], **title_values: Any) -> None:
        self._number += 1
        self.out.write("\n")
        title = self.text[f"org.{key}.title"].format(**title_values)
        self.say("step", n=self._number, total=len(self.STEPS), title=title)
        try:
            action()
            self.runtime.wait_idle(WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a step that cannot run is a failed check, told plainly
            self.problems.append(f"{key}: {type(exc).__name__}: {exc}")
            self.say("org.problem", step=key, error=f"{type(exc).__name__}: {exc}")
            self.checks.append((f"org.expect.{key}", False))
        outcome = StepOutcome(key, self._new_messages())
        self.steps[key] = outcome
        for message in outcome.messages:
            self.say("said", text=one_line(message))

    def _new_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = list(self.runtime.slack.messages)
        new, self._seen = messages[self._seen :], len(messages)
        return new

    def run(self) -> OrganizationDemoResult:
        started = time.monotonic()
        self._step("audit", lambda: self.organization_audit("audit"))
        self._step("join", self.join)
        if self.member is not None:
            self._step("alias", self.create_alias, alias=NEW_ALIAS)
            self._step("create_admin", self.create_admin, user=ADMIN)
            self._step("audit_again", lambda: self.organization_audit("audit_again"))
        self._step("accounts", self.show_accounts, url=f"{self.runtime.api_url}/accounts")
        self._step("status", self.show_status, url=f"{self.runtime.api_url}/status")
        result = OrganizationDemoResult(
            self.steps,
            self.checks,
            self.accounts,
            self.status,
            self.member.account_id if self.member else "",
            time.monotonic() - started,
            self.problems,
        )
        self.summary(result)
        return result

    def organization_audit(self, step: str) -> None:
        invocations = self.runtime.run_audit()
        planner = next((i for i in invocations if i.function == PLAN_AUDIT_FUNCTION), None)
        if planner is None or planner.error is not None:
            raise RuntimeError(f"the planner failed: {planner.error if planner else 'it did not run'}")
        planned = dict(planner.result) if isinstance(planner.result, dict) else {}
        audited = [
            json.loads(record["body"])["account_id"]
            for i in invocations
            if i.function == AUDIT_FUNCTION and i.error is None and isinstance(i.event, dict)
            for record in i.event.get("Records", [])
            if not (i.result or {}).get("batchItemFailures")
        ]
        self.planned[step], self.audits[step] = int(planned.get("queued", 0)), audited
        self.did("org.audit.did.plan", queued=planned.get("queued", 0), accounts=planned.get("accounts", 0))
        self.did("org.audit.did.audits", count=len(audited), accounts=", ".join(sorted(audited)))
        expected = {self.runtime.account_id, *(m.account_id for m in self.organization.members)}
        self.expect(f"org.expect.{step}", set(audited) == expected and self.planned[step] == len(expected))

    def join(self) -> None:
        member = self.runtime.join_organization(NEW_ACCOUNT)
        self.member = member
        self.did("org.join.did.account", name=NEW_ACCOUNT, account=member.account_id)
        organizations = self.runtime.root_aws().client("organizations")
        listed = {a["Id"]: a.get("State") or a.get("Status") for a in organizations.list_accounts()["Accounts"]}
        state = listed.get(member.account_id)
        # What the StackSet instance gave it, read from inside the new account
        inside = self.organization.context(member.session)
        iam = inside.iam()
        role = iam.get_role(RoleName=AUDIT_ROLE)["Role"]["Arn"]
        guardrail = self._guardrail_arn()
        iam.get_policy(PolicyArn=guardrail)
        self.did("org.join.did.stack", role=role, policy=guardrail.rsplit("/", 1)[-1])
        events = inside.client("events")
        hub_bus = self.runtime.hub_bus_arn()
        forwarding = [
            rule["Name"]
            for rule in events.list_rules(EventBusName="default")["Rules"]
            if any(t["Arn"] == hub_bus for t in events.list_targets_by_rule(Rule=rule["Name"])["Targets"])
        ]
        self.did("org.join.did.rules", rules=", ".join(forwarding), bus=hub_bus)
        self.expect("org.expect.join", state == "ACTIVE" and len(forwarding) >= 1)

    def _guardrail_arn(self) -> str:
        """The member stack's guardrail: the hub's guardrail name, in the member account."""
        assert self.member is not None
        return f"arn:aws:iam::{self.member.account_id}:policy/{self.runtime.options.stack_name}-mfa-guardrail"

    def _member_iam(self) -> Any:
        assert self.member is not None
        return self.organization.context(self.member.session).iam()

    def create_alias(self) -> None:
        self._member_iam().create_account_alias(AccountAlias=NEW_ALIAS)
        self.did("org.alias.did", alias=NEW_ALIAS)

    def create_admin(self) -> None:
        assert self.member is not None
        iam = self._member_iam()
        iam.create_user(UserName=ADMIN)
        self.did("org.create_admin.did.user", user=ADMIN, account=self.member.account_id)
        iam.create_login_profile(UserName=ADMIN, Password=DEMO_PASSWORD, PasswordResetRequired=True)
        self.did("org.create_admin.did.profile", user=ADMIN)
        iam.attach_user_policy(UserName=ADMIN, PolicyArn=ADMINISTRATOR_ACCESS_ARN)
        self.did("org.create_admin.did.attach", user=ADMIN, policy=ADMINISTRATOR_ACCESS_ARN.rsplit("/", 1)[-1])
        self.runtime.wait_idle(WAIT_SECONDS)
        forwarded = [
            e
            for e in self.runtime.trail.recent
            if e.get("account") == self.member.account_id
            and (e.get("detail") or {}).get("requestParameters", {}).get("userName") == ADMIN
        ]
        handled = self._handled_on_the_hub()
        self.did("org.create_admin.did.forwarded", events=len(forwarded), handled=handled)
        messages = list(self.runtime.slack.messages[self._seen :])
        label = f"{self.member.account_id} ({NEW_ALIAS})"
        naming = [m for m in messages if label in json.dumps(m, ensure_ascii=False)]
        self.said("org.create_admin.named", count=len(naming), total=len(messages), label=label)
        ids = StepOutcome("", naming).ids
        self.expect("org.expect.forwarded", handled > 0)
        self.expect("org.expect.named", {"user_admin_without_mfa", "user_console_mfa"} <= ids)
        if self.runtime.options.mode == "enforce":
            # the hub attached the member's own guardrail through the member's enforce role
            attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=ADMIN)["AttachedPolicies"]}
            guardrail = self._guardrail_arn()
            if guardrail in attached:
                self.did("org.create_admin.guardrail", policy=guardrail.rsplit("/", 1)[-1], user=ADMIN)
            self.expect("org.expect.guardrail", guardrail in attached)

    def _handled_on_the_hub(self) -> int:
        """The hub's event function runs that evaluated one of the new admin's events in the new account."""
        assert self.runtime.dispatcher is not None and self.member is not None
        account = self.member.account_id
        return sum(
            1
            for i in self.runtime.dispatcher.invocations
            if i.error is None
            and isinstance(i.event, dict)
            and i.event.get("account") == account
            and (i.event.get("detail") or {}).get("requestParameters", {}).get("userName") == ADMIN
            and isinstance(i.result, dict)
            and i.result.get("outcome") == "evaluated"
        )

    def _get(self, path: str) -> dict[str, Any]:
        url = f"{self.runtime.api_url}{path}"
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the local API on 127.0.0.1
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def _verdict(self, verdict: str) -> str:
        return self.text.get(f"verdict.{verdict}", verdict)

    def show_accounts(self) -> None:
        self.accounts = list(self._get("/accounts").get("accounts", []))
        names = {m.account_id: m.name for m in self.organization.members}
        names[self.runtime.account_id] = self.text["org.hub"]
        for account in self.accounts:
            users = account.get("users", {})
            failing = sum((account.get("failed_by_severity") or {}).values())
            self.said(
                "org.accounts.line",
                mark="✗" if account["verdict"] == "non_compliant" else "✓",
                account=account["account_id"],
                name=names.get(account["account_id"], "?"),
                verdict=self._verdict(account["verdict"]),
                non_compliant=users.get("non_compliant", 0),
                total=users.get("total", 0),
                failing=failing,
            )
        new = next((a for a in self.accounts if self.member and a["account_id"] == self.member.account_id), None)
        self.expect(
            "org.expect.accounts",
            new is not None
            and new["verdict"] == "non_compliant"
            and new.get("last_audit") is not None
            and new.get("users", {}).get("non_compliant", 0) >= 1,
        )

    def show_status(self) -> None:
        self.status = self._get("/status")
        counts = self.status.get("accounts") or {}
        self.said(
            "org.status.verdict",
            organization=self.status.get("organization_id"),
            verdict=self._verdict(str(self.status.get("verdict"))),
            total=counts.get("total", 0),
            non_compliant=counts.get("non_compliant", 0),
            compliant=counts.get("compliant", 0),
            unknown=counts.get("unknown", 0),
        )
        self.said("status.users", **self.status["users"])
        self.expect(
            "org.expect.status",
            self.status.get("organization_id") == self.organization.organization_id
            and self.status.get("verdict") == "non_compliant"
            and counts.get("non_compliant", 0) >= 1,
        )

    def summary(self, result: OrganizationDemoResult) -> None:
        self.out.write("\n")
        self.say("summary.title")
        messages = list(self.runtime.slack.messages)
        self.say("org.summary.messages", count=len(messages), account=result.new_account or "?")
        for key, met in result.expectations:
            self.say("summary.expect", mark="✓" if met else "✗", text=self.text.get(key, key))
        for problem in result.problems:
            self.say("org.summary.problem", problem=problem)
        self.say("summary.took", seconds=result.seconds)
        self.say("org.summary.ok" if result.ok else "summary.failed")
