"""Load one built function the way Lambda does, in a fresh interpreter, and optionally invoke it.

Run by tests/build/test_built_artifacts.py as

    <lambda python> -I -S lambda_runner.py REQUEST_JSON

with -I -S: no site-packages, no PYTHONPATH, no current directory; sys.path is
the standard library plus exactly the directories the request names (the
function's built code, the built layer, the Powertools layer, the runtime's
boto3) - the places Lambda puts on the path (/var/task, /opt/python, /var/runtime).

The request (JSON): {"path": [...], "function_dir": ..., "handler": "app.lambda_handler",
"event": {...} | null, "output": "<file>"}. The runner writes {"ok", "result" | "error",
"modules": {name: file}} to the output file; stdout stays free for the function's logs.
"""

import importlib
import json
import sys
import traceback
from pathlib import Path


class LambdaContext:
    """The attributes Powertools and handlers read from Lambda's context object."""

    function_name = "iamguard-smoke"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:iamguard-smoke"
    aws_request_id = "5b1d1a3e-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/iamguard-smoke"
    log_stream_name = "smoke"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def main() -> int:
    request = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    sys.path[:0] = request["path"]
    outcome: dict[str, object] = {"ok": False}
    try:
        module_name, _, function_name = request["handler"].rpartition(".")
        module = importlib.import_module(module_name)
        handler = getattr(module, function_name)
        if request.get("event") is not None:
            outcome["result"] = handler(request["event"], LambdaContext())
        outcome["ok"] = True
    except BaseException:
        outcome["error"] = traceback.format_exc()
    outcome["modules"] = {
        name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items()) if module is not None
    }
    outcome["python"] = sys.version
    Path(request["output"]).write_text(json.dumps(outcome, default=str), encoding="utf-8")
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
