"""The account summary `GET /status` answers from: counts kept current by every writer of findings.

Item layout (in the findings table):
  summary  pk=SUMMARY  sk=LATEST              every account the table holds (the organization, in organization mode)
           pk=SUMMARY  sk=ACCOUNT#<account id>  one account's own (GET /accounts, /accounts/{id}/status)
           findings_<STATUS>    stored findings by status (findings of gone resources left out)
           failed_<severity>    failing findings by severity
           users_<standing>     users by standing (compliant, non_compliant, exempt, unknown)
           account_id, audited_at (set when a full audit rewrote the item), updated_at

The event path adds its deltas to both items in the same transaction as the findings they count
(FindingsStore.record_resources), so the counters move exactly with the findings; in organization
mode to the account's item only (nothing reads `LATEST` there, and one item every member's events
updated would be the table's hottest). The full
audit of one account rewrites that account's item from the account's stored findings (a
transaction that commits between the audit's read and that rewrite is overwritten, and the
next audit heals it), then `LATEST` as the sum of every account's item (`combined`).
Concurrent audits of different accounts never write each other's items; `LATEST` is then
last-writer-wins, so organization mode answers from the account items themselves
(`combined` at read time: exact). A table no audit has summarised yet (no `audited_at`) is
answered by a full read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import groupby
from typing import Any

from iamguard.checks import CATALOG
from iamguard.domain.findings import Finding, Severity, Status
from iamguard.persistence.table import expression, iso, item_key

SUMMARY_PK = "SUMMARY"
SUMMARY_SK = "LATEST"
ACCOUNT_SK_PREFIX = "ACCOUNT#"
GONE_DETAIL = "no longer exists; the finding is resolved."  # detail of findings resolved because the resource is gone
STANDINGS = ("compliant", "non_compliant", "exempt", "unknown")
COUNTERS = (
    *(f"findings_{s.value}" for s in Status),
    *(f"failed_{s.value}" for s in Severity),
    *(f"users_{name}" for name in STANDINGS),
)


def is_gone(finding: Finding) -> bool:
    """Resolved because its resource no longer exists: not part of the account any more."""
    return finding.detail.endswith(GONE_DETAIL)


def standing(findings: Iterable[Finding]) -> str | None:
    """One user's standing from its findings; None when it has none (of the catalog) or no longer exists."""
    known = [f for f in findings if f.check_id in CATALOG]
    if not known or all(is_gone(f) for f in known):
        return None
    if any(f.status is Status.FAIL for f in known):
        return "non_compliant"
    if any(f.status is Status.EXEMPT for f in known):
        return "exempt"
    if any(f.status is Status.ERROR for f in known):
        return "unknown"
    return "compliant"


def tally(findings: Iterable[Finding]) -> Counter[str]:
    """The summary's counters for these findings (any mix of resources)."""
    counts: Counter[str] = Counter()
    users: list[Finding] = []
    for finding in findings:
        if finding.resource_type == "user":
            users.append(finding)
        if is_gone(finding):
            continue
        counts[f"findings_{finding.status.value}"] += 1
        if finding.failed:
            counts[f"failed_{finding.severity.value}"] += 1
    users.sort(key=_user)
    for _, group in groupby(users, key=_user):
        user = standing(group)
        if user is not None:
            counts[f"users_{user}"] += 1
    return counts


def _user(finding: Finding) -> tuple[str, str]:
    return finding.account_id, finding.resource_name  # one name in two accounts is two users


def delta(before: Iterable[Finding], after: Iterable[Finding]) -> dict[str, int]:
    """What changes in the counters when `before` (a resource's stored findings) becomes `after`."""
    change = tally(after)
    change.subtract(tally(before))
    return {name: count for name, count in change.items() if count}


def account_sk(account_id: str) -> str:
    return f"{ACCOUNT_SK_PREFIX}{account_id}"


def delta_update(table: str, change: Mapping[str, int], account_id: str, sk: str = SUMMARY_SK) -> dict[str, Any]:
    """The transaction step that adds `change` to the summary `sk` (creating it when absent)."""
    ordered = sorted(change)
    names = {f"#n{i}": name for i, name in enumerate(ordered)}
    values: dict[str, Any] = {f":v{i}": change[name] for i, name in enumerate(ordered)}
    additions = ", ".join(f"#n{i} :v{i}" for i in range(len(ordered)))
    return {
        "Update": {
            "TableName": table,
            "Key": item_key(SUMMARY_PK, sk),
            **expression(
                update=f"ADD {additions} SET #account = if_not_exists(#account, :account)",
                names={**names, "#account": "account_id"},
                values={**values, ":account": account_id},
            ),
        }
    }


def summary_item(
    findings: Iterable[Finding], *, account_id: str, audited_at: datetime, sk: str = SUMMARY_SK
) -> dict[str, Any]:
    """The whole summary, computed from every stored finding (what the full audit writes).

    With `sk=account_sk(id)` and that account's findings only: the account's own summary.
    """
    return _item(tally(findings), sk, account_id, audited_at)


def total(items: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """The sum of summary items' counters (the accounts' items: each account's users are its own)."""
    totals: Counter[str] = Counter()
    for item in items:
        totals.update({name: max(0, int(item.get(name, 0))) for name in COUNTERS})
    return totals


def combined(items: Iterable[Mapping[str, Any]], *, account_id: str, audited_at: datetime) -> dict[str, Any]:
    """`LATEST` as the sum of the accounts' summary items."""
    return _item(total(items), SUMMARY_SK, account_id, audited_at)


def _item(counts: Mapping[str, int], sk: str, account_id: str, audited_at: datetime) -> dict[str, Any]:
    return {
        "pk": SUMMARY_PK,
        "sk": sk,
        "kind": "summary",
        "account_id": account_id,
        "audited_at": iso(audited_at),
        **{name: counts.get(name, 0) for name in COUNTERS},
    }


def counters(item: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """A summary item's counters: by status, failing by severity, users by standing."""

    def count(name: str) -> int:
        return max(0, int(item.get(name, 0)))

    return (
        {status.value: count(f"findings_{status.value}") for status in Status},
        {severity.value: count(f"failed_{severity.value}") for severity in Severity},
        {name: count(f"users_{name}") for name in STANDINGS},
    )
