"""Run the real iamguard CLI and kill its process at a chosen point: the delivery fault tests' victim.

    python -m tests.support.crash POINT -- audit --store --slack-webhook URL ...

The process ends with `os._exit(KILLED)` right after the call that POINT names
returns: no `finally`, no flush, no cleanup, as when Lambda times out or the
host dies. Everything else is the unmodified CLI.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

KILLED = 86

# point -> (module, attribute path, predicate on the call's arguments and result: kill when true)
POINTS: dict[str, tuple[str, str, Callable[..., bool]]] = {
    # the audit's findings, with their pending announcements, are written; nothing is claimed
    "store": ("iamguard_cli.commands.audit", "store_audit", lambda *a, **k: True),
    # the event path's findings are written (iamguard events replay); nothing is claimed
    "record": ("iamguard.persistence.findings", "FindingsStore.record_resources", lambda *a, **k: True),
    # the messages are in the outbox (the announcements left the findings); nothing is sent
    "claim": ("iamguard.notify.dispatcher", "Dispatcher._claim_all", lambda *a, **k: True),
    # Slack answered 200 to the first post; its delivery is not recorded yet
    "post": ("iamguard.notify.slack", "SlackNotifier.send", lambda *a, **k: True),
    # the first message is posted and recorded as delivered; the others are not sent yet
    "first-post": (
        "iamguard.persistence.outbox",
        "Outbox.settle",
        lambda _outbox, _key, state, *a, **k: str(state) == "sent",
    ),
}


def arm(point: str) -> None:
    """Wrap the function POINT names so the process dies right after its first matching call."""
    module_name, path, matches = POINTS[point]
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)

    @functools.wraps(original)
    def dying(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if matches(*args, **kwargs):
            sys.stderr.write(f"killed after {point}\n")
            sys.stderr.flush()
            os._exit(KILLED)
        return result

    setattr(owner, name, dying)


def main(argv: list[str]) -> int:
    point, separator, *cli = argv
    if separator != "--" or point not in POINTS:
        sys.stderr.write(f"usage: python -m tests.support.crash {{{','.join(POINTS)}}} -- IAMGUARD-ARGS...\n")
        return 2
    arm(point)
    from iamguard_cli.main import main as iamguard

    return iamguard(cli)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
