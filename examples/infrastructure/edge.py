"""The edge and security layer: AWS WAF, the origin lock, Route 53 records, Shield opt-in.

* The web ACL on the REST API stage, the second filtering layer after Cloudflare: the origin
  lock (the secret header Cloudflare's Transform Rule adds, current or previous value), a rate
  rule keyed on ``CF-Connecting-IP`` through the forwarded-IP configuration, and three managed
  rule groups; its logs go to an ``aws-waf-logs-`` log group with the token and the secret
  redacted.
* The origin-lock secrets in Secrets Manager (the header values, and the Authenticated Origin
  Pulls client certificate for the health-check canary).
* The failover alias records of the origin name, the ``CLOUDWATCH_METRIC`` health check behind
  the primary and the canary that feeds it; the private records for internal names.
* Shield Advanced protection of the origin hosted zone, only when the settings opt in (it needs
  an active subscription, which nobody here creates).

AWS WAF cannot read Secrets Manager at request time, so the header values are resolved into the
web ACL at deployment (a CloudFormation dynamic reference): after changing a secret, bump
``originSecretRotation`` so that the web ACL is updated and reads the new values.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_shield as shield
from aws_cdk import aws_synthetics as synthetics
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infrastructure.api import ApiStack
from infrastructure.compute import ComputeStack
from infrastructure.data import DataStack
from infrastructure.network import NetworkStack
from infrastructure.runtime import retention
from infrastructure.services import api_services
from infrastructure.settings import EnvironmentSettings

ORIGIN_HEADER = "x-origin-verify"
CLIENT_IP_HEADER = "CF-Connecting-IP"
CORE_RULE_SET_VERSION = "Version_1.19"
CORE_RULE_SET_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"

CANARY_SCRIPT = """\
const https = require('node:https');
const { SecretsManagerClient, GetSecretValueCommand } = require('@aws-sdk/client-secrets-manager');

const secrets = new SecretsManagerClient({});
const read = async (id) =>
  (await secrets.send(new GetSecretValueCommand({ SecretId: id }))).SecretString;

// Calls /health on the PRIMARY custom domain directly (never through Cloudflare, whose name
// follows the failover), presenting the Authenticated Origin Pulls client certificate and the
// origin-lock header, as Cloudflare does.
exports.handler = async () => {
  const client = JSON.parse(await read(process.env.CLIENT_CERTIFICATE_SECRET));
  const header = await read(process.env.ORIGIN_SECRET);
  const status = await new Promise((resolve, reject) => {
    const request = https.request(
      {
        host: process.env.TARGET_HOST,
        servername: process.env.PUBLIC_NAME,
        path: '/health',
        method: 'GET',
        headers: { host: process.env.PUBLIC_NAME, [process.env.ORIGIN_HEADER]: header },
        cert: client.certificate,
        key: client.privateKey,
        timeout: 5000,
      },
      (response) => {
        response.resume();
        resolve(response.statusCode);
      },
    );
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', reject);
    request.end();
  });
  if (status !== 200) {
    throw new Error(`health check answered ${status}`);
  }
};
"""


class EdgeSecurityStack(Stack):
    """Web ACL, origin-lock secrets, DNS records, health check and Shield.

    Attributes:
        web_acl: The regional web ACL on the REST API stage.
        origin_secrets: The current and previous origin-lock header values.
        health_check: The primary origin's health check.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        network: NetworkStack,
        data: DataStack,
        compute: ComputeStack,
        api: ApiStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._network = network
        p = settings.resource_prefix
        self.origin_secrets = {
            slot: secretsmanager.Secret(
                self,
                f"OriginSecret{slot.capitalize()}",
                secret_name=f"{p}/origin/verify-{slot}",
                description=f"Origin-lock header value ({slot}); Cloudflare sends the current one",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=48
                ),
            )
            for slot in ("current", "previous")
        }
        self.client_certificate = secretsmanager.Secret(
            self,
            "AopClientCertificate",
            secret_name=f"{p}/origin/aop-client-certificate",
            description=(
                'Authenticated Origin Pulls leaf for the canary: put {"certificate": "<PEM>", '
                '"privateKey": "<PEM>"} here'
            ),
        )
        self._web_acl(api)
        self._failover(api)
        self._private_records(data, compute)
        if settings.shield_advanced:
            # Of this path's resources only the hosted zone is a type Shield Advanced protects
            # (a Regional API Gateway is not; the ALB is internal).
            shield.CfnProtection(
                self,
                "ShieldOriginZone",
                name=f"{p}-origin-zone",
                resource_arn=(
                    f"arn:{self.partition}:route53:::hostedzone/"
                    f"{network.origin_zone.hosted_zone_id}"
                ),
            )

    # --- AWS WAF ------------------------------------------------------------------------------

    @staticmethod
    def _visibility(name: str) -> dict[str, Any]:
        return {
            "cloudWatchMetricsEnabled": True,
            "sampledRequestsEnabled": True,
            "metricName": name,
        }

    def _header_equals(self, slot: str) -> dict[str, Any]:
        return {
            "byteMatchStatement": {
                "fieldToMatch": {"singleHeader": {"Name": ORIGIN_HEADER}},
                "positionalConstraint": "EXACTLY",
                "searchString": self.origin_secrets[slot].secret_value.unsafe_unwrap(),
                "textTransformations": [{"priority": 0, "type": "NONE"}],
            }
        }

    def _managed(self, priority: int, name: str, version: str | None = None, **extra: Any) -> dict:
        statement: dict[str, Any] = {"vendorName": "AWS", "name": name, **extra}
        if version:
            statement["version"] = version
        return {
            "name": name,
            "priority": priority,
            "overrideAction": {"none": {}},
            "statement": {"managedRuleGroupStatement": statement},
            "visibilityConfig": self._visibility(name),
        }

    def _web_acl(self, api: ApiStack) -> None:
        settings = self._settings
        p = settings.resource_prefix
        # --8<-- [start:web-acl-rules]
        rules: list[dict[str, Any]] = [
            {
                # First, so that every later rule sees only Cloudflare traffic. Two values
                # allow a rotation without an outage.
                "name": "OriginLock",
                "priority": 0,
                "action": {"block": {}},
                "statement": {
                    "notStatement": {
                        "statement": {
                            "orStatement": {
                                "statements": [
                                    self._header_equals("current"),
                                    self._header_equals("previous"),
                                ]
                            }
                        }
                    }
                },
                "visibilityConfig": self._visibility("OriginLock"),
            },
            {
                "name": "RatePerClient",
                "priority": 1,
                "action": {"block": {}},
                "statement": {
                    "rateBasedStatement": {
                        "limit": settings.waf_rate_limit,
                        "evaluationWindowSec": 300,
                        "aggregateKeyType": "FORWARDED_IP",
                        # A client that cannot be identified is treated as matching.
                        "forwardedIpConfig": {
                            "headerName": CLIENT_IP_HEADER,
                            "fallbackBehavior": "MATCH",
                        },
                    }
                },
                "visibilityConfig": self._visibility("RatePerClient"),
            },
        ]
        core_extra: dict[str, Any] = {}
        if settings.large_body_paths:
            # SizeRestrictions_BODY counts instead of blocking; a rule below blocks the same
            # requests everywhere except on the paths that accept larger JSON.
            core_extra["ruleActionOverrides"] = [
                {"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}
            ]
        rules.append(
            self._managed(2, "AWSManagedRulesCommonRuleSet", CORE_RULE_SET_VERSION, **core_extra)
        )
        rules.append(self._managed(3, "AWSManagedRulesKnownBadInputsRuleSet"))
        rules.append(self._managed(4, "AWSManagedRulesSQLiRuleSet"))
        if settings.large_body_paths:
            rules.append(self._large_bodies_elsewhere(5, settings.large_body_paths))
        # --8<-- [end:web-acl-rules]

        # --8<-- [start:web-acl]
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{p}-api",
            scope="REGIONAL",
            # Bumping the rotation number updates the web ACL, which re-reads both secrets.
            description=(
                f"Storefront API - origin lock, rate limit, managed rules - "
                f"origin secret rotation {settings.origin_secret_rotation}"
            ),
            # Anything the rules did not block goes on to the Cognito authorizer.
            default_action={"allow": {}},
            rules=rules,
            visibility_config=self._visibility(f"{p}-api"),
            data_protection_config={
                "dataProtections": [
                    {
                        "field": {"fieldType": "SINGLE_HEADER", "fieldKeys": [header]},
                        "action": "SUBSTITUTION",
                    }
                    for header in ("authorization", ORIGIN_HEADER)
                ]
            },
        )
        wafv2.CfnWebACLAssociation(
            self, "WebAclOnStage", resource_arn=api.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        # --8<-- [end:web-acl]

        # --8<-- [start:waf-logging]
        name = f"aws-waf-logs-{p}-api"
        log_group = logs.LogGroup(
            self,
            "WafLogs",
            log_group_name=name,
            retention=retention(settings.waf_log_retention_days),
            encryption_key=self._network.logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        logging = wafv2.CfnLoggingConfiguration(
            self,
            "WafLogging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[
                f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{name}"
            ],
            redacted_fields=[
                {"singleHeader": {"Name": header}} for header in ("authorization", ORIGIN_HEADER)
            ],
        )
        logging.node.add_dependency(log_group)
        # --8<-- [end:waf-logging]

    def _large_bodies_elsewhere(self, priority: int, paths: tuple[str, ...]) -> dict[str, Any]:
        allowed = [
            {
                "byteMatchStatement": {
                    "fieldToMatch": {"uriPath": {}},
                    "positionalConstraint": "STARTS_WITH",
                    "searchString": path,
                    "textTransformations": [{"priority": 0, "type": "NONE"}],
                }
            }
            for path in paths
        ]
        on_allowed_path = (
            allowed[0] if len(allowed) == 1 else {"orStatement": {"statements": allowed}}
        )
        return {
            "name": "LargeBodiesOnlyWhereAllowed",
            "priority": priority,
            "action": {"block": {}},
            "statement": {
                "andStatement": {
                    "statements": [
                        {
                            "labelMatchStatement": {
                                "scope": "LABEL",
                                "key": CORE_RULE_SET_SIZE_LABEL,
                            }
                        },
                        {"notStatement": {"statement": on_allowed_path}},
                    ]
                }
            },
            "visibilityConfig": self._visibility("LargeBodiesOnlyWhereAllowed"),
        }

    # --- Failover records, health check, canary -----------------------------------------------

    def _failover(self, api: ApiStack) -> None:
        settings, network = self._settings, self._network
        p = settings.resource_prefix
        public = api.domains[settings.api_domain]
        origin = api.domains[settings.origin_api_domain]
        artifacts = s3.Bucket(
            self,
            "CanaryArtifacts",
            bucket_name=f"{p}-canary-artifacts",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(id="expire-runs", expiration=Duration.days(14))],
            removal_policy=RemovalPolicy.DESTROY,
        )
        # --8<-- [start:canary]
        canary = synthetics.Canary(
            self,
            "OriginCanary",
            canary_name=f"{p}-origin"[:255],
            runtime=synthetics.Runtime.SYNTHETICS_NODEJS_PUPPETEER_13_0,
            test=synthetics.Test.custom(
                code=synthetics.Code.from_inline(CANARY_SCRIPT), handler="index.handler"
            ),
            schedule=synthetics.Schedule.rate(Duration.minutes(1)),
            artifacts_bucket_location=synthetics.ArtifactsBucketLocation(bucket=artifacts),
            environment_variables={
                # The primary endpoint itself: Cloudflare's name would follow the failover.
                "TARGET_HOST": public.attr_regional_domain_name,
                "PUBLIC_NAME": settings.api_domain,
                "ORIGIN_HEADER": ORIGIN_HEADER,
                "ORIGIN_SECRET": self.origin_secrets["current"].secret_arn,
                "CLIENT_CERTIFICATE_SECRET": self.client_certificate.secret_arn,
            },
            # Teardown also removes the canary's Lambda function and layers.
            provisioned_resource_cleanup=True,
            success_retention_period=Duration.days(7),
            failure_retention_period=Duration.days(14),
        )
        self.origin_secrets["current"].grant_read(canary.role)
        self.client_certificate.grant_read(canary.role)
        alarm = cloudwatch.Alarm(
            self,
            "OriginCanaryAlarm",
            alarm_name=f"{p}-origin-canary-SuccessPercent",
            metric=canary.metric_success_percent(period=Duration.minutes(1), statistic="Average"),
            threshold=100,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
        )
        # --8<-- [end:canary]
        # --8<-- [start:failover]
        self.health_check = route53.CfnHealthCheck(
            self,
            "PrimaryHealth",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="CLOUDWATCH_METRIC",
                alarm_identifier=route53.CfnHealthCheck.AlarmIdentifierProperty(
                    name=alarm.alarm_name, region=self.region
                ),
                # A missing data point must not flip traffic.
                insufficient_data_health_status="LastKnownStatus",
            ),
            health_check_tags=[{"key": "Name", "value": f"{p}-primary-origin"}],
        )
        route53.CfnRecordSet(
            self,
            "OriginPrimary",
            hosted_zone_id=network.origin_zone.hosted_zone_id,
            name=f"{settings.origin_api_domain}.",
            type="A",
            set_identifier="primary",
            failover="PRIMARY",
            health_check_id=self.health_check.attr_health_check_id,
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=origin.attr_regional_domain_name,
                hosted_zone_id=origin.attr_regional_hosted_zone_id,
                evaluate_target_health=False,
            ),
        )
        if settings.standby is not None:
            route53.CfnRecordSet(
                self,
                "OriginSecondary",
                hosted_zone_id=network.origin_zone.hosted_zone_id,
                name=f"{settings.origin_api_domain}.",
                type="A",
                set_identifier="secondary",
                failover="SECONDARY",
                alias_target=route53.CfnRecordSet.AliasTargetProperty(
                    dns_name=settings.standby.regional_domain_name,
                    hosted_zone_id=settings.standby.regional_hosted_zone_id,
                    evaluate_target_health=False,
                ),
            )
        # --8<-- [end:failover]
        CfnOutput(
            self,
            "CloudflareOriginTarget",
            description=f"Cloudflare's proxied {settings.api_domain} record: CNAME to this name",
            value=settings.origin_api_domain,
        )

    # --- Private records ----------------------------------------------------------------------

    def _private_records(self, data: DataStack, compute: ComputeStack) -> None:
        zone = self._network.internal_zone
        # --8<-- [start:private-records]
        for service in api_services():
            route53.ARecord(
                self,
                f"Internal{''.join(p.capitalize() for p in service.name.split('-'))}",
                zone=zone,
                record_name=service.name,
                target=route53.RecordTarget.from_alias(
                    route53_targets.LoadBalancerTarget(compute.alb)
                ),
            )
        # Names for endpoints that publish DNS names, not alias targets; 60 s bounds how long a
        # replaced endpoint stays cached in the tasks' resolvers.
        for name, target in (
            ("db", data.proxy.attr_endpoint),
            ("cache", data.cache.attr_primary_end_point_address),
            ("cache-reader", data.cache.attr_reader_end_point_address),
            ("events-db", data.documentdb.attr_endpoint),
            ("events-db-reader", data.documentdb.attr_read_endpoint),
        ):
            route53.CnameRecord(
                self,
                "Internal" + "".join(p.capitalize() for p in name.split("-")),
                zone=zone,
                record_name=name,
                domain_name=target,
                ttl=Duration.seconds(60),
            )
        # --8<-- [end:private-records]
