"""A large audit's findings are written in conditional transactions of up to 100 (issue #14: 24,000 PutItems
at 2,000 users), with the conditions, the stored items and the Changes of the single writes.

Other writers and DynamoDB's cancellations are injected where they happen on AWS: a before-call hook on
the store's client writes an item between the decision and the transaction, or answers the transaction
with the TransactionCanceledException AWS sends (one reason per action) for TransactionConflict and
throttling, which moto never produces.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from iamguard.aws import AwsContext
from iamguard.domain.findings import Finding, Severity, Status, Transition
from iamguard.persistence import findings as findings_module
from iamguard.persistence.findings import FindingsStore, StoreError
from iamguard_cli.local.bootstrap import ensure_findings_table

from tests.factories import ACCOUNT, NOW, finding
from tests.support.transactions import answer_transactions, cancelled

CHECKS = ("user_console_mfa", "user_mfa", "user_unused_credentials")
LATER = NOW + timedelta(hours=30)  # past the heartbeat: unchanged findings are rewritten too


def first_audit(users: int, at: Any = NOW) -> list[Finding]:
    """What a first audit of `users` users observes: three checks each, every other user failing MFA."""
    return [
        finding(check, user=f"user{n:04}", status=Status.FAIL if n % 2 and check != "user_mfa" else Status.PASS, at=at)
        for n in range(users)
        for check in CHECKS
    ]


@pytest.fixture
def calls(store: FindingsStore) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every call the store's client makes, by operation, with its parameters."""
    made: list[tuple[str, dict[str, Any]]] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        made.append((event_name.rsplit(".", 1)[-1], params))

    store.client.meta.events.register("provide-client-params.dynamodb", record)
    yield made
    store.client.meta.events.unregister("provide-client-params.dynamodb", record)


def operations(made: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    return Counter(name for name, _ in made)


def raw_items(store: FindingsStore) -> dict[tuple[str, str], dict[str, Any]]:
    """The table as DynamoDB holds it (typed attribute values, nothing converted)."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in store.client.get_paginator("scan").paginate(TableName=store.table, ConsistentRead=True):
        for item in page["Items"]:
            items[(item["pk"]["S"], item["sk"]["S"])] = item
    return items


def test_a_first_audit_of_many_users_writes_its_findings_in_transactions_of_100(
    store: FindingsStore, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given a first audit of 84 users: 252 findings, none stored
    observed = first_audit(84)

    # When the audit stores them
    changes = store.record(observed, full_audit_account=ACCOUNT)

    # Then they are written in ceil(252 / 100) = 3 transactions of conditional Puts, and no finding alone
    made = operations(calls)
    assert made["TransactWriteItems"] == math.ceil(len(observed) / 100) == 3
    sizes = [len(params["TransactItems"]) for name, params in calls if name == "TransactWriteItems"]
    assert sorted(sizes, reverse=True) == [100, 100, 52]  # sent in parallel: in any order
    steps = [step for name, params in calls if name == "TransactWriteItems" for step in params["TransactItems"]]
    assert all(step["Put"]["ConditionExpression"] == "attribute_not_exists(#n0)" for step in steps)
    assert all(step["Put"]["ExpressionAttributeNames"] == {"#n0": "pk"} for step in steps)
    puts = [params["Item"]["pk"]["S"] for name, params in calls if name == "PutItem"]
    assert puts == ["SUMMARY", "SUMMARY"]  # the account's summary and the table's: no finding alone
    # … and every finding is stored, each Change as the single writes make it
    assert len(store.findings()) == 252
    assert Counter(c.transition for c in changes) == {Transition.OPENED: 84, Transition.RECORDED: 168}
    assert all(c.announcement == "1" for c in changes if c.transition is Transition.OPENED)


def audit_rounds() -> list[list[Finding]]:
    """Three audits of one account: the first, one with every kind of change, one past the heartbeat."""
    hour = NOW + timedelta(hours=1)
    second = [finding("user_console_mfa", user="newcomer", at=hour)]  # opened; users 55-59 are gone: resolved
    for f in first_audit(55, at=hour):
        n = int(f.resource_name.removeprefix("user"))
        if n < 10:  # resolved (or still passing)
            f = f.model_copy(update={"status": Status.PASS})
        elif n < 20 and n % 2 and f.check_id == "user_console_mfa":  # escalated
            f = f.model_copy(update={"severity": Severity.CRITICAL})
        second.append(f)  # the rest unchanged, within the heartbeat: not written
    third = [f.model_copy(update={"observed_at": LATER}) for f in second]  # past the heartbeat: rewritten
    return [first_audit(60), second, third]


def test_transactions_store_exactly_what_single_writes_stored(
    aws: AwsContext, store: FindingsStore, calls: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a second table written by today's single conditional PutItems (every batch taken as small)
    single = FindingsStore(aws.dynamodb(), f"{store.table}-single")
    ensure_findings_table(single)

    # When both record the same audits: new findings, transitions, announcements carried, gone users, heartbeat
    for observed in audit_rounds():
        with monkeypatch.context() as small:
            small.setattr(findings_module, "_PARALLEL_THRESHOLD", 1_000_000)
            one_by_one = single.record(observed, full_audit_account=ACCOUNT)
        batched = store.record(observed, full_audit_account=ACCOUNT)

        # Then the Changes are the same, in the same order, and the stored items are the same, byte for byte
        assert batched == one_by_one
        assert raw_items(store) == raw_items(single)
    assert operations(calls)["TransactWriteItems"] > 0
    versions = {int(item["version"]["N"]) for item in raw_items(store).values() if item["kind"] == {"S": "finding"}}
    assert versions == {2, 3}  # updates (version = :v) were written by transactions too


def test_a_finding_written_meanwhile_is_left_out_and_decided_again(
    aws: AwsContext, store: FindingsStore, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given a first audit of 50 users (150 findings: transactions of 100 and 50) …
    observed = first_audit(50)
    other = FindingsStore(aws.dynamodb(), store.table)  # the event path, with a client of its own
    newer = finding("user_mfa", user="user0007", status=Status.FAIL, at=NOW + timedelta(minutes=1))
    interfered: list[str] = []

    def event_path_writes_first(steps: list[dict[str, Any]]) -> None:
        # … and an event about user0007 whose findings are stored after the audit decided, before it wrote
        if not interfered and any(step["Put"]["Item"]["pk"] == {"S": "USER#user0007"} for step in steps):
            interfered.extend(c.transition.value for c in other.record([newer]))

    answer_transactions(store.client, event_path_writes_first)

    # When the audit stores its findings
    changes = store.record(observed, full_audit_account=ACCOUNT)

    # Then the transaction that held user0007's finding was cancelled by that one condition, sent again
    # without it, and the finding re-read and decided again: the event's newer observation stands
    assert interfered == ["opened"]
    sizes = [len(params["TransactItems"]) for name, params in calls if name == "TransactWriteItems"]
    assert sorted(sizes) == [50, 99, 100]  # the 100 cancelled, sent again without it
    assert operations(calls)["GetItem"] == 1
    # Its Change is the event's announcement, still unclaimed (as the single write hands it back)
    [kept] = [c for c in changes if c.finding.resource_name == "user0007" and c.finding.check_id == "user_mfa"]
    assert (kept.transition, kept.announcement, kept.recovered) == (Transition.OPENED, "1", True)
    assert kept.finding.observed_at == newer.observed_at and kept.previous is None
    stored = {(f.resource_name, f.check_id): f for f in store.findings()}
    assert len(stored) == 150
    assert stored[("user0007", "user_mfa")].observed_at == newer.observed_at
    assert stored[("user0007", "user_mfa")].status is Status.FAIL
    # … and every other finding is stored as the audit decided, its Change as a single write makes it
    others = [c for c in changes if c is not kept]
    assert all(stored[(c.finding.resource_name, c.finding.check_id)] == c.finding for c in others)
    assert Counter(c.transition for c in others) == {Transition.OPENED: 50, Transition.RECORDED: 99}


def test_a_transaction_conflict_and_throttling_are_sent_again(
    store: FindingsStore, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given DynamoDB cancels the first transaction for a conflict with another transaction (one item),
    # and the next for throttling
    answers = [["None"] * 40 + ["TransactionConflict"] + ["None"] * 59, ["ThrottlingError"] + ["None"] * 99]

    def cancel(steps: list[dict[str, Any]]) -> Any:
        return cancelled(answers.pop(0)) if answers and len(steps) == 100 else None

    answer_transactions(store.client, cancel)

    # When a first audit of 40 users (120 findings) is stored
    changes = store.record(first_audit(40), full_audit_account=ACCOUNT)

    # Then the cancelled transaction was sent again, whole, until it held: nothing is lost or re-read
    assert answers == []
    assert sorted(len(params["TransactItems"]) for name, params in calls if name == "TransactWriteItems") == [
        20,
        100,
        100,
        100,
    ]
    assert operations(calls)["GetItem"] == 0
    assert len(store.findings()) == 120
    assert Counter(c.transition for c in changes) == {Transition.OPENED: 40, Transition.RECORDED: 80}


def test_a_transaction_that_keeps_being_cancelled_fails_the_write(
    store: FindingsStore, calls: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(findings_module, "_PAUSE_BASE", 0.001)
    answer_transactions(store.client, lambda steps: cancelled(["None"] * (len(steps) - 1) + ["ThrottlingError"]))

    with pytest.raises(StoreError, match="kept being cancelled: None, ThrottlingError"):
        store.record(first_audit(12), full_audit_account=ACCOUNT)

    # 36 findings are one transaction: sent _TRANSACTION_ATTEMPTS times, then the audit fails as a write did
    assert operations(calls)["TransactWriteItems"] == findings_module._TRANSACTION_ATTEMPTS


def test_a_cancellation_that_cannot_succeed_is_not_sent_again(
    store: FindingsStore, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    answer_transactions(store.client, lambda steps: cancelled(["ValidationError"] + ["None"] * (len(steps) - 1)))

    with pytest.raises(StoreError, match="ValidationError"):
        store.record(first_audit(12), full_audit_account=ACCOUNT)
    assert operations(calls)["TransactWriteItems"] == 1


def test_a_finding_observed_twice_in_one_audit_is_never_two_actions_of_one_transaction(
    store: FindingsStore, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    # Given an audit that observed one finding twice (DynamoDB refuses two actions on one item)
    again = finding("user_mfa", user="user0003", status=Status.FAIL, at=NOW + timedelta(seconds=1), detail="Again.")
    changes = store.record([*first_audit(20), again], full_audit_account=ACCOUNT)

    # Then the first is written in the transaction, the second alone after it (re-read and decided again)
    assert [len(params["TransactItems"]) for name, params in calls if name == "TransactWriteItems"] == [60]
    assert operations(calls)["GetItem"] == 1
    assert changes[-1].transition is Transition.OPENED and changes[-1].finding.detail == "Again."
    [stored] = [f for f in store.findings() if (f.resource_name, f.check_id) == ("user0003", "user_mfa")]
    assert stored.detail == "Again."
