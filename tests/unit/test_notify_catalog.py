"""The message catalog: complete in both languages, in step with the checks, really translated."""

from __future__ import annotations

import re
import string
from typing import get_args

import pytest
from iamguard.checks import CATALOG
from iamguard.domain.alerts import Detection, Withheld
from iamguard.domain.findings import Severity
from iamguard.domain.messages import Channel
from iamguard.notify.catalog import fill, load_catalog
from iamguard.settings.notify import parse_routing

HANGUL = re.compile(r"[\uac00-\ud7a3]")
LANGUAGES = ("en", "ko")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_check_detection_severity_and_channel_has_an_entry(language: str) -> None:
    catalog = load_catalog(language)  # type: ignore[arg-type]
    assert set(catalog.checks) == set(CATALOG)
    assert set(catalog.detections) == {d.value for d in Detection}
    assert set(catalog.severity) == set(Severity)
    assert set(catalog.channel) == set(Channel)
    assert {"attach_guardrail_policy", "attach_required_policy", "default"} <= set(catalog.actions)


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, ko = load_catalog("en"), load_catalog("ko")
    assert set(en.ui) == set(ko.ui)
    for key in en.ui:
        assert placeholders(en.ui[key]) == placeholders(ko.ui[key]), key
    for check_id in en.checks:
        for name in ("failed", "passed"):
            english, korean = getattr(en.checks[check_id], name), getattr(ko.checks[check_id], name)
            assert placeholders(english) == placeholders(korean), (check_id, name)
        assert len(en.checks[check_id].console) == len(ko.checks[check_id].console), check_id
    for detection in en.detections:
        assert placeholders(en.detections[detection].summary) == placeholders(ko.detections[detection].summary)


def test_english_check_texts_are_the_checks_own_metadata() -> None:
    # The catalog is where messages read from; the check modules are where audits read from: they agree.
    en = load_catalog("en")
    for check_id, check in CATALOG.items():
        text = en.checks[check_id]
        assert (text.title, text.risk, text.console, text.cli) == (
            check.title,
            check.risk,
            check.remediation.console,
            check.remediation.cli,
        ), check_id


def test_korean_texts_are_korean_not_copies() -> None:
    en, ko = load_catalog("en"), load_catalog("ko")
    for check_id in CATALOG:
        k, e = ko.checks[check_id], en.checks[check_id]
        for value in (k.title, k.risk, k.failed, k.passed, *k.console):
            assert HANGUL.search(value), (check_id, value)
        assert k.title != e.title and k.risk != e.risk
    for detection in Detection:
        k = ko.detections[detection.value]
        for value in (k.title, k.summary, k.risk, *k.console):
            assert HANGUL.search(value), (detection, value)
    # Every UI string is Korean, except the alert headline, which is only an icon, a severity and a title.
    assert [key for key, value in ko.ui.items() if not HANGUL.search(value)] == ["headline.alert"]
    assert all(HANGUL.search(value) for value in ko.severity.values())


def test_remediation_placeholders_survive_translation() -> None:
    # Steps that name the user ({user}) or a command argument (<user>) do so in Korean too.
    en, ko = load_catalog("en"), load_catalog("ko")
    for check_id in CATALOG:
        if any("{user}" in step for step in en.checks[check_id].console):
            assert any("{user}" in step for step in ko.checks[check_id].console), check_id
        assert ("<user>" in en.checks[check_id].cli) == ("<user>" in ko.checks[check_id].cli), check_id


def test_fill_leaves_unknown_placeholders_alone() -> None:
    assert fill("{resource} by {actor}", resource="bob") == "bob by {actor}"


def test_routing_parses_channels_and_sends_unlisted_severities_to_the_digest() -> None:
    routes = parse_routing("critical=slack+email, high:slack ,medium=digest")
    assert routes[Severity.CRITICAL] == {Channel.SLACK, Channel.EMAIL}
    assert routes[Severity.HIGH] == {Channel.SLACK}
    assert routes[Severity.MEDIUM] == frozenset()
    assert routes[Severity.LOW] == frozenset()


@pytest.mark.parametrize("bad", ["critical=pager", "loud=slack", "critical"])
def test_routing_rejects_what_it_does_not_know(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_routing(bad)


def test_enforcement_texts_match_in_both_languages() -> None:
    en, ko = load_catalog("en"), load_catalog("ko")
    assert set(en.actions) == set(ko.actions)
    assert {"attach_guardrail_policy", "detach_guardrail_policy"} <= set(en.actions)
    # every reason iamguard can hold the guardrail back for is explained, in both languages
    assert set(en.actions["attach_guardrail_policy"].withheld) == set(get_args(Withheld))
    for name, english in en.actions.items():
        korean = ko.actions[name]
        for part in ("title", "performed", "monitor", "failed", "undo_cli"):
            assert placeholders(getattr(english, part)) == placeholders(getattr(korean, part)), (name, part)
            assert part == "undo_cli" or HANGUL.search(getattr(korean, part)), (name, part)
        assert set(english.withheld) == set(korean.withheld), name
        for reason, held in english.withheld.items():
            other = korean.withheld[reason]
            assert placeholders(held.summary) == placeholders(other.summary), (name, reason)
            assert placeholders(held.cli) == placeholders(other.cli), (name, reason)
            assert len(held.steps) == len(other.steps), (name, reason)
            assert all(HANGUL.search(step) for step in (other.summary, *other.steps)), (name, reason)
