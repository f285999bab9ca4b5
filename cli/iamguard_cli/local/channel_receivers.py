"""Local stand-ins for Microsoft Teams, PagerDuty and a signed-webhook endpoint (see receiver.py).

Each checks a request as the real service would and answers as it does:

- `TeamsReceiver`: a Workflows webhook. A message with one Adaptive Card
  attachment, under 28 KB → 202; anything else → 400; over 28 KB → 413.
- `PagerDutyReceiver`: the Events API v2 (`/v2/enqueue`). routing_key,
  event_action, dedup_key; for a trigger, payload.summary (≤ 1024), source and
  severity (critical/error/warning/info) → 202 {"status": "success", …};
  otherwise 400 {"status": "invalid event", "errors": […]}. `alerts` holds
  each dedup key's state, as PagerDuty would: triggered or resolved.
- `WebhookReceiver`: checks X-Iamguard-Signature over the raw body with the
  signing key (and the timestamp's age) → 200, or 401.
"""

from __future__ import annotations

import secrets
from typing import Any, TextIO

from iamguard.notify.webhook import KEY_HEADER, SIGNATURE_HEADER, verify

from iamguard_cli.local.receiver import HttpReceiver, Reply

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
TEAMS_LIMIT = 28 * 1024
PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}


def _card_text(card: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for block in card.get("body", []):
        if block.get("type") == "TextBlock":
            lines.append(str(block.get("text", "")))
        elif block.get("type") == "FactSet":
            lines += [f"  {fact.get('title')}: {fact.get('value')}" for fact in block.get("facts", [])]
    return lines


class TeamsReceiver(HttpReceiver):
    """A Teams Workflows webhook ("Send webhook alerts to a channel")."""

    name = "teams"

    def __init__(self, port: int = 0, *, echo: TextIO | None = None) -> None:
        super().__init__(port, echo=echo)
        self.path = f"/workflows/{secrets.token_hex(16)}/triggers/manual/paths/invoke"

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    @staticmethod
    def card(payload: dict[str, Any]) -> dict[str, Any]:
        return dict(payload["attachments"][0]["content"])

    @property
    def headlines(self) -> list[str]:
        with self._lock:
            return [str(self.card(p)["body"][0]["text"]) for p in self.messages]

    def render(self, payload: dict[str, Any]) -> str:
        return "\n".join(_card_text(self.card(payload))) + "\n"

    def accept(self, path: str, headers: dict[str, str], raw: bytes, payload: dict[str, Any]) -> Reply:
        if path != self.path:
            return Reply(404, {"error": {"code": "TriggerNotFound"}})
        if len(raw) > TEAMS_LIMIT:
            return Reply(413, {"error": {"code": "RequestEntityTooLarge"}})
        attachments = payload.get("attachments")
        if payload.get("type") != "message" or not isinstance(attachments, list) or len(attachments) != 1:
            return Reply(400, {"error": {"code": "InvalidRequestContent"}})
        attachment = attachments[0]
        card = attachment.get("content") if isinstance(attachment, dict) else None
        if attachment.get("contentType") != ADAPTIVE_CARD or not isinstance(card, dict):
            return Reply(400, {"error": {"code": "InvalidRequestContent"}})
        if card.get("type") != "AdaptiveCard" or not card.get("version") or not card.get("body"):
            return Reply(400, {"error": {"code": "InvalidRequestContent"}})
        return Reply(202, "", delivered=True)


class PagerDutyReceiver(HttpReceiver):
    """The Events API v2 for one integration (its routing key)."""

    name = "pagerduty"

    def __init__(self, port: int = 0, *, echo: TextIO | None = None) -> None:
        super().__init__(port, echo=echo)
        self.routing_key = secrets.token_hex(16)  # 32 characters, like an integration key
        self.alerts: dict[str, str] = {}  # dedup_key -> "triggered" | "resolved"
        self.incidents = 0  # how many times a trigger opened an alert (not a repeat of an open one)

    @property
    def url(self) -> str:
        return f"{self.base_url}/v2/enqueue"

    def render(self, payload: dict[str, Any]) -> str:
        action = str(payload.get("event_action", "")).upper()
        summary = payload.get("payload", {}).get("summary", "")
        return f"{action} {payload.get('dedup_key')}" + (f"\n  {summary}" if summary else "") + "\n"

    def fault_body(self, path: str, status: int) -> str | dict[str, Any]:
        return {"status": "throttle event" if status == 429 else "error", "message": "try again"}

    def accept(self, path: str, headers: dict[str, str], raw: bytes, payload: dict[str, Any]) -> Reply:
        if path != "/v2/enqueue":
            return Reply(404, {"status": "not found"})
        errors = self._errors(payload)
        if errors:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
        key = str(payload["dedup_key"])
        with self._lock:
            if payload["event_action"] == "trigger":
                if self.alerts.get(key) != "triggered":
                    self.incidents += 1
                self.alerts[key] = "triggered"
            elif payload["event_action"] == "resolve" and key in self.alerts:
                self.alerts[key] = "resolved"
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key}, delivered=True)

    def _errors(self, event: dict[str, Any]) -> list[str]:
        errors = []
        if event.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        action = event.get("event_action")
        if action not in {"trigger", "acknowledge", "resolve"}:
            errors.append("'event_action' is missing or invalid")
        key = event.get("dedup_key")
        if not isinstance(key, str) or not key or len(key) > 255:
            errors.append("'dedup_key' is missing or longer than 255 characters")
        if action == "trigger":
            body = event.get("payload") or {}
            summary = body.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("'payload.summary' is missing or longer than 1024 characters")
            if not body.get("source"):
                errors.append("'payload.source' is missing")
            if body.get("severity") not in PAGERDUTY_SEVERITIES:
                errors.append("'payload.severity' must be one of critical, error, warning, info")
        return errors

    def open_alerts(self) -> set[str]:
        with self._lock:
            return {key for key, state in self.alerts.items() if state == "triggered"}


class WebhookReceiver(HttpReceiver):
    """An endpoint that accepts only requests signed with its key."""

    name = "webhook"

    def __init__(self, port: int = 0, *, echo: TextIO | None = None, signing_key: str | None = None) -> None:
        super().__init__(port, echo=echo)
        self.signing_key = signing_key or secrets.token_urlsafe(32)
        self.path = "/hooks/iamguard"

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    @property
    def keys(self) -> list[str]:
        """X-Iamguard-Key of each delivered request (a repeat shows up twice)."""
        with self._lock:
            return [r.headers.get(KEY_HEADER.lower(), "") for r in self.requests if r.status == 200]

    def render(self, payload: dict[str, Any]) -> str:
        return str(payload.get("text", ""))

    def accept(self, path: str, headers: dict[str, str], raw: bytes, payload: dict[str, Any]) -> Reply:
        if path != self.path:
            return Reply(404, {"error": "not found"})
        if not verify(self.signing_key, headers.get(SIGNATURE_HEADER.lower(), ""), raw):
            return Reply(401, {"error": "bad signature"})
        if payload.get("schema") != "iamguard.notification/1" or "message" not in payload:
            return Reply(400, {"error": "not an iamguard notification"})
        return Reply(200, {"ok": True}, delivered=True)
