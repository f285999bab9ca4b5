"""Cold start: a handler module imports the X-Ray SDK (~120 ms) only when the stack turns tracing on.

Each handler is imported in a fresh interpreter the way the Lambda runtime does it (the
layer and the function's directory on sys.path) with the environment template.yaml gives
it, once with the Tracing parameter's default and once with Tracing=Active.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.template import REPO, FunctionSource, function_environment, functions

PROBE = """
import json, sys
sys.path[:0] = [{code_dir!r}, {layer!r}]
import app
print(json.dumps({{"xray": "aws_xray_sdk" in sys.modules, "tracer": type(app.tracer).__name__}}))
"""


def imported(function: FunctionSource, **parameters: str) -> dict[str, object]:
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
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("function", functions(), ids=lambda f: f.logical_id)
def test_the_handler_imports_xray_only_when_tracing_is_on(function: FunctionSource) -> None:
    # Given the stack's default (Tracing=Disabled): no X-Ray SDK, a tracer that does nothing
    assert imported(function) == {"xray": False, "tracer": "_NoTracer"}
    # Given Tracing=Active: Powertools' Tracer, and with it the SDK
    assert imported(function, Tracing="Active") == {"xray": True, "tracer": "Tracer"}
