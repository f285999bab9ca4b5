"""Two deliveries of one CloudTrail event at the same time (EventBridge delivers at least once).

Each delivery runs in its own execution environment (`Bot.restart()`: a fresh handler
module, as Lambda runs concurrent invocations) on its own thread, against one moto
idempotency table. The first holds the eventID's in-progress record while it reads IAM;
the tests decide, with events, when it may go on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from iamguard.aws import AwsContext
from iamguard.realtime.processor import EventProcessor

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import Bot, BotFactory, sample
from tests.integration.events.test_realtime_handler import THROTTLED, _Body, metrics_emitted


@pytest.fixture
def bot(account: AwsContext, make_bot: BotFactory) -> Bot:
    return make_bot()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="delivery") as executor:
        yield executor


def processor(bot: Bot) -> EventProcessor:
    return bot.handlers["on_iam_event"].HANDLER.processor(ACCOUNT_ID)


class Gate:
    """Holds a delivery inside its first GetUser call (after it took the in-progress record)."""

    def __init__(self, bot: Bot, *, then_fail: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.then_fail = then_fail
        processor(bot).iam.meta.events.register_first("before-send.iam.GetUser", self._hold)

    def _hold(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        self.entered.set()
        assert self.release.wait(timeout=120), "the test never released the first delivery"
        return AWSResponse(request.url, 400, {}, _Body(THROTTLED)) if self.then_fail else None


def start_held(bot: Bot, pool: ThreadPoolExecutor, event: dict[str, Any], gate: Gate) -> Future[dict[str, Any]]:
    first = pool.submit(bot, event)
    assert gate.entered.wait(timeout=120), "the first delivery never reached IAM"
    return first


def sleeping_then(action: Callable[[], None]) -> Callable[[float], None]:
    """A sleep for the waiting delivery that does `action` on its first pause."""
    done = threading.Event()

    def sleep(seconds: float) -> None:
        if not done.is_set():
            done.set()
            action()
        threading.Event().wait(seconds)

    return sleep


def test_a_delivery_racing_one_in_progress_is_a_duplicate_not_an_error(
    bot: Bot, pool: ThreadPoolExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a delivery of CreateUser held in progress in one execution environment
    event = sample("create_user")
    gate = Gate(bot)
    first = start_held(bot, pool, event, gate)

    # When a second environment gets the same event and the first is still busy after its wait
    second_bot = bot.restart()
    processor(second_bot).concurrent_wait = 0.3
    second = second_bot(event)

    # Then the second answers (no exception, so no Lambda error and no retry) as a duplicate
    assert second["duplicate"] is True and second["outcome"] == "ignored"
    assert "another invocation is evaluating this event" in second["reason"]
    assert second["findings"] == [] and second["alerts"] == []
    assert bot.announcer.calls == []  # only the owner of the event announces
    assert metrics_emitted(capsys.readouterr().out) == {"IgnoredEvents": 1, "DuplicateEvents": 1}

    # And the first finishes, stores and announces once
    gate.release.set()
    owner = first.result(timeout=30)
    assert owner["outcome"] == "evaluated" and owner["duplicate"] is False
    assert [a["detection"] for a in owner["alerts"]] == ["user_created"]
    assert len(bot.announcer.calls) == 1

    # And EventBridge's next redelivery finds the completed record with the owner's result
    third = bot.restart()(event)
    assert third["duplicate"] is True and third["reason"].startswith("duplicate delivery, already processed: ")
    assert third["findings"] == owner["findings"] and third["alerts"] == owner["alerts"]
    assert len(bot.announcer.calls) == 1
    assert [r["status"]["S"] for r in bot.idempotency_records()] == ["COMPLETED"]


def test_a_duplicate_that_waits_gets_the_first_deliverys_result(bot: Bot, pool: ThreadPoolExecutor) -> None:
    # Given a delivery held in progress
    event = sample("create_user")
    gate = Gate(bot)
    first = start_held(bot, pool, event, gate)

    # When the second delivery finds it in progress, and the first completes during the second's wait
    second_bot = bot.restart()
    processor(second_bot)._sleep = sleeping_then(gate.release.set)
    second = second_bot(event)

    # Then the second returns the stored result, marked duplicate; one announcement in all
    owner = first.result(timeout=30)
    assert owner["duplicate"] is False and second["duplicate"] is True
    assert second["reason"].startswith("duplicate delivery, already processed: ")
    assert second["findings"] == owner["findings"] and second["alerts"] == owner["alerts"]
    assert len(bot.announcer.calls) == 1


def test_when_the_first_delivery_fails_the_waiting_one_evaluates_the_event(bot: Bot, pool: ThreadPoolExecutor) -> None:
    # Given a delivery held in progress that will then fail (IAM throttling beyond the retries)
    event = sample("create_user")
    gate = Gate(bot, then_fail=True)
    first = start_held(bot, pool, event, gate)

    # When the second delivery waits and the first fails meanwhile (releasing the in-progress record)
    second_bot = bot.restart()
    processor(second_bot)._sleep = sleeping_then(lambda: (gate.release.set(), _wait_failed(first)))
    second = second_bot(event)

    # Then the first is a Lambda error (retried by Lambda), and the second evaluated the event itself
    with pytest.raises(ClientError, match="Throttling"):
        first.result(timeout=30)
    assert second["outcome"] == "evaluated" and second["duplicate"] is False
    assert len(bot.announcer.calls) == 1

    # And Lambda's retry of the failed invocation is a duplicate of the completed record
    retry = bot.restart()(event)
    assert retry["duplicate"] is True and retry["alerts"] == second["alerts"]
    assert len(bot.announcer.calls) == 1


def _wait_failed(future: Future[dict[str, Any]]) -> None:
    with contextlib.suppress(ClientError):
        future.result(timeout=30)


def test_many_simultaneous_deliveries_evaluate_once_and_none_raises(bot: Bot, pool: ThreadPoolExecutor) -> None:
    # Given eight execution environments receiving the same event at the same moment
    event = sample("create_user")
    bots = [bot.restart() for _ in range(8)]
    start = threading.Barrier(len(bots))

    def deliver(one: Bot) -> dict[str, Any]:
        start.wait(timeout=30)
        return one(event)

    # When they all run
    results = [future.result(timeout=60) for future in [pool.submit(deliver, one) for one in bots]]

    # Then exactly one evaluated it, the others are duplicates, and it was announced once
    owners = [r for r in results if not r["duplicate"]]
    assert len(owners) == 1 and owners[0]["outcome"] == "evaluated"
    assert all(r["duplicate"] for r in results if r is not owners[0])
    # With the default wait, every duplicate got the owner's stored result
    assert all(r["alerts"] == owners[0]["alerts"] for r in results)
    assert len(bot.announcer.calls) == 1
    assert [r["status"]["S"] for r in bot.idempotency_records()] == ["COMPLETED"]
