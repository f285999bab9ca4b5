"""What the findings store asks DynamoDB for, by path: the event path by key, the full audit by scan."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from iamguard.domain.findings import Status
from iamguard.persistence.findings import FindingsStore

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


def test_a_full_audit_scans_to_resolve_users_that_are_gone(store: FindingsStore) -> None:
    store.record([finding(user="gone"), finding(user="stays")])
    seen = operations(store)
    changes = store.record([finding(user="stays", at=NOW + timedelta(hours=1))], full_audit_account="123456789012")
    assert seen["Scan"] >= 1
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
