"""Which exceptions apply to a resource: the user's tags, the EXEMPT_USERS setting, and the API's.

Tags on an IAM user (keys are case-sensitive, as IAM's are):

    iamguard:exempt=true                  the exception itself (required; "false" turns it off)
    iamguard:exempt-until=YYYY-MM-DD      the last day it holds (UTC); without it, open-ended
    iamguard:exempt-reason=<text>         why
    iamguard:exempt-owner=<text>          who answers for it
    iamguard:exempt-checks=id1,id2        which checks (catalog ids); without it, every check

A careless value never exempts: a malformed `iamguard:exempt` or `exempt-until`, an unknown
check id, or companion tags without `iamguard:exempt=true` leave the user not exempt by tag, and
the user's failing findings say why. Open-ended tag exceptions stay allowed (they were before,
and tagging a user takes iam:TagUser, which CloudTrail records); the API always sets an end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from iamguard.domain.account import User
from iamguard.domain.exemptions import ALL_CHECKS, Exemption
from iamguard.settings import EXEMPT_TAG_KEY, Settings

TAG_UNTIL = f"{EXEMPT_TAG_KEY}-until"
TAG_REASON = f"{EXEMPT_TAG_KEY}-reason"
TAG_OWNER = f"{EXEMPT_TAG_KEY}-owner"
TAG_CHECKS = f"{EXEMPT_TAG_KEY}-checks"
_COMPANIONS = (TAG_UNTIL, TAG_REASON, TAG_OWNER, TAG_CHECKS)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SETTING_REASON = "listed in the exempt users setting (EXEMPT_USERS)"


@dataclass(frozen=True)
class TagReading:
    """What a user's tags say: the exemptions they make, or why they make none."""

    exemptions: tuple[Exemption, ...] = ()
    problem: str | None = None


def parse_date(value: str) -> date:
    """A strict YYYY-MM-DD date (ValueError otherwise; `date.fromisoformat` alone also takes 20261231)."""
    text = value.strip()
    if not _DATE.match(text):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    return date.fromisoformat(text)


def read_tags(user: User, known_checks: Iterable[str]) -> TagReading:
    """The exemptions a user's tags make; a malformed tag makes none and says why."""
    tags = user.tags
    flag = tags.get(EXEMPT_TAG_KEY)
    present = [key for key in _COMPANIONS if key in tags]
    if flag is None:
        if present:
            return TagReading(problem=f"{', '.join(present)} set without {EXEMPT_TAG_KEY}=true")
        return TagReading()
    value = flag.strip().lower()
    if value == "false":
        return TagReading()
    if value != "true":
        return TagReading(problem=f"{EXEMPT_TAG_KEY}={flag!r} is neither true nor false")
    expires = None
    if TAG_UNTIL in tags:
        try:
            expires = parse_date(tags[TAG_UNTIL])
        except ValueError as exc:
            return TagReading(problem=f"{TAG_UNTIL}: {exc}")
    checks = [ALL_CHECKS]
    if TAG_CHECKS in tags:
        checks = [c.strip() for c in tags[TAG_CHECKS].replace(" ", ",").split(",") if c.strip()]
        known = set(known_checks) | {ALL_CHECKS}
        unknown = [c for c in checks if c not in known]
        if unknown or not checks:
            what = f"unknown check id {', '.join(map(repr, unknown))}" if unknown else "no check id"
            return TagReading(problem=f"{TAG_CHECKS} names {what}")
    reason = tags.get(TAG_REASON, "").strip() or f"tagged {EXEMPT_TAG_KEY}=true"
    owner = tags.get(TAG_OWNER, "").strip() or None
    return TagReading(
        exemptions=tuple(
            Exemption(check_id=check, resource=user.name, reason=reason, owner=owner, expires=expires, source="tag")
            for check in dict.fromkeys(checks)
        )
    )


def setting_exemption(user: User, settings: Settings) -> Exemption | None:
    if user.name in settings.exempt_users:
        return Exemption(check_id=ALL_CHECKS, resource=user.name, reason=SETTING_REASON, source="setting")
    return None


@dataclass(frozen=True)
class Applicable:
    """Every exemption that may apply to one resource, and what was wrong with its tags."""

    exemptions: tuple[Exemption, ...] = ()
    problem: str | None = None


def for_user(
    user: User, settings: Settings, stored: Mapping[str, list[Exemption]], known_checks: Iterable[str]
) -> Applicable:
    """The user's exemptions from the setting, its tags and the API (`stored`, by resource)."""
    tags = read_tags(user, known_checks)
    found = [*tags.exemptions, *stored.get(user.name, [])]
    setting = setting_exemption(user, settings)
    if setting is not None:
        found.append(setting)
    return Applicable(tuple(found), tags.problem)


def by_resource(exemptions: Iterable[Exemption], account_id: str) -> dict[str, list[Exemption]]:
    """The exemptions that hold in `account_id` (the account being judged), by resource."""
    grouped: dict[str, list[Exemption]] = {}
    for exemption in exemptions:
        if not exemption.holds_in(account_id):
            continue  # another account's exception: the same name there is another user
        grouped.setdefault(exemption.resource, []).append(exemption)
    return grouped
