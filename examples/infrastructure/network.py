"""The network layer: VPC, subnets, VPC endpoints, security groups and the hosted zones.

One VPC across three Availability Zones with three subnet tiers (public for the NAT gateways,
private for the VPC link, the internal ALB and the tasks, isolated for the databases), interface
endpoints for the AWS APIs the tasks call and a gateway endpoint for S3. Every security group
is created here, with its rules, so that one file answers "who may talk to whom": each rule names
its caller's security group, never an address range, except the two documented exceptions
(HTTPS egress of the tasks, see :meth:`NetworkStack._task_group`).

The two hosted zones live here too, although Route 53 belongs to the edge layer, because
everything else needs them first: the public zone ``origin.<domain>`` validates the ALB's
certificate and must be delegated from Cloudflare (its name servers are a stack output) before
anything in it can resolve, and it must never be recreated (a new zone gets new name servers),
so it is retained on deletion. The records are written by the edge stack.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, CfnResource, Fn, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_route53 as route53
from constructs import Construct
from storefront.topology import Topology, queue_arn, topic_arn

from infrastructure.services import CONTAINER_PORT, SERVICES
from infrastructure.settings import EnvironmentSettings

POSTGRES_PORT = 5432
VALKEY_PORT = 6379
DOCUMENTDB_PORT = 27017
HTTPS = 443

# The interface endpoints the tasks need: image pulls (ECR API and Docker registry), logs,
# secrets, the messaging APIs, STS, X-Ray, KMS and SSM (the collector's configuration).
# No Cognito (cognito-idp) endpoint: a user pool with a domain assigned cannot be used through
# AWS PrivateLink (requests transiting the endpoint do not complete), and both storefront pools
# have a managed-login domain; with private DNS the endpoint would capture every call to
# cognito-idp.<region>.amazonaws.com, the accounts service's Admin* calls and the services' JWKS
# fetches alike. They leave through the NAT gateways instead.
# https://docs.aws.amazon.com/cognito/latest/developerguide/vpc-interface-endpoints.html
# (checked 2026-12-03; the footnotes saying so were read on the ko_kr and zh_cn copies).
INTERFACE_ENDPOINTS: tuple[tuple[str, ec2.InterfaceVpcEndpointAwsService], ...] = (
    ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
    ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
    ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
    ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
    ("Sqs", ec2.InterfaceVpcEndpointAwsService.SQS),
    ("Sns", ec2.InterfaceVpcEndpointAwsService.SNS),
    ("Events", ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE),
    ("Sts", ec2.InterfaceVpcEndpointAwsService.STS),
    ("XRay", ec2.InterfaceVpcEndpointAwsService.XRAY),
    ("Kms", ec2.InterfaceVpcEndpointAwsService.KMS),
    ("Ssm", ec2.InterfaceVpcEndpointAwsService.SSM),
)


class NetworkStack(Stack):
    """VPC, endpoints, security groups, hosted zones and the shared logs key.

    Attributes:
        vpc: The VPC.
        logs_key: The customer managed key of every log group.
        vpc_link_sg: The VPC link's security group.
        alb_sg: The internal ALB's security group.
        endpoints_sg: The interface endpoints' security group.
        task_sgs: One security group per service, by service name.
        proxy_sg: RDS Proxy's security group.
        database_sg: The RDS instance's security group.
        migration_sg: The security group of one-off migration tasks.
        cache_sg: The ElastiCache replication group's security group.
        documentdb_sg: The DocumentDB cluster's security group.
        s3_endpoint: The S3 gateway endpoint (the receipts bucket policy names it).
        origin_zone: The public hosted zone ``origin.<domain>``.
        internal_zone: The private hosted zone ``internal.<domain>``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        topology: Topology,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._topology = topology
        self.logs_key = self._logs_key()

        # --8<-- [start:vpc]
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            availability_zones=list(settings.availability_zones),
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            # Both are required for private hosted zones.
            enable_dns_hostnames=True,
            enable_dns_support=True,
            restrict_default_security_group=True,
        )
        # --8<-- [end:vpc]
        self._lint_exceptions()

        self._security_groups()
        self._endpoints()
        self._zones()

    def _lint_exceptions(self) -> None:
        # The CDK's own provider for restrict_default_security_group declares a DependsOn that
        # its GetAtt already implies (cfn-lint W3005); it is generated code, so the warning is
        # acknowledged on that one resource rather than switched off everywhere.
        provider = self.node.try_find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        handler = provider.node.try_find_child("Handler") if provider else None
        if isinstance(handler, CfnResource):
            handler.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})

    # --- Keys ---------------------------------------------------------------------------------

    def _logs_key(self) -> kms.Key:
        key = kms.Key(
            self,
            "LogsKey",
            alias=f"alias/{self._settings.resource_prefix}-logs",
            description="CloudWatch Logs log groups of the storefront",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch Logs encrypts with the key only for log groups of this account and Region.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"
                        )
                    }
                },
            )
        )
        return key

    # --- Security groups ----------------------------------------------------------------------

    def _group(self, construct_id: str, description: str) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self,
            construct_id,
            vpc=self.vpc,
            description=description,
            allow_all_outbound=False,
        )
        Tags.of(group).add("Name", f"{self._settings.resource_prefix}-{construct_id}")
        return group

    def _security_groups(self) -> None:
        # --8<-- [start:security-groups]
        self.vpc_link_sg = self._group("VpcLinkSg", "API Gateway VPC link V2 to the internal ALB")
        self.alb_sg = self._group("AlbSg", "Internal ALB: HTTPS from the VPC link only")
        self.endpoints_sg = self._group("EndpointsSg", "Interface VPC endpoints: HTTPS from tasks")
        self.proxy_sg = self._group("ProxySg", "RDS Proxy: PostgreSQL from service tasks")
        self.database_sg = self._group(
            "DatabaseSg", "RDS: PostgreSQL from the proxy and migrations"
        )
        self.migration_sg = self._group("MigrationSg", "One-off schema migration tasks")
        self.cache_sg = self._group("CacheSg", "ElastiCache for Valkey: from cache users")
        self.documentdb_sg = self._group("DocumentDbSg", "DocumentDB: from event-store users")

        self.vpc_link_sg.add_egress_rule(self.alb_sg, ec2.Port.tcp(HTTPS), "to the ALB listener")
        self.alb_sg.add_ingress_rule(self.vpc_link_sg, ec2.Port.tcp(HTTPS), "from the VPC link")
        self.proxy_sg.add_egress_rule(
            self.database_sg, ec2.Port.tcp(POSTGRES_PORT), "to the DB instance"
        )
        self.database_sg.add_ingress_rule(
            self.proxy_sg, ec2.Port.tcp(POSTGRES_PORT), "from RDS Proxy"
        )
        self.database_sg.add_ingress_rule(
            self.migration_sg, ec2.Port.tcp(POSTGRES_PORT), "from migration tasks"
        )
        self.migration_sg.add_egress_rule(
            self.database_sg, ec2.Port.tcp(POSTGRES_PORT), "to the DB instance"
        )
        self.migration_sg.add_egress_rule(self.endpoints_sg, ec2.Port.tcp(HTTPS), "to the AWS APIs")
        self.endpoints_sg.add_ingress_rule(
            self.migration_sg, ec2.Port.tcp(HTTPS), "from migration tasks"
        )
        self.task_sgs = {service.name: self._task_group(service.name) for service in SERVICES}
        # --8<-- [end:security-groups]

    def _task_group(self, name: str) -> ec2.SecurityGroup:
        """The security group of one service's tasks, with the rules it needs and no more.

        HTTPS egress to any address is the one rule that names no security group: API tasks
        fetch the Cognito JWKS through the NAT gateways, the notification sender delivers
        webhooks to the internet, and every task reaches S3 (including ECR's image layers)
        through the gateway endpoint, whose AWS-managed prefix list id is Region-specific; with
        ``s3_prefix_list_id`` set, the other workers use that prefix list instead.
        """
        from infrastructure.services import service as lookup

        service = lookup(name)
        group = self._group(f"Task{_pascal(name)}Sg", f"Tasks of the {name} service")
        group.add_egress_rule(self.endpoints_sg, ec2.Port.tcp(HTTPS), "to the AWS APIs")
        self.endpoints_sg.add_ingress_rule(group, ec2.Port.tcp(HTTPS), f"from {name} tasks")
        if service.is_api or service.internet_egress or self._settings.s3_prefix_list_id is None:
            group.add_egress_rule(
                ec2.Peer.any_ipv4(),
                ec2.Port.tcp(HTTPS),
                "HTTPS: S3 gateway endpoint; JWKS and webhooks via NAT",
            )
        else:
            group.add_egress_rule(
                ec2.Peer.prefix_list(self._settings.s3_prefix_list_id),
                ec2.Port.tcp(HTTPS),
                "to S3 through the gateway endpoint",
            )
        if service.is_api:
            group.add_ingress_rule(self.alb_sg, ec2.Port.tcp(CONTAINER_PORT), "from the ALB")
            self.alb_sg.add_egress_rule(group, ec2.Port.tcp(CONTAINER_PORT), f"to {name} targets")
        if service.database_user:
            group.add_egress_rule(self.proxy_sg, ec2.Port.tcp(POSTGRES_PORT), "to RDS Proxy")
            self.proxy_sg.add_ingress_rule(group, ec2.Port.tcp(POSTGRES_PORT), f"from {name} tasks")
        if service.cache_user:
            group.add_egress_rule(self.cache_sg, ec2.Port.tcp(VALKEY_PORT), "to ElastiCache")
            self.cache_sg.add_ingress_rule(group, ec2.Port.tcp(VALKEY_PORT), f"from {name} tasks")
        if service.event_store_user:
            group.add_egress_rule(
                self.documentdb_sg, ec2.Port.tcp(DOCUMENTDB_PORT), "to DocumentDB"
            )
            self.documentdb_sg.add_ingress_rule(
                group, ec2.Port.tcp(DOCUMENTDB_PORT), f"from {name} tasks"
            )
        return group

    # --- Endpoints ----------------------------------------------------------------------------

    def _endpoints(self) -> None:
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        endpoints = {
            name: self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=private,
                security_groups=[self.endpoints_sg],
                private_dns_enabled=True,
                open=False,
            )
            for name, service in INTERFACE_ENDPOINTS
        }
        arn = {"partition": self.partition, "region": self.region, "account": self.account}
        topology = self._topology
        prefix = self._settings.resource_prefix
        # --8<-- [start:endpoint-policies]
        endpoints["Events"].add_to_policy(
            iam.PolicyStatement(
                sid="PutEventsOnTheStorefrontBusOnly",
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[
                    f"arn:{self.partition}:events:{self.region}:{self.account}:"
                    f"event-bus/{topology.event_bus.name}"
                ],
            )
        )
        endpoints["Sqs"].add_to_policy(
            iam.PolicyStatement(
                sid="ThisEnvironmentsQueuesOnly",
                principals=[iam.AnyPrincipal()],
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:SendMessage",
                ],
                resources=[queue_arn(**arn, queue=f"{prefix}-*")],
            )
        )
        endpoints["Sns"].add_to_policy(
            iam.PolicyStatement(
                sid="TheNotificationsTopicOnly",
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[topic_arn(**arn, topic=topology.topic.name)],
            )
        )
        # --8<-- [end:endpoint-policies]
        for name, endpoint in endpoints.items():
            if name in ("Events", "Sqs", "Sns"):
                continue
            # The other endpoints keep the default full-access policy: the callers' own IAM
            # policies (task and execution roles) are the least-privilege boundary there.
            endpoint.add_to_policy(
                iam.PolicyStatement(
                    sid="PrincipalsOfThisAccount",
                    principals=[iam.AnyPrincipal()],
                    actions=["*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:PrincipalAccount": self.account}},
                )
            )

        # --8<-- [start:s3-endpoint]
        buckets = [bucket.name for bucket in topology.buckets]
        self.s3_endpoint = self.vpc.add_gateway_endpoint(
            "S3",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[private],
        )
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="StorefrontBuckets",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                resources=[f"arn:{self.partition}:s3:::{b}" for b in buckets]
                + [f"arn:{self.partition}:s3:::{b}/*" for b in buckets],
            )
        )
        # Without ECR's layer bucket, image pulls fail with CannotPullContainerError.
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="EcrImageLayers",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject"],
                resources=[f"arn:{self.partition}:s3:::prod-{self.region}-starport-layer-bucket/*"],
            )
        )
        # --8<-- [end:s3-endpoint]

    # --- Hosted zones -------------------------------------------------------------------------

    def _zones(self) -> None:
        settings = self._settings
        self.origin_zone = route53.PublicHostedZone(
            self,
            "OriginZone",
            zone_name=settings.origin_zone,
            comment="Origin names, delegated from the Cloudflare zone by NS records",
        )
        self.origin_zone.apply_removal_policy(RemovalPolicy.RETAIN)
        self.internal_zone = route53.PrivateHostedZone(
            self,
            "InternalZone",
            zone_name=settings.internal_zone,
            vpc=self.vpc,
            comment="Internal names, resolvable only inside the storefront VPC",
        )
        CfnOutput(
            self,
            "OriginZoneNameServers",
            description=f"Create NS records for {settings.origin_zone} in Cloudflare with these",
            value=Fn.join(",", self.origin_zone.hosted_zone_name_servers or []),
        )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
