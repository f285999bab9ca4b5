"""The long fuzz run: N mutated events through the real event handlers and `iamguard events replay`.

The corpus and both harnesses are the fault suite's own (tests/support/fuzz.py); the suite
runs a small corpus on every `make test`, this script a large one. Zero uncaught exceptions
is the pass mark: the script exits 1 otherwise, with the first tracebacks in the result file.

    .venv/bin/python bench/fuzz.py --events 100000            # writes results/fuzz-100000.json
    .venv/bin/python bench/fuzz.py --events 2000 --seed 7     # any other seed reproduces its own corpus

`--replay` sets how many of the cases go through `iamguard events replay` (files, in
batches of 2,000 per process, against a moto server in this process); the rest go
straight to the handlers on in-process moto.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchlib

sys.path.insert(0, str(benchlib.REPO))

from tests.support.fuzz import corpus, lambda_handlers, run_handlers, run_replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="cases in all (default 100,000)")
    parser.add_argument("--replay", type=int, default=None, help="of them through `events replay` (default 10%%)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--out", type=Path, default=None, help="default: results/fuzz-<events>.json")
    args = parser.parse_args(argv)
    replayed = args.events // 10 if args.replay is None else min(args.replay, args.events)
    direct = args.events - replayed
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    started = time.perf_counter()
    with lambda_handlers() as deliver:
        handlers = run_handlers(corpus(args.seed, direct, now=now), deliver)
    print(f"handlers: {handlers.events} events in {handlers.seconds:.0f} s, {len(handlers.crashes)} uncaught")

    from iamguard_cli.local.server import MotoServer

    with MotoServer() as server, tempfile.TemporaryDirectory() as scratch:
        seeded = subprocess.run(
            [sys.executable, "-m", "iamguard_cli", "events", "seed", "--endpoint-url", server.url],
            env=benchlib.local_aws_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if seeded.returncode != 0:
            raise SystemExit(f"events seed failed: {seeded.stderr}")
        replay = run_replay(
            corpus(args.seed + 1, replayed, files=True, now=now),
            server.url,
            Path(scratch),
            env=benchlib.local_aws_env(),
        )
    print(f"replay: {replay.events} lines in {replay.seconds:.0f} s, {len(replay.crashes)} uncaught")

    result: dict[str, Any] = {
        "benchmark": "fuzz",
        "command": benchlib.command_line(),
        "seed": args.seed,
        "corpus_time": now.isoformat(),
        "cases": args.events,
        "uncaught_exceptions": len(handlers.crashes) + len(replay.crashes),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "handlers": handlers.as_dict(),
        "replay": replay.as_dict(),
        "machine": benchlib.machine(),
    }
    out = args.out or benchlib.RESULTS / f"fuzz-{args.events}.json"
    benchlib.write_json(out, result)
    print(f"{result['uncaught_exceptions']} uncaught exceptions; wrote {out}")
    return 1 if result["uncaught_exceptions"] else 0


if __name__ == "__main__":
    sys.exit(main())
