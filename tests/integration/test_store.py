"""The findings table on moto DynamoDB: transitions, overlapping runs, stale observations, deleted users."""

from __future__ import annotations

from datetime import timedelta

from iamguard.domain.findings import Change, Severity, Status, Transition
from iamguard.persistence.findings import FindingsStore, GuardrailRecord

from tests.factories import NOW, finding


def only(changes) -> Transition:
    assert len(changes) == 1
    return changes[0].transition


def announce(store: FindingsStore, changes: list[Change]) -> list[Change]:
    """What an announcing run does to the table: take each announcement (the outbox's claim step, alone)."""
    for change in changes:
        if change.announcement is not None:
            store.client.transact_write_items(TransactItems=[store.claim_announcement(change)])
    return changes


def test_transitions_opened_unchanged_escalated_resolved(store: FindingsStore) -> None:
    assert only(announce(store, store.record([finding()]))) is Transition.OPENED
    assert only(store.record([finding(at=NOW + timedelta(hours=1))])) is Transition.UNCHANGED
    escalated = announce(store, store.record([finding(severity=Severity.CRITICAL, at=NOW + timedelta(hours=2))]))
    assert only(escalated) is Transition.ESCALATED
    resolved = store.record([finding(status=Status.PASS, at=NOW + timedelta(hours=3))])
    assert only(resolved) is Transition.RESOLVED

    [stored] = store.findings_for_resource("user", "bob", "123456789012")
    assert stored.status is Status.PASS
    assert stored.first_seen == NOW
    assert stored.status_changed_at == NOW + timedelta(hours=3)


def test_a_first_pass_is_recorded_without_anything_to_announce(store: FindingsStore) -> None:
    [change] = store.record([finding(status=Status.PASS)])
    assert change.transition is Transition.RECORDED and not change.notable
    assert store.pending_changes() == []


def test_overlapping_runs_record_one_transition(store: FindingsStore) -> None:
    # Two runs read the table before either wrote (the scan happens first), then both write.
    other = FindingsStore(store.client, store.table)
    first = store.record([finding()])
    second = other.record([finding()])
    assert only(first) is Transition.OPENED
    # The second run recorded nothing new; it is handed the same unclaimed announcement (one claim wins).
    assert only(second) is Transition.OPENED and second[0].recovered
    assert second[0].announcement == first[0].announcement
    assert [c.transition for c in store.pending_changes()] == [Transition.OPENED]


def test_conflicting_write_rereads_instead_of_double_counting(store: FindingsStore) -> None:
    store.record([finding(status=Status.PASS)])
    stale_item = next(item for item, _ in store.finding_items())
    # Another writer opens the finding (and announces it) after we read it …
    announce(store, store.record([finding(at=NOW + timedelta(minutes=1))]))
    # … and our write, based on the stale read, must not record a second "opened".
    change = store._write(finding(at=NOW + timedelta(minutes=2)), stale_item)
    assert change.transition is Transition.UNCHANGED
    assert store.pending_changes() == []  # a second "opened" would wait here to be announced


def test_an_older_observation_never_overwrites_a_newer_one(store: FindingsStore) -> None:
    announce(store, store.record([finding(status=Status.PASS, at=NOW + timedelta(hours=1))]))
    [change] = store.record([finding(status=Status.FAIL, at=NOW)])
    assert change.transition is Transition.UNCHANGED
    [stored] = store.findings()
    assert stored.status is Status.PASS


def test_unchanged_findings_are_not_rewritten_until_the_heartbeat(store: FindingsStore) -> None:
    store.record([finding()])
    store.record([finding(at=NOW + timedelta(hours=1))])
    [stored] = store.findings()
    assert stored.last_seen == NOW  # unchanged within the heartbeat: no write
    store.record([finding(at=NOW + timedelta(hours=25))])
    [stored] = store.findings()
    assert stored.last_seen == NOW + timedelta(hours=25)
    assert stored.first_seen == NOW


def test_full_audit_resolves_findings_of_deleted_users(store: FindingsStore) -> None:
    announce(store, store.record([finding(user="gone"), finding(user="stays")], full_audit_account="123456789012"))
    later = NOW + timedelta(hours=1)
    changes = store.record([finding(user="stays", at=later)], full_audit_account="123456789012")
    resolved = [c for c in changes if c.transition is Transition.RESOLVED]
    assert [c.finding.resource_name for c in resolved] == ["gone"]
    assert resolved[0].finding.detail == "gone no longer exists; the finding is resolved."


def test_a_transition_is_written_with_its_announcement_and_handed_back_until_claimed(store: FindingsStore) -> None:
    # Given a run that recorded an opened finding and died before announcing it
    [opened] = store.record([finding(), finding(user="ok", status=Status.PASS)])[:1]
    [item] = [i for i, _ in store.finding_items() if i["resource_name"] == "bob"]
    assert item["notify_pending"] == opened.announcement == str(item["version"])
    assert [c.finding.resource_name for c in store.pending_changes()] == ["bob"]

    # When later runs observe the same (unchanged) state, before and after the heartbeat rewrite
    soon = store.record([finding(at=NOW + timedelta(hours=1))])
    late = store.record([finding(at=NOW + timedelta(hours=30))])

    # Then each is handed the same announcement, as it was made
    for [change] in (soon, late):
        assert (change.transition, change.announcement, change.recovered) == (Transition.OPENED, "1", True)
        assert change.notable
    [stored] = [f for f in store.findings() if f.resource_name == "bob"]
    assert stored.last_seen == NOW + timedelta(hours=30)  # rewritten, announcement carried over

    # When a run claims it, nothing is pending any more, and an unchanged observation does not re-arm it
    announce(store, late)
    assert store.pending_changes() == []
    assert only(store.record([finding(at=NOW + timedelta(hours=60))])) is Transition.UNCHANGED


def test_a_resolution_is_handed_back_with_what_it_resolved(store: FindingsStore) -> None:
    announce(store, store.record([finding()]))
    store.record([finding(status=Status.PASS, at=NOW + timedelta(hours=2))])  # announced by no one
    [change] = store.pending_changes()
    assert change.transition is Transition.RESOLVED and change.recovered
    assert change.previous is not None and change.previous.status is Status.FAIL
    assert change.previous.status_changed_at == NOW
    assert change.finding.status_changed_at == NOW + timedelta(hours=2)


def test_the_event_path_is_handed_the_resources_other_pending_announcements(store: FindingsStore) -> None:
    store.record([finding("user_mfa", severity=Severity.LOW)])  # an audit died before announcing this
    changes = store.record([finding(at=NOW + timedelta(minutes=5))])  # an event re-evaluates one check
    assert sorted((c.finding.check_id, c.transition, c.recovered) for c in changes) == [
        ("user_console_mfa", Transition.OPENED, False),
        ("user_mfa", Transition.OPENED, True),
    ]


def test_a_claim_takes_an_announcement_once_and_not_a_replaced_one(store: FindingsStore) -> None:
    [opened] = store.record([finding()])
    announce(store, [opened])
    try:
        announce(store, [opened])  # a second run claiming the same announcement
    except store.client.exceptions.TransactionCanceledException as exc:
        assert [r["Code"] for r in exc.response["CancellationReasons"]] == ["ConditionalCheckFailed"]
    else:
        raise AssertionError("the same announcement was claimed twice")
    [resolved] = store.record([finding(status=Status.PASS, at=NOW + timedelta(hours=1))])
    assert resolved.announcement != opened.announcement


def test_a_write_that_read_before_a_claim_does_not_bring_the_announcement_back(store: FindingsStore) -> None:
    [opened] = store.record([finding()])
    stale = next(item for item, _ in store.finding_items())  # a run read the item (announcement pending) …
    announce(store, [opened])  # … another run announced it …
    change = store._write(finding(at=NOW + timedelta(hours=30)), stale)  # … then the first run writes
    assert change.transition is Transition.UNCHANGED and change.announcement is None
    assert "notify_pending" not in next(item for item, _ in store.finding_items())


def test_activity_is_recorded_once(store: FindingsStore) -> None:
    assert store.record_activity("detection", NOW, "evt-1", {"detection": "mfa_removed"}) is True
    assert store.record_activity("detection", NOW, "evt-1", {"detection": "mfa_removed"}) is False
    [item] = store.recent_activity(now=NOW)
    assert item["data"] == {"detection": "mfa_removed"}


def test_an_evaluation_error_keeps_the_last_known_verdict(store: FindingsStore) -> None:
    announce(store, store.record([finding()]))
    [change] = store.record(
        [finding(status=Status.ERROR, at=NOW + timedelta(hours=1), detail="Could not be evaluated.")]
    )
    assert change.transition is Transition.UNCHANGED
    [stored] = store.findings()
    assert stored.status is Status.FAIL
    assert only(store.record([finding(at=NOW + timedelta(hours=2))])) is Transition.UNCHANGED  # not re-opened
    assert only(store.record([finding(status=Status.PASS, at=NOW + timedelta(hours=3))])) is Transition.RESOLVED


def test_guardrail_records_live_beside_the_findings_and_go_when_empty(store: FindingsStore) -> None:
    # Given a finding and two users' guardrail records
    store.record([finding()])
    declined = GuardrailRecord(
        "bob", "AIDABOB", detached_by="IAM user alice", detached_at=NOW, detach_event_id="e-1", decided_at=NOW
    )
    deferred = GuardrailRecord("carol", "AIDACAROL", since=NOW - timedelta(hours=2), told="grace_period")
    kept = GuardrailRecord("dan", "AIDADAN", attached_by="root", decided_at=NOW)
    for record in (declined, deferred, kept):
        store.save_guardrail_record(record)

    # Then each reads back exactly, one by one and all at once (one index query), and none is a finding
    assert store.guardrail_record("bob") == declined
    assert store.guardrail_records() == {"bob": declined, "carol": deferred, "dan": kept}
    assert [(f.check_id, f.resource_name) for f in store.findings()] == [("user_console_mfa", "bob")]
    assert [f.check_id for f in store.findings_for_resource("user", "bob", "123456789012")] == ["user_console_mfa"]
    item = store.client.get_item(TableName=store.table, Key={"pk": {"S": "USER#bob"}, "sk": {"S": "GUARDRAIL"}})
    assert item["Item"]["kind"] == {"S": "guardrail"} and item["Item"]["detached_at"]["S"].startswith("2026-06-01T")

    # When there is nothing left to remember about carol, her record is removed
    store.save_guardrail_record(GuardrailRecord("carol", "AIDACAROL"))
    assert store.guardrail_record("carol") is None
    assert set(store.guardrail_records()) == {"bob", "dan"}
