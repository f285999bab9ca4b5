"""iamguard: serverless IAM enforcement for AWS — the core, and the only code in the Lambda layer.

Packages, lowest first (docs/CONTRIBUTING.md has the map; tests/unit/test_architecture.py holds
the code to it): `domain` (typed facts) → `settings`, `aws` → `iam` (reading and judging IAM) →
`checks` (the catalog) → `persistence` (the findings table) → `notify`, `enforcement` →
`audit`, `realtime` (the two paths) → `api`. The command line and the local runtime are the
separate package `iamguard_cli`, which imports this one and never the reverse.
"""

__version__ = "0.1.0"
