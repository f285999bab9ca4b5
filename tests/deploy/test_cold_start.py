"""Cold start: a handler module imports the X-Ray SDK (~120 ms) only when the stack turns tracing on,
and the event functions import the notification channels only when they first announce.

Each handler is imported in a fresh interpreter the way the Lambda runtime does it (the
layer and the function's directory on sys.path) with the environment template.yaml gives
it, once with the Tracing parameter's default and once with Tracing=Active.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support.template import REPO, FunctionSource, function_environment, functions

PROBE = """
import json, sys
sys.path[:0] = [{code_dir!r}, {layer!r}]
import app
print(json.dumps({{"xray": "aws_xray_sdk" in sys.modules, "tracer": type(app.tracer).__name__,
                  "notify": sorted(m for m in sys.modules if m.startswith(("iamguard.notify", "slack_sdk")))}}))
"""


EVENT_FUNCTIONS = [f for f in functions() if f.name in {"on_iam_event", "on_signin_event"}]


def imported(function: FunctionSource, **parameters: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": f"iamguard-{function.logical_id}",
        "LAMBDA_TASK_ROOT": str(function.code_dir),  # Powertools treats the process as a Lambda
        **function_environment(function.logical_id, **parameters),
    }
    probe = PROBE.format(code_dir=str(function.code_dir), layer=str(REPO / "layers" / "iamguard"))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("function", functions(), ids=lambda f: f.logical_id)
def test_the_handler_imports_xray_only_when_tracing_is_on(function: FunctionSource) -> None:
    # Given the stack's default (Tracing=Disabled): no X-Ray SDK, a tracer that does nothing
    default = imported(function)
    assert (default["xray"], default["tracer"]) == (False, "_NoTracer")
    # Given Tracing=Active: Powertools' Tracer, and with it the SDK
    active = imported(function, Tracing="Active")
    assert (active["xray"], active["tracer"]) == (True, "Tracer")


@pytest.mark.parametrize("function", EVENT_FUNCTIONS, ids=lambda f: f.logical_id)
def test_the_event_functions_import_the_channels_at_the_first_announcement(function: FunctionSource) -> None:
    # Most events have nothing to tell: Slack's Block Kit, the renderer and the outbox wait for the first alert
    assert imported(function)["notify"] == []


@pytest.mark.parametrize("function", EVENT_FUNCTIONS, ids=lambda f: f.logical_id)
def test_the_channel_settings_are_still_checked_at_cold_start(function: FunctionSource) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"iamguard-{function.logical_id}",
        **function_environment(function.logical_id),
        "SEVERITY_ROUTING": "critical=carrier-pigeon",
    }
    probe = PROBE.format(code_dir=str(function.code_dir), layer=str(REPO / "layers" / "iamguard"))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "SEVERITY_ROUTING" in done.stderr
