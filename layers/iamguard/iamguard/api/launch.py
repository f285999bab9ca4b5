"""Starting an audit from the API: the audit Lambda in AWS, a background thread locally."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.api.errors import AuditUnavailable
from iamguard.audit import run_audit, store_audit
from iamguard.aws import AwsContext
from iamguard.config import Settings
from iamguard.inventory import Inventory
from iamguard.store import FindingsStore

log = logging.getLogger(__name__)


class AuditLauncher(Protocol):
    def start(self, run_id: str) -> str:
        """Start an audit without waiting for it; return the id of the run to follow."""
        ...


class LambdaAuditLauncher:
    """Invokes the audit function asynchronously (InvocationType=Event)."""

    def __init__(self, aws: AwsContext, function_name: str) -> None:
        self._aws = aws
        self._client: Any = None  # made on first use, not at cold start
        self.function_name = function_name

    def start(self, run_id: str) -> str:
        payload = {"source": "iamguard.status_api", "run_id": run_id}
        if self._client is None:
            self._client = self._aws.client("lambda")
        try:
            self._client.invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
            )
        except (ClientError, BotoCoreError) as exc:
            log.error("cannot invoke the audit function", extra={"function": self.function_name, "reason": str(exc)})
            raise AuditUnavailable("The audit function could not be started; try again later.") from exc
        return run_id


class ThreadAuditLauncher:
    """Runs the audit in a daemon thread of this process, one at a time (the local runtime)."""

    def __init__(self, aws: AwsContext, store: FindingsStore, settings: Settings) -> None:
        self._aws = aws
        self._store = store
        self._settings = settings
        self._lock = threading.Lock()
        self._running: tuple[str, threading.Thread] | None = None

    def start(self, run_id: str) -> str:
        with self._lock:
            if self._running is not None and self._running[1].is_alive():
                return self._running[0]  # an audit is already under way: follow that one
            thread = threading.Thread(target=self._run, args=(run_id,), name=f"audit-{run_id}", daemon=True)
            self._running = (run_id, thread)
            thread.start()
            return run_id

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running audit (if any) is done; for tests and shutdown."""
        running = self._running
        if running is not None:
            running[1].join(timeout)

    def _run(self, run_id: str) -> None:
        try:
            result = run_audit(Inventory(self._aws), self._settings)
            store_audit(result, self._store)
            log.info("local audit finished", extra={"run_id": run_id, "summary": result.summary()})
        except Exception:  # a background failure must not vanish silently
            log.exception("local audit failed", extra={"run_id": run_id})
