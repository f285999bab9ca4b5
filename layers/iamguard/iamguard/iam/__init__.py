"""Reading and judging IAM: the only package that turns IAM's API into account state.

`inventory.Inventory` reads the whole account in bulk (credential report, authorization details,
MFA devices, password policy, aliases) for the audit, and one user, group or root live for the
event path; `evaluation` judges policy documents the way IAM does (admin rights, privilege
escalation paths, ChangePassword) for the checks and enforcement.
"""
