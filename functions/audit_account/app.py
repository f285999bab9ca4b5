"""Scheduled account audit: read the whole account, run every check, enforce, store the findings, announce."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from iamguard.audit.fanout import MemberAuditor, audit_queue_batch, is_queue_event
from iamguard.audit.run import report_audit, run_audit, store_audit
from iamguard.aws import AwsContext, lambda_tracer
from iamguard.enforcement.enforcer import Enforcer
from iamguard.iam.inventory import Inventory
from iamguard.notify.factory import build_dispatcher
from iamguard.persistence.exemptions import ExemptionStore
from iamguard.persistence.findings import FindingsStore
from iamguard.persistence.login_profiles import LoginProfileStore
from iamguard.settings import Settings

logger = Logger()
tracer = lambda_tracer()  # X-Ray only when the stack turns it on (template parameter Tracing)
metrics = Metrics(namespace="iamguard")

SETTINGS = Settings.from_env()  # invalid settings fail the cold start, loudly
AWS = AwsContext(region=os.environ.get("AWS_REGION", "us-east-1"))
IAM = AWS.iam()  # one client for the container's life; each run counts its calls afresh
STORE = FindingsStore.for_settings(AWS.dynamodb(), SETTINGS)
LOGIN_PROFILES = LoginProfileStore(STORE.client, STORE.table)  # what earlier audits and events read
EXCEPTIONS = ExemptionStore.of(STORE)  # the status API's exceptions (tags are read with the users)
# Slack (secret read lazily, cached), the SNS topic, Security Hub: whatever the stack configured.
NOTIFY = build_dispatcher(SETTINGS, AWS, store=STORE, metrics=metrics, logger=logger)
# Organization mode: the planner's queue delivers one member account per message.
MEMBERS = MemberAuditor(AWS, SETTINGS, STORE) if SETTINGS.organization.enabled else None


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if MEMBERS is not None and is_queue_event(event):
        return audit_queue_batch(event, MEMBERS, NOTIFY, metrics=metrics, logger=logger)
    inventory = Inventory(AWS, iam_client=IAM, login_profiles=LOGIN_PROFILES)
    # MODE=enforce: attach the MFA guardrail when due (grace period), take it off once users have MFA.
    enforcer = Enforcer(inventory.iam, SETTINGS, memory=STORE)
    result = run_audit(inventory, SETTINGS, enforcer=enforcer, exemptions=EXCEPTIONS.all())
    changes = store_audit(result, STORE)
    # Tell people what changed (each change once, with what an earlier run recorded and never announced),
    # and what enforcement did; then deliver what earlier runs left in the outbox.
    delivery = NOTIFY.announce(alerts=[], changes=changes, actions=result.announced_actions)
    return report_audit(result, changes, asdict(delivery), deferred=enforcer.deferred, metrics=metrics, logger=logger)
