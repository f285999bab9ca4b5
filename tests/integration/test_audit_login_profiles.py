"""The audit's one per-user read, GetLoginProfile: concurrent and bounded, errors per user, not repeated.

IAM answers through a moto server whose middleware plays IAM's throttling and denials
(the XML IAM sends) and records how many GetLoginProfile requests were in flight at once.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.checks import run_checks
from iamguard.domain.findings import Status
from iamguard.iam.inventory import PER_USER_WORKERS, Inventory
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.settings import Settings
from iamguard_cli.local.server import MotoServer

from tests.integration.test_cli_audit import iamguard
from tests.support.clock import wait_for_the_next_whole_second

RESET_CHECK = "user_password_reset_possible"


def _iam_error(status: str, code: str, message: str) -> tuple[str, bytes]:
    body = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>4f8e2a10-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    ).encode()
    return status, body


class IamFaults:
    """WSGI middleware: each GetLoginProfile takes `delay` seconds; chosen users are throttled or denied."""

    def __init__(self) -> None:
        self.delay = 0.02
        self.throttle_always: set[str] = set()
        self.throttle_first: set[str] = set()
        self.deny: set[str] = set()
        self.actions: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.most_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.throttle_always, self.throttle_first, self.deny = set(), set(), set()
        self.actions.clear()
        self.attempts.clear()
        self.most_in_flight = 0

    def wrap(self, app: Any) -> Any:
        def middleware(environ: dict[str, Any], start_response: Any) -> Any:
            if "/iam/" not in environ.get("HTTP_AUTHORIZATION", ""):
                return app(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)
            params = urllib.parse.parse_qs(body.decode())
            action = params.get("Action", [""])[0]
            self.actions[action] += 1
            if action != "GetLoginProfile":
                return app(environ, start_response)
            user = params.get("UserName", [""])[0]
            with self._lock:
                self.attempts[user] += 1
                attempt = self.attempts[user]
                self._in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self._in_flight)
            try:
                time.sleep(self.delay)  # IAM's round trip: lets concurrent requests overlap
                error = None
                if user in self.throttle_always or (user in self.throttle_first and attempt == 1):
                    error = _iam_error("400 Bad Request", "Throttling", "Rate exceeded")
                elif user in self.deny:
                    error = _iam_error(
                        "403 Forbidden",
                        "AccessDenied",
                        f"User: arn:aws:iam::123456789012:user/auditor is not authorized to perform: "
                        f"iam:GetLoginProfile on resource: user {user}",
                    )
                if error is not None:
                    status, payload = error
                    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))])
                    return [payload]
                return app(environ, start_response)
            finally:
                with self._lock:
                    self._in_flight -= 1

        return middleware


NEW_USERS = [f"new{n:02d}" for n in range(30)]


@pytest.fixture(scope="module")
def faulty() -> Iterator[tuple[MotoServer, IamFaults]]:
    """30 console users who never signed in and may not change their password (no policy lets them)."""
    faults = IamFaults()
    with MotoServer(wrap=faults.wrap) as server:
        server.reset()  # moto's backends are shared in the process: start from an empty account
        iam = AwsContext(endpoint_url=server.url).iam()
        created = datetime.now(UTC)
        for name in NEW_USERS:
            iam.create_user(UserName=name)
            iam.create_login_profile(UserName=name, Password="Initial-Password-1!", PasswordResetRequired=True)
        wait_for_the_next_whole_second(created)  # moto's password_last_changed is the creation's second
        yield server, faults


@pytest.fixture
def faults(faulty: tuple[MotoServer, IamFaults]) -> IamFaults:
    faulty[1].reset()
    return faulty[1]


def test_reads_run_concurrently_and_a_throttled_or_denied_user_fails_alone(
    faulty: tuple[MotoServer, IamFaults], faults: IamFaults
) -> None:
    # Given IAM throttling one user on every attempt, two others once, and denying one user
    server, _ = faulty
    faults.throttle_always = {"new07"}
    faults.throttle_first = {"new03", "new11"}
    faults.deny = {"new19"}

    # When the audit reads the account (adaptive retries, three retries per call)
    ctx = AwsContext(endpoint_url=server.url, retry_mode="adaptive", max_attempts=3)
    state = Inventory(ctx).read_account()
    findings = {f.resource_name: f for f in run_checks(state, Settings.from_env({})) if f.check_id == RESET_CHECK}

    # Then the calls overlapped, never more than the pool's bound
    assert 1 < faults.most_in_flight <= PER_USER_WORKERS
    # ... users keep the order IAM listed them in
    assert [user.name for user in state.users] == NEW_USERS
    users = {user.name: user for user in state.users}
    # ... the throttled user was retried (botocore's max_attempts counts retries), then is its own error
    assert faults.attempts["new07"] == 4
    assert users["new07"].login_profile_error == "Throttling: Rate exceeded"
    assert findings["new07"].status is Status.ERROR
    assert findings["new07"].detail == "Could not be evaluated — iam:GetLoginProfile: Throttling: Rate exceeded."
    # ... the denied user too (one denial is about that user, not the role)
    assert str(users["new19"].login_profile_error).startswith("AccessDenied: User: arn:aws:iam::123456789012:user/")
    assert findings["new19"].status is Status.ERROR
    # ... users throttled once were retried and read
    assert faults.attempts["new03"] == faults.attempts["new11"] == 2
    assert users["new03"].password_reset_required is True and users["new03"].login_profile_error is None
    # ... and everyone else was read once and judged
    assert {name for name, f in findings.items() if f.status is Status.FAIL} == set(NEW_USERS) - {"new07", "new19"}
    assert all(faults.attempts[name] == 1 for name in set(NEW_USERS) - {"new03", "new07", "new11"})


def test_a_stored_audit_reuses_what_the_last_one_read(faulty: tuple[MotoServer, IamFaults], faults: IamFaults) -> None:
    # Given `iamguard audit --store` run once
    server, _ = faulty
    first = iamguard("audit", "--endpoint-url", server.url, "--store", "--format", "json")
    assert first.returncode == 3, first.stderr
    assert faults.actions["GetLoginProfile"] == len(NEW_USERS)
    faults.reset()

    # When it runs again on the unchanged account
    second = iamguard("audit", "--endpoint-url", server.url, "--store", "--format", "json")

    # Then it asks IAM nothing per user, and judges the same
    assert second.returncode == 3, second.stderr
    assert faults.actions["GetLoginProfile"] == 0
    assert sum(faults.actions.values()) <= 12, faults.actions

    def verdicts(report: str) -> dict[str, tuple[str, str]]:
        data = json.loads(report)
        return {
            f["resource_name"]: (f["status"], f["detail"]) for f in data["findings"] if f["check_id"] == RESET_CHECK
        }

    assert verdicts(second.stdout) == verdicts(first.stdout)
    assert {status for status, _ in verdicts(second.stdout).values()} == {"FAIL"}


def test_facts_are_kept_per_user_and_an_older_observation_never_replaces_a_newer(
    aws: AwsContext, store: FindingsStore
) -> None:
    from datetime import timedelta

    from iamguard.domain.account import LoginProfileFacts

    memory = LoginProfileStore(store.client, store.table)
    now = datetime.now(UTC)
    memory.remember([LoginProfileFacts("ann", "AIDAANN", False, now - timedelta(minutes=5), now)])
    memory.remember([LoginProfileFacts("ann", "AIDAANN", True, now - timedelta(minutes=5), now - timedelta(minutes=1))])
    memory.remember([LoginProfileFacts("bob", "AIDABOB", True, None, now)])
    memory.forget("bob", now - timedelta(seconds=1))  # a deletion seen before bob's facts were read: they stay
    kept = memory.recall()
    assert kept["ann"].password_reset_required is False and kept["ann"].observed_at == now.replace(
        microsecond=now.microsecond // 1000 * 1000
    )
    assert kept["bob"].password_reset_required is True
    memory.forget("bob", now + timedelta(seconds=1))  # the profile is gone since
    memory.remember([LoginProfileFacts("bob", "AIDABOB", True, None, now)])  # a slow audit's older read
    assert set(memory.recall()) == {"ann"}


class Calls:
    """Every API call made through the clients it watches (botocore's before-call event)."""

    def __init__(self, *clients: Any) -> None:
        self.by_operation: Counter[str] = Counter()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.by_operation[model.name] += 1

    def take(self) -> Counter[str]:
        taken, self.by_operation = self.by_operation, Counter()
        return taken


def test_a_second_stored_audit_of_an_unchanged_2000_user_account_makes_at_most_20_calls(
    aws: AwsContext, store: FindingsStore
) -> None:
    # Given 2,000 users, 1,200 of them with a console password they never used and may not change
    iam = aws.iam()
    for n in range(2000):
        iam.create_user(UserName=f"user{n:04d}")
        if n % 5 < 3:
            iam.create_login_profile(
                UserName=f"user{n:04d}", Password="Initial-Password-1!", PasswordResetRequired=True
            )
    dynamodb = aws.dynamodb()
    calls = Calls(iam, dynamodb)
    memory = LoginProfileStore(dynamodb, store.table)
    settings = Settings.from_env({})

    # When the audit runs twice with the facts kept (as the Lambda and `iamguard audit --store` do)
    first = Inventory(aws, iam_client=iam, login_profiles=memory).read_account()
    first_calls = calls.take()
    second = Inventory(aws, iam_client=iam, login_profiles=memory).read_account()
    second_calls = calls.take()

    # Then the first read each of the 1,200 once, the second none, in at most 20 calls in all
    assert first_calls["GetLoginProfile"] == 1200
    assert second_calls["GetLoginProfile"] == 0
    assert sum(second_calls.values()) <= 20, second_calls

    # ... and both judge every user alike
    def verdicts(state: Any) -> dict[tuple[str, str], tuple[Status, str]]:
        return {(f.check_id, f.resource_name): (f.status, f.detail) for f in run_checks(state, settings, state.read_at)}

    assert verdicts(second) == verdicts(first)
    assert (
        sum(1 for (check, _), (status, _) in verdicts(second).items() if check == RESET_CHECK and status is Status.FAIL)
        == 1200
    )


def test_a_hand_edited_fact_is_read_live_not_trusted(aws: AwsContext, store: FindingsStore) -> None:
    for sk, extra in (
        ("USER#ann", {"observed_at": {"S": "yesterday"}, "user_id": {"S": "AIDAANN"}}),
        ("USER#bob", {"observed_at": {"S": "2026-06-01T12:00:00+00:00"}, "user_id": {"S": "AIDABOB"}}),
        ("USER#cy", {"observed_at": {"N": "5"}, "user_id": {"S": "AIDACY"}, "password_reset_required": {"BOOL": True}}),
    ):
        item = {"pk": {"S": "LOGIN_PROFILES"}, "sk": {"S": sk}, **extra}
        store.client.put_item(TableName=store.table, Item=item)
    # not a time, no flag at all, a number for a time: none is taken for a fact
    assert LoginProfileStore(store.client, store.table).recall() == {}


def test_an_unusable_table_costs_the_saving_not_the_audit(aws: AwsContext) -> None:
    from iamguard.domain.account import LoginProfileFacts

    # (a handler on the module's own logger: a Powertools logger above it may not propagate to pytest's)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("iamguard.persistence.login_profiles")
    logger.addHandler(handler)
    try:
        memory = LoginProfileStore(aws.dynamodb(), "no-such-table")
        now = datetime.now(UTC)
        assert memory.recall() == {}
        memory.remember([LoginProfileFacts(f"user{n}", f"AIDA{n}", True, None, now) for n in range(40)])
    finally:
        logger.removeHandler(handler)
    kept = [r for r in records if r.getMessage().startswith("login-profile facts not kept")]
    assert len(kept) == 1 and kept[0].__dict__["users"] == 40
