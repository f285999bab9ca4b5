"""Policy documents iamguard ships: the MFA guardrail that template.yaml and the local runtime both create."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

GUARDRAIL_POLICY_NAME = "iamguard-mfa-guardrail"
GUARDRAIL_DESCRIPTION = (
    "iamguard: denies everything except setting up MFA and changing the password to any request without MFA "
    "context - console sessions signed in without MFA and every call made with a long-term access key, MFA "
    "enrolled or not (IAM User Guide example). Attached only to console users without MFA and without active "
    "access keys; detached once they have MFA."
)


@cache
def _load(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def guardrail_document() -> dict[str, Any]:
    """The guardrail policy document (a fresh copy: callers may not change the shipped one)."""
    document: dict[str, Any] = json.loads(_load("guardrail.json"))
    return document
