"""The frameworks' controls and which checks evidence them, read from `frameworks/<id>.json`.

One file per framework holds its controls relevant to identity (id, title in the framework's own
language), the iamguard checks that evidence each, the sources the list was copied from, and the
checks it deliberately leaves unmapped with a reason. Nothing else in the code names a control.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, model_validator

from iamguard.domain.findings import Finding
from iamguard.domain.messages import Language

FRAMEWORK_IDS = ("cis-3.0", "cis-5.0", "cis-7.0", "fsbp", "isms-p")


class UnknownFramework(ValueError):
    def __init__(self, framework_id: str) -> None:
        super().__init__(f"unknown compliance framework {framework_id!r}; known: {', '.join(FRAMEWORK_IDS)}")
        self.framework_id = framework_id


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Coverage(StrEnum):
    FULL = "full"  # the mapped checks decide the control
    PARTIAL = "partial"  # they decide part of it; the rest is a manual review
    NONE = "none"  # not covered by iamguard: manual


class LocalizedText(_Frozen):
    en: str
    ko: str

    def text(self, language: Language) -> str:
        return self.ko if language == "ko" else self.en


class Source(_Frozen):
    title: str
    url: str
    version: str


class Evidence(_Frozen):
    check: str
    # A failure counts against the control only when its detail names one of these (one check
    # covering several controls, e.g. the password policy's length and reuse rules).
    failing_when: tuple[str, ...] = ()

    def counts(self, finding: Finding) -> bool:
        detail = finding.detail.lower()
        return not self.failing_when or any(marker.lower() in detail for marker in self.failing_when)


class Control(_Frozen):
    id: str
    title: str  # in the framework's own language
    title_en: str | None = None
    source_id: str | None = None  # the id as the source file wrote it, where that was a typo
    evidence: tuple[Evidence, ...] = ()
    coverage: Coverage = Coverage.NONE
    note: LocalizedText | None = None

    @model_validator(mode="after")
    def _coverage_matches_evidence(self) -> Control:
        if (self.coverage is Coverage.NONE) != (not self.evidence):
            raise ValueError(f"control {self.id}: coverage {self.coverage} with {len(self.evidence)} checks")
        return self

    @property
    def check_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.check for e in self.evidence))


class Framework(_Frozen):
    id: str
    name: str
    version: str
    language: Language  # of the control titles
    scope: str
    sources: tuple[Source, ...]
    controls: tuple[Control, ...]
    unmapped_checks: dict[str, str]  # check id → why no control of this framework is evidenced by it

    @property
    def mapped_checks(self) -> set[str]:
        return {check for control in self.controls for check in control.check_ids}


@cache
def load_framework(framework_id: str) -> Framework:
    """One framework's catalog (read once per process); UnknownFramework for any other id."""
    if framework_id not in FRAMEWORK_IDS:
        raise UnknownFramework(framework_id)
    raw = resources.files(__package__).joinpath("frameworks", f"{framework_id}.json").read_text(encoding="utf-8")
    return Framework.model_validate(json.loads(raw))
