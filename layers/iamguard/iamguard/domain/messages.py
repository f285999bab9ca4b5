"""A message as people read it, already in its language; each channel only formats it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from iamguard.domain.findings import Finding, Severity

Language = Literal["en", "ko"]


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"  # the SNS topic (email subscription, or any other subscriber)
    SECURITY_HUB = "securityhub"
    TEAMS = "teams"  # a Microsoft Teams Workflows (or incoming) webhook
    PAGERDUTY = "pagerduty"  # PagerDuty Events API v2
    WEBHOOK = "webhook"  # any HTTPS endpoint: JSON signed with HMAC-SHA256


# The pair that stands in for each other when one fails (Dispatcher fallback).
PERSON_CHANNELS: tuple[Channel, ...] = (Channel.SLACK, Channel.EMAIL)
# What severity routing may name (NotifySettings.routing).
ROUTABLE_CHANNELS: tuple[Channel, ...] = (*PERSON_CHANNELS, Channel.TEAMS, Channel.PAGERDUTY, Channel.WEBHOOK)
# Where the scheduled digest goes (PagerDuty pages, it does not remind).
DIGEST_CHANNELS: tuple[Channel, ...] = (*PERSON_CHANNELS, Channel.TEAMS, Channel.WEBHOOK)


SUBJECT_LIMIT = 99  # SNS: "less than 100 characters"


class MessageKind(StrEnum):
    FINDING = "finding"  # a finding opened, escalated or resolved (one check, one or more resources)
    ALERT = "alert"  # a real-time detection
    ACTION = "action"  # an enforcement action
    DIGEST = "digest"  # the scheduled reminder
    FINDINGS_SYNC = "findings_sync"  # findings for Security Hub (not for people)


class Field(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    value: str
    code: bool = False  # an identifier: shown in monospace


class Section(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str
    lines: tuple[str, ...] = ()
    numbered: bool = False
    code: str | None = None  # a command, shown as a code block


class Message(BaseModel):
    """One announcement. `key` is stable: the same event or transition always yields the same key."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: MessageKind
    severity: Severity
    language: Language
    account_id: str
    created_at: datetime
    headline: str  # with a leading status icon
    summary: str  # what happened, one sentence
    fields: tuple[Field, ...] = ()
    sections: tuple[Section, ...] = ()
    notes: tuple[str, ...] = ()  # delivery notes (fallback, delay), shown above the footer
    footer: str = ""
    attributes: dict[str, str] = {}  # for machines: SNS message attributes, the DLQ, logs
    findings: tuple[Finding, ...] = ()  # what the message is about (Security Hub, notify_pending)

    @property
    def subject(self) -> str:
        """The headline as a one-line e-mail subject: no icon, no line breaks, under 100 characters."""
        words = self.headline.split()
        if words and not any(ch.isalnum() for ch in words[0]):
            words = words[1:]  # the icon
        text = "[iamguard] " + " ".join(words)
        return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 1].rstrip() + "…"

    def with_note(self, note: str) -> Message:
        return self.model_copy(update={"notes": (*self.notes, note)})

    def plain_text(self) -> str:
        """The whole message as readable plain text (e-mail body, terminal)."""
        out = [self.headline, "", self.summary, ""]
        width = max((len(f.label) for f in self.fields), default=0)
        out += [f"{f.label.ljust(width)}  {f.value}" for f in self.fields]
        for section in self.sections:
            out += ["", section.title]
            for number, line in enumerate(section.lines, start=1):
                out.append(f"  {number}. {line}" if section.numbered else f"  • {line}")
            if section.code:
                out.append(f"  $ {section.code}")
        if self.notes:
            out += ["", *self.notes]
        if self.footer:
            out += ["", f"— {self.footer}"]
        return "\n".join(out).strip() + "\n"
