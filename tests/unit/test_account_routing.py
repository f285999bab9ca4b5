"""ACCOUNT_ROUTING (per account or OU Slack secrets and SNS topics), the routed channel, and Security Hub
importing each finding in its own account."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber
from iamguard.aws import AwsContext
from iamguard.domain.findings import Change, Finding, Transition
from iamguard.domain.messages import Channel, Message
from iamguard.notify.base import DeliveryError
from iamguard.notify.render import MessageBuilder
from iamguard.notify.routing import AccountRoutedNotifier
from iamguard.notify.securityhub import SecurityHubNotifier, product_arn
from iamguard.organization.access import MemberAccessError
from iamguard.settings import ConfigError, Settings

from tests.factories import finding

TEAM_A = "111122223333"
TEAM_B = "444455556666"
OU = "ou-ab12-cdef3456"
TOPIC = "arn:aws:sns:us-east-1:999900001111:iamguard-route-team-a"


def settings(routing: str) -> Settings:
    return Settings.from_env({"ACCOUNT_ROUTING": routing})


def test_account_routing_is_parsed_per_account_and_ou() -> None:
    notify = settings(f"{TEAM_A}=slack:iamguard/routes/a+email:{TOPIC}; {OU}=slack:iamguard/routes/platform+v2").notify
    assert notify.route_for(TEAM_A).slack_secret == "iamguard/routes/a"  # type: ignore[union-attr]
    assert notify.route_for(TEAM_A).topic_arn == TOPIC  # type: ignore[union-attr]
    # '+' inside a reference stays in it; an account in the OU gets the OU's route, the nearest OU first
    assert notify.route_for(TEAM_B, (OU,)).slack_secret == "iamguard/routes/platform+v2"  # type: ignore[union-attr]
    assert notify.route_for(TEAM_B, ("ou-zz99-zzzz9999",)) is None
    assert settings("").notify.account_routing == ()


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("team-a=slack:x", "neither a 12-digit account id nor an OU id"),
        (f"{TEAM_A}=teams:x", "is not slack:<secret> or email:<topic arn>"),
        (f"{TEAM_A}=email:not-a-topic", "not an SNS topic ARN"),
        (f"{TEAM_A}=slack:a; {TEAM_A}=slack:b", "names 111122223333 twice"),
        (f"{TEAM_A}", "is not target=slack"),
    ],
)
def test_careless_account_routing_fails_at_cold_start_naming_the_variable(value: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="ACCOUNT_ROUTING") as raised:
        settings(value)
    assert complaint in str(raised.value)


class Recorder:
    def __init__(self, channel: Channel = Channel.SLACK) -> None:
        self.sent: list[Message] = []
        self._channel = channel

    @property
    def channel(self) -> Channel:
        return self._channel

    @property
    def max_posts(self) -> int | None:
        return 3

    def accepts(self, message: Message) -> bool:
        return True

    def send(self, message: Message) -> None:
        self.sent.append(message)


def member_finding(account: str, user: str = "bob") -> Finding:
    return finding(user=user).model_copy(
        update={"account_id": account, "resource_arn": f"arn:aws:iam::{account}:user/{user}"}
    )


def message(account: str) -> Message:
    change = Change(member_finding(account), None, Transition.OPENED)
    return MessageBuilder("en").finding_messages([change])[0]


def test_the_routed_channel_sends_each_account_to_its_destination() -> None:
    default, team_a, platform = Recorder(), Recorder(), Recorder()
    asked: list[str] = []

    def units(account: str) -> tuple[str, ...]:
        asked.append(account)
        return (OU,) if account == TEAM_B else ()

    routed = AccountRoutedNotifier(
        Channel.SLACK,
        default=default,
        routes={TEAM_A: team_a, OU: platform},
        settings=settings(f"{TEAM_A}=slack:a; {OU}=slack:p").notify,
        organizational_units=units,
    )
    for account in (TEAM_A, TEAM_B, "777788889999"):
        routed.send(message(account))
    assert [m.account_id for m in team_a.sent] == [TEAM_A]
    assert [m.account_id for m in platform.sent] == [TEAM_B]
    assert [m.account_id for m in default.sent] == ["777788889999"]
    assert TEAM_A not in asked  # an account routed by id needs no Organizations call


def test_without_a_default_an_unrouted_account_is_not_a_target() -> None:
    routed = AccountRoutedNotifier(
        Channel.EMAIL,
        default=None,
        routes={TEAM_A: Recorder(Channel.EMAIL)},
        settings=settings(f"{TEAM_A}=email:{TOPIC}").notify,
    )
    assert routed.accepts(message(TEAM_A)) and not routed.accepts(message(TEAM_B))
    with pytest.raises(DeliveryError, match="no email destination for account 444455556666"):
        routed.send(message(TEAM_B))


def stubbed(ctx: AwsContext, expected_ids: list[str]) -> tuple[Any, Stubber]:
    client = ctx.client("securityhub")
    stub = Stubber(client)
    stub.add_response(
        "batch_import_findings", {"FailedCount": 0, "SuccessCount": len(expected_ids), "FailedFindings": []}
    )
    stub.activate()
    return client, stub


def test_security_hub_imports_each_finding_in_its_own_account() -> None:
    # BatchImportFindings with the default product: the caller's account must be the finding's AwsAccountId
    ctx = AwsContext(region="us-east-1")
    hub_client = ctx.client("securityhub")
    clients = {TEAM_A: stubbed(ctx, ["a"]), TEAM_B: stubbed(ctx, ["b"])}
    calls: dict[str, list[dict[str, Any]]] = {}
    for account, (client, _stub) in clients.items():
        client.meta.events.register(
            "provide-client-params.securityhub.BatchImportFindings",
            lambda params, account=account, **_: calls.setdefault(account, []).extend(params["Findings"]),
        )

    def member_client(account: str) -> Any:
        if account == "000000000000":
            raise MemberAccessError(account, "cannot assume the role")
        return clients[account][0]

    notifier = SecurityHubNotifier(hub_client, "us-east-1", member_client=member_client)
    changes = [Change(member_finding(a, f"u-{a}"), None, Transition.OPENED) for a in (TEAM_A, TEAM_B)]
    [sync] = MessageBuilder("en").sync_messages(changes)
    notifier.send(sync)

    for account in (TEAM_A, TEAM_B):
        [document] = calls[account]
        assert document["AwsAccountId"] == account
        assert document["ProductArn"] == product_arn("us-east-1", account)
        clients[account][1].assert_no_pending_responses()
    orphan = MessageBuilder("en").sync_messages([Change(member_finding("000000000000"), None, Transition.OPENED)])
    with pytest.raises(DeliveryError, match="cannot assume the role") as raised:
        notifier.send(orphan[0])
    assert raised.value.permanent
