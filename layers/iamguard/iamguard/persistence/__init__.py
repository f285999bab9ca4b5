"""The findings table: every item layout stored in it, and how it is read and written.

`findings.FindingsStore` owns findings (conditional, versioned writes with their pending
announcement), audit runs (the trend), activity and guardrail decisions; `outbox.Outbox` the
notification outbox items. Nothing else in iamguard talks to DynamoDB's findings table.
"""
