"""What the benchmark scripts share: the moto server process, measured subprocesses, machine facts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PEERS = BENCH / ".peers"
VENV_BIN = Path(sys.executable).parent  # run the scripts with .venv/bin/python
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
# The network models the audit benchmark measures by default: plain moto, and 30 ms per request.
DEFAULT_DELAYS_MS = (0.0, 30.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def local_aws_env(url: str | None = None) -> dict[str, str]:
    """Environment for a tool pointed at the local moto server: dummy credentials, us-east-1, no metadata service."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "BOTO_")) or key in {"AWS_EC2_METADATA_DISABLED"}
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    if url:
        env["AWS_ENDPOINT_URL"] = url
    return env


def control(url: str, path: str, body: Any = None) -> Any:
    """A benchmark control request to bench/moto_server.py (GET without body, POST with)."""
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if body is None else "POST"
    request = urllib.request.Request(f"{url}/__bench__/{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


class MotoProcess:
    """`bench/moto_server.py` in a subprocess on a free 127.0.0.1 port; a context manager."""

    def __init__(self, port: int | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> MotoProcess:
        log = self._log_path.open("wb") if self._log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [sys.executable, str(BENCH / "moto_server.py"), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=local_aws_env(),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.calls()
                return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start (exit {self._proc.poll()})") from None
                time.sleep(0.1)

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _request(self, path: str, body: Any = None) -> Any:
        return control(self.url, path, body)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far, from /proc (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def calls(self) -> dict[str, int]:
        result: dict[str, int] = self._request("calls")
        return result

    def reset_calls(self) -> dict[str, int]:
        result: dict[str, int] = self._request("calls/reset", {})
        return result

    def set_delay(self, seconds: float) -> float:
        """Hold every later AWS request `seconds` before moto answers it (0: none)."""
        result: float = self._request("delay", {"seconds": seconds})["delay_seconds"]
        return result

    def sign_in(self, users: dict[str, float], account_id: str = ACCOUNT_ID) -> int:
        result: int = self._request("sign-in", {"account_id": account_id, "users": users})["signed_in"]
        return result

    def organization_access_role(self, account_id: str, management_account_id: str = ACCOUNT_ID) -> str:
        """The OrganizationAccountAccessRole of a new account (what CreateAccount makes on AWS); its ARN."""
        body = {"account_id": account_id, "management_account_id": management_account_id}
        result: str = self._request("organization-access-role", body)["role_arn"]
        return result


@dataclass
class Measured:
    """One measured subprocess: wall time, CPU time and the peak RSS of that process alone."""

    command: list[str]
    exit_code: int
    wall_seconds: float
    user_cpu_seconds: float
    system_cpu_seconds: float
    peak_rss_mb: float
    stderr_tail: str = ""
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


GNU_TIME = Path("/usr/bin/time")


def run_measured(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    stdout: Path | None = None,
    timeout: float = 3600,
) -> Measured:
    """Run a command, timing it, with its own peak RSS and CPU time from GNU time (/usr/bin/time -f %M).

    Why not wait4()'s ru_maxrss of our own child: Linux carries the parent's high-water RSS
    into a child at exec (exec_mmap), so every command started from a benchmark process
    that once held a large report would report at least that much. GNU time is a small
    process in between, so what it reports is the command's own peak. Child processes of
    the command (none of the measured tools forks workers by default) are included by time.
    """
    if not GNU_TIME.exists():
        raise RuntimeError("GNU time (/usr/bin/time) is needed to measure peak RSS: apt-get install time")
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    err_path = (stdout.with_suffix(".stderr.txt") if stdout else None) or Path(os.devnull)
    usage_path = (stdout.with_suffix(".time.txt") if stdout else None) or Path(tempfile.mkstemp(suffix=".time")[1])
    load_before = os.getloadavg()[0]
    timed = [str(GNU_TIME), "-f", "%M %U %S", "-o", str(usage_path), *command]
    with err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(timed, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # GNU time and the command under it
            proc.wait()
        wall = time.perf_counter() - started
    if stdout:
        out.close()  # type: ignore[union-attr]
    tail = ""
    if err_path.name != os.devnull and err_path.exists():
        tail = err_path.read_text(errors="replace")[-4000:]
    usage = usage_path.read_text().split() if usage_path.exists() else []
    max_rss_kb, user, system = (float(v) for v in usage[-3:]) if len(usage) >= 3 else (0.0, 0.0, 0.0)
    exit_code = proc.returncode
    if usage and usage[0] == "Command":  # "Command exited with non-zero status N" precedes the numbers
        exit_code = int(usage[5])
    return Measured(
        command=command,
        exit_code=exit_code,
        wall_seconds=round(wall, 3),
        user_cpu_seconds=round(user, 3),
        system_cpu_seconds=round(system, 3),
        peak_rss_mb=round(max_rss_kb / 1024, 1),
        stderr_tail=tail,
        timed_out=timed_out,
        extra={"load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)},
    )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    mem_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        mem_gib = round(int(match.group(1)) / 1024 / 1024, 1) if match else None
    return {
        "date": now(),
        # The machine is shared with other work: the 1-minute load average when the run started.
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in ("iamguard", "moto", "boto3", "botocore", "werkzeug")},
        "git_commit": _git_commit(),
        # Other people's uncommitted changes to the package in this working tree, if any.
        "package_uncommitted_changes": _git_dirty("layers"),
    }


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _git_dirty(path: str) -> list[str] | None:
    try:
        out = subprocess.run(
            ["git", "status", "--short", "--", path], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [line.strip() for line in out.splitlines()]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def network_label(delay_ms: float) -> str:
    """How a network model is named in the results: "moto", or "moto + 30 ms" per request."""
    return "moto" if not delay_ms else f"moto + {delay_ms:g} ms"


def write_json(path: Path, data: Any) -> None:
    """Write a result; paths inside the repository are recorded by their repository path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    text = text.replace(json.dumps(f"{REPO}/")[1:-1], "")  # as JSON escapes it
    path.write_text(text + "\n", encoding="utf-8")


def command_line() -> str:
    """The command that is running, as it would be typed from the repository root."""
    args = [a if re.fullmatch(r"[\w./=,:@+-]+", a) else repr(a) for a in sys.argv]
    script = Path(args[0]).resolve()
    with contextlib.suppress(ValueError):  # a script outside the repository keeps its path
        args[0] = str(script.relative_to(REPO))
    return ".venv/bin/python " + " ".join(args)
