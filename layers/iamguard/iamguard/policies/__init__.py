"""Policy documents iamguard ships: the MFA guardrail that template.yaml and the local runtime both create."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

GUARDRAIL_POLICY_NAME = "iamguard-mfa-guardrail"
GUARDRAIL_DESCRIPTION = (
    "iamguard: denies everything except managing your own password and MFA device unless signed in with MFA "
    "(IAM User Guide example). Harmless once the user signs in with MFA."
)


@cache
def _load(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def guardrail_document() -> dict[str, Any]:
    """The guardrail policy document (a fresh copy: callers may not change the shipped one)."""
    document: dict[str, Any] = json.loads(_load("guardrail.json"))
    return document
