"""A stand-in for Slack on 127.0.0.1: incoming webhooks and chat.postMessage, with outages on demand.

    with SlackReceiver(echo=sys.stdout) as slack:
        run(["audit", "--slack-webhook", slack.url, ...])
        slack.messages          # the Block Kit payloads Slack would have shown
        slack.fail(500, times=2)        # the next two requests get HTTP 500
        slack.fail(429, retry_after=1)  # rate limited until cleared
        slack.hang(5)                   # requests time out, nothing is posted
        slack.slow(5)                   # posted at once, answered 5 s later (after the client gave up)
        slack.go_down(); slack.come_up()  # nothing listening, then back on the same port

`python -m iamguard_cli.local.slack_receiver --port 3000` runs one in the terminal
and prints every message readably.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from iamguard_cli.local.receiver import Fault, HttpReceiver, Received, Reply

__all__ = ["Fault", "Received", "SlackReceiver", "render"]

_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_CODE = re.compile(r"```(.*?)```", re.DOTALL)


def render(payload: dict[str, Any]) -> str:
    """A Block Kit payload as terminal text."""
    lines: list[str] = []
    for block in payload.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            lines += [block["text"]["text"], "=" * min(72, len(block["text"]["text"]) + 2)]
        elif kind == "section":
            if "text" in block:
                lines += [_plain(block["text"]["text"]), ""]
            for cell in block.get("fields", []):
                label, _, value = _plain(cell["text"]).partition("\n")
                lines.append(f"  {label}: {value}")
            if "fields" in block:
                lines.append("")
        elif kind == "context":
            lines += [_plain(element.get("text", "")) for element in block.get("elements", [])]
        elif kind == "divider":
            lines.append("-" * 40)
    if not lines:
        lines.append(str(payload.get("text", "")))
    return "\n".join(lines).rstrip() + "\n"


def _headline(payload: dict[str, Any]) -> str:
    for block in payload.get("blocks", []):
        if block.get("type") == "header":
            return str(block["text"]["text"])
    return str(payload.get("text", ""))


def _plain(mrkdwn: str) -> str:
    """Slack mrkdwn as a terminal shows it: *bold* and ```code``` markers dropped, entities decoded."""
    text = _CODE.sub(lambda m: "  $ " + m.group(1), _BOLD.sub(r"\1", mrkdwn))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class SlackReceiver(HttpReceiver):
    """A real HTTP server in a thread that records what iamguard posts to Slack."""

    name = "slack"

    def __init__(self, port: int = 0, *, echo: TextIO | None = None, token: str | None = None) -> None:
        super().__init__(port, echo=echo)
        self.token = token or f"xoxb-local-{secrets.token_hex(8)}"
        # A webhook path shaped like Slack's, with a random part that must stay secret like the real one.
        self.path = f"/services/T0LOCAL00/B0LOCAL00/{secrets.token_urlsafe(18)}"

    @property
    def url(self) -> str:
        """The incoming-webhook URL (treat it like a secret, as iamguard does)."""
        return f"{self.base_url}{self.path}"

    @property
    def api_url(self) -> str:
        """Base URL for slack_sdk's WebClient (chat.postMessage with the bot token)."""
        return f"{self.base_url}/api/"

    @property
    def posts(self) -> list[str]:
        """The header line of every message posted, in order (a duplicate shows up twice)."""
        with self._lock:
            return [_headline(payload) for payload in self.messages]

    def render(self, payload: dict[str, Any]) -> str:
        return render(payload)

    def fault_body(self, path: str, status: int) -> str | dict[str, Any]:
        error = "ratelimited" if status == 429 else "internal_error"
        return {"ok": False, "error": error} if path.startswith("/api/") else error

    def accept(self, path: str, headers: dict[str, str], raw: bytes, payload: dict[str, Any]) -> Reply:
        if path.startswith("/api/"):
            return self._api(path, headers, payload)
        if path != self.path:
            return Reply(404, "no_service")
        if not payload.get("text") and not payload.get("blocks"):
            return Reply(400, "invalid_payload")
        return Reply(200, "ok", delivered=True)

    def _api(self, path: str, headers: dict[str, str], payload: dict[str, Any]) -> Reply:
        if path.rstrip("/") != "/api/chat.postMessage":
            return Reply(404, {"ok": False, "error": "unknown_method"})
        if headers.get("authorization") != f"Bearer {self.token}":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        if not payload.get("channel"):
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        return Reply(200, {"ok": True, "channel": payload["channel"], "ts": f"{time.time():.6f}"}, delivered=True)


def main(argv: list[str] | None = None, *, wait: Callable[[], None] | None = None) -> int:
    """Run a receiver in the foreground and print what arrives."""
    parser = argparse.ArgumentParser(
        prog="python -m iamguard_cli.local.slack_receiver", description="A local stand-in for a Slack incoming webhook."
    )
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    receiver = SlackReceiver(args.port, echo=sys.stdout).start()
    sys.stdout.write(f"Slack receiver listening. Use: --slack-webhook {receiver.url}\n")
    sys.stdout.flush()
    try:
        (wait or threading.Event().wait)()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
