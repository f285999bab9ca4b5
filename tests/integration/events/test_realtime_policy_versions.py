"""A managed policy's new default version, and a user's permissions boundary, through the real handlers on moto.

CreatePolicyVersion (setAsDefault) and SetDefaultPolicyVersion change what every holder of the policy may
do: the handler re-evaluates them all (directly, through groups, or as their boundary; bounded like group
events) and raises admin_access_granted for those it made administrators. Put/DeleteUserPermissionsBoundary
re-evaluate that one user.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber
from iamguard.aws import AwsContext
from iamguard.persistence.findings import FindingsStore
from iamguard.realtime.processor import MAX_GROUP_MEMBERS, EventProcessor
from iamguard.settings import Settings

from tests.conftest import ACCOUNT_ID
from tests.integration.events.support import ADMINISTRATOR, Bot, BotFactory, detections, sample

NARROW = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def policy_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:policy/{name}"


def new_default(arn: str, document: dict[str, Any] = EVERYTHING, *, set_as_default: bool = True) -> dict[str, Any]:
    """The CreatePolicyVersion event (CloudTrail records the document and the flag)."""
    request: dict[str, Any] = {"policyArn": arn, "policyDocument": json.dumps(document)}
    if set_as_default:
        request["setAsDefault"] = True
    return sample("create_policy_version_admin", new_id=True, requestParameters=request)


@pytest.fixture
def team(aws: AwsContext) -> str:
    """team-tools (narrow) held by `direct` (attached), `m1`/`m2` (group team); `bystander` does not hold it."""
    iam = aws.iam()
    arn = iam.create_policy(PolicyName="team-tools", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_group(GroupName="team")
    iam.attach_group_policy(GroupName="team", PolicyArn=arn)
    for name in ("direct", "m1", "m2", "bystander"):
        iam.create_user(UserName=name)
    iam.attach_user_policy(UserName="direct", PolicyArn=arn)
    iam.add_user_to_group(GroupName="team", UserName="m1")
    iam.add_user_to_group(GroupName="team", UserName="m2")
    return arn


def admin_verdicts(result: dict[str, Any]) -> dict[str, str]:
    return {f["resource_name"]: f["status"] for f in result["findings"] if f["check_id"] == "user_admin_access"}


# ---------------------------------------------------------------- CreatePolicyVersion
def test_a_new_admin_default_version_alerts_for_every_holder(aws: AwsContext, make_bot: BotFactory, team: str) -> None:
    # Given team-tools rewritten to * on * and made the default
    aws.iam().create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=True)

    # When the CreatePolicyVersion event arrives
    result = make_bot()(new_default(team))

    # Then every holder, direct or through the group, was re-evaluated and announced as a new admin
    assert result["outcome"] == "evaluated"
    assert admin_verdicts(result) == {"direct": "FAIL", "m1": "FAIL", "m2": "FAIL"}
    assert sorted(detections(result)) == [
        ("admin_access_granted", "high", "direct"),
        ("admin_access_granted", "high", "m1"),
        ("admin_access_granted", "high", "m2"),
    ]
    summaries = {a["resource_name"]: a["summary"] for a in result["alerts"]}
    assert summaries["m1"] == (
        "IAM user pat_deploy made a new version of policy team-tools its default, which gives m1 full "
        "administrator access (team-tools via group team); the user has no MFA device."
    )
    assert "team-tools (attached directly)" in summaries["direct"]
    assert result["reason"].startswith("re-evaluated the users who hold policy team-tools: ")


def test_holders_who_were_already_admins_are_not_announced_again(
    aws: AwsContext, make_bot: BotFactory, team: str
) -> None:
    # Given `direct` is an administrator already, and iamguard has stored that
    iam = aws.iam()
    iam.attach_user_policy(UserName="direct", PolicyArn=ADMINISTRATOR)
    bot = make_bot()
    bot(
        sample(
            "attach_user_policy_admin",
            new_id=True,
            requestParameters={"userName": "direct", "policyArn": ADMINISTRATOR},
        )
    )

    # When team-tools becomes admin too
    iam.create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=True)
    result = bot(new_default(team))

    # Then only the members it made administrators are announced
    assert sorted(resource for _, _, resource in detections(result)) == ["m1", "m2"]
    # And a second rewrite (another eventID) announces nobody: they are all administrators already
    assert detections(bot(new_default(team))) == []


def test_a_version_that_is_not_the_default_changes_nothing(aws: AwsContext, make_bot: BotFactory, team: str) -> None:
    aws.iam().create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=False)
    bot = make_bot()
    result = bot(new_default(team, set_as_default=False))
    assert result["outcome"] == "ignored"
    assert result["reason"] == "CreatePolicyVersion without setAsDefault: what IAM enforces did not change"
    assert bot.store.findings() == [] and bot.announcer.calls == []
    # The sample of the same shape is ignored the same way
    assert make_bot()(sample("create_policy_version_not_default"))["outcome"] == "ignored"


def test_a_non_admin_new_version_is_evaluated_without_an_alert(
    aws: AwsContext, make_bot: BotFactory, team: str
) -> None:
    wider = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    aws.iam().create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(wider), SetAsDefault=True)
    result = make_bot()(new_default(team, wider))
    assert admin_verdicts(result) == {"direct": "PASS", "m1": "PASS", "m2": "PASS"}
    assert result["alerts"] == []


def test_a_new_version_that_lets_holders_escalate_fails_the_escalation_check(
    aws: AwsContext, make_bot: BotFactory, team: str
) -> None:
    rewrite = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:CreatePolicyVersion", "Resource": team}],
    }
    aws.iam().create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(rewrite), SetAsDefault=True)
    result = make_bot()(new_default(team, rewrite))
    escalation = {f["resource_name"]: f for f in result["findings"] if f["check_id"] == "user_privilege_escalation"}
    assert escalation["m1"]["status"] == "FAIL"
    assert escalation["m1"]["detail"] == (
        "User m1 can make itself an administrator: iam:CreatePolicyVersion on customer managed policies "
        "(rewrite a managed policy it or a role holds), allowed by team-tools via group team."
    )


# ---------------------------------------------------------------- SetDefaultPolicyVersion
def test_setting_an_old_admin_version_as_default_alerts_and_setting_it_back_resolves(
    aws: AwsContext, make_bot: BotFactory, team: str
) -> None:
    iam = aws.iam()
    iam.create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=False)
    bot = make_bot()

    def set_default(version: str) -> dict[str, Any]:
        iam.set_default_policy_version(PolicyArn=team, VersionId=version)
        event = sample(
            "set_default_policy_version", new_id=True, requestParameters={"policyArn": team, "versionId": version}
        )
        result: dict[str, Any] = bot(event)
        return result

    granted = set_default("v2")
    assert sorted(resource for _, _, resource in detections(granted)) == ["direct", "m1", "m2"]
    assert granted["alerts"][0]["summary"].startswith(
        "Root made version v2 of policy team-tools its default, which gives"
    )

    back = set_default("v1")
    assert back["alerts"] == []
    assert admin_verdicts(back) == {"direct": "PASS", "m1": "PASS", "m2": "PASS"}
    assert {f["transition"] for f in back["findings"] if f["check_id"] == "user_admin_access"} == {"resolved"}


# ---------------------------------------------------------------- holders, bounded
def test_a_boundary_policy_made_admin_uncaps_its_users(aws: AwsContext, make_bot: BotFactory) -> None:
    # Given `capped`: AdministratorAccess, capped by the boundary team-boundary (narrow)
    iam = aws.iam()
    boundary = iam.create_policy(PolicyName="team-boundary", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_user(UserName="capped", PermissionsBoundary=boundary)
    iam.attach_user_policy(UserName="capped", PolicyArn=ADMINISTRATOR)
    bot = make_bot()
    before = bot(
        sample(
            "put_user_permissions_boundary",
            new_id=True,
            requestParameters={"userName": "capped", "permissionsBoundary": boundary},
        )
    )
    assert admin_verdicts(before) == {"capped": "PASS"}

    # When the boundary policy gets a new default version that allows everything
    iam.create_policy_version(PolicyArn=boundary, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=True)
    result = bot(new_default(boundary))

    # Then its user (found through ListEntitiesForPolicy's boundary usage) is an administrator now
    assert admin_verdicts(result) == {"capped": "FAIL"}
    assert detections(result) == [("admin_access_granted", "high", "capped")]


def test_holders_beyond_the_bound_wait_for_the_audit(aws: AwsContext, make_bot: BotFactory, team: str) -> None:
    iam = aws.iam()
    for i in range(MAX_GROUP_MEMBERS + 5):
        iam.create_user(UserName=f"member{i:02d}")
        iam.add_user_to_group(GroupName="team", UserName=f"member{i:02d}")
    iam.create_policy_version(PolicyArn=team, PolicyDocument=json.dumps(EVERYTHING), SetAsDefault=True)
    result = make_bot()(new_default(team))
    assert len(admin_verdicts(result)) == MAX_GROUP_MEMBERS
    assert "direct" in admin_verdicts(result)  # direct holders come first
    assert (
        f"policy team-tools is held by more than {MAX_GROUP_MEMBERS} users or groups: the first "
        f"{MAX_GROUP_MEMBERS} users were re-evaluated, the next audit covers the rest"
    ) in result["reason"]


def test_groups_beyond_the_bound_are_not_read(aws: AwsContext, store: FindingsStore, team: str) -> None:
    # Given team-tools attached to many (empty) groups besides team
    iam = aws.iam()
    for i in range(MAX_GROUP_MEMBERS + 5):
        iam.create_group(GroupName=f"empty{i:02d}")
        iam.attach_group_policy(GroupName=f"empty{i:02d}", PolicyArn=team)
    processor = EventProcessor(aws, Settings(), account_id=ACCOUNT_ID, store=store, iam_client=aws.iam())
    reads: list[str] = []
    processor.iam.meta.events.register(
        "provide-client-params.iam.GetGroup", lambda params, **_: reads.append(params["GroupName"])
    )

    # When its holders are looked up
    names, notes = processor._policy_holders(team)

    # Then at most the bound of groups was read, and the rest is left to the audit
    assert len(reads) == MAX_GROUP_MEMBERS
    assert names == ["direct", "m1", "m2"]
    assert notes == [
        f"policy team-tools is held by more than {MAX_GROUP_MEMBERS} users or groups: the first 3 users were "
        "re-evaluated, the next audit covers the rest"
    ]


def test_a_policy_deleted_before_iamguard_looked_is_ignored(aws: AwsContext, make_bot: BotFactory) -> None:
    result = make_bot()(new_default(policy_arn("gone")))
    assert result["outcome"] == "ignored"
    assert "policy gone no longer exists" in result["reason"]


def test_a_policy_nobody_holds_is_ignored(aws: AwsContext, make_bot: BotFactory) -> None:
    arn = aws.iam().create_policy(PolicyName="unused", PolicyDocument=json.dumps(EVERYTHING))["Policy"]["Arn"]
    result = make_bot()(new_default(arn))
    assert result["outcome"] == "ignored"
    assert "policy unused is held by no user" in result["reason"]


@pytest.mark.parametrize("value", ["not-an-arn", "arn:aws:iam::123456789012:user/alice", 42, "arn:aws:iam::1:policy/x"])
def test_a_policy_arn_no_policy_can_have_is_rejected(aws: AwsContext, make_bot: BotFactory, value: Any) -> None:
    event = sample(
        "create_policy_version_admin", new_id=True, requestParameters={"policyArn": value, "setAsDefault": True}
    )
    result = make_bot()(event)
    assert result["outcome"] == "rejected"
    assert "is not a managed policy ARN" in result["reason"]


def test_holders_are_read_page_by_page_as_iam_serves_them(aws: AwsContext, store: FindingsStore) -> None:
    # moto never truncates ListEntitiesForPolicy or GetGroup; IAM does (Marker / IsTruncated).
    processor = EventProcessor(aws, Settings(), account_id=ACCOUNT_ID, store=store, iam_client=aws.iam())
    arn = policy_arn("paged")
    with Stubber(processor.iam) as stub:
        page = {"PolicyRoles": [{"RoleName": "deployer", "RoleId": "AROAEXAMPLEEXAMPLE001"}]}
        stub.add_response(
            "list_entities_for_policy",
            {
                **page,
                "PolicyUsers": [{"UserName": "u1", "UserId": "AIDAEXAMPLEEXAMPLE001"}],
                "PolicyGroups": [],
                "IsTruncated": True,
                "Marker": "m1",
            },
            {"PolicyArn": arn},
        )
        stub.add_response(
            "list_entities_for_policy",
            {
                "PolicyUsers": [],
                "PolicyGroups": [{"GroupName": "g", "GroupId": "AGPAEXAMPLEEXAMPLE001"}],
                "IsTruncated": False,
            },
            {"PolicyArn": arn, "Marker": "m1"},
        )
        group = {
            "Path": "/",
            "GroupName": "g",
            "GroupId": "AGPAEXAMPLEEXAMPLE001",
            "Arn": "arn:aws:iam::123456789012:group/g",
            "CreateDate": "2026-01-01T00:00:00Z",
        }
        member = {
            "Path": "/",
            "UserId": "AIDAEXAMPLEEXAMPLE002",
            "Arn": "arn:aws:iam::123456789012:user/x",
            "CreateDate": "2026-01-01T00:00:00Z",
        }
        stub.add_response(
            "get_group",
            {
                "Group": group,
                "Users": [{**member, "UserName": "u1"}, {**member, "UserName": "u2"}],
                "IsTruncated": True,
                "Marker": "g1",
            },
            {"GroupName": "g"},
        )
        stub.add_response(
            "get_group",
            {"Group": group, "Users": [{**member, "UserName": "u3"}], "IsTruncated": False},
            {"GroupName": "g", "Marker": "g1"},
        )
        names, notes = processor._policy_holders(arn)
        stub.assert_no_pending_responses()
    assert names == ["u1", "u2", "u3"]  # each user once; roles are not IAM users
    assert notes == []


# ---------------------------------------------------------------- permissions boundaries
def test_deleting_the_boundary_that_capped_an_admin_alerts(aws: AwsContext, make_bot: BotFactory) -> None:
    iam = aws.iam()
    boundary = iam.create_policy(PolicyName="cap", PolicyDocument=json.dumps(NARROW))["Policy"]["Arn"]
    iam.create_user(UserName="lee", PermissionsBoundary=boundary)
    iam.attach_user_policy(UserName="lee", PolicyArn=ADMINISTRATOR)
    bot = make_bot()

    capped = bot(
        sample(
            "put_user_permissions_boundary",
            new_id=True,
            requestParameters={"userName": "lee", "permissionsBoundary": boundary},
        )
    )
    assert capped["alerts"] == []
    [finding] = [f for f in capped["findings"] if f["check_id"] == "user_admin_access"]
    assert finding["status"] == "PASS"
    assert finding["detail"] == (
        "User lee is not an administrator: AdministratorAccess (attached directly) would allow everything, "
        "but its permissions boundary cap does not."
    )

    iam.delete_user_permissions_boundary(UserName="lee")
    removed = bot(sample("delete_user_permissions_boundary", new_id=True, requestParameters={"userName": "lee"}))
    assert detections(removed) == [("admin_access_granted", "high", "lee")]
    assert removed["alerts"][0]["summary"] == (
        "Root removed the permissions boundary of lee, which gives it full administrator access "
        "(AdministratorAccess (attached directly)); the user has no MFA device."
    )


def test_a_boundary_change_on_an_admin_that_stays_admin_does_not_alert(aws: AwsContext, make_bot: BotFactory) -> None:
    iam = aws.iam()
    iam.create_user(UserName="boss")
    iam.attach_user_policy(UserName="boss", PolicyArn=ADMINISTRATOR)
    bot: Bot = make_bot()
    bot(
        sample(
            "attach_user_policy_admin", new_id=True, requestParameters={"userName": "boss", "policyArn": ADMINISTRATOR}
        )
    )
    iam.put_user_permissions_boundary(UserName="boss", PermissionsBoundary=ADMINISTRATOR)
    event = sample(
        "put_user_permissions_boundary",
        new_id=True,
        requestParameters={"userName": "boss", "permissionsBoundary": ADMINISTRATOR},
    )
    assert detections(bot(event)) == []
