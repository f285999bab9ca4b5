"""Waiting on the credential report's clock, which has whole seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def wait_for_the_next_whole_second(since: datetime) -> None:
    """Return once the whole second that holds `since` has passed.

    The credential report's password_last_changed has whole seconds, so login-profile facts
    observed within the second of a password change are rightly not reused
    (`iamguard.iam.inventory.login_profile_facts_hold`). A test that expects them reused waits
    here after its last password change; a fast machine would otherwise observe within that
    second and read IAM live.
    """
    remaining = 1 - (datetime.now(UTC) - since.replace(microsecond=0)).total_seconds()
    if remaining > 0:
        time.sleep(remaining + 0.01)
