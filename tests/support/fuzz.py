"""A fixed-seed corpus of mutated CloudTrail events, and the harnesses that push it through iamguard.

`corpus(seed, count)` derives every case from the samples in events/ with one to three
mutations: wrong types, missing fields, huge and deeply nested values, odd Unicode,
extreme dates, other accounts, swapped names and sources, junk identities, non-objects.
With `files=True` it also makes what only a file can hold: bytes that are not JSON,
truncated or UTF-16 JSON, brackets past the recursion limit, integers past the digit
limit, empty files and arrays, arrays mixing good and bad events.

Two harnesses: `run_handlers` delivers each event to the real Lambda handlers
(functions/on_event/app.py as each event function runs it, loaded as Lambda loads
them; `lambda_handlers()` sets them up on in-process moto with the sample account), and
`run_replay` writes the cases to files and runs `iamguard events replay` over them. A run
passes when nothing raised out of a handler and the replay answered every file and event
with a well-formed line. The same seed gives the same corpus (for the same samples in
events/ and the same hour: times near the model's bounds are relative to it), so a failure
is reproduced by its seed, hour (`now`) and case index.

    .venv/bin/python bench/fuzz.py --events 100000     # the long run (bench/RESULTS.md)
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import random
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "events"
ACCOUNT_ID = "123456789012"
OUTCOMES = frozenset({"evaluated", "ignored", "rejected"})
_MISSING = object()


def samples() -> list[dict[str, Any]]:
    """The CloudTrail samples of events/ (IAM calls and console sign-ins)."""
    loaded = [json.loads(path.read_text()) for path in sorted(EVENTS_DIR.glob("*.json"))]
    return [event for event in loaded if event.get("source") in {"aws.iam", "aws.signin"}]


@dataclass(frozen=True)
class Case:
    """One fuzzed input: a JSON value (`event`), or, for files only, the file's bytes (`raw`)."""

    index: int
    mutations: tuple[str, ...]
    event: Any = None
    raw: bytes | None = None

    @property
    def label(self) -> str:
        return f"#{self.index} {'+'.join(self.mutations)}"


# ---------------------------------------------------------------- building blocks
ODD_TEXT = [
    "\ud800",  # a lone surrogate (JSON can carry it, UTF-8 cannot)
    "bob\udfff",
    "\u202eevil\u202c",  # right-to-left override
    "bo\u200db",  # zero-width joiner
    "bob\x00",
    "\x00",
    "🙂" * 20,
    "e\u0301" * 50,  # combining marks
    "josé",
    "bob\n",
    "\nbob",
    "\uff42\uff4f\uff42",  # fullwidth letters
    "\ufeffbob",  # a byte-order mark
    "Ωmega",
    "٣٣٣",
    "",
    " ",
    "a" * 65,
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "' OR '1'='1",
    "%s%s%s%n",
    "\\u0000",
]
NAMED_STRINGS = [
    ("detail", "eventID"),
    ("detail", "eventName"),
    ("detail", "eventSource"),
    ("detail", "requestParameters", "userName"),
    ("detail", "requestParameters", "groupName"),
    ("detail", "requestParameters", "policyArn"),
    ("detail", "requestParameters", "serialNumber"),
    ("detail", "userIdentity", "userName"),
    ("detail", "userIdentity", "type"),
    ("detail", "userIdentity", "arn"),
    ("detail", "sourceIPAddress"),
    ("detail", "userAgent"),
    ("detail", "errorCode"),
    ("detail", "recipientAccountId"),
    ("detail", "responseElements", "ConsoleLogin"),
    ("detail", "additionalEventData", "MFAUsed"),
    ("detail-type",),
    ("source",),
    ("account",),
    ("id",),
]
KEY_FIELDS = [
    ("detail",),
    ("detail", "eventID"),
    ("detail", "eventTime"),
    ("detail", "eventName"),
    ("detail", "eventSource"),
    ("detail", "userIdentity"),
    ("detail", "userIdentity", "type"),
    ("detail", "requestParameters"),
    ("detail", "responseElements"),
    ("detail", "additionalEventData"),
    ("detail", "recipientAccountId"),
    ("detail-type",),
    ("source",),
    ("account",),
    ("time",),
    ("id",),
    ("version",),
    ("region",),
]
IDENTITY_TYPES = [
    "Root",
    "IAMUser",
    "AssumedRole",
    "FederatedUser",
    "SAMLUser",
    "WebIdentityUser",
    "IdentityCenterUser",
    "AWSService",
    "AWSAccount",
    "Unknown",
    "",
    "root",
]
SOURCES = [("aws.iam", "iam.amazonaws.com"), ("aws.signin", "signin.amazonaws.com"), ("aws.sts", "sts.amazonaws.com")]
DETAIL_TYPES = [
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Console Signin via CloudTrail",
    "AWS Service Event via CloudTrail",
    "Object Created",
    "",
]
EVENT_NAMES = [
    "CreateUser",
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "AttachUserPolicy",
    "PutUserPolicy",
    "AddUserToGroup",
    "AttachGroupPolicy",
    "PutGroupPolicy",
    "DetachUserPolicy",
    "DeleteUserPolicy",
    "RemoveUserFromGroup",
    "DetachGroupPolicy",
    "DeleteGroupPolicy",
    "EnableMFADevice",
    "ResyncMFADevice",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "CreateAccessKey",
    "UpdateAccountPasswordPolicy",
    "DeleteAccountPasswordPolicy",
    "CreateAccountAlias",
    "DeleteAccountAlias",
    "ConsoleLogin",
    "CheckMfa",
    "GetUser",
    "AssumeRoot",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
    "PutUserPermissionsBoundary",
    "DeleteUser",
]
SCALARS: list[Any] = [None, True, False, 0, -1, 1.5, -0.0, "", "x", 2**63 - 1, 10**30, 1e308]


def _extreme_times(rng: random.Random, now: datetime) -> Any:
    return rng.choice(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-12:00",
            "2026-06-01T10:07:00",  # naive
            "2026-06-01T10:07:00.123456789Z",
            "1970-01-01T00:00:00Z",
            "2009-12-31T23:59:59Z",
            "2026-02-30T00:00:00Z",
            "2026-06-01T23:59:60Z",
            "2026-06-01",
            "10:07:00Z",
            "",
            "now",
            0,
            -1,
            253402300800,
            -62135596801,
            1.7e9,
            float("inf"),
            (now + timedelta(days=2)).isoformat(),
            (now + timedelta(hours=23)).isoformat(),
            (now - timedelta(minutes=5)).isoformat(),
            (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+09:00"),
        ]
    )


def random_json(rng: random.Random, depth: int = 3) -> Any:
    """A random JSON value (numbers, odd strings, lists, objects) at most `depth` levels deep."""
    kind = rng.randrange(6 if depth > 0 else 4)
    if kind == 0:
        return rng.choice(SCALARS)
    if kind == 1:
        return rng.choice(ODD_TEXT)
    if kind == 2:
        return rng.randint(-(2**70), 2**70)
    if kind == 3:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 12)))
    if kind == 4:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(0, 5))]
    return {rng.choice([*ODD_TEXT, "userName", "groupName", "a"]): random_json(rng, depth - 1) for _ in range(4)}


def nested(depth: int, leaf: Any = "x", as_list: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


def _paths(value: Any, *, depth: int = 12, limit: int = 2_000) -> list[tuple[Any, ...]]:
    """Paths of the nodes of `value` (the root first), at most `depth` deep and `limit` many."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack and len(found) < limit:
        node, path = stack.pop()
        found.append(path)
        if len(path) >= depth:
            continue
        if isinstance(node, dict):
            stack.extend((child, (*path, key)) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(node[:50]))
    return found


def dumps(value: Any) -> str:
    """json.dumps without recursion: any depth (the reader, not the writer, is under test)."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            stack.append(_Raw("}"))
            for number, (key, child) in enumerate(reversed(list(item.items()))):
                stack.extend([child, _Raw(json.dumps(str(key)) + ":")])
                if number < len(item) - 1:
                    stack.append(_Raw(","))
            stack.append(_Raw("{"))
        elif isinstance(item, list):
            stack.append(_Raw("]"))
            for number, child in enumerate(reversed(item)):
                stack.append(child)
                if number < len(item) - 1:
                    stack.append(_Raw(","))
            stack.append(_Raw("["))
        else:
            out.append(json.dumps(item))
    return "".join(out)


@dataclass(frozen=True)
class _Raw:
    text: str


def _set(event: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`event` with the value at `path` set (intermediate objects made as needed); may replace the root."""
    if not path:
        return value
    node = event
    for part in path[:-1]:
        if isinstance(node, dict) and isinstance(part, str):
            child = node.get(part)
            if not isinstance(child, dict | list):
                child = {}
                node[part] = child
            node = child
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return event
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    return event


def _delete(event: Any, path: tuple[Any, ...]) -> Any:
    node = event
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)
    return event


# ---------------------------------------------------------------- mutations
Mutation = Callable[[random.Random, Any, datetime], Any]


def wrong_type(rng: random.Random, event: Any, _now: datetime) -> Any:
    path = rng.choice(_paths(event)[1:] or [()])
    return _set(event, path, rng.choice([*SCALARS, [], {}, [1, "a"], {"a": 1}, rng.choice(ODD_TEXT)]))


def missing_field(rng: random.Random, event: Any, _now: datetime) -> Any:
    if rng.random() < 0.7:
        return _delete(event, rng.choice(KEY_FIELDS))
    paths = [p for p in _paths(event) if p]
    return _delete(event, rng.choice(paths)) if paths else event


def huge_string(rng: random.Random, event: Any, _now: datetime) -> Any:
    size = rng.choice([300, 5_000, 70_000, 300_000])
    return _set(event, rng.choice(NAMED_STRINGS), rng.choice(["u", "é", "🙂", "a-"]) * size)


def huge_collection(rng: random.Random, event: Any, _now: datetime) -> Any:
    count = rng.choice([1_000, 21_000, 60_000])
    if rng.random() < 0.5:
        value: Any = [{"key": f"k{i}", "value": "v"} for i in range(count)]
        return _set(event, ("detail", "requestParameters", "tags"), value)
    return _set(event, ("detail", "requestParameters"), {f"p{i}": i for i in range(count)} | {"userName": "bob"})


def deep_nesting(rng: random.Random, event: Any, _now: datetime) -> Any:
    depth = rng.choice([28, 31, 33, 100, 260, 2_000, 20_000])
    where = rng.choice(
        [
            ("detail", "requestParameters", "nested"),
            ("detail", "additionalEventData"),
            ("detail", "userIdentity", "sessionContext", "attributes"),
            ("detail", "responseElements"),
            ("detail", "requestParameters", "userName"),
            ("resources",),
        ]
    )
    return _set(event, where, nested(depth, as_list=rng.random() < 0.3))


def odd_unicode(rng: random.Random, event: Any, _now: datetime) -> Any:
    path = rng.choice(NAMED_STRINGS)
    text = rng.choice(ODD_TEXT)
    if rng.random() < 0.3:  # keep most of a real value, spoil one character
        node: Any = event
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and node:
            at = rng.randrange(len(node))
            text = node[:at] + text + node[at + 1 :]
    if rng.random() < 0.2:  # odd keys too
        detail = event.get("detail") if isinstance(event, dict) else None
        requested = detail.get("requestParameters") if isinstance(detail, dict) else None
        if isinstance(requested, dict):
            requested[rng.choice(ODD_TEXT)] = "v"
    return _set(event, path, text)


def extreme_date(rng: random.Random, event: Any, now: datetime) -> Any:
    path = ("time",) if rng.random() < 0.2 else ("detail", "eventTime")
    return _set(event, path, _extreme_times(rng, now))


def other_account(rng: random.Random, event: Any, _now: datetime) -> Any:
    account = rng.choice(["210987654321", "000000000000", "12345678901", "1234567890123", "", "abc", 123456789012])
    path = rng.choice([("detail", "recipientAccountId"), ("account",), ("detail", "userIdentity", "accountId")])
    return _set(event, path, account)


def swapped_names(rng: random.Random, event: Any, _now: datetime) -> Any:
    choice = rng.randrange(4)
    if choice == 0:
        return _set(event, ("detail", "eventName"), rng.choice(EVENT_NAMES))
    if choice == 1:
        source, event_source = rng.choice(SOURCES)
        event = _set(event, ("source",), source)
        return _set(event, ("detail", "eventSource"), event_source)
    if choice == 2:
        return _set(event, ("detail-type",), rng.choice(DETAIL_TYPES))
    return _set(event, ("detail", "eventSource"), rng.choice(SOURCES)[1])


def big_number(rng: random.Random, event: Any, _now: datetime) -> Any:
    value = rng.choice([10**30, -(2**63) - 1, 2**63, 10**400, -(10**300), float("nan"), float("inf"), -float("inf")])
    path = rng.choice(_paths(event)[1:] or [()])
    return _set(event, path, value)


def junk_identity(rng: random.Random, event: Any, _now: datetime) -> Any:
    identity: dict[str, Any] = {"type": rng.choice(IDENTITY_TYPES)}
    for key in ("principalId", "arn", "accountId", "userName", "invokedBy", "sessionContext"):
        if rng.random() < 0.5:
            identity[key] = random_json(rng, 2) if rng.random() < 0.3 else rng.choice(["bob", ACCOUNT_ID, "x"])
    return _set(event, ("detail", "userIdentity"), identity)


def junk_request(rng: random.Random, event: Any, _now: datetime) -> Any:
    return _set(event, ("detail", "requestParameters"), random_json(rng, 4))


def not_an_object(rng: random.Random, event: Any, _now: datetime) -> Any:
    return rng.choice([[event], [], "CreateUser", 42, None, True, [1, 2, 3], random_json(rng, 2)])


def same_event(rng: random.Random, event: Any, _now: datetime) -> Any:
    return event  # a redelivery: its sample's eventID again


MUTATIONS: dict[str, tuple[Mutation, int]] = {
    # name: (mutation, weight)
    "wrong-type": (wrong_type, 12),
    "missing-field": (missing_field, 10),
    "huge-string": (huge_string, 3),
    "huge-collection": (huge_collection, 2),
    "deep-nesting": (deep_nesting, 5),
    "odd-unicode": (odd_unicode, 12),
    "extreme-date": (extreme_date, 10),
    "other-account": (other_account, 6),
    "swapped-names": (swapped_names, 8),
    "big-number": (big_number, 5),
    "junk-identity": (junk_identity, 7),
    "junk-request": (junk_request, 8),
    "not-an-object": (not_an_object, 2),
    "redelivery": (same_event, 4),
}


# Files only: contents no JSON value can stand for.
def _file_case(rng: random.Random, event: Any) -> tuple[str, bytes]:
    text = dumps(event)
    kind = rng.choice(
        [
            "random-bytes",
            "truncated-json",
            "utf16-json",
            "bom-json",
            "brackets-past-recursion",
            "integer-past-digit-limit",
            "empty-file",
            "empty-array",
            "whitespace",
            "json-lines",
            "nul-bytes",
        ]
    )
    makers: dict[str, Callable[[], bytes]] = {
        "random-bytes": lambda: rng.randbytes(rng.randrange(1, 2_000)),
        "truncated-json": lambda: text[: rng.randrange(1, max(2, len(text)))].encode(),
        "utf16-json": lambda: text.encode("utf-16"),
        "bom-json": lambda: b"\xef\xbb\xbf" + text.encode(),
        "brackets-past-recursion": lambda: b"[" * 100_000 + b"]" * 100_000,
        "integer-past-digit-limit": lambda: b'{"detail": {"eventID": ' + b"7" * rng.choice([4_301, 50_000]) + b"}}",
        "empty-file": lambda: b"",
        "empty-array": lambda: b"[]",
        "whitespace": lambda: b" \n\t ",
        "json-lines": lambda: (text + "\n" + text).encode(),
        "nul-bytes": lambda: b"\x00" * 64,
    }
    return kind, makers[kind]()


def corpus(
    seed: int, count: int, *, files: bool = False, fresh_ids: float = 0.7, now: datetime | None = None
) -> Iterator[Case]:
    """`count` cases from `seed` (the same ones for the same `now`, by default this hour).

    `files` adds file-only contents and arrays; `fresh_ids` is the share of cases with an
    eventID of their own (the rest are redeliveries of a sample's, answered by idempotency).
    Times near the bounds of the event model are relative to `now`.
    """
    now = now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    bases = samples()
    names = list(MUTATIONS)
    weights = [MUTATIONS[name][1] for name in names]
    for index in range(count):
        event: Any = copy.deepcopy(rng.choice(bases))
        if rng.random() < fresh_ids:
            fresh = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            event["id"], event["detail"]["eventID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4)), fresh
        if files and rng.random() < 0.08:
            kind, raw = _file_case(rng, event)
            yield Case(index, (kind,), raw=raw)
            continue
        applied = tuple(rng.choices(names, weights, k=rng.choice([1, 1, 1, 2, 2, 3])))
        for name in applied:
            event = MUTATIONS[name][0](rng, event, now)
        if files and rng.random() < 0.05:  # several events in one file, some of them sound
            event = [event, copy.deepcopy(rng.choice(bases)), random_json(rng, 2)]
            applied = (*applied, "in-an-array")
        yield Case(index, applied, event=event)


# ---------------------------------------------------------------- running
@dataclass
class Crash:
    case: str
    error: str
    trace: str


@dataclass
class Report:
    """What a run saw: outcomes overall and per mutation, and every uncaught exception."""

    events: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_mutation: dict[str, Counter[str]] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)

    def count(self, case: Case, outcome: str) -> None:
        self.events += 1
        self.outcomes[outcome] += 1
        for name in dict.fromkeys(case.mutations):
            self.by_mutation.setdefault(name, Counter())[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 1),
            "uncaught_exceptions": len(self.crashes),
            "outcomes": dict(sorted(self.outcomes.items())),
            "by_mutation": {name: dict(sorted(c.items())) for name, c in sorted(self.by_mutation.items())},
            "crashes": [vars(crash) for crash in self.crashes[:20]],
        }


def run_handlers(cases: Iterable[Case], deliver: Callable[[Any], Any]) -> Report:
    """Deliver each JSON case to the handlers; anything raised, or an answer without an outcome, is a crash."""
    report = Report()
    started = time.perf_counter()
    for case in cases:
        if case.raw is not None:
            continue
        try:
            result = deliver(case.event)
        except Exception as exc:  # the point of the run: nothing may escape a handler
            report.crashes.append(Crash(case.label, f"{type(exc).__name__}: {str(exc)[:300]}", traceback.format_exc()))
            report.count(case, "crash")
            continue
        outcome = result.get("outcome") if isinstance(result, dict) else None
        if outcome not in OUTCOMES or not isinstance(result.get("reason"), str):
            report.crashes.append(Crash(case.label, f"malformed answer: {str(result)[:300]}", ""))
            outcome = "crash"
        report.count(case, str(outcome))
    report.seconds = time.perf_counter() - started
    return report


def lines_expected(content: bytes) -> int:
    """How many lines `iamguard events replay` owes a file: one per event of an array, else one."""
    try:
        loaded = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return 1
    return max(1, len(loaded)) if isinstance(loaded, list) else 1


def write_case(case: Case, directory: Path) -> tuple[Path, bytes]:
    content = case.raw if case.raw is not None else dumps(case.event).encode()
    path = directory / f"case-{case.index:06d}.json"
    path.write_bytes(content)
    return path, content


def run_replay(
    cases: Iterable[Case],
    endpoint_url: str,
    directory: Path,
    *,
    batch: int = 2_000,
    env: dict[str, str] | None = None,
    timeout: float = 3_600,
) -> Report:
    """Write the cases to files and replay them in batches; every file and event must get one sound line."""
    report = Report()
    started = time.perf_counter()
    pending: list[tuple[Case, Path, int]] = []

    def flush() -> None:
        if not pending:
            return
        done = subprocess.run(
            [sys.executable, "-m", "iamguard_cli", "events", "replay", *(str(p) for _, p, _ in pending)]
            + ["--endpoint-url", endpoint_url],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
        output = done.stdout.splitlines()
        if done.returncode != 0 or "Traceback" in done.stderr:
            report.crashes.append(
                Crash(f"replay of {pending[0][0].label}..", f"exit {done.returncode}", done.stderr[-3_000:])
            )
        cursor = 0
        for case, _, expected in pending:
            for line in output[cursor : cursor + expected]:
                try:
                    outcome = json.loads(line).get("outcome")
                except (ValueError, AttributeError):
                    outcome = None
                if outcome not in OUTCOMES:
                    report.crashes.append(Crash(case.label, f"malformed line: {line[:300]}", ""))
                    outcome = "crash"
                report.count(case, str(outcome))
            if len(output[cursor : cursor + expected]) < expected:
                report.crashes.append(Crash(case.label, f"{expected} lines owed, output ended", done.stderr[-2_000:]))
                report.count(case, "crash")
            cursor += expected
        if cursor != len(output):
            report.crashes.append(Crash("replay", f"{len(output) - cursor} lines more than files and events", ""))
        for _, path, _ in pending:
            path.unlink()
        pending.clear()

    for case in cases:
        path, content = write_case(case, directory)
        pending.append((case, path, lines_expected(content)))
        if len(pending) >= batch:
            flush()
    flush()
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def lambda_handlers(*, quiet: bool = True) -> Iterator[Callable[[Any], Any]]:
    """Both event handlers on in-process moto with the sample account; yields `deliver(event)`.

    Routing is by `source`, as the two EventBridge rules route (anything else goes to the
    IAM function, which must reject it). The handlers' logs and metrics go nowhere when `quiet`.
    """
    from iamguard.aws import AwsContext
    from iamguard.persistence.findings import FindingsStore
    from iamguard_cli.local import moto_ext
    from iamguard_cli.local.bootstrap import ensure_findings_table, ensure_guardrail_policy, ensure_idempotency_table
    from iamguard_cli.local.samples import IAMGUARD_SAMPLE_ROLE_ARN, seed_sample_account
    from moto import mock_aws

    from tests.support.template import load_handler

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": "iamguard",
        "POWERTOOLS_METRICS_NAMESPACE": "iamguard",
        "FINDINGS_TABLE": "iamguard-fuzz-findings",
        "IDEMPOTENCY_TABLE": "iamguard-fuzz-idempotency",
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "MODE": "enforce",  # the riskiest path: enforcement runs for every evaluated event
        "IAMGUARD_ROLE_ARNS": IAMGUARD_SAMPLE_ROLE_ARN,
        "REQUIRED_POLICY_ARNS": "arn:aws:iam::aws:policy/IAMUserChangePassword",
        "SIGNIN_FAILURE_THRESHOLD": "3",
    }
    saved = {key: os.environ.get(key) for key in [*env, "GUARDRAIL_POLICY_ARN"]}
    os.environ.update(env)
    sink = io.StringIO()
    try:
        with mock_aws():
            moto_ext.install()
            moto_ext.reset()
            aws = AwsContext(region="us-east-1", retry_mode="standard", max_attempts=2)
            seed_sample_account(aws.iam())
            ensure_findings_table(FindingsStore(aws.dynamodb(), env["FINDINGS_TABLE"]))
            ensure_idempotency_table(aws.dynamodb(), env["IDEMPOTENCY_TABLE"])
            os.environ["GUARDRAIL_POLICY_ARN"] = ensure_guardrail_policy(aws.iam(), ACCOUNT_ID)
            handlers = {name: load_handler(name, prefix="fuzz_handler") for name in ("on_iam_event", "on_signin_event")}
            from iamguard_cli.local.lambda_context import LambdaContext

            context = LambdaContext.for_function("iamguard-fuzz", ACCOUNT_ID)
            # The handlers' Powertools logger is the process's "iamguard" logger: quiet it for the run only.
            service_logger = logging.getLogger("iamguard")
            level = service_logger.level
            if quiet:
                service_logger.setLevel(logging.CRITICAL)

            def deliver(event: Any) -> Any:
                source = event.get("source") if isinstance(event, dict) else None
                handler = handlers["on_signin_event" if source == "aws.signin" else "on_iam_event"]
                with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
                    result = handler.lambda_handler(event, context)
                sink.seek(0)
                sink.truncate()
                return result

            try:
                yield deliver
            finally:
                service_logger.setLevel(level)
    finally:
        moto_ext.reset()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
