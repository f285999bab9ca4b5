"""Organization mode: reaching member accounts from the hub (see docs/organizations.md)."""
