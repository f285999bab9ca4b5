"""PagerDuty: Events API v2 alerts that open on a failing finding and resolve when it passes.

The secret holds the integration's routing key: a bare key, or
{"routing_key": "…"} with an optional "url" (the EU endpoint,
https://events.eu.pagerduty.com/v2/enqueue, or a local receiver).

Every finding is one PagerDuty alert with a stable `dedup_key` (its check and
resource): an opened or escalated finding sends `trigger`, a resolved (or
exempted) one `resolve`. A real-time detection is a `trigger` keyed by its
event. Because each event carries its dedup key, sending one again is harmless
(PagerDuty folds a repeated trigger into the open alert; resolve is
idempotent), so a send whose answer was lost is simply sent again: no
per-message limit of sends, only NOTIFY_MAX_ATTEMPTS / NOTIFY_MAX_AGE_HOURS.
Which severities page is severity routing (critical and high by default);
a resolved finding keeps its check's severity, so it reaches PagerDuty whenever
its opening did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from iamguard.domain.findings import Finding, Severity
from iamguard.domain.messages import Channel, Message, MessageKind
from iamguard.notify.base import DeliveryError
from iamguard.notify.catalog import fill, load_catalog
from iamguard.notify.http_channel import HttpChannel, Request
from iamguard.notify.redact import scrub
from iamguard.notify.secrets import secret_fields

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024  # payload.summary
DEDUP_LIMIT = 255  # dedup_key
SEVERITIES = {  # PagerDuty knows critical, error, warning, info
    Severity.CRITICAL: "critical",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "info",
    Severity.INFORMATIONAL: "info",
}
TRIGGERS = {"opened", "escalated", "failing", "expired"}  # expired: an exception ran out, failing again
RESOLVES = {"resolved", "exempted"}  # "unknown" (could not be checked) neither opens nor closes a page


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dedup_key(finding: Finding) -> str:
    """One key per finding, the same in every run: its check and resource (hashed if too long)."""
    key = f"iamguard:{finding.check_id}:{finding.resource_arn}"
    if len(key) <= DEDUP_LIMIT:
        return key
    return f"iamguard:{finding.check_id}:{hashlib.sha256(finding.resource_arn.encode()).hexdigest()}"


def _alert_key(message: Message) -> str:
    key = f"iamguard:{message.key}"
    return key if len(key) <= DEDUP_LIMIT else "iamguard:" + hashlib.sha256(message.key.encode()).hexdigest()


def _headline(message: Message) -> str:
    words = message.headline.split()
    if words and not any(ch.isalnum() for ch in words[0]):
        words = words[1:]  # the status icon
    return " ".join(words)


def events(message: Message, routing_key: str) -> list[dict[str, Any]]:
    """The Events API v2 requests for one message (none for what does not page)."""
    if message.kind is MessageKind.ALERT:
        return [
            _trigger(
                message,
                routing_key,
                _alert_key(message),
                _headline(message) + " — " + message.summary,
                source=message.attributes.get("resource") or message.account_id,
                group=None,
            )
        ]
    transition = message.attributes.get("transition", "")
    out = []
    for finding in message.findings:
        if transition in RESOLVES:
            out.append({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(finding)})
        elif transition in TRIGGERS:
            text = load_catalog(message.language).check(finding.check_id)
            summary = f"{text.title}: {fill(text.failed, resource=finding.resource_name)}"
            out.append(
                _trigger(
                    message,
                    routing_key,
                    dedup_key(finding),
                    summary,
                    source=finding.resource_arn,
                    group=finding.check_id,
                    finding=finding,
                )
            )
    return out


def _trigger(
    message: Message,
    routing_key: str,
    key: str,
    summary: str,
    *,
    source: str,
    group: str | None,
    finding: Finding | None = None,
) -> dict[str, Any]:
    details: dict[str, str] = {f.label: f.value for f in message.fields}
    if finding is not None:
        details = {
            **details,
            "check_id": finding.check_id,
            "resource": finding.resource_name,
            "detail": scrub(finding.detail),
        }
    payload: dict[str, Any] = {
        "summary": _cut(summary, SUMMARY_LIMIT),
        "source": _cut(source or message.account_id or "iamguard", 255),
        "severity": SEVERITIES[finding.severity if finding is not None else message.severity],
        "timestamp": (finding.status_changed_at or finding.observed_at if finding else message.created_at).isoformat(),
        "component": message.account_id or "aws",
        "class": message.attributes.get("check_id") or message.attributes.get("detection") or message.kind.value,
        "custom_details": details,
    }
    if group:
        payload["group"] = group
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "iamguard",
        "payload": payload,
    }


def pagerduty_target(secret: Any) -> tuple[str, str]:
    """(routing key, events URL) from the secret."""
    fields = secret_fields(secret, "the PagerDuty secret")
    key = fields.get("routing_key") or fields.get("integration_key") or fields.get("value")
    if not isinstance(key, str) or not key.strip():
        raise DeliveryError("the PagerDuty secret holds no routing key", permanent=True)
    url = fields.get("url") or EVENTS_URL
    return key.strip(), str(url)


class PagerDutyNotifier(HttpChannel):
    """Opens and resolves PagerDuty alerts, one per finding."""

    channel = Channel.PAGERDUTY
    name = "PagerDuty"

    @property
    def max_posts(self) -> int | None:
        return None  # every event carries its dedup key: a repeat is folded into the same alert

    def accepts(self, message: Message) -> bool:
        if message.kind is MessageKind.ALERT:
            return True
        return message.kind is MessageKind.FINDING and message.attributes.get("transition") in TRIGGERS | RESOLVES

    def requests(self, message: Message, secret: Any) -> Sequence[Request]:
        key, url = pagerduty_target(secret)
        return [Request(url, event) for event in events(message, key)]
