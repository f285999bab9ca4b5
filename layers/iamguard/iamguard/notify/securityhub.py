"""Security Hub: findings in ASFF through BatchImportFindings, workflow through BatchUpdateFindings.

Each (resource, check) is one Security Hub finding with a stable Id, so a later
import updates it: Compliance.Status follows the finding (FAILED / PASSED /
NOT_AVAILABLE). BatchImportFindings cannot change the workflow of an existing
finding, so a resolved finding is then set to RESOLVED (an exempt one to
SUPPRESSED, a reopened one back to NEW) with BatchUpdateFindings.

Organization mode: each finding is imported by its own account. With the account's
"default" product ARN, BatchImportFindings "must be called by ... the Amazon Web Services
account that is associated with a finding ... the identifier of the account that you are
calling BatchImportFindings from needs to be the same as the AwsAccountId attribute for the
finding" (Security Hub API Reference, BatchImportFindings); only an allow-listed partner
account may send other accounts' findings. So a member account's findings are imported (and
their workflow set) through the member audit role's credentials in that account, and reach
the organization's Security Hub administrator like any finding of a member.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from iamguard.aws import error_code
from iamguard.checks import CATALOG
from iamguard.domain.findings import Finding, Status
from iamguard.domain.messages import Channel, Language, Message, MessageKind
from iamguard.notify.base import DeliveryError
from iamguard.notify.catalog import fill, load_catalog
from iamguard.organization.access import MemberAccessError

if TYPE_CHECKING:
    from mypy_boto3_securityhub import SecurityHubClient

SCHEMA_VERSION = "2018-10-08"
COMPLIANCE = {Status.FAIL: "FAILED", Status.PASS: "PASSED", Status.EXEMPT: "FAILED", Status.ERROR: "NOT_AVAILABLE"}
BEST_PRACTICES = "Software and Configuration Checks/AWS Security Best Practices"
CIS = "Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS Foundations Benchmark"


def product_arn(region: str, account_id: str, partition: str = "aws") -> str:
    """The account's own 'default' product: findings any account may import about itself."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def finding_id(finding: Finding) -> str:
    return f"iamguard/{finding.account_id}/{finding.check_id}/{finding.resource_arn}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _resource(finding: Finding, region: str, partition: str) -> dict[str, Any]:
    if finding.resource_type == "user":
        return {
            "Type": "AwsIamUser",
            "Id": finding.resource_arn,
            "Partition": partition,
            "Region": region,
            "Details": {"AwsIamUser": {"UserName": finding.resource_name}},
        }
    return {
        "Type": "AwsAccount",
        "Id": f"AWS::::Account:{finding.account_id}",
        "Partition": partition,
        "Region": region,
    }


def asff(finding: Finding, *, region: str, language: Language = "en", partition: str = "aws") -> dict[str, Any]:
    """One finding in the AWS Security Finding Format."""
    check = CATALOG[finding.check_id]
    text = load_catalog(language).check(finding.check_id)
    if language == "en":
        description = finding.detail
    else:
        description = fill(text.failed if finding.failed else text.passed, resource=finding.resource_name)
    user = finding.resource_name if finding.resource_type == "user" else "<user>"
    steps = " ".join(step.replace("{user}", user) for step in text.console)
    recommendation = f"{steps} CLI: {text.cli.replace('<user>', user)}"
    observed = finding.observed_at
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(finding),
        "ProductArn": product_arn(region, finding.account_id, partition),
        "ProductName": "iamguard",
        "CompanyName": "iamguard",
        "GeneratorId": f"iamguard/{finding.check_id}",
        "AwsAccountId": finding.account_id,
        "Region": region,
        "FindingProviderFields": {
            "Severity": {"Label": finding.severity.value.upper(), "Original": finding.severity.value},
            "Types": [CIS if check.standards.cis else BEST_PRACTICES],
        },
        "CreatedAt": _iso(finding.first_seen or observed),
        "UpdatedAt": _iso(observed),
        "FirstObservedAt": _iso(finding.first_seen or observed),
        "LastObservedAt": _iso(finding.last_seen or observed),
        "Title": text.title[:256],
        "Description": description[:1024],
        "Remediation": {"Recommendation": {"Text": recommendation[:512]}},
        "Resources": [_resource(finding, region, partition)],
        "Compliance": {
            "Status": COMPLIANCE[finding.status],
            **({"RelatedRequirements": check.standards.labels()[:32]} if check.standards.labels() else {}),
        },
        "RecordState": "ACTIVE",
        "ProductFields": {"iamguard/CheckId": finding.check_id, "iamguard/Status": finding.status.value},
    }


def workflow_status(finding: Finding, transition: str) -> str | None:
    """The workflow a change moves the Security Hub finding to (None: leave it to the people using it)."""
    if transition == "reopened" and finding.failed:
        return "NEW"
    if transition == "resolved":
        return {Status.PASS: "RESOLVED", Status.EXEMPT: "SUPPRESSED"}.get(finding.status)
    return None


class SecurityHubNotifier:
    """Imports the findings of FINDINGS_SYNC messages (at most 100 per message) and sets their workflow."""

    def __init__(
        self,
        client: SecurityHubClient,
        region: str,
        *,
        language: Language = "en",
        partition: str = "aws",
        member_client: Callable[[str], SecurityHubClient] | None = None,
    ) -> None:
        self._client = client
        self._region = region
        self._language: Language = language
        self._partition = partition
        # Organization mode: the Security Hub client acting in a finding's own account.
        self._member_client = member_client

    @property
    def channel(self) -> Channel:
        return Channel.SECURITY_HUB

    @property
    def max_posts(self) -> int | None:
        return None  # an import is an upsert by finding Id: a repeat changes nothing

    def accepts(self, message: Message) -> bool:
        return message.kind is MessageKind.FINDINGS_SYNC

    def send(self, message: Message) -> None:
        findings = list(message.findings)
        by_account: dict[str, list[Finding]] = {}
        for finding in findings:
            by_account.setdefault(finding.account_id, []).append(finding)
        for account_id, own in by_account.items():
            if self._member_client is None:
                client = self._client
            else:
                try:
                    client = self._member_client(account_id)
                except MemberAccessError as exc:
                    raise DeliveryError(f"Security Hub of {exc}", permanent=True) from None
                except (ClientError, BotoCoreError) as exc:
                    raise DeliveryError(f"cannot reach account {account_id}: {type(exc).__name__}") from None
            self._import(client, own, message.attributes.get("transition", ""))

    def _import(self, client: SecurityHubClient, findings: list[Finding], transition: str) -> None:
        documents = [asff(f, region=self._region, language=self._language, partition=self._partition) for f in findings]
        try:
            result = client.batch_import_findings(Findings=documents)  # type: ignore[arg-type]
            if result.get("FailedCount"):
                reasons = {item.get("ErrorMessage", "?") for item in result.get("FailedFindings", [])}
                raise DeliveryError(
                    f"Security Hub rejected {result['FailedCount']} finding(s): " + "; ".join(sorted(reasons))[:300]
                )
            by_status: dict[str, list[dict[str, str]]] = {}
            for finding, document in zip(findings, documents, strict=True):
                status = workflow_status(finding, transition)
                if status:
                    by_status.setdefault(status, []).append(
                        {"Id": document["Id"], "ProductArn": document["ProductArn"]}
                    )
            for status, identifiers in by_status.items():
                updated = client.batch_update_findings(
                    FindingIdentifiers=identifiers,  # type: ignore[arg-type]
                    Workflow={"Status": status},  # type: ignore[typeddict-item]
                )
                if updated.get("UnprocessedFindings"):
                    raise DeliveryError(
                        f"Security Hub did not update the workflow of {len(updated['UnprocessedFindings'])} finding(s)"
                    )
        except ClientError as exc:
            code = error_code(exc) or "Error"
            permanent = code in {"InvalidAccessException", "AccessDeniedException"}
            raise DeliveryError(f"Security Hub call failed: {code}", permanent=permanent) from None
        except BotoCoreError as exc:
            raise DeliveryError(f"Security Hub unreachable: {type(exc).__name__}") from None
