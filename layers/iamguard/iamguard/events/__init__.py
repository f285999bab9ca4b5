"""CloudTrail events as iamguard sees them: typed models and the declarative event map."""

from __future__ import annotations

from iamguard.events.catalog import (
    RULES,
    EventRule,
    Subject,
    SubjectError,
    event_patterns,
    locate_subject,
    rule_for,
)
from iamguard.events.models import (
    API_CALL,
    CONSOLE_SIGN_IN,
    CONSOLE_SIGN_IN_TYPES,
    HIDDEN_USER_NAME,
    CloudTrailDetail,
    CloudTrailEvent,
    UserIdentity,
    parse_event,
)

__all__ = [
    "API_CALL",
    "CONSOLE_SIGN_IN",
    "CONSOLE_SIGN_IN_TYPES",
    "HIDDEN_USER_NAME",
    "RULES",
    "CloudTrailDetail",
    "CloudTrailEvent",
    "EventRule",
    "Subject",
    "SubjectError",
    "UserIdentity",
    "event_patterns",
    "locate_subject",
    "parse_event",
    "rule_for",
]
