"""What the findings store asks DynamoDB for, by path: the event path by key, the full audit by its account's index."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from iamguard.domain.findings import Change, Status, Transition
from iamguard.persistence.findings import FindingsStore, GuardrailRecord, NotNew

from tests.factories import NOW
from tests.integration.test_store import finding


def operations(store: FindingsStore) -> Counter[str]:
    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.name] += 1

    store.client.meta.events.register("before-call.dynamodb", count)
    return seen


def test_the_event_path_reads_one_resource_by_key_and_never_scans(store: FindingsStore) -> None:
    # Given findings of two users
    store.record([finding(user="bob"), finding(user="carol")])
    seen = operations(store)

    # When the event path records bob's new observation
    [change] = store.record_resources([finding(status=Status.PASS, user="bob")])

    # Then it resolved bob's finding with a Query and a conditional write; nothing scanned
    assert change.transition.value == "resolved"
    assert seen["Scan"] == 0 and seen["Query"] >= 1
    statuses = {f.resource_name: f.status for f in store.findings()}
    assert statuses == {"bob": Status.PASS, "carol": Status.FAIL}


def test_a_full_audit_queries_its_accounts_index_to_resolve_users_that_are_gone(store: FindingsStore) -> None:
    store.record([finding(user="gone"), finding(user="stays")])
    seen = operations(store)
    changes = store.record([finding(user="stays", at=NOW + timedelta(hours=1))], full_audit_account="123456789012")
    assert seen["Scan"] == 0 and seen["Query"] >= 3, dict(seen)  # users, root, account: one Query each
    assert {(c.finding.resource_name, c.transition.value) for c in changes} >= {("gone", "resolved")}


def test_findings_lists_every_stored_finding_without_a_scan(store: FindingsStore) -> None:
    store.record([finding(user="bob"), finding(user="bob", check="user_mfa"), finding(user="carol")])
    seen = operations(store)
    assert sorted((f.check_id, f.resource_name) for f in store.findings()) == [
        ("user_console_mfa", "bob"),
        ("user_console_mfa", "carol"),
        ("user_mfa", "bob"),
    ]
    assert seen["Scan"] == 0


def test_one_query_reads_a_users_findings_and_guardrail_record_for_the_whole_event(store: FindingsStore) -> None:
    # Given bob's stored finding and his guardrail record (one partition), and carol's finding
    store.record([finding(user="bob"), finding(user="carol")])
    record = GuardrailRecord("bob", "AIDABOB", detached_by="alice", detached_at=NOW)
    store.save_guardrail_record(record)
    seen = operations(store)

    # When the event path reads bob once, then records his new observation with that read
    read = store.read_resource("user", "bob", "")
    [change] = store.record_resources(
        [finding(status=Status.PASS, user="bob", at=NOW + timedelta(minutes=1))], read=[read]
    )

    # Then one Query gave both, no GetItem, and the write went through on it
    assert read.guardrail == record
    assert [item["check_id"] for item in read.findings] == ["user_console_mfa"]
    assert seen["Query"] == 1 and seen["GetItem"] == 0 and seen["TransactWriteItems"] == 1, dict(seen)
    assert change.transition is Transition.RESOLVED
    assert {f.resource_name: f.status for f in store.findings()} == {"bob": Status.PASS, "carol": Status.FAIL}


def test_a_read_that_went_stale_before_the_write_is_read_again(store: FindingsStore) -> None:
    # Given the event path read bob, and another run resolved his finding in between
    store.record([finding(user="bob")])
    read = store.read_resource("user", "bob", "")
    store.record_resources([finding(status=Status.PASS, user="bob", at=NOW + timedelta(minutes=1))])
    seen = operations(store)

    # When the event path writes its own (later) observation from the stale read
    [change] = store.record_resources(
        [finding(status=Status.PASS, user="bob", at=NOW + timedelta(minutes=2))], read=[read]
    )

    # Then the version condition cancelled the first write; it re-read and made no transition of its own:
    # what it hands back is the other run's resolution, still waiting to be announced
    assert seen["TransactWriteItems"] >= 1 and seen["Query"] == 1, dict(seen)
    assert change.recovered and change.transition is Transition.RESOLVED
    [stored] = store.findings()
    assert stored.status is Status.PASS and stored.status_changed_at == NOW + timedelta(minutes=1)


def test_the_events_activity_goes_in_the_findings_transaction_made_from_the_final_changes(
    store: FindingsStore,
) -> None:
    # Given bob's finding, read by the event path, then resolved by another run before the write
    store.record([finding(user="bob")])
    read = store.read_resource("user", "bob", "")
    store.record_resources([finding(status=Status.PASS, user="bob", at=NOW + timedelta(minutes=1))])
    seen = operations(store)
    made_from: list[list[str]] = []

    def activity(changes: list[Change]) -> list[dict[str, Any]]:
        made_from.append([c.transition.value + ("/recovered" if c.recovered else "") for c in changes])
        return [store.activity_item("alert", NOW, "bob#mfa", {"attempt": len(made_from)})] * 2  # one item, twice

    # When the event path writes its observation with the event's activity item
    store.record_resources(
        [finding(status=Status.FAIL, user="bob", at=NOW + timedelta(minutes=2))], read=[read], also=activity
    )

    # Then the stale first attempt (made from the read: bob's FAIL still waiting to be announced) was
    # cancelled, the item was re-made from the re-decided changes and written once, in the transaction that held
    assert made_from == [["opened/recovered"], ["opened"]]
    assert seen["PutItem"] == 0 and seen["TransactWriteItems"] == 2, dict(seen)
    [item] = [i for i in store.recent_activity(days=400, now=NOW) if i["kind"] == "alert"]
    assert item["data"] == {"attempt": 2}


def test_the_events_activity_is_written_when_no_finding_changed(store: FindingsStore) -> None:
    store.record([finding(user="bob")])
    read = store.read_resource("user", "bob", "")
    seen = operations(store)

    changes = store.record_resources(
        [finding(user="bob", at=NOW + timedelta(minutes=1))],
        read=[read],
        also=lambda _: [store.activity_item("alert", NOW, "bob#signin", {"n": 1})],
    )

    assert [(c.transition, c.recovered) for c in changes] == [(Transition.OPENED, True)]  # nothing new to write
    assert seen["TransactWriteItems"] == 1 and seen["Query"] == 0, dict(seen)
    assert [i["data"] for i in store.recent_activity(days=400, now=NOW)] == [{"n": 1}]
    with pytest.raises(ValueError, match="one resource"):
        store.record_resources([finding(user="bob"), finding(user="carol")], also=lambda _: [])


# ---------------------------------------------------------------- a resource taken as new (not read)
def test_a_new_resource_is_written_without_a_read(store: FindingsStore) -> None:
    seen = operations(store)
    [change] = store.record_resources([finding(user="newcomer")], read=[store.new_resource("user", "newcomer", "")])
    assert change.transition is Transition.OPENED and change.announcement is not None
    assert seen == Counter({"TransactWriteItems": 1})
    assert [(f.resource_name, f.status) for f in store.findings()] == [("newcomer", Status.FAIL)]


@pytest.mark.parametrize("stored", ["finding", "other finding", "guardrail"])
def test_a_resource_taken_as_new_that_was_not_is_refused_and_nothing_is_written(
    store: FindingsStore, stored: str
) -> None:
    # Given something stored under the name: the same check's finding, another check's, or a guardrail record
    if stored == "finding":
        store.record([finding(user="known", status=Status.PASS)])
    elif stored == "other finding":
        store.record([finding(user="known", check="user_mfa")])
    else:
        store.save_guardrail_record(GuardrailRecord("known", "AIDAKNOWN", detached_by="admin"))
    before = sorted((f.check_id, f.status.value, f.observed_at) for f in store.findings())
    summary_before = store.summary_and_audit()[0]

    # When it is written as new
    with pytest.raises(NotNew):
        store.record_resources([finding(user="known")], read=[store.new_resource("user", "known", "")])

    # Then nothing of that attempt was written
    assert sorted((f.check_id, f.status.value, f.observed_at) for f in store.findings()) == before
    assert store.summary_and_audit()[0] == summary_before
    # and it is written once read
    changes = store.record_resources([finding(user="known")], read=[store.read_resource("user", "known", "")])
    assert [c.transition.value for c in changes if not c.recovered] == ["opened"]
