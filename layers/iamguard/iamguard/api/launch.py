"""Starting an audit from the API: the audit Lambda, invoked asynchronously (the local runtime has its own)."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.api.errors import AuditUnavailable
from iamguard.aws import AwsContext

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
