"""The fault suite's fuzz run: a fixed-seed corpus of mutated events through the real handlers and the replay.

Nothing may escape a handler (an exception is a Lambda error: a retry, the Errors alarm,
and after the retries the event in the dead-letter queue), and `iamguard events replay`
must answer every file and every event with a line and go on. The corpus generator is
tests/support/fuzz.py; the long run (100,000 events) is `bench/fuzz.py`, its result in
bench/RESULTS.md.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from iamguard_cli.local.server import MotoServer

from tests.support.fuzz import (
    MUTATIONS,
    OUTCOMES,
    Report,
    corpus,
    dumps,
    lambda_handlers,
    run_handlers,
    run_replay,
)

SEED = 20261129
HANDLER_EVENTS = 1_500
REPLAY_CASES = 150
# Most cases redeliver a sample's eventID: parsing, bounds, screening and the subject are judged
# for every case, the (slow, IAM-reading) evaluation once per fresh id. bench/fuzz.py uses 0.7.
FRESH_IDS = 0.15


def crashes(report: Report) -> str:
    return "\n\n".join(f"{c.case}: {c.error}\n{c.trace[-2_000:]}" for c in report.crashes[:5])


def fingerprint(seed: int, now: datetime) -> list[tuple[tuple[str, ...], str]]:
    return [
        (c.mutations, hashlib.sha256(c.raw if c.raw is not None else dumps(c.event).encode()).hexdigest())
        for c in corpus(seed, 100, files=True, now=now)
    ]


def test_the_corpus_is_the_same_for_the_same_seed() -> None:
    now = datetime(2026, 11, 29, 21, tzinfo=UTC)
    assert fingerprint(SEED, now) == fingerprint(SEED, now)
    assert fingerprint(SEED, now) != fingerprint(SEED + 1, now)


def test_fuzzed_events_never_escape_the_handlers() -> None:
    # Given both event Lambdas (enforce mode, required policies, the sample account) on moto
    with lambda_handlers() as deliver:
        # When the corpus is delivered to them
        report = run_handlers(corpus(SEED, HANDLER_EVENTS, fresh_ids=FRESH_IDS), deliver)

    # Then every event was answered with an outcome: nothing raised
    assert report.crashes == [], crashes(report)
    assert report.events == HANDLER_EVENTS
    # And the corpus reached every stage: rejected, screened out and evaluated, by every mutation
    assert set(report.outcomes) == OUTCOMES, report.outcomes
    assert set(report.by_mutation) == set(MUTATIONS)
    assert report.outcomes["evaluated"] >= HANDLER_EVENTS // 20


def test_fuzzed_files_never_stop_the_replay(moto_server: MotoServer, tmp_path: Path) -> None:
    # Given a seeded local account
    seeded = subprocess.run(
        [sys.executable, "-m", "iamguard_cli", "events", "seed", "--endpoint-url", moto_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr

    # When the corpus, with what only files can hold, is replayed
    cases = corpus(SEED + 1, REPLAY_CASES, files=True, fresh_ids=FRESH_IDS)
    report = run_replay(cases, moto_server.url, tmp_path, batch=REPLAY_CASES)

    # Then the replay exited 0 without a traceback and owed no line: one per file, one per event of an array
    assert report.crashes == [], crashes(report)
    assert report.events >= REPLAY_CASES
    assert {"rejected", "evaluated"} <= set(report.outcomes), report.outcomes
    assert any(name in report.by_mutation for name in ("brackets-past-recursion", "integer-past-digit-limit"))
