"""Typed facts about an AWS organization: its member accounts and the organization-wide settings iamguard checks."""

from __future__ import annotations

from dataclasses import dataclass

ROOT_CREDENTIALS_MANAGEMENT = "RootCredentialsManagement"  # iam:ListOrganizationsFeatures' EnabledFeatures
ROOT_SESSIONS = "RootSessions"


@dataclass(frozen=True)
class MemberAccount:
    """One account of the organization (Organizations ListAccounts)."""

    id: str
    name: str
    state: str  # State (ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED, PENDING_ACTIVATION), or the older Status

    @property
    def active(self) -> bool:
        return self.state == "ACTIVE"


@dataclass(frozen=True)
class OrganizationFacts:
    """What the hub read about the organization as a whole; `None` where it could not (the `*_error` says why)."""

    organization_id: str
    root_features: frozenset[str] | None = None
    root_features_error: str | None = None
    stackset_name: str | None = None  # None: no member StackSet configured, its coverage is not checked
    stackset_accounts: frozenset[str] | None = None
    stackset_error: str | None = None
    identity_account: str | None = None  # where people's IAM users belong (CIS 1.21); None: no account is

    @property
    def root_credentials_managed(self) -> bool | None:
        return None if self.root_features is None else ROOT_CREDENTIALS_MANAGEMENT in self.root_features
