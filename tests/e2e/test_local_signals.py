"""`iamguard local` stops on Ctrl-C and SIGTERM within two seconds, however it was started.

A shell script's `cmd &` starts the process with SIGINT ignored; Python then installs no
KeyboardInterrupt handler, and Ctrl-C (or `kill -INT`) used to do nothing. SIGTERM used to
take seconds while the dispatcher's pollers and the HTTP servers wound down one by one.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from iamguard_cli.local.runtime import STOP_SECONDS

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, line) for line in list(self.lines)):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared in:\n{''.join(self.lines)[-3000:]}")

    def stop_with(self, signum: int) -> tuple[int, float]:
        """Send `signum`; the exit code and the seconds it took to exit."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running 30 s after signal {signum}:\n{''.join(self.lines)[-2000:]}") from None
        return code, time.monotonic() - sent


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a non-interactive shell does


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(*, preexec: Callable[[], None] | None = None) -> Running:
        process = subprocess.Popen(
            [sys.executable, "-m", "iamguard_cli", "local", "--port", "0", "--api-port", "0", "--no-schedules"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec,
        )
        running = Running(process)
        reader = threading.Thread(
            target=lambda: running.lines.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        started.append(running)
        return running

    yield run
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


FIRST_AUDIT_DONE = r"lambda\s+audit_account ← Scheduled Event \(\d"


def test_ctrl_c_stops_it_when_started_with_sigint_ignored(start: Callable[..., Running]) -> None:
    # Given `iamguard local` started as a background job would be: SIGINT inherited as ignored
    running = start(preexec=_ignore_sigint)
    running.wait_for(FIRST_AUDIT_DONE)

    # When Ctrl-C's signal reaches it
    code, seconds = running.stop_with(signal.SIGINT)

    # Then it stops cleanly, at once
    assert code == 0, "".join(running.lines)[-2000:]
    assert seconds < STOP_SECONDS, f"took {seconds:.2f} s"
    assert any("stopping the local runtime" in line for line in running.lines)


def test_sigterm_stops_it_within_two_seconds(start: Callable[..., Running]) -> None:
    running = start()
    running.wait_for(FIRST_AUDIT_DONE)
    code, seconds = running.stop_with(signal.SIGTERM)
    assert code == 0
    assert seconds < STOP_SECONDS, f"took {seconds:.2f} s"
    assert "Traceback" not in "".join(running.lines)


def test_a_signal_during_the_first_audit_still_stops_it_within_two_seconds(start: Callable[..., Running]) -> None:
    # Given the runtime in the middle of its first audit (a handler running on the moto server)
    running = start()
    running.wait_for(r"Stop with Ctrl-C")
    code, seconds = running.stop_with(signal.SIGTERM)
    assert code == 0, "".join(running.lines)[-2000:]
    assert seconds < STOP_SECONDS, f"took {seconds:.2f} s"
    assert "Traceback" not in "".join(running.lines)
