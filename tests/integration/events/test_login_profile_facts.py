"""Login-profile events keep the facts the next audit reuses instead of asking IAM again."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from iamguard.aws import AwsContext
from iamguard.domain.findings import Status
from iamguard.persistence.login_profiles import LoginProfileStore

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import BotFactory, sample
from tests.support.clock import wait_for_the_next_whole_second

RESET_CHECK = "user_password_reset_possible"


def login_profile_event(name: str, user: str, **request: Any) -> dict[str, Any]:
    return sample(
        "create_login_profile",
        new_id=True,
        eventName=name,
        requestParameters={"userName": user, **request},
        responseElements=None,
    )


def test_update_and_delete_events_refresh_what_the_audit_reuses(aws: AwsContext, make_bot: BotFactory) -> None:
    # Given two console users who must reset a password they may not change, audited once
    iam = aws.iam()
    for name in ("nina", "omar"):
        iam.create_user(UserName=name)
        iam.create_login_profile(UserName=name, Password="Initial-Password-1!", PasswordResetRequired=True)
    bot = make_bot()
    bot.audit()
    memory = LoginProfileStore(bot.store.client, bot.store.table)
    assert {name: facts.password_reset_required for name, facts in memory.recall().items()} == {
        "nina": True,
        "omar": True,
    }

    # When an administrator lifts nina's reset requirement and removes omar's password, and the events arrive
    changed_at = datetime.now(UTC)
    iam.update_login_profile(UserName="nina", Password="Handed-Over-Password-2!", PasswordResetRequired=False)
    wait_for_the_next_whole_second(changed_at)
    bot(login_profile_event("UpdateLoginProfile", "nina", passwordResetRequired=False))
    iam.delete_login_profile(UserName="omar")
    bot(login_profile_event("DeleteLoginProfile", "omar"))

    # Then the kept facts follow: nina's flag is the new one, omar's are gone
    kept = memory.recall()
    assert set(kept) == {"nina"} and kept["nina"].password_reset_required is False

    # ... and the next audit judges nina from them, without asking IAM
    assert bot.auditor is not None
    calls: Counter[str] = Counter()
    # the audit function reads IAM through the one client it made at cold start
    bot.auditor.IAM.meta.events.register("before-call.iam.*", lambda model, **_: calls.update([model.name]))
    bot.audit()
    assert calls["GetLoginProfile"] == 0 and calls["GetAccountAuthorizationDetails"] == 1
    verdict = {f.check_id: f for f in bot.store.findings_for_resource("user", "nina", ACCOUNT_ID)}[RESET_CHECK]
    assert verdict.status is Status.PASS
    assert verdict.detail == "User nina does not have to reset a password."
