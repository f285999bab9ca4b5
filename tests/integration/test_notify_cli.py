"""`iamguard audit` and `iamguard events replay` with --slack-webhook, as a user runs them (own process, local Slack)."""

from __future__ import annotations

from iamguard.aws import AwsContext
from iamguard_cli.local.seed import seed_walkthrough
from iamguard_cli.local.server import MotoServer
from iamguard_cli.local.slack_receiver import SlackReceiver

from tests.conftest import REPO
from tests.integration.notify_support import headers, slack_fixture  # noqa: F401 - the `slack` fixture
from tests.integration.test_cli_audit import iamguard

ANNOUNCED = 6  # the walkthrough's critical and high failures


def audit(moto: MotoServer, *extra: str) -> tuple[int, str]:
    result = iamguard("audit", "--endpoint-url", moto.url, "--format", "json", *extra)
    return result.returncode, result.stderr


def test_a_second_audit_of_an_unchanged_account_sends_nothing_new(
    server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver
) -> None:
    seed_walkthrough(server_aws.iam())

    code, stderr = audit(moto_server, "--store", "--slack-webhook", slack.url)
    assert code == 3, stderr  # findings present
    assert stderr.strip().splitlines()[-1] == "notifications: 6 sent, 4 held"
    assert len(slack.messages) == ANNOUNCED
    assert headers(slack)[:2] == ["🔴 Critical · New finding: root", "🔴 Critical · New finding: wonjun_admin"]

    code, stderr = audit(moto_server, "--store", "--slack-webhook", slack.url)
    assert stderr.strip().splitlines()[-1] == "notifications: nothing to send"
    assert len(slack.messages) == ANNOUNCED

    # a fix is announced once
    server_aws.iam().create_account_alias(AccountAlias="walkthrough")
    server_aws.iam().detach_user_policy(
        UserName="wonjun_admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"
    )
    audit(moto_server, "--store", "--slack-webhook", slack.url)
    audit(moto_server, "--store", "--slack-webhook", slack.url)
    assert headers(slack)[ANNOUNCED:] == ["✅ Resolved: wonjun_admin", "✅ Resolved: wonjun_admin"]


def test_messages_in_korean(server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver) -> None:
    seed_walkthrough(server_aws.iam())
    audit(moto_server, "--store", "--slack-webhook", slack.url, "--language", "ko")
    assert headers(slack)[:2] == ["🔴 [심각] 새 보안 문제: root", "🔴 [심각] 새 보안 문제: wonjun_admin"]
    sections = [b["text"]["text"] for b in slack.messages[1]["blocks"] if b["type"] == "section" and "text" in b]
    assert sections[1].startswith("*왜 중요한가요*")
    assert "IAM &gt; 사용자 &gt; wonjun_admin &gt; 보안 자격 증명" in sections[2]


def test_a_slack_outage_during_the_audit_is_made_good_by_the_next_one(
    server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver
) -> None:
    seed_walkthrough(server_aws.iam())
    slack.go_down()
    _, stderr = audit(moto_server, "--store", "--slack-webhook", slack.url)
    assert stderr.strip().splitlines()[-1] == "notifications: 6 pending, 4 held"
    slack.come_up()
    _, stderr = audit(moto_server, "--store", "--slack-webhook", slack.url)
    assert stderr.strip().splitlines()[-1] == "notifications: 6 sent"
    assert len(slack.messages) == ANNOUNCED
    assert slack.url not in stderr


def test_without_a_store_each_run_reports_the_current_failures(
    server_aws: AwsContext, moto_server: MotoServer, slack: SlackReceiver
) -> None:
    seed_walkthrough(server_aws.iam())
    _, stderr = audit(moto_server, "--slack-webhook", slack.url)
    assert stderr.strip().splitlines()[-1] == "notifications: 6 sent"
    assert headers(slack)[0] == "🔴 Critical · Failing: root"


def test_an_unusable_webhook_url_is_a_usage_error_that_does_not_repeat_it(moto_server: MotoServer) -> None:
    url = "http://hooks.example.com/services/T000/B000/secretpart"
    code, stderr = audit(moto_server, "--slack-webhook", url)
    assert code == 2
    assert "--slack-webhook: the Slack webhook must be an https:// URL" in stderr
    assert "secretpart" not in stderr


def test_events_replay_announces_each_detection_once(moto_server: MotoServer, slack: SlackReceiver) -> None:
    iamguard("events", "seed", "--endpoint-url", moto_server.url)
    replay = ("events", "replay", str(REPO / "events" / "console_login_root_no_mfa.json"), "--endpoint-url",
              moto_server.url, "--slack-webhook", slack.url, "--language", "ko")  # fmt: skip

    first = iamguard(*replay)
    again = iamguard(*replay)  # the same CloudTrail event delivered twice

    assert first.returncode == 0, first.stderr
    assert first.stderr.strip().splitlines()[-1].startswith("notifications: ")
    assert again.stderr.strip().splitlines()[-1] == "notifications: nothing to send"
    assert headers(slack)[0] == "🔴 [심각] 루트 콘솔 로그인"
    assert headers(slack).count("🔴 [심각] 루트 콘솔 로그인") == 1
