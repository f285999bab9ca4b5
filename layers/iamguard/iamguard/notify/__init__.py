"""Notifications: Slack, e-mail (SNS) and Security Hub behind one interface, never lost, never twice.

- `render` builds the channel-neutral `iamguard.domain.messages.Message` from changes, alerts, actions, digests
- `catalog`   every word said to people, in `messages/en.json` and `messages/ko.json`
- `slack`, `sns`, `securityhub`   one class per channel (`base.Notifier`); `retry` is Slack's retry policy
- `dispatcher`  the `Announcer`: routing, dedup, retries, fallback, outbox, dead letters
- `factory.build_dispatcher`   what handlers call
"""
