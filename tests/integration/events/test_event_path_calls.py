"""What one CreateUser costs: the API calls (IAM and DynamoDB together) of a warm event function.

Counted where every call passes (botocore's BaseClient._make_api_call), so nothing the
handler makes - idempotency record, IAM reads, findings, activity - escapes the count.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.client import BaseClient
from iamguard.aws import AwsContext

from tests.integration.events.support import Bot, BotFactory, sample

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
CHANGE_PASSWORD = "arn:aws:iam::aws:policy/IAMUserChangePassword"
# The walkthrough's administrator, who creates the users (not root: root's own use is a finding of its own).
CREATOR = {
    "type": "IAMUser",
    "principalId": "AIDAADMINEXAMPLE0001",
    "arn": "arn:aws:iam::123456789012:user/wonjun_admin",
    "accountId": "123456789012",
    "accessKeyId": "ASIAADMINEXAMPLE0001",
    "userName": "wonjun_admin",
}
# Issue 13 asks for 8. What remains is what correctness needs today: the idempotency record
# (in progress, completed: 2), the user's live state (GetUser, its attached and inline policy
# lists, its groups, MFA devices, login profile, access keys: 7 IAM reads), the user's partition
# (1 query: its findings and its guardrail record) and 1 transaction (its findings, the summary's
# counters and the user_created activity item).
BUDGET = 11


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    counted: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counting(client: BaseClient, operation: str, params: Any) -> Any:
        counted[f"{client.meta.service_model.service_name}:{operation}"] += 1
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    yield counted


def create_user(aws: AwsContext, name: str) -> dict[str, Any]:
    """A user made the way the walkthrough makes one, and the CreateUser event that reports it."""
    iam = aws.iam()
    created = iam.create_user(UserName=name)["User"]
    iam.create_login_profile(UserName=name, Password="Initial-Passw0rd!", PasswordResetRequired=True)
    iam.attach_user_policy(UserName=name, PolicyArn=ADMIN)
    iam.attach_user_policy(UserName=name, PolicyArn=CHANGE_PASSWORD)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = sample("create_user", new_id=True, eventTime=now, userIdentity=CREATOR)
    event["detail"]["requestParameters"] = {"userName": name}
    event["detail"]["responseElements"]["user"].update(userName=name, userId=created["UserId"], arn=created["Arn"])
    event["id"] = str(uuid.uuid4())
    return event


def test_a_new_user_costs_a_handful_of_calls(account: AwsContext, make_bot: BotFactory, calls: Counter[str]) -> None:
    # Given a warm event function (one event already processed: clients made, documents read)
    bot: Bot = make_bot()
    assert bot(create_user(account, "first_user"))["outcome"] == "evaluated"
    event = create_user(account, "new_user")

    # When a CreateUser for a new user arrives
    calls.clear()
    result = bot(event)

    # Then it was evaluated and stored in a handful of calls, one read per resource
    made = Counter(calls)
    assert sum(made.values()) == BUDGET, sorted(made.items())  # fewer: lower the budget; more: find out why
    assert made["dynamodb:GetItem"] == 0, sorted(made.items())  # the guardrail record comes with the findings
    assert made["dynamodb:Query"] == 1 and made["dynamodb:TransactWriteItems"] == 1, sorted(made.items())
    assert made["dynamodb:PutItem"] == 1, sorted(made.items())  # the idempotency record
    assert made["iam:GetAccountPasswordPolicy"] == 0 and made["iam:GetPolicyVersion"] == 0, sorted(made.items())
    assert result["outcome"] == "evaluated" and result["duplicate"] is False
    assert [a["detection"] for a in result["alerts"]] == ["user_created"]
    recorded = [
        item["data"]["detection"] for item in bot.activity("alert") if item["data"]["resource_name"] == "new_user"
    ]
    assert recorded == ["user_created"]  # written with the findings, in their transaction
    stored = {f.check_id: f.status.value for f in bot.store.findings_for_resource("user", "new_user", "")}
    assert stored["user_console_mfa"] == "FAIL" and stored["user_admin_access"] == "FAIL"
    assert stored["user_password_reset_possible"] == "PASS"
