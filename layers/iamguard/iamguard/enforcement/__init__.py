"""Enforcement (MODE=enforce): the MFA guardrail and the required policies, never anything destructive.

`enforcer.Enforcer` plans and carries out the only writes iamguard makes to IAM — attaching and
detaching the stack's guardrail (`guardrail.json`, never to a user with an active access key, never
again after an administrator took it off) and attaching missing required policies — and reports the
same plan in monitor mode. Used by the event path and the audit alike.
"""
