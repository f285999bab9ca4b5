"""Enforcement (MODE=enforce): attach the MFA guardrail and missing required policies.

Only two kinds of action exist, both `iam:AttachUserPolicy`, and only with
policy ARNs from settings (the guardrail the stack creates, and the configured
required policies): the deployed role may attach nothing else. Nothing is ever
deleted or detached; root and exempt users are never touched. In monitor mode
the same plan is reported as actions not performed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from iamguard import policy
from iamguard.alerts import Action
from iamguard.checks.base import exemption_reason
from iamguard.config import Settings
from iamguard.models import Group, User
from iamguard.policies import GUARDRAIL_DESCRIPTION, GUARDRAIL_POLICY_NAME, guardrail_document

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

ATTACH_GUARDRAIL = "attach_guardrail_policy"
ATTACH_REQUIRED = "attach_required_policy"
# Errors that mean "try the whole event again later", not "this action failed".
RETRYABLE = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"})


@dataclass(frozen=True)
class PlannedAction:
    action: str
    policy_arn: str
    reason: str


def plan(user: User, groups: Mapping[str, Group], settings: Settings) -> list[PlannedAction]:
    """What enforcement would do for this user now (empty for exempt users)."""
    if exemption_reason(user, settings) is not None:
        return []
    in_effect = policy.policy_arns_in_effect(user, groups)
    planned = []
    console = user.credentials is not None and user.credentials.password_enabled
    guardrail = settings.guardrail_policy_arn
    if console and not user.has_mfa and guardrail and guardrail not in in_effect:
        planned.append(
            PlannedAction(
                ATTACH_GUARDRAIL,
                guardrail,
                f"{user.name} has a console password but no MFA device: everything but setting up MFA and "
                "changing the password is denied until the user signs in with MFA.",
            )
        )
    for arn in settings.required_policy_arns:
        if arn not in in_effect:
            planned.append(PlannedAction(ATTACH_REQUIRED, arn, f"{user.name} is missing the required policy {arn}."))
    return planned


class Enforcer:
    """Carries out (enforce) or reports (monitor) the plan for one user, through one IAM client."""

    def __init__(self, iam: IAMClient, settings: Settings, *, clock: Callable[[], datetime] | None = None) -> None:
        self.iam = iam
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))

    def enforce(self, user: User, groups: Mapping[str, Group], event_id: str) -> list[Action]:
        """Attach what the plan says; every attempt becomes an `Action` tied to the causing event."""
        actions = []
        for step in plan(user, groups, self.settings):
            if self.settings.mode != "enforce":
                actions.append(self._action(step, user, event_id, performed=False, note="monitor mode: not attached"))
                continue
            allowed = {self.settings.guardrail_policy_arn, *self.settings.required_policy_arns}
            if step.policy_arn not in allowed:  # defence in depth; the role's iam:PolicyARN condition agrees
                raise ValueError(f"refusing to attach {step.policy_arn}: not a configured policy")
            try:
                self.iam.attach_user_policy(UserName=user.name, PolicyArn=step.policy_arn)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if error.get("Code") in RETRYABLE:
                    raise
                actions.append(
                    self._action(
                        step,
                        user,
                        event_id,
                        performed=False,
                        note="attach failed",
                        error=f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip(),
                    )
                )
                continue
            actions.append(self._action(step, user, event_id, performed=True))
        return actions

    def _action(
        self,
        step: PlannedAction,
        user: User,
        event_id: str,
        *,
        performed: bool,
        note: str | None = None,
        error: str | None = None,
    ) -> Action:
        return Action(
            action=step.action,
            user_name=user.name,
            policy_arn=step.policy_arn,
            performed=performed,
            reason=f"{step.reason} ({note})" if note else step.reason,
            event_id=event_id,
            at=self._clock(),
            error=error,
        )


def ensure_guardrail_policy(iam: IAMClient, account_id: str) -> str:
    """Create the guardrail policy if missing; return its ARN (local emulators: in AWS the stack creates it)."""
    arn = f"arn:aws:iam::{account_id}:policy/{GUARDRAIL_POLICY_NAME}"
    try:
        iam.get_policy(PolicyArn=arn)
        return arn
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise
    created: str = iam.create_policy(
        PolicyName=GUARDRAIL_POLICY_NAME,
        PolicyDocument=json.dumps(guardrail_document()),
        Description=GUARDRAIL_DESCRIPTION,
    )["Policy"]["Arn"]
    return created
