"""The runtime names and settings the stacks share, and what ``storefront.topology`` lacks.

The runtime resources the services talk to (the Cognito pool, the EventBridge bus with its rules
and archive, the SQS queues, the SNS topic, the S3 buckets) are defined once, as data, in
:mod:`storefront.topology`; the moto bootstrap of the executable examples and this CDK app both
build them from there, so the two never disagree. This module loads that topology for an
environment and adds, clearly marked, the few production settings the topology does not carry
(each one is listed in :data:`TOPOLOGY_GAPS`), so that a reviewer sees them in one place and
they can move into the topology later.

Example:
    >>> from infrastructure.settings import settings_for
    >>> topology = load_topology(settings_for("prod", region="eu-west-1"))
    >>> topology.event_bus.name
    'storefront-prod-events'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storefront.topology import CLOUDFLARE_IP_RANGES, Topology, build_topology, load_ranges

from infrastructure.settings import EnvironmentSettings


def load_topology(settings: EnvironmentSettings) -> Topology:
    """The runtime topology of one environment, with the CDN ranges the settings name."""
    ranges = (
        load_ranges(settings.cloudflare_ranges_file)
        if settings.cloudflare_ranges_file
        else CLOUDFLARE_IP_RANGES
    )
    return build_topology(resource_prefix=settings.resource_prefix, cdn_ranges=ranges)


# --- What the topology does not define (yet) --------------------------------------------------

TOPOLOGY_GAPS: tuple[str, ...] = (
    "Cognito: the separate staff user pool (Plus plan, threat protection enforced, invited "
    "only, MFA required) and its groups support / merchandiser / admin",
    "Cognito: the resource server 'storefront' and its scopes, and the OAuth settings of the "
    "app clients (authorization code grant with PKCE, callback URLs)",
    "Cognito: the feature plan (Essentials for customers) and MFA settings",
    "SQS and SNS: encryption with a customer managed KMS key (the topology says SSE-SQS, which "
    "moto supports; the SNS + SQS page asks for SSE-KMS with a key that admits EventBridge and "
    "SNS) and MaximumMessageSize set explicitly to 1 MiB",
    "EventBridge: the bus's own dead-letter queue for encryption errors, the bus KMS key and "
    "the bus policy that admits only this account",
    "S3: Object Lock (COMPLIANCE, 35 days) on the backups bucket; NewerNoncurrentVersions 3 on "
    "the assets bucket (left out of the topology because moto drops it); the rule that expires "
    "delete markers; the receipts policy that denies PutObject outside the gateway endpoint; "
    "request metrics",
)

RESOURCE_SERVER_ID = "storefront"
STAFF_GROUPS: tuple[tuple[str, str, int], ...] = (
    ("admin", "Storefront administrators", 1),
    ("merchandiser", "Catalog and pricing staff", 5),
    ("support", "Customer support staff", 10),
)


@dataclass(frozen=True)
class Extras:
    """Names the CDK app adds next to the topology's.

    Attributes:
        staff_pool: The staff user pool's name.
        staff_client: The staff console's app client name.
        bus_dlq: The event bus's dead-letter queue (events EventBridge could not encrypt).
        backup_lock_days: Object Lock default retention of the backups bucket.
        assets_newer_noncurrent_versions: Noncurrent asset versions kept regardless of age.
    """

    staff_pool: str
    staff_client: str
    bus_dlq: str
    backup_lock_days: int = 35
    assets_newer_noncurrent_versions: int = 3


def extras(settings: EnvironmentSettings) -> Extras:
    """The names this app adds for an environment."""
    p = settings.resource_prefix
    return Extras(
        staff_pool=f"{p}-staff",
        staff_client=f"{p}-staff-console",
        bus_dlq=f"{p}-events-bus-dlq",
    )


def retention(days: int) -> Any:
    """The CloudWatch Logs retention setting for a number of days.

    Raises:
        ValueError: CloudWatch Logs has no retention of that many days.
    """
    from aws_cdk import aws_logs as logs

    values = {
        1: logs.RetentionDays.ONE_DAY,
        3: logs.RetentionDays.THREE_DAYS,
        5: logs.RetentionDays.FIVE_DAYS,
        7: logs.RetentionDays.ONE_WEEK,
        14: logs.RetentionDays.TWO_WEEKS,
        30: logs.RetentionDays.ONE_MONTH,
        60: logs.RetentionDays.TWO_MONTHS,
        90: logs.RetentionDays.THREE_MONTHS,
        120: logs.RetentionDays.FOUR_MONTHS,
        150: logs.RetentionDays.FIVE_MONTHS,
        180: logs.RetentionDays.SIX_MONTHS,
        365: logs.RetentionDays.ONE_YEAR,
    }
    if days not in values:
        raise ValueError(
            f"CloudWatch Logs has no {days}-day retention; use one of {sorted(values)}"
        )
    return values[days]
