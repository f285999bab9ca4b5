"""Typed facts every other package speaks in, with no behaviour that reaches AWS.

`account` is the account state the inventory reads (users, groups, policies, root, password
policy); `findings` is a check's verdict (`Finding`, `Severity`, `Status`) and what storing it did
(`Transition`, `Change`); `alerts` the real-time detections and enforcement actions (`Alert`,
`Action`, `Detection`) and the `Announcer` protocol; `messages` a notification as people read it
(`Message`, `Channel`, `Language`); `exemptions` the exceptions to checks (`Exemption`: check,
resource, owner, reason, end). Imports nothing of iamguard outside this package.
"""
