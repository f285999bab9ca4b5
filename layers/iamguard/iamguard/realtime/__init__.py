"""The event path: one CloudTrail event → the current state of what it touched → findings, alerts, actions.

`cloudtrail` (typed, bounded event models), `event_map` (the declarative map of events iamguard acts
on; it also generates template.yaml's EventBridge patterns), `detections` (pure alert rules),
`signin_bursts` (failed sign-ins counted in the table), `processor.EventProcessor` (screen,
evaluate once per eventID, store, detect, enforce, announce) and `handler.EventHandler` (what the
event functions share: settings at cold start, one processor per account, metrics per outcome).
"""
