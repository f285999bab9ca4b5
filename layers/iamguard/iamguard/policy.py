"""Just enough IAM policy evaluation for the checks: admin rights and ChangePassword.

This is deliberately not a full policy engine. It answers two questions from
the documents attached to a user (directly, through groups, or inline):
is there an Allow of every action on every resource, and may the user call
iam:ChangePassword on itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from iamguard.models import ADMINISTRATOR_ACCESS_ARN, Group, PolicyDocument, User

Statement = Mapping[str, Any]


def statements(document: PolicyDocument) -> Iterator[Statement]:
    raw = document.get("Statement", [])
    for statement in raw if isinstance(raw, list) else [raw]:
        if isinstance(statement, Mapping):
            yield statement


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _allows(statement: Statement, action: str, resources: Iterable[str]) -> bool:
    if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
        return False
    actions_match = any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in _as_list(statement.get("Action"))
    )
    wanted = list(resources)
    resources_match = any(
        fnmatch.fnmatchcase(resource, pattern) for pattern in _as_list(statement.get("Resource")) for resource in wanted
    )
    return actions_match and resources_match


def grants_full_admin(document: PolicyDocument) -> bool:
    """True when the document allows `*` on `*` (conditions ignored: they rarely stop an admin)."""
    return any(
        statement.get("Effect") == "Allow"
        and "*" in _as_list(statement.get("Action"))
        and "*" in _as_list(statement.get("Resource"))
        for statement in statements(document)
    )


def user_documents(
    user: User, groups: Mapping[str, Group], policy_documents: Mapping[str, PolicyDocument]
) -> Iterator[tuple[str, PolicyDocument | None]]:
    """Every (policy label, document) that applies to the user; None when a managed document is unknown."""
    for ref in user.attached_policies:
        yield ref.arn, policy_documents.get(ref.arn)
    for inline in user.inline_policies:
        yield f"inline:{inline.name}", inline.document
    for group_name in user.group_names:
        group = groups.get(group_name)
        if group is None:
            continue
        for ref in group.attached_policies:
            yield ref.arn, policy_documents.get(ref.arn)
        for inline in group.inline_policies:
            yield f"group:{group.name}:inline:{inline.name}", inline.document


def admin_sources(user: User, groups: Mapping[str, Group], policy_documents: Mapping[str, PolicyDocument]) -> list[str]:
    """Where the user's admin rights come from, human-readable ('AdministratorAccess via group ops')."""
    sources: list[str] = []
    for ref in user.attached_policies:
        if ref.arn == ADMINISTRATOR_ACCESS_ARN or grants_full_admin(policy_documents.get(ref.arn) or {}):
            sources.append(f"{ref.name} (attached directly)")
    for inline in user.inline_policies:
        if grants_full_admin(inline.document):
            sources.append(f"inline policy {inline.name}")
    for group_name in user.group_names:
        group = groups.get(group_name)
        if group is None:
            continue
        for ref in group.attached_policies:
            if ref.arn == ADMINISTRATOR_ACCESS_ARN or grants_full_admin(policy_documents.get(ref.arn) or {}):
                sources.append(f"{ref.name} via group {group.name}")
        for inline in group.inline_policies:
            if grants_full_admin(inline.document):
                sources.append(f"inline policy {inline.name} of group {group.name}")
    return sources


def can_change_own_password(
    user: User, groups: Mapping[str, Group], policy_documents: Mapping[str, PolicyDocument]
) -> bool:
    """Whether the user's own policies allow iam:ChangePassword on itself."""
    account_id = user.arn.split(":")[4]
    own = (user.arn, f"arn:aws:iam::{account_id}:user/${{aws:username}}")
    for _label, document in user_documents(user, groups, policy_documents):
        for statement in statements(document or {}):
            if _allows(statement, "iam:ChangePassword", own):
                return True
    return False


def policy_arns_in_effect(user: User, groups: Mapping[str, Group]) -> set[str]:
    """Managed policy ARNs attached to the user directly or through its groups."""
    arns = {ref.arn for ref in user.attached_policies}
    for group_name in user.group_names:
        group = groups.get(group_name)
        if group is not None:
            arns.update(ref.arn for ref in group.attached_policies)
    return arns
