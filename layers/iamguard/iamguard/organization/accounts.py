"""The organization's accounts and organization-wide facts, read from the hub (management or delegated admin)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from iamguard.aws import AwsContext, error_code, error_text
from iamguard.domain.organization import MemberAccount, OrganizationFacts


def list_accounts(hub: AwsContext) -> list[MemberAccount]:
    """Every account of the organization (Organizations ListAccounts, every page)."""
    accounts: list[MemberAccount] = []
    for page in hub.client("organizations").get_paginator("list_accounts").paginate():
        accounts.extend(_account(raw) for raw in page.get("Accounts", []))
    return accounts


def active_accounts(hub: AwsContext, only: Iterable[str] | None = None) -> list[MemberAccount]:
    """The ACTIVE accounts, in id order; with `only`, just those of them."""
    wanted = set(only) if only is not None else None
    return sorted(
        (a for a in list_accounts(hub) if a.active and (wanted is None or a.id in wanted)), key=lambda a: a.id
    )


def _account(raw: dict[str, Any]) -> MemberAccount:
    # `State` (2025) supersedes `Status`, which AWS retires in September 2026; older responses carry only Status.
    state = raw.get("State") or raw.get("Status") or "UNKNOWN"
    return MemberAccount(id=str(raw["Id"]), name=str(raw.get("Name", "")), state=str(state))


def organization_facts(
    hub: AwsContext, organization_id: str, stackset_name: str | None, identity_account: str | None = None
) -> OrganizationFacts:
    """Centralized root access (iam:ListOrganizationsFeatures) and the member StackSet's accounts."""
    features: frozenset[str] | None = None
    features_error = None
    try:
        response = hub.iam().list_organizations_features()
        features = frozenset(response.get("EnabledFeatures", []))
    except ClientError as exc:
        features_error = f"ListOrganizationsFeatures failed: {error_code(exc)}: {error_text(exc)}"
    accounts: frozenset[str] | None = None
    stackset_error = None
    if stackset_name:
        try:
            accounts = stackset_accounts(hub, stackset_name)
        except ClientError as exc:
            stackset_error = f"ListStackInstances({stackset_name}) failed: {error_code(exc)}: {error_text(exc)}"
    return OrganizationFacts(
        organization_id=organization_id,
        root_features=features,
        root_features_error=features_error,
        stackset_name=stackset_name or None,
        stackset_accounts=accounts,
        stackset_error=stackset_error,
        identity_account=identity_account,
    )


def stackset_accounts(hub: AwsContext, name: str) -> frozenset[str]:
    """Accounts with a current instance of the StackSet `name`.

    A service-managed StackSet is read as its owner (CallAs SELF) from the management account and
    as DELEGATED_ADMIN from a delegated administrator; the second is tried when the first finds none.
    """
    cfn = hub.client("cloudformation")
    try:
        return _instances(cfn, name, "SELF")
    except cfn.exceptions.StackSetNotFoundException:
        return _instances(cfn, name, "DELEGATED_ADMIN")


def _instances(cfn: Any, name: str, call_as: str) -> frozenset[str]:
    found: set[str] = set()
    for page in cfn.get_paginator("list_stack_instances").paginate(StackSetName=name, CallAs=call_as):
        for instance in page.get("Summaries", []):
            # INOPERABLE: the instance's stack was deleted or detached; it no longer protects the account.
            if instance.get("Status") != "INOPERABLE" and instance.get("Account"):
                found.add(str(instance["Account"]))
    return frozenset(found)
