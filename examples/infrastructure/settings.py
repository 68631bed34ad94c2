"""The environments the CDK app deploys, as typed, validated settings.

One :class:`EnvironmentSettings` per environment (``dev`` and ``prod``) holds every size and
switch that differs between them; everything else is fixed in the stacks. The account and the
Region are never written here: they come from the CDK context (``-c account=... -c region=...``)
or from the variables the CDK CLI sets from your AWS profile (``CDK_DEFAULT_ACCOUNT``,
``CDK_DEFAULT_REGION``), so the same code deploys to any account and Region.

Service availability per Region: every service this app uses must exist in the target Region,
and several features are newer than the services themselves: VPC links V2 for REST APIs
(November 2025), DocumentDB 8.0, ElastiCache for Valkey, Cognito feature plans, Fargate Spot and
the post-quantum ELB security policies. Check each of them for the Region (the AWS global
infrastructure pages, https://aws.amazon.com/about-aws/global-infrastructure/, list services by
Region) before the first deployment; ``cdk synth`` cannot tell, because it never calls AWS.
The three Availability
Zone names default to ``<region>a``, ``<region>b`` and ``<region>c``; pass
``-c availabilityZones=eu-west-1a,eu-west-1b,eu-west-1c`` where a Region's names differ, so
that synthesis never has to look them up (it stays offline).

Example:
    >>> s = settings_for("prod", region="eu-west-1")
    >>> s.resource_prefix, s.availability_zones[0], s.database.multi_az
    ('storefront-prod', 'eu-west-1a', True)
    >>> settings_for("dev", region="eu-west-1").nat_gateways
    1
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

EnvironmentName = Literal["dev", "prod"]

# Fargate accepts only fixed CPU/memory combinations (the ECS Fargate page's catalog limits);
# these are the ones the settings below may use.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: (2048, 3072, 4096, 5120, 6144, 7168, 8192),
}

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class TaskSize:
    """CPU, memory and task counts of one kind of service.

    Attributes:
        cpu: CPU units (1024 = 1 vCPU).
        memory_mib: Memory in MiB; must be a valid Fargate combination with ``cpu``.
        min_tasks: The autoscaling minimum (and the desired count at creation).
        max_tasks: The autoscaling maximum.
    """

    cpu: int
    memory_mib: int
    min_tasks: int
    max_tasks: int

    def __post_init__(self) -> None:
        _check(
            self.memory_mib in FARGATE_SIZES.get(self.cpu, ()),
            f"{self.cpu} CPU units / {self.memory_mib} MiB is not a Fargate size",
        )
        _check(1 <= self.min_tasks <= self.max_tasks, "need 1 <= min_tasks <= max_tasks")


@dataclass(frozen=True)
class DatabaseSettings:
    """RDS for PostgreSQL and RDS Proxy.

    Attributes:
        instance_class: The DB instance class without the ``db.`` prefix.
        multi_az: A synchronous standby in a second Availability Zone.
        allocated_storage_gib: Initial gp3 storage.
        max_allocated_storage_gib: Storage autoscaling ceiling (about twice the allocation).
        backup_retention_days: Days of point-in-time recovery.
        insights_mode: Database Insights mode (``standard`` or ``advanced``).
    """

    instance_class: str
    multi_az: bool
    allocated_storage_gib: int
    max_allocated_storage_gib: int
    backup_retention_days: int = 14
    insights_mode: Literal["standard", "advanced"] = "standard"

    def __post_init__(self) -> None:
        _check(
            self.max_allocated_storage_gib >= self.allocated_storage_gib,
            "max_allocated_storage_gib below allocated_storage_gib",
        )
        _check(1 <= self.backup_retention_days <= 35, "backup retention must be 1 to 35 days")


@dataclass(frozen=True)
class DocumentDbSettings:
    """The DocumentDB event store.

    Attributes:
        instance_class: Instance class without the ``db.`` prefix; the same on every instance.
        instances: Primary plus replicas (one per Availability Zone in production).
        backup_retention_days: Days of point-in-time restore.
    """

    instance_class: str
    instances: int
    backup_retention_days: int = 14

    def __post_init__(self) -> None:
        _check(1 <= self.instances <= 16, "DocumentDB takes 1 primary and up to 15 replicas")


@dataclass(frozen=True)
class CacheSettings:
    """The ElastiCache for Valkey replication group.

    Attributes:
        node_type: Node type with the ``cache.`` prefix.
        replicas: Read replicas next to the primary (cluster mode disabled: at most 5).
    """

    node_type: str
    replicas: int

    def __post_init__(self) -> None:
        _check(0 <= self.replicas <= 5, "a cluster-mode-disabled group has 0 to 5 replicas")

    @property
    def multi_az(self) -> bool:
        """Multi-AZ with automatic failover needs at least one replica."""
        return self.replicas >= 1


@dataclass(frozen=True)
class StandbyOrigin:
    """The standby Region's API custom domain, target of the SECONDARY failover record.

    Attributes:
        regional_domain_name: The standby custom domain's ``regionalDomainName``.
        regional_hosted_zone_id: Its ``regionalHostedZoneId``.
    """

    regional_domain_name: str
    regional_hosted_zone_id: str


@dataclass(frozen=True)
class EnvironmentSettings:
    """Everything that differs between environments.

    Attributes:
        name: ``dev`` or ``prod``.
        region: The AWS Region of every stack.
        account: The AWS account, or None to synthesize account-agnostic templates.
        availability_zones: The three Availability Zones the VPC spans.
        resource_prefix: The prefix of every resource name (``storefront-<env>``); bucket names
            are global, so override it (``-c prefix=...``) when the default is taken.
        domain: The public apex domain (Cloudflare is authoritative for it).
        nat_gateways: NAT gateways (one per AZ in production, one in dev).
        api: Size and counts of the API services.
        worker: Size and counts of the queue workers.
        requests_per_target: Target of the ``ALBRequestCountPerTarget`` scaling policy.
        worker_backlog_per_task: Target of the workers' backlog-per-task policy.
        database: RDS settings.
        documentdb: DocumentDB settings.
        cache: ElastiCache settings.
        waf_rate_limit: Requests per client per 300 s window before the rate rule blocks.
        stage_rate_limit: Stage-wide steady-state throttling target (requests per second).
        stage_burst_limit: Stage-wide burst throttling target.
        checkout_rate_limit: ``POST /cart/checkout`` throttling target.
        checkout_burst_limit: ``POST /cart/checkout`` burst target.
        integration_timeout_ms: Integration timeout of the private integration.
        service_log_retention_days: Retention of the service and access log groups.
        waf_log_retention_days: Retention of the AWS WAF log group.
        truststore_version: The S3 object version of ``truststore.pem`` (mutual TLS).
        origin_secret_rotation: Bump after changing the origin-lock secrets, so that the web
            ACL is updated and re-reads them.
        standby: The standby origin for the SECONDARY failover record, or None.
        shield_advanced: Create Shield Advanced protections (needs an active subscription).
        large_body_paths: Paths that may take JSON bodies above the core rule set's 8 KB.
        image_tag: The image tag every service runs (pushed to its ECR repository first).
        collector_image: The AWS Distro for OpenTelemetry Collector image.
        callback_urls: OAuth callback URLs of the customer and staff app clients.
        alarm_email: Where alarm notifications go, or None for no subscription.
        s3_prefix_list_id: The Region's S3 managed prefix list (``pl-...``); when set, workers
            reach S3 through it instead of any address on 443.
        cloudflare_ranges_file: A freshly synced list of Cloudflare's ranges, else the
            built-in copy in ``storefront.topology``.
    """

    name: EnvironmentName
    region: str
    account: str | None
    availability_zones: tuple[str, ...]
    resource_prefix: str
    domain: str
    nat_gateways: int
    api: TaskSize
    worker: TaskSize
    requests_per_target: int
    worker_backlog_per_task: int
    database: DatabaseSettings
    documentdb: DocumentDbSettings
    cache: CacheSettings
    waf_rate_limit: int = 1_000
    stage_rate_limit: int = 500
    stage_burst_limit: int = 1_000
    checkout_rate_limit: int = 50
    checkout_burst_limit: int = 100
    integration_timeout_ms: int = 10_000
    service_log_retention_days: int = 30
    waf_log_retention_days: int = 90
    truststore_version: str | None = None
    origin_secret_rotation: int = 0
    standby: StandbyOrigin | None = None
    shield_advanced: bool = False
    large_body_paths: tuple[str, ...] = ()
    image_tag: str = "1.0.0"
    collector_image: str = "public.ecr.aws/aws-observability/aws-otel-collector:v0.48.0"
    callback_urls: tuple[str, ...] = ()
    alarm_email: str | None = None
    s3_prefix_list_id: str | None = None
    cloudflare_ranges_file: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(bool(_REGION.match(self.region)), f"not a Region name: {self.region!r}")
        _check(
            self.account is None or bool(re.fullmatch(r"\d{12}", self.account)),
            f"not an account id: {self.account!r}",
        )
        _check(len(self.availability_zones) == 3, "the VPC spans exactly three AZs")
        _check(
            all(az.startswith(self.region) for az in self.availability_zones),
            f"AZs {self.availability_zones} are not in {self.region}",
        )
        _check(bool(_PREFIX.match(self.resource_prefix)), "bad resource prefix")
        _check(1 <= self.nat_gateways <= 3, "one to three NAT gateways")
        # The integration timeout range is 50 to 29,000 ms without a quota increase.
        _check(50 <= self.integration_timeout_ms <= 29_000, "integration timeout out of range")
        # AWS WAF rate-based rules: minimum limit 10 (the WAF & Shield page's catalog limits).
        _check(self.waf_rate_limit >= 10, "the WAF rate limit is at least 10")

    @property
    def api_domain(self) -> str:
        """The public API name (a proxied Cloudflare record)."""
        return f"api.{self.domain}"

    @property
    def origin_zone(self) -> str:
        """The Route 53 public zone delegated from Cloudflare for origin names."""
        return f"origin.{self.domain}"

    @property
    def origin_api_domain(self) -> str:
        """The origin name Cloudflare's ``api`` record points to (failover records)."""
        return f"api.{self.origin_zone}"

    @property
    def alb_domain(self) -> str:
        """The internal ALB's certificate name, sent as the private integration's host."""
        return f"alb.{self.origin_zone}"

    @property
    def internal_zone(self) -> str:
        """The private hosted zone for internal names."""
        return f"internal.{self.domain}"

    @property
    def truststore_bucket(self) -> str:
        """The versioned bucket that holds the mutual-TLS truststore."""
        return f"{self.resource_prefix}-truststore"

    def stack_name(self, layer: str) -> str:
        """The CloudFormation stack name of a layer (``storefront-prod-network``)."""
        return f"{self.resource_prefix}-{layer}"


# --8<-- [start:environments]
ENVIRONMENTS: dict[EnvironmentName, dict[str, Any]] = {
    "prod": {
        "nat_gateways": 3,
        "api": TaskSize(cpu=512, memory_mib=1024, min_tasks=3, max_tasks=12),
        "worker": TaskSize(cpu=256, memory_mib=512, min_tasks=1, max_tasks=10),
        "requests_per_target": 1_000,
        "worker_backlog_per_task": 100,
        "database": DatabaseSettings(
            instance_class="r8g.large",
            multi_az=True,
            allocated_storage_gib=200,
            max_allocated_storage_gib=400,
            insights_mode="advanced",
        ),
        "documentdb": DocumentDbSettings(instance_class="r8g.large", instances=3),
        "cache": CacheSettings(node_type="cache.r7g.large", replicas=2),
    },
    "dev": {
        "nat_gateways": 1,
        "api": TaskSize(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2),
        "worker": TaskSize(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2),
        "requests_per_target": 1_000,
        "worker_backlog_per_task": 100,
        "database": DatabaseSettings(
            instance_class="t4g.medium",
            multi_az=False,
            allocated_storage_gib=20,
            max_allocated_storage_gib=40,
            backup_retention_days=7,
        ),
        "documentdb": DocumentDbSettings(
            instance_class="t4g.medium", instances=1, backup_retention_days=7
        ),
        "cache": CacheSettings(node_type="cache.t4g.small", replicas=0),
    },
}
# --8<-- [end:environments]


def settings_for(
    name: EnvironmentName,
    *,
    region: str,
    account: str | None = None,
    **overrides: Any,
) -> EnvironmentSettings:
    """The settings of one environment, with optional overrides.

    Args:
        name: ``dev`` or ``prod``.
        region: The AWS Region.
        account: The AWS account id, or None.
        **overrides: Any :class:`EnvironmentSettings` field.

    Returns:
        The validated settings.

    Raises:
        ValueError: An unknown environment or an invalid value.
    """
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; use one of {sorted(ENVIRONMENTS)}")
    values: dict[str, Any] = {
        "name": name,
        "region": region,
        "account": account,
        "availability_zones": tuple(f"{region}{zone}" for zone in "abc"),
        "resource_prefix": f"storefront-{name}",
        "domain": "example.com",
        "tags": {"project": "storefront", "environment": name},
        **ENVIRONMENTS[name],
    }
    values.update(overrides)
    return EnvironmentSettings(**values)


# Every context key settings_from_context reads.
CONTEXT_KEYS: tuple[str, ...] = (
    "env",
    "account",
    "region",
    "availabilityZones",
    "prefix",
    "domain",
    "imageTag",
    "truststoreVersion",
    "originSecretRotation",
    "standbyRegionalDomainName",
    "standbyRegionalHostedZoneId",
    "shieldAdvanced",
    "largeBodyPaths",
    "callbackUrls",
    "alarmEmail",
    "s3PrefixListId",
    "cloudflareRangesFile",
)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def settings_from_context(context: Mapping[str, Any]) -> EnvironmentSettings:
    """The settings for a ``cdk`` invocation, from its context and the CLI's variables.

    Context keys (``-c key=value``): ``env`` (``dev``, the default, or ``prod``), ``account``,
    ``region``, ``availabilityZones``, ``prefix``, ``domain``, ``imageTag``,
    ``truststoreVersion``, ``originSecretRotation``, ``standbyRegionalDomainName`` with
    ``standbyRegionalHostedZoneId``, ``shieldAdvanced``, ``largeBodyPaths``, ``callbackUrls``,
    ``alarmEmail``, ``s3PrefixListId`` and ``cloudflareRangesFile``.

    Args:
        context: A function from context key to value (``app.node.try_get_context``) wrapped
            as a mapping, or a plain dict in tests.

    Returns:
        The validated settings.
    """

    def get(key: str) -> Any:
        value = context.get(key)
        return None if value in (None, "") else value

    name = get("env") or "dev"
    region = get("region") or os.environ.get("CDK_DEFAULT_REGION") or "eu-west-1"
    account = get("account") or os.environ.get("CDK_DEFAULT_ACCOUNT")
    overrides: dict[str, Any] = {}
    if get("availabilityZones"):
        overrides["availability_zones"] = _split(str(get("availabilityZones")))
    if get("prefix"):
        overrides["resource_prefix"] = str(get("prefix"))
    if get("domain"):
        overrides["domain"] = str(get("domain"))
    if get("imageTag"):
        overrides["image_tag"] = str(get("imageTag"))
    if get("truststoreVersion"):
        overrides["truststore_version"] = str(get("truststoreVersion"))
    if get("originSecretRotation") is not None:
        overrides["origin_secret_rotation"] = int(get("originSecretRotation"))
    if get("standbyRegionalDomainName") and get("standbyRegionalHostedZoneId"):
        overrides["standby"] = StandbyOrigin(
            regional_domain_name=str(get("standbyRegionalDomainName")),
            regional_hosted_zone_id=str(get("standbyRegionalHostedZoneId")),
        )
    if get("shieldAdvanced") is not None:
        overrides["shield_advanced"] = str(get("shieldAdvanced")).lower() in ("1", "true", "yes")
    if get("largeBodyPaths"):
        overrides["large_body_paths"] = _split(str(get("largeBodyPaths")))
    if get("callbackUrls"):
        overrides["callback_urls"] = _split(str(get("callbackUrls")))
    for key, attribute in (
        ("alarmEmail", "alarm_email"),
        ("s3PrefixListId", "s3_prefix_list_id"),
        ("cloudflareRangesFile", "cloudflare_ranges_file"),
    ):
        if get(key):
            overrides[attribute] = str(get(key))
    return settings_for(name, region=str(region), account=account, **overrides)


def with_overrides(settings: EnvironmentSettings, **changes: Any) -> EnvironmentSettings:
    """A copy of ``settings`` with some fields changed (validated again)."""
    return replace(settings, **changes)
