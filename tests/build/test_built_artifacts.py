"""The built artifacts (`sam build` output) load and run as Lambda would run them.

Each handler is imported from `.aws-sam/build/<FunctionLogicalId>/app.py` in a fresh
interpreter (the Lambda Python, `-I -S`) whose path holds only the built function,
the built layer, the public Powertools layer and the runtime's boto3 (both from
.venv-lambda, `make lambda-env`) - never the editable iamguard of .venv. Then each
function handles a real-shaped event against a moto server on 127.0.0.1, with the
environment template.yaml gives it. That proves the package is complete as deployed.

`make test` builds first, so these never skip there (and fail, not skip, under CI).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard_cli.local import moto_ext
from iamguard_cli.local.cfn import Resolver
from iamguard_cli.local.seed import seed_walkthrough
from iamguard_cli.local.server import MotoServer

from tests.support.template import (
    REPO,
    FunctionSource,
    function_environment,
    functions,
    require,
    sam_template,
)
from tests.unit.test_architecture import LOCAL_ONLY_LIBRARIES, imports_of, module_name

LOCAL_ONLY = LOCAL_ONLY_LIBRARIES | {"iamguard_cli"}
BUILD = REPO / ".aws-sam" / "build"
LAYER = BUILD / "IamguardLayer" / "python"
LAMBDA_ENV = REPO / ".venv-lambda"
POWERTOOLS = LAMBDA_ENV / "powertools"
RUNTIME = LAMBDA_ENV / "runtime"
RUNNER = Path(__file__).with_name("lambda_runner.py")
SOURCE_PACKAGE = REPO / "layers" / "iamguard" / "iamguard"
FUNCTIONS = functions()
IDS = [f.logical_id for f in FUNCTIONS]
SCHEDULED = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-05T09:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/iamguard-audit"],
    "detail": {},
}
# The event each function gets in the run test (events/ holds the real-shaped samples).
EVENTS: dict[str, Any] = {
    "AuditAccountFunction": SCHEDULED,
    "NotifyDigestFunction": SCHEDULED,
    "OnIamEventFunction": "create_user.json",
    "OnSigninEventFunction": "console_login_user_no_mfa.json",
    "StatusApiFunction": "status_api_get_user.json",
}


@pytest.fixture(scope="module")
def lambda_python() -> str:
    require(
        BUILD.is_dir() and LAYER.is_dir(),
        f"{BUILD} does not exist: run `make build` first (make test does)",
    )
    require(
        (LAMBDA_ENV / "python").is_file(),
        f"{LAMBDA_ENV} does not exist: run `make lambda-env` first (make test does)",
    )
    return (LAMBDA_ENV / "python").read_text().strip()


def _differences(source: Path, built: Path, patterns: tuple[str, ...]) -> list[str]:
    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for pattern in patterns
            for p in root.rglob(pattern)
            if "__pycache__" not in p.parts
        }

    want, have = files(source), files(built)
    return sorted({name for name in want.keys() | have.keys() if want.get(name) != have.get(name)})


def test_build_matches_the_sources(lambda_python: str) -> None:
    # A stale build would prove nothing about the code as it is.
    stale = [f"layer: {n}" for n in _differences(SOURCE_PACKAGE, LAYER / "iamguard", ("*.py", "*.json", "*.yaml"))]
    for source in FUNCTIONS:
        stale += [
            f"{source.logical_id}: {n}" for n in _differences(source.code_dir, BUILD / source.logical_id, ("*.py",))
        ]
    assert not stale, f".aws-sam/build is older than the sources - run `make build`: {stale}"


def run_function(
    python: str, source: FunctionSource, env: dict[str, str], event: Any, tmp_path: Path
) -> dict[str, Any]:
    request = {
        "path": [str(BUILD / source.logical_id), str(LAYER), str(POWERTOOLS), str(RUNTIME)],
        "handler": f"{source.handler_file.stem}.{source.handler_name}",
        "event": event,
        "output": str(tmp_path / f"{source.logical_id}.out.json"),
    }
    request_file = tmp_path / f"{source.logical_id}.request.json"
    request_file.write_text(json.dumps(request))
    base = {key: os.environ[key] for key in ("PATH", "LANG", "TZ", "HOME") if key in os.environ}
    done = subprocess.run(
        [python, "-I", "-S", str(RUNNER), str(request_file)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    output = Path(request["output"])
    assert output.exists(), f"{source.logical_id}: the runner crashed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    outcome: dict[str, Any] = json.loads(output.read_text())
    outcome["stdout"], outcome["stderr"] = done.stdout, done.stderr
    return outcome


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_LAMBDA_FUNCTION_NAME": "iamguard-smoke",
        "POWERTOOLS_TRACE_DISABLED": "1",  # no X-Ray daemon here
    }


@functools.cache
def allowed_roots(python: str) -> list[str]:
    prefix = subprocess.run(
        [python, "-I", "-S", "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return [str(BUILD), str(LAMBDA_ENV), prefix]


@pytest.mark.parametrize("source", FUNCTIONS, ids=IDS)
def test_handler_imports_from_the_built_artifacts_alone(
    source: FunctionSource, lambda_python: str, tmp_path: Path
) -> None:
    # Given the function's deployed environment and an endpoint where nothing listens
    env = {**function_environment(source.logical_id), **aws_env("http://127.0.0.1:9")}
    # When Lambda's interpreter imports the handler (a cold start)
    outcome = run_function(lambda_python, source, env, None, tmp_path)
    # Then it loads, calls no AWS API on import, and uses only what Lambda would have
    assert outcome["ok"], f"{source.logical_id} does not import from the build:\n{outcome.get('error')}"
    modules = {
        name: path for name, path in outcome["modules"].items() if path and name not in {"__main__", "__mp_main__"}
    }
    assert modules["iamguard"].startswith(str(LAYER)), modules["iamguard"]
    roots = allowed_roots(lambda_python)
    outside = {name: path for name, path in modules.items() if not any(path.startswith(r) for r in roots)}
    assert not outside, f"{source.logical_id} loaded modules from outside Lambda's path: {outside}"
    assert not [n for n in modules if n.startswith(("iamguard_cli", "moto", "pyotp"))]
    if Path(lambda_python).name == "python3.12":
        assert outcome["python"].startswith("3.12")


# ---------------------------------------------------------------- running them on moto
def create_stack_resources(ctx: AwsContext) -> None:
    """The tables, topics and queues of template.yaml, with their deployed names and keys."""
    template = sam_template()
    resolver = Resolver.for_template(template)
    dynamodb, sns, sqs = ctx.dynamodb(), ctx.client("sns"), ctx.client("sqs")
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind not in {"AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::SQS::Queue"}:
            continue
        props, name = resolver.resolve(resource.get("Properties") or {}), resolver.physical_name(logical_id)
        if kind == "AWS::DynamoDB::Table":
            table: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if props.get("GlobalSecondaryIndexes"):
                table["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            dynamodb.create_table(**table)
        elif kind == "AWS::SNS::Topic":
            sns.create_topic(Name=name)
        elif kind == "AWS::SQS::Queue":
            sqs.create_queue(QueueName=name)


@pytest.fixture(scope="module")
def stack(_moto_server: MotoServer) -> Iterator[MotoServer]:
    """One moto server for the module: the walkthrough account (root without MFA; wonjun_admin:
    admin, no MFA) and the stack's tables, topics and queues. The functions share it, as they
    share one account when deployed."""
    request = urllib.request.Request(f"{_moto_server.url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    moto_ext.reset()
    ctx = AwsContext(region="us-east-1", endpoint_url=_moto_server.url, retry_mode="standard", max_attempts=2)
    seed_walkthrough(ctx.iam())
    create_stack_resources(ctx)
    yield _moto_server
    moto_ext.reset()


def event_for(logical_id: str) -> Any:
    event = EVENTS.get(logical_id)
    assert event is not None, f"tests/build/test_built_artifacts.py: no smoke event for {logical_id}; add one to EVENTS"
    if isinstance(event, str):
        return json.loads((REPO / "events" / event).read_text())
    return event


def test_every_function_has_a_smoke_event() -> None:
    assert sorted(EVENTS) == sorted(IDS)


def test_audit_function_audits_the_account_from_the_build(
    stack: MotoServer, lambda_python: str, tmp_path: Path
) -> None:
    # Given the walkthrough account on moto and the audit function as built
    source = next(f for f in FUNCTIONS if f.logical_id == "AuditAccountFunction")
    env = {**function_environment(source.logical_id), **aws_env(stack.url)}

    # When the schedule invokes it
    outcome = run_function(lambda_python, source, env, SCHEDULED, tmp_path)

    # Then it reports the walkthrough's critical findings and stores them in the stack's table
    assert outcome["ok"], f"audit failed:\n{outcome.get('error')}\n{outcome['stdout'][-3000:]}"
    result = outcome["result"]
    assert result["account_id"] == "123456789012"
    assert result["errors"] == {}
    assert result["summary"]["failed_by_severity"]["critical"] == 2  # root MFA; wonjun_admin admin without MFA
    ctx = AwsContext(region="us-east-1", endpoint_url=stack.url, retry_mode="standard", max_attempts=2)
    store = FindingsStore(ctx.dynamodb(), env["FINDINGS_TABLE"])
    stored = {(f.check_id, f.resource_name): f.status.value for f in store.findings()}
    assert stored[("user_admin_without_mfa", "wonjun_admin")] == "FAIL"
    assert stored[("root_mfa_enabled", "root")] == "FAIL"
    # and its logs are Powertools' structured JSON lines
    assert any('"audit finished"' in line for line in outcome["stdout"].splitlines())


@pytest.mark.parametrize("source", FUNCTIONS, ids=IDS)
def test_each_function_handles_its_event_from_the_build(
    source: FunctionSource, stack: MotoServer, lambda_python: str, tmp_path: Path
) -> None:
    env = {**function_environment(source.logical_id), **aws_env(stack.url)}
    outcome = run_function(lambda_python, source, env, event_for(source.logical_id), tmp_path)
    assert outcome["ok"], (
        f"{source.logical_id} failed on its event:\n{outcome.get('error')}\n{outcome['stdout'][-3000:]}"
    )
    result = outcome["result"]
    if isinstance(result, dict) and "statusCode" in result:  # API Gateway proxy response
        assert result["statusCode"] < 500, result


def test_runner_refuses_the_editable_package(lambda_python: str, tmp_path: Path) -> None:
    # The isolation is real: without the built layer on the path, iamguard cannot be imported.
    source = next(f for f in FUNCTIONS if f.logical_id == "AuditAccountFunction")
    request = {
        "path": [str(BUILD / source.logical_id), str(POWERTOOLS), str(RUNTIME)],
        "handler": "app.lambda_handler",
        "event": None,
        "output": str(tmp_path / "out.json"),
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    env = {**function_environment(source.logical_id), **aws_env("http://127.0.0.1:9"), "PYTHONPATH": sys.path[0]}
    subprocess.run([lambda_python, "-I", "-S", str(RUNNER), str(tmp_path / "request.json")], env=env, check=False)
    outcome = json.loads((tmp_path / "out.json").read_text())
    assert not outcome["ok"]
    assert "No module named 'iamguard'" in outcome["error"]


def test_the_built_layer_holds_the_core_only(lambda_python: str) -> None:
    """The layer is `iamguard` and its pure-Python dependencies: no CLI, no local runtime, no emulator."""
    top = {path.name for path in LAYER.iterdir()}
    assert "iamguard" in top
    assert not {name for name in top if name.split("-")[0].split(".")[0] in LOCAL_ONLY}, sorted(top)
    # and nothing in the built core imports them (read from the built files, not the sources)
    leaks = sorted(
        f"{path.relative_to(LAYER)}: {target}"
        for path in (LAYER / "iamguard").rglob("*.py")
        for target in imports_of(path, module_name(path, LAYER / "iamguard", "iamguard"))
        if target.split(".")[0] in LOCAL_ONLY
    )
    assert leaks == []


def test_the_built_layer_installs_only_what_requirements_name(lambda_python: str) -> None:
    """No second pydantic: what the Powertools layer provides is not installed again beside it."""
    lines = (REPO / "layers" / "iamguard" / "requirements.txt").read_text().splitlines()
    wanted = {_normalized(re.split(r"[<>=!~ ;\[]", line, maxsplit=1)[0]) for line in lines if line and line[0] != "#"}
    installed = {_normalized(path.name.split("-")[0]) for path in LAYER.glob("*.dist-info")}
    assert installed == wanted
    assert not {"pydantic", "pydantic_core", "typing_extensions"} & {path.name for path in LAYER.iterdir()}


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "_", distribution).lower()


def test_the_built_layer_carries_bytecode_for_the_runtime(lambda_python: str) -> None:
    """/opt is read-only in Lambda: without .pyc files in the layer, every cold start compiles it from source."""
    tag = subprocess.run(
        [lambda_python, "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    missing = sorted(
        str(path.relative_to(LAYER))
        for path in LAYER.rglob("*.py")
        if not (path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc").is_file()
    )
    assert missing == []
