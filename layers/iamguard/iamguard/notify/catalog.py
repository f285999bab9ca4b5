"""The message catalog: every word iamguard says to people, in English and Korean.

`messages/<language>.json` holds the UI strings, and per check id, detection id
and enforcement action the title, risk, result sentences and fix steps. Code
never carries user-facing prose; it looks it up here.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from iamguard.domain.findings import Severity
from iamguard.domain.messages import Channel, Language


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckText(_Frozen):
    title: str
    risk: str
    failed: str  # one sentence, {resource}
    passed: str
    console: tuple[str, ...]  # steps, {user} = the user's name
    cli: str  # <user> = the user's name


class DetectionText(_Frozen):
    title: str
    summary: str  # {resource}
    risk: str
    console: tuple[str, ...]
    cli: str


class WithheldText(_Frozen):
    """Why iamguard held an action back, and what people should do instead."""

    summary: str  # {user}, {policy_name}; {due} (grace period), {by} and {at} (detached by hand)
    steps: tuple[str, ...]  # {user}
    cli: str  # <user>, {policy}, {account}


class ActionText(_Frozen):
    title: str  # {user}, {policy_name}, {action}
    performed: str
    monitor: str
    failed: str
    undo: tuple[str, ...]
    undo_cli: str  # <user>, {policy}
    withheld: dict[str, WithheldText] = {}  # by reason: access_key, grace_period, admin_detached


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # a template may use fewer or more names than a caller passes


def fill(template: str, **params: object) -> str:
    """Fill {name} placeholders; unknown ones are left as they are."""
    return template.format_map(_Placeholders({key: str(value) for key, value in params.items()}))


def for_user(text: str, user: str) -> str:
    """Put a user name into remediation text ({user} in console steps, <user> in commands)."""
    return text.replace("{user}", user).replace("<user>", user)


class Catalog(_Frozen):
    language: Language
    severity: dict[Severity, str]
    channel: dict[Channel, str]
    ui: dict[str, str]
    checks: dict[str, CheckText]
    detections: dict[str, DetectionText]
    actions: dict[str, ActionText]

    def text(self, key: str, **params: object) -> str:
        return fill(self.ui[key], **params)

    def check(self, check_id: str) -> CheckText:
        return self.checks[check_id]

    def detection(self, detection_id: str) -> DetectionText:
        return self.detections[detection_id]

    def action(self, name: str) -> ActionText:
        return self.actions.get(name) or self.actions["default"]


@cache
def load_catalog(language: Language) -> Catalog:
    """The catalog of one language (read once per process)."""
    raw = resources.files("iamguard.notify").joinpath("messages", f"{language}.json").read_text(encoding="utf-8")
    return Catalog.model_validate(json.loads(raw))
