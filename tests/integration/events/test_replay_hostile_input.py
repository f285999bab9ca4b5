"""`iamguard events replay` on files it must reject: one line per file, and the run goes on.

Each of these files used to end the replay with a traceback (a lone surrogate printed
with ensure_ascii=False, JSON nested past the recursion limit, an integer past
Python's digit limit).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from iamguard.aws import AwsContext
from iamguard_cli.commands.events import DEFAULT_IDEMPOTENCY_TABLE

from tests.conftest import EVENTS_DIR
from tests.integration.events.test_events_replay_cli import FLAGS, iamguard, lines, seeded

__all__ = ["seeded"]  # the fixture, shared with the replay tests

CREATE_USER = (EVENTS_DIR / "create_user.json").read_text()


def with_detail(field: str, raw_json_value: str) -> str:
    """create_user.json with one detail field replaced by raw JSON text (escapes kept as written)."""
    event = json.loads(CREATE_USER)
    event["detail"][field] = "PLACEHOLDER"
    return json.dumps(event).replace('"PLACEHOLDER"', raw_json_value)


HOSTILE_FILES: dict[str, tuple[bytes, str]] = {
    # name: (file content, what the rejection says)
    "surrogate-event-id.json": (
        with_detail("eventID", '"\\ud800-0001"').encode(),
        "detail.eventID is not valid Unicode",
    ),
    "surrogate-event-name.json": (with_detail("eventName", '"Create\\udfffUser"').encode(), "not valid Unicode text"),
    "nested-past-recursion.json": (b"[" * 200_000 + b"]" * 200_000, "nested deeper than Python can read"),
    "nested-deep.json": (with_detail("requestParameters", '{"a":' * 500 + "1" + "}" * 500).encode(), "nested more"),
    "huge-integer.json": (b'{"detail": ' + b"9" * 5000 + b"}", "is not usable JSON: Exceeds the limit"),
    "big-integer.json": (with_detail("requestParameters", '{"n": ' + "9" * 400 + "}").encode(), "beyond 64 bits"),
    "nan.json": (with_detail("requestParameters", '{"n": NaN}').encode(), "not a finite number"),
    "not-utf8.json": (b'{"detail": "\xff\xfe"}', "is not JSON: not UTF-8 text"),
    "binary.json": (bytes(range(256)), "is not JSON"),
    "empty-array.json": (b"[]", "holds no events"),
    "empty.json": (b"", "is not usable JSON: Expecting value"),
}


def test_every_hostile_file_gets_one_rejected_line_and_the_replay_goes_on(seeded: str, tmp_path: Path) -> None:
    # Given a replay of hostile files, a directory, and then a good event
    paths = []
    for name, (content, _) in HOSTILE_FILES.items():
        (tmp_path / name).write_bytes(content)
        paths.append(str(tmp_path / name))
    (tmp_path / "a-directory.json").mkdir()
    paths.append(str(tmp_path / "a-directory.json"))
    good = tmp_path / "good.json"
    good.write_text(CREATE_USER)
    paths.append(str(good))

    # When it runs
    done = iamguard("events", "replay", *paths, "--endpoint-url", seeded, *FLAGS)

    # Then it finishes (exit 0, no traceback) with one line per file, in order
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    results = lines(done.stdout)
    assert len(results) == len(paths)
    for (name, (_, reason)), result in zip(HOSTILE_FILES.items(), results, strict=False):
        assert result["outcome"] == "rejected", (name, result)
        assert reason in result["reason"], (name, result["reason"])
    assert results[-2]["outcome"] == "rejected" and "cannot read" in results[-2]["reason"]
    assert results[-1]["outcome"] == "evaluated" and results[-1]["event_name"] == "CreateUser"
    # The surrogate id is shown, made printable
    assert results[0]["event_id"] == "?-0001"


def test_a_terminal_that_cannot_show_the_text_gets_escaped_json(seeded: str, tmp_path: Path) -> None:
    # Given an event naming a user with a non-ASCII name, replayed to an ASCII-only stdout
    event = json.loads(CREATE_USER)
    event["detail"]["requestParameters"]["userName"] = "josé"
    path = tmp_path / "accented.json"
    path.write_text(json.dumps(event))
    done = iamguard("events", "replay", str(path), "--endpoint-url", seeded, *FLAGS, PYTHONIOENCODING="ascii")

    # Then the line is valid JSON (escaped), and the name is rejected (IAM names are ASCII)
    assert done.returncode == 0, done.stderr
    [result] = lines(done.stdout)
    assert done.stdout.isascii()
    assert result["outcome"] == "rejected" and "'josé' is not a valid IAM name" in result["reason"]

    # And the text format escapes what the terminal cannot show
    text = iamguard(
        "events", "replay", str(path), "--endpoint-url", seeded, "--format", "text", PYTHONIOENCODING="ascii"
    )
    assert text.returncode == 0, text.stderr
    assert "jos\\xe9" in text.stdout


def test_an_event_left_in_progress_by_a_killed_replay_is_evaluated_by_the_next_one(
    seeded: str, server_aws: AwsContext
) -> None:
    # Given a replay: each event's in-progress record expires as a Lambda invocation's would (60 s)
    event = str(EVENTS_DIR / "create_user.json")
    before = time.time()
    first = lines(iamguard("events", "replay", event, "--endpoint-url", seeded, *FLAGS).stdout)
    dynamodb = server_aws.dynamodb()
    [record] = dynamodb.scan(TableName=DEFAULT_IDEMPOTENCY_TABLE)["Items"]
    deadline = int(record["in_progress_expiration"]["N"]) / 1000
    assert before + 55 <= deadline <= time.time() + 65
    assert first[0]["outcome"] == "evaluated"

    # When a replay was killed while evaluating it, more than a minute ago
    dynamodb.update_item(
        TableName=DEFAULT_IDEMPOTENCY_TABLE,
        Key={"id": record["id"]},
        UpdateExpression="SET #s = :progress, in_progress_expiration = :past REMOVE #d",
        ExpressionAttributeNames={"#s": "status", "#d": "data"},
        ExpressionAttributeValues={
            ":progress": {"S": "INPROGRESS"},
            ":past": {"N": str(int((time.time() - 1) * 1000))},
        },
    )
    again = lines(iamguard("events", "replay", event, "--endpoint-url", seeded, *FLAGS).stdout)

    # Then the next replay evaluates it (not "in progress elsewhere" for the record's 24 hours)
    assert again[0]["outcome"] == "evaluated" and again[0]["duplicate"] is False
