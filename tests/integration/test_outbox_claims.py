"""One announcement's messages are claimed in the outbox together: one transaction, each message decided alone.

An event that opens findings of several checks announces an alert and one message per check; each
message's claim was a write of its own (a PutItem, or a transaction with its findings'
announcements). They now go in one TransactWriteItems of up to 100 actions. A cancellation names
the action that failed, so each message still ends as its own claim would have ended it: a message
claimed before is a duplicate, one whose announcement another run took is rebuilt without it, the
rest are claimed; a conflict is retried. Cancellations moto never produces are injected
(tests/support/transactions.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.domain.findings import Change, Severity
from iamguard.domain.messages import Channel
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.outbox import MAX_ACTIONS, Claim, Outbox, _batches
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.factories import finding
from tests.integration.notify_support import (
    alert,
    fast_slack,
    headers,
    make_dispatcher,
    slack_fixture,  # noqa: F401 - the `slack` fixture
)
from tests.support.transactions import answer_transactions, cancelled

# Checks a new administrator without MFA fails, each its own message (high: sent to Slack at once).
CHECKS = ("user_admin_without_mfa", "user_admin_access", "user_console_mfa")


@pytest.fixture
def claims(store: FindingsStore) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The outbox's claim writes (PutItem, TransactWriteItems) on the store's client, with their parameters."""
    made: list[tuple[str, dict[str, Any]]] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation in {"PutItem", "TransactWriteItems"}:
            made.append((operation, params))

    store.client.meta.events.register("provide-client-params.dynamodb", record)
    yield made
    store.client.meta.events.unregister("provide-client-params.dynamodb", record)


def sizes(made: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Actions per claim write (a PutItem is one)."""
    return [len(params["TransactItems"]) if name == "TransactWriteItems" else 1 for name, params in made]


def new_admin(store: FindingsStore, user: str = "newbie") -> list[Change]:
    return store.record([finding(check=check, user=user, severity=Severity.HIGH) for check in CHECKS])


def test_an_events_alert_and_finding_messages_are_claimed_in_one_transaction(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver, claims: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given an event that opened three findings of one user and raised an alert
    changes = new_admin(store)
    claims.clear()

    # When it is announced
    report = make_dispatcher([fast_slack(slack)], store).announce(alerts=[alert()], changes=changes, actions=[])

    # Then the four messages and the three announcements were taken in one transaction (was four writes)
    assert [name for name, _ in claims] == ["TransactWriteItems"]
    steps = claims[0][1]["TransactItems"]
    assert sorted(next(iter(step)) for step in steps) == ["Put"] * 4 + ["Update"] * 3
    # ... and each was sent once, nothing waits for an announcement any more
    assert report.sent == 4 and report.duplicates == 0
    assert sorted(headers(slack)) == sorted(
        ["🔴 Critical · Root signed in to the console"] + ["🟠 High · New finding: newbie"] * 3
    )
    assert store.pending_changes() == []


def test_a_message_claimed_before_is_a_duplicate_and_the_others_are_still_claimed(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver, claims: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given the alert told by another delivery of the same event
    assert make_dispatcher([fast_slack(slack)], store).announce(alerts=[alert()], changes=[], actions=[]).sent == 1
    changes = new_admin(store)
    claims.clear()

    # When this delivery announces the alert with its findings
    other = make_dispatcher([fast_slack(slack)], FindingsStore(store.client, store.table))
    report = other.announce(alerts=[alert()], changes=changes, actions=[])

    # Then the transaction, cancelled on the alert's item, went again at once without it
    assert sizes(claims) == [7, 6]
    assert (report.sent, report.duplicates) == (3, 1)
    assert headers(slack).count("🔴 Critical · Root signed in to the console") == 1
    assert store.pending_changes() == []


def test_an_announcement_another_run_took_is_left_out_of_its_message(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver, claims: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given bob and alice without console MFA (one message) and alice an administrator (another)
    changes = store.record(
        [
            finding(check="user_console_mfa", user="bob"),
            finding(check="user_console_mfa", user="alice"),
            finding(check="user_admin_access", user="alice"),
        ]
    )
    # ... and another run that has just taken bob's announcement
    bobs = next(c for c in changes if c.finding.resource_name == "bob")
    store.client.transact_write_items(TransactItems=[store.claim_announcement(bobs)])  # type: ignore[list-item]
    claims.clear()

    # When the changes are announced
    report = make_dispatcher([fast_slack(slack)], store).announce(alerts=[], changes=changes, actions=[])

    # Then the first transaction failed on bob's step only: the other message was claimed at once,
    # and the console-MFA message again, without bob
    assert sizes(claims) == [5, 2, 2]
    assert report.sent == 2 and report.duplicates == 0
    assert sorted(headers(slack)) == ["🟠 High · New finding: alice"] * 2
    assert store.pending_changes() == []


def test_a_conflicting_transaction_is_sent_again(
    aws: AwsContext, store: FindingsStore, slack: SlackReceiver, claims: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given a claim transaction that collides with another one the first time (TransactionConflict)
    changes = new_admin(store)
    claims.clear()
    answers = [["None", "TransactionConflict"] + ["None"] * 5]
    answer_transactions(store.client, lambda steps: cancelled(answers.pop()) if answers else None)

    # When the event is announced
    report = make_dispatcher([fast_slack(slack)], store).announce(alerts=[alert()], changes=changes, actions=[])

    # Then the same transaction went again and every message was sent once
    assert sizes(claims) == [7, 7]
    assert report.sent == 4 and report.duplicates == 0
    assert store.pending_changes() == []


def test_claims_are_cut_into_transactions_dynamodb_accepts(aws: AwsContext, store: FindingsStore) -> None:
    notify = make_dispatcher([], store)
    root = notify.builder.alert_message(alert())
    other = notify.builder.alert_message(alert(event_id="another-event"))

    def steps(n: int, prefix: str) -> list[dict[str, Any]]:
        return [{"Update": {"Key": {"pk": {"S": f"{prefix}{i}"}, "sk": {"S": "CHECK#x"}}}} for i in range(n)]

    slack = frozenset({Channel.SLACK})
    outbox = Outbox(store.client, store.table)

    def pending(claims: list[Claim]) -> list[Any]:
        return [(n, claim, outbox._claim_item(claim, notify.clock())) for n, claim in enumerate(claims)]

    # A message never leaves its announcements; 100 actions at most; an item never twice in one transaction
    asked = [Claim(root, slack, steps(59, "a")), Claim(other, slack, steps(39, "b")), Claim(other, slack)]
    assert [[position for position, *_ in batch] for batch in _batches(pending(asked))] == [[0, 1], [2]]
    asked = [Claim(root, slack, steps(60, "a")), Claim(other, slack, steps(39, "b"))]
    assert sum(claim.actions for claim in asked) == MAX_ACTIONS + 1
    assert [len(batch) for batch in _batches(pending(asked))] == [1, 1]

    # And the same message twice in one announcement is claimed once (the second in a write of its own)
    results = outbox.claim_all([Claim(root, slack), Claim(other, slack), Claim(root, slack)], notify.clock())
    assert [bool(result) for result in results] == [True, True, False]
    assert results[2].duplicate
