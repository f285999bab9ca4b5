"""Benchmark: cold-start import cost of each Lambda handler module (functions/*/app.py).

Each handler is imported --repeat times, every time in a fresh interpreter, the way the
Lambda runtime does it: the layer and the function's directory on sys.path - the layer as
layers/iamguard/Makefile builds it, with its bytecode (a copy of layers/iamguard/iamguard
compiled by this interpreter; `--source-layer` imports the sources instead, compiled at
every import, which is what a layer without .pyc files costs in Lambda's read-only /opt),
the environment template.yaml sets, AWS_LAMBDA_FUNCTION_NAME set (so Powertools
Tracer is enabled as in Lambda). Reported per handler:

* import_ms: time.perf_counter() around `import app` inside the fresh process (median, min, max);
* over_boto3_ms: what the handler adds to what any Python Lambda pays - each probe imports boto3
  first and then the handler, and times the second import (median), so both halves share the
  process and the moment; and the same in CPU time (import_cpu_ms, over_boto3_cpu_ms:
  time.process_time(), less disturbed by a busy machine). A bare `import boto3` is measured alone
  too (boto3_import_ms);
* process_ms: wall time of the whole process (interpreter start-up + import), and of a
  bare `python -c pass` for reference;
* peak RSS after the import;
* the heaviest imports from one `python -X importtime` run (cumulative and self time);
* what the handler adds to boto3, by package: a `python -X importtime` run that imports boto3
  first, then the handler; each module's own time summed by its top-level package (a module's
  own time includes the classes it defines, so pydantic building iamguard's models counts as
  iamguard's), and how many pydantic models and dataclasses iamguard defines at import (median of
  up to 5 runs).

Nothing is called and nothing leaves the machine: only the module-level code of each
handler runs (creating clients makes no request). Results: bench/results/cold_start.json.
Note the interpreter is the project venv's (see the results' machine.python), while Lambda
runs template.yaml's runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import benchlib

LAYER = benchlib.REPO / "layers" / "iamguard"
PROBE = """
import json, resource, sys, time
sys.path[:0] = [{function_dir!r}, {layer!r}]
started, cpu = time.perf_counter(), time.process_time()
import boto3  # noqa: F401  (what any Python Lambda pays; the handler imports it anyway)
boto3_done, boto3_cpu = time.perf_counter(), time.process_time()
import {module}  # noqa: F401
ended, ended_cpu = time.perf_counter(), time.process_time()
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result = {{
    "import_ms": (ended - started) * 1000,
    "import_cpu_ms": (ended_cpu - cpu) * 1000,
    "after_boto3_ms": (ended - boto3_done) * 1000,
    "after_boto3_cpu_ms": (ended_cpu - boto3_cpu) * 1000,
    "peak_rss_mb": peak_rss_mb,
}}
print(json.dumps({{**result, "modules": len(sys.modules)}}))
"""


def lambda_env(function: str) -> dict[str, str]:
    """What the Lambda runtime and template.yaml put in the environment (dummy credentials, local only)."""
    env = benchlib.local_aws_env()
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=f"iamguard-{function}",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        POWERTOOLS_SERVICE_NAME="iamguard",
        POWERTOOLS_METRICS_NAMESPACE="iamguard",
        LOG_LEVEL="INFO",
        MODE="monitor",
        LANGUAGE="en",
        FINDINGS_TABLE="iamguard-findings",
        ALERT_TOPIC_ARN=f"arn:aws:sns:us-east-1:{benchlib.ACCOUNT_ID}:iamguard-alerts",
        SEVERITY_ROUTING="",
        SECURITY_HUB_ENABLED="false",
        NOTIFY_DLQ_URL=f"http://127.0.0.1:1/{benchlib.ACCOUNT_ID}/iamguard-notify-dlq",
        AUDIT_FUNCTION_NAME="iamguard-audit-account",
        AUDIT_QUEUE_URL=f"http://127.0.0.1:1/{benchlib.ACCOUNT_ID}/iamguard-audit",  # functions/plan_audit's queue
        AUDIT_SCHEDULE="rate(1 day)",
        IDEMPOTENCY_TABLE="iamguard-idempotency",
        EVENT_SOURCES="aws.iam,aws.sts",  # functions/on_event as OnIamEventFunction runs it
        GUARDRAIL_POLICY_ARN=f"arn:aws:iam::{benchlib.ACCOUNT_ID}:policy/iamguard-mfa-guardrail",
        IAMGUARD_ROLE_ARNS=f"arn:aws:iam::{benchlib.ACCOUNT_ID}:role/iamguard-on-iam-event",
        SIGNIN_FAILURE_THRESHOLD="5",
        SIGNIN_FAILURE_WINDOW_MINUTES="15",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PYTHONPATH", None)
    return env


def compiled_layer(into: Path) -> Path:
    """The layer as layers/iamguard/Makefile builds it: the package and its unchecked-hash bytecode."""
    target = into / "python"
    shutil.copytree(LAYER / "iamguard", target / "iamguard", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)], check=True
    )
    return target


def probe(function_dir: Path, env: dict[str, str], layer: Path = LAYER, module: str = "app") -> dict[str, Any]:
    code = PROBE.format(function_dir=str(function_dir), layer=str(layer), module=module)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_ms"] = wall * 1000
    return result


def heaviest_imports(function_dir: Path, env: dict[str, str], top: int, layer: Path = LAYER) -> dict[str, Any]:
    """One `-X importtime` run: the top-level packages by cumulative time, and the modules by self time."""
    code = f"import sys; sys.path[:0] = [{str(function_dir)!r}, {str(layer)!r}]; import app"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=False
    )
    cumulative: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        # "import time:  <self us> | <cumulative us> | <two spaces per nesting level><module>"
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        module = name.strip()
        own[module] += int(self_us)
        if depth == 1:  # imported by app.py itself
            cumulative[module] += int(cumulative_us)
    return {
        "top_level_cumulative_ms": {k: round(v / 1000, 1) for k, v in cumulative.most_common(top)},
        "modules_self_ms": {k: round(v / 1000, 1) for k, v in own.most_common(top)},
    }


AFTER_BOTO3 = """
import sys
sys.path[:0] = [{function_dir!r}, {layer!r}]
import boto3  # noqa: F401
print("{marker}", file=sys.stderr, flush=True)
import app  # noqa: F401
import pydantic

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

models = {{c for c in subclasses(pydantic.BaseModel) if c.__module__.startswith("iamguard")}}
dataclasses = {{
    c
    for name, module in list(sys.modules.items())
    if name.startswith("iamguard")
    for c in vars(module).values()
    if isinstance(c, type) and "__dataclass_fields__" in vars(c) and c.__module__ == name
}}
print(len(models), len(dataclasses))
"""
MARKER = "-- boto3 imported --"


def over_boto3_by_package(function_dir: Path, env: dict[str, str], layer: Path, repeat: int) -> dict[str, Any]:
    """What the handler imports after boto3, each module's own time summed by top-level package (median ms)."""
    code = AFTER_BOTO3.format(function_dir=str(function_dir), layer=str(layer), marker=MARKER)
    samples: list[Counter[str]] = []
    models = dataclasses = 0
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        samples.append(_own_time_by_package(done.stderr.split(MARKER, 1)[1]))
        models, dataclasses = (int(n) for n in done.stdout.strip().splitlines()[-1].split())
    packages = {name for sample in samples for name in sample}
    median = {name: statistics.median(sample[name] for sample in samples) / 1000 for name in packages}
    return {
        "self_ms_by_package": {k: round(v, 1) for k, v in sorted(median.items(), key=lambda kv: -kv[1]) if v >= 0.5},
        "total_ms": round(statistics.median(sum(sample.values()) for sample in samples) / 1000, 1),
        "iamguard_pydantic_models": models,
        "iamguard_dataclasses": dataclasses,
    }


def _own_time_by_package(importtime: str) -> Counter[str]:
    """`-X importtime` lines: each module's own time, counted to its top-level package - or, for a standard
    library module, to the nearest package outside the standard library that imported it (asyncio
    imported by pydantic_settings counts as pydantic_settings')."""
    entries = []
    for line in importtime.splitlines():
        # "import time:  <self us> | <cumulative us> | <two spaces per nesting level><module>"
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|")
        entries.append((int(self_us), (len(name) - len(name.lstrip()) - 1) // 2, name.strip().split(".")[0]))
    own: Counter[str] = Counter()
    importers: dict[int, str] = {}  # nesting level -> the package of the module open at that level
    for self_us, depth, package in reversed(entries):  # a module's line comes after those it imported
        outer = next((importers[d] for d in range(depth - 1, -1, -1) if importers.get(d)), None)
        stdlib = package in sys.stdlib_module_names or package.startswith("_")
        counted = outer if stdlib and outer else package
        importers[depth] = counted if not stdlib or outer else ""
        for deeper in [d for d in importers if d > depth]:
            del importers[deeper]
        own[counted] += self_us
    return own


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="fresh imports per handler (default 15)")
    parser.add_argument("--top", type=int, default=15, help="heaviest imports to list (default 15)")
    parser.add_argument(
        "--function",
        action="append",
        help="handler directory name under functions/ (repeatable; default: every functions/*/app.py)",
    )
    parser.add_argument("--source-layer", action="store_true", help="import the layer's sources (no bytecode)")
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS / "cold_start.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="iamguard-layer-") as work:
        layer = LAYER if args.source_layer else compiled_layer(Path(work))
        return measure(args, layer)


def measure(args: argparse.Namespace, layer: Path) -> int:
    functions_dir = benchlib.REPO / "functions"
    names = args.function or sorted(p.parent.name for p in functions_dir.glob("*/app.py"))
    bare = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=lambda_env("bare"))
        bare.append((time.perf_counter() - started) * 1000)
    boto3 = [probe(functions_dir, lambda_env("bare"), layer, module="boto3") for _ in range(args.repeat)]
    boto3_ms = stats([r["import_ms"] for r in boto3])
    boto3_cpu_ms = stats([r["import_cpu_ms"] for r in boto3])
    results: dict[str, Any] = {
        "benchmark": "cold_start",
        "command": benchlib.command_line(),
        "machine": benchlib.machine(),
        "layer": "sources, compiled at each import" if layer == LAYER else "with bytecode, as the layer is built",
        "bare_interpreter_process_ms": stats(bare),
        "boto3_import_ms": boto3_ms,
        "boto3_import_cpu_ms": boto3_cpu_ms,
        "handlers": {},
    }
    for name in names:
        function_dir = functions_dir / name
        env = lambda_env(name)
        runs = [probe(function_dir, env, layer) for _ in range(args.repeat)]
        failed = [r for r in runs if "error" in r]
        if failed:
            results["handlers"][name] = {"error": failed[0]["error"]}
            print(f"{name}: import failed: {failed[0]['error']}", file=sys.stderr)
            continue
        results["handlers"][name] = {
            "import_ms": stats([r["import_ms"] for r in runs]),
            # boto3 first, then the handler, in the same process: the second import is what the handler adds
            "over_boto3_ms": round(statistics.median(r["after_boto3_ms"] for r in runs), 1),
            "import_cpu_ms": stats([r["import_cpu_ms"] for r in runs]),
            "over_boto3_cpu_ms": round(statistics.median(r["after_boto3_cpu_ms"] for r in runs), 1),
            "process_ms": stats([r["process_ms"] for r in runs]),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
            "modules_loaded": runs[0]["modules"],
            "heaviest_imports": heaviest_imports(function_dir, env, args.top, layer),
            "over_boto3_by_package": over_boto3_by_package(function_dir, env, layer, min(args.repeat, 5)),
        }
        print(
            f"{name}: import {results['handlers'][name]['import_ms']['median']} ms (median of {args.repeat}; "
            f"boto3 alone {boto3_ms['median']} ms), "
            f"process {results['handlers'][name]['process_ms']['median']} ms",
            file=sys.stderr,
        )
    benchlib.write_json(args.out, results)
    print(f"wrote {os.path.relpath(args.out, benchlib.REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
