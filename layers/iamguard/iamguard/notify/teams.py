"""Microsoft Teams: an Adaptive Card through a Workflows (Power Automate) or incoming webhook.

The webhook URL is a secret (Secrets Manager or SSM): a bare URL, or
{"url": "https://…"}. The body is what both kinds of Teams webhook accept: a
message with one Adaptive Card attachment. Teams refuses bodies over 28 KB
(HTTP 413); `payload` keeps under `SIZE_LIMIT` by dropping sections from the end
and saying so. A Workflows webhook answers 202; a legacy connector 200 with
"1", or 200 with an error text when Teams itself refused the message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from iamguard.domain.findings import Severity
from iamguard.domain.messages import Channel, Message, MessageKind
from iamguard.notify.base import DeliveryError
from iamguard.notify.catalog import load_catalog
from iamguard.notify.http_channel import HttpChannel, Request
from iamguard.notify.secrets import secret_fields

CARD_VERSION = "1.4"  # what Teams renders on desktop, web and mobile
SIZE_LIMIT = 27 * 1024  # bytes of JSON; Teams' limit is 28 KB for the whole request
TEXT_LIMIT = 2000  # characters per TextBlock: a long detail cannot crowd out the rest
COLORS = {Severity.CRITICAL: "Attention", Severity.HIGH: "Warning"}


def _cut(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": _cut(text), "wrap": True, **style}


def _sections(message: Message) -> list[list[dict[str, Any]]]:
    """Each section as a group of blocks, so that the card can drop whole sections."""
    groups = []
    for section in message.sections:
        blocks = [_text(section.title, weight="Bolder", spacing="Medium")]
        if section.lines:
            lines = [
                f"{n}. {line}" if section.numbered else f"- {line}" for n, line in enumerate(section.lines, start=1)
            ]
            blocks.append(_text("\n".join(lines)))
        if section.code:
            blocks.append(_text(section.code, fontType="Monospace"))
        groups.append(blocks)
    return groups


def card(message: Message, *, sections: int | None = None) -> dict[str, Any]:
    """The message as an Adaptive Card; `sections` = how many of its sections to keep."""
    body: list[dict[str, Any]] = [
        _text(message.headline, size="Large", weight="Bolder", color=COLORS.get(message.severity, "Default")),
        _text(message.summary),
    ]
    if message.fields:
        body.append({"type": "FactSet", "facts": [{"title": f.label, "value": _cut(f.value)} for f in message.fields]})
    groups = _sections(message)
    kept = groups if sections is None else groups[:sections]
    for group in kept:
        body += group
    notes = list(message.notes)
    if len(kept) < len(groups):
        notes.append(load_catalog(message.language).text("note.cut", count=len(groups) - len(kept)))
    for note in notes:
        body.append(_text(note, isSubtle=True, size="Small", spacing="Medium"))
    if message.footer:
        body.append(_text(message.footer, isSubtle=True, size="Small", separator=True))
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }


def payload(message: Message) -> dict[str, Any]:
    """What is posted: a message with one Adaptive Card, under Teams' size limit."""
    for keep in range(len(message.sections), -1, -1):
        body = {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card(message, sections=keep)}
            ],
        }
        if len(json.dumps(body).encode()) <= SIZE_LIMIT:
            return body
    return body  # headline, summary and facts alone: each block is capped, so this stays far below


def teams_url(secret: Any) -> str:
    fields = secret_fields(secret, "the Teams secret")
    url = fields.get("url") or fields.get("webhook_url") or fields.get("value")
    if not isinstance(url, str) or not url:
        raise DeliveryError("the Teams secret holds no webhook URL", permanent=True)
    return url


class TeamsNotifier(HttpChannel):
    """Posts each message as an Adaptive Card to one Teams channel."""

    channel = Channel.TEAMS
    name = "Teams"

    def accepts(self, message: Message) -> bool:
        return message.kind is not MessageKind.FINDINGS_SYNC

    def requests(self, message: Message, secret: Any) -> Sequence[Request]:
        return [Request(teams_url(secret), payload(message))]

    def answered(self, answer: Any) -> None:
        # A legacy connector answers 200 "1" when it posted, 200 with a reason when Teams refused.
        if answer.status == 200 and answer.body not in {"", "1"} and "error" in answer.body.lower():
            raise DeliveryError(f"Teams refused the message: {answer.body[:200]}")
