"""The Lambda context object a handler receives, for running handlers outside Lambda.

One class for the local runtime's dispatcher, the local status API, `iamguard events replay`,
the tests and the benchmarks: a name, an ARN, a memory size and a deadline that runs down from
the moment the context is made, as Lambda's does.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    timeout_seconds: float = 60
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def for_function(cls, name: str, account_id: str, *, timeout_seconds: float = 60) -> LambdaContext:
        """A context for function `name` in `account_id` (us-east-1), with `timeout_seconds` to go."""
        arn = f"arn:aws:lambda:us-east-1:{account_id}:function:{name}"
        return cls(function_name=name, invoked_function_arn=arn, timeout_seconds=timeout_seconds)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
