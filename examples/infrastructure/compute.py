"""The compute layer: the ECS cluster, the internal ALB and one Fargate service per service.

For every entry of :data:`infrastructure.services.SERVICES` this stack creates a log group, a
task role and an execution role of its own, a task definition with the application container
and the AWS Distro for OpenTelemetry Collector sidecar, an ECS service with the deployment
circuit breaker and rollback, and its autoscaling: on requests per target and CPU for the API
services, on queue backlog per task and the age of the oldest message for the workers. The API
services get an ``ip`` target group and a path rule on the internal ALB's HTTPS listener.

The task roles are written out statement by statement from the service table: each names the
actions the service's code calls and the resources it calls them on, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from constructs import Construct
from storefront.topology import Topology

from infrastructure.data import DataStack
from infrastructure.identity import IdentityStack
from infrastructure.messaging import MessagingStack
from infrastructure.network import NetworkStack
from infrastructure.registry import RegistryStack
from infrastructure.runtime import retention
from infrastructure.services import CONTAINER_PORT, HEALTH_PATH, SERVICES, Service
from infrastructure.settings import EnvironmentSettings

# The listener's TLS policy. The console defaults to it, but CloudFormation and the CDK default
# to ELBSecurityPolicy-2016-08, so it is named explicitly (ALB page).
ALB_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
# --8<-- [start:collector-config]
COLLECTOR_CONFIG = """\
extensions:
  sigv4auth:
    region: ${env:AWS_REGION}
    service: xray
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:4318
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 100
    spike_limit_mib: 20
  batch: {}
exporters:
  otlphttp/traces:
    traces_endpoint: https://xray.${env:AWS_REGION}.amazonaws.com/v1/traces
    timeout: 5s
    auth:
      authenticator: sigv4auth
  awsemf:
    region: ${env:AWS_REGION}
    log_group_name: ${env:METRICS_LOG_GROUP}
    namespace: Storefront
service:
  extensions: [sigv4auth]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlphttp/traces]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [awsemf]
"""
# --8<-- [end:collector-config]


@dataclass
class ServiceResources:
    """What the compute stack made for one service.

    Attributes:
        service: The service's table entry.
        fargate: The ECS service.
        task_definition: Its task definition.
        task_role: Its task role.
        execution_role: Its execution role.
        log_group: Its log group.
        target_group: Its target group (API services), else None.
    """

    service: Service
    fargate: ecs.FargateService
    task_definition: ecs.FargateTaskDefinition
    task_role: iam.Role
    execution_role: iam.Role
    log_group: logs.LogGroup
    target_group: elbv2.ApplicationTargetGroup | None


class ComputeStack(Stack):
    """Cluster, ALB, task definitions, services and their scaling.

    Attributes:
        cluster: The ECS cluster.
        alb: The internal Application Load Balancer.
        listener: Its HTTPS listener.
        services: What was made for each service, by name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        topology: Topology,
        network: NetworkStack,
        registry: RegistryStack,
        identity: IdentityStack,
        data: DataStack,
        messaging: MessagingStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._topology = topology
        self._network = network
        self._registry = registry
        self._identity = identity
        self._data = data
        self._messaging = messaging
        self._cluster()
        self._load_balancer()
        self.collector_config = ssm.StringParameter(
            self,
            "CollectorConfig",
            parameter_name=f"/{settings.resource_prefix}/otel-collector/config",
            description="AWS Distro for OpenTelemetry Collector configuration (AOT_CONFIG_CONTENT)",
            string_value=COLLECTOR_CONFIG,
            tier=ssm.ParameterTier.STANDARD,
        )
        self.services: dict[str, ServiceResources] = {}
        for priority, service in enumerate(SERVICES, start=1):
            self.services[service.name] = self._service(service, priority)

    # --- Cluster ------------------------------------------------------------------------------

    def _cluster(self) -> None:
        p = self._settings.resource_prefix
        storage_key = kms.Key(
            self,
            "EphemeralStorageKey",
            alias=f"alias/{p}-fargate-storage",
            description="Fargate ephemeral storage of the storefront cluster",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Fargate derives the data keys of each task's storage from this key.
        storage_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FargateEphemeralStorage",
                principals=[iam.ServicePrincipal("fargate.amazonaws.com")],
                actions=["kms:GenerateDataKeyWithoutPlaintext"],
                resources=["*"],
                conditions={"StringEquals": {"kms:EncryptionContext:aws:ecs:clusterName": p}},
            )
        )
        storage_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FargateEphemeralStorageGrants",
                principals=[iam.ServicePrincipal("fargate.amazonaws.com")],
                actions=["kms:CreateGrant"],
                resources=["*"],
                conditions={
                    "StringEquals": {"kms:EncryptionContext:aws:ecs:clusterName": p},
                    "ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt"]},
                },
            )
        )
        exec_logs = logs.LogGroup(
            self,
            "ExecLogs",
            log_group_name=f"/ecs/{p}/exec",
            retention=retention(self._settings.service_log_retention_days),
            encryption_key=self._network.logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # --8<-- [start:cluster]
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=p,
            vpc=self._network.vpc,
            enable_fargate_capacity_providers=True,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            managed_storage_configuration=ecs.ManagedStorageConfiguration(
                fargate_ephemeral_storage_kms_key=storage_key
            ),
            # Off in every service; when switched on for break-glass, sessions are encrypted
            # and logged to an encrypted log group.
            execute_command_configuration=ecs.ExecuteCommandConfiguration(
                kms_key=self._network.logs_key,
                logging=ecs.ExecuteCommandLogging.OVERRIDE,
                log_configuration=ecs.ExecuteCommandLogConfiguration(
                    cloud_watch_log_group=exec_logs, cloud_watch_encryption_enabled=True
                ),
            ),
        )
        # --8<-- [end:cluster]

    # --- The internal ALB ---------------------------------------------------------------------

    def _load_balancer(self) -> None:
        settings, network = self._settings, self._network
        p = settings.resource_prefix
        access_logs = s3.Bucket(
            self,
            "AlbAccessLogs",
            bucket_name=f"{p}-alb-logs",
            # ALB access logs support SSE-S3 only.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(90),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        certificate = acm.Certificate(
            self,
            "AlbCertificate",
            domain_name=settings.alb_domain,
            validation=acm.CertificateValidation.from_dns(network.origin_zone),
        )
        # --8<-- [start:alb]
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            load_balancer_name=f"{p}-internal",
            vpc=network.vpc,
            internet_facing=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=network.alb_sg,
            deletion_protection=True,
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(60),
        )
        self.alb.log_access_logs(access_logs, prefix=p)
        self.listener = self.alb.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            open=False,
            # Unknown paths fail closed instead of reaching a default service.
            default_action=elbv2.ListenerAction.fixed_response(
                404, content_type="application/json", message_body='{"message":"Not Found"}'
            ),
        )
        listener = self.listener.node.default_child
        listener.add_property_override("SslPolicy", ALB_SSL_POLICY)  # type: ignore[union-attr]
        # --8<-- [end:alb]

    def _target_group(self, service: Service, priority: int) -> elbv2.ApplicationTargetGroup:
        # --8<-- [start:target-group]
        target_group = elbv2.ApplicationTargetGroup(
            self,
            f"Targets{_pascal(service.name)}",
            vpc=self._network.vpc,
            target_type=elbv2.TargetType.IP,
            protocol=elbv2.ApplicationProtocol.HTTP,
            protocol_version=elbv2.ApplicationProtocolVersion.HTTP1,
            port=CONTAINER_PORT,
            health_check=elbv2.HealthCheck(
                path=HEALTH_PATH,
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=2,
                healthy_http_codes="200",
            ),
            # Longer than any request the API Gateway integration timeout allows.
            deregistration_delay=Duration.seconds(30),
            slow_start=Duration.seconds(30),
            load_balancing_algorithm_type=elbv2.TargetGroupLoadBalancingAlgorithmType.ROUND_ROBIN,
        )
        self.listener.add_target_groups(
            f"Route{_pascal(service.name)}",
            priority=priority,
            conditions=[elbv2.ListenerCondition.path_patterns([service.path, f"{service.path}/*"])],
            target_groups=[target_group],
        )
        # --8<-- [end:target-group]
        return target_group

    # --- Services -----------------------------------------------------------------------------

    def _service(self, service: Service, priority: int) -> ServiceResources:
        settings = self._settings
        p = settings.resource_prefix
        size = settings.api if service.is_api else settings.worker
        # --8<-- [start:service-logs]
        log_group = logs.LogGroup(
            self,
            f"Logs{_pascal(service.name)}",
            log_group_name=f"/ecs/{p}/{service.name}",
            retention=retention(settings.service_log_retention_days),
            encryption_key=self._network.logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        metrics_log_group = logs.LogGroup(
            self,
            f"Metrics{_pascal(service.name)}",
            log_group_name=f"/ecs/{p}/{service.name}/metrics",
            retention=retention(settings.service_log_retention_days),
            encryption_key=self._network.logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # --8<-- [end:service-logs]
        task_role = self._task_role(service, metrics_log_group)
        execution_role = iam.Role(
            self,
            f"ExecutionRole{_pascal(service.name)}",
            assumed_by=self._ecs_tasks_principal(),
            description=f"ECS agent for {service.name}: image pull, logs, its own secrets",
        )
        # --8<-- [start:task-definition]
        task_definition = ecs.FargateTaskDefinition(
            self,
            f"Task{_pascal(service.name)}",
            family=f"{p}-{service.name}",
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
                # Graviton for the APIs; Fargate Spot workers run X86_64 (ECS Fargate page).
                cpu_architecture=ecs.CpuArchitecture.ARM64
                if service.is_api
                else ecs.CpuArchitecture.X86_64,
            ),
            task_role=task_role,
            execution_role=execution_role,
            volumes=[ecs.Volume(name="tmp")],
        )
        collector = task_definition.add_container(
            "otel-collector",
            image=ecs.ContainerImage.from_registry(settings.collector_image),
            essential=True,
            cpu=128,
            memory_reservation_mib=128,
            readonly_root_filesystem=True,
            environment={
                "AWS_REGION": self.region,
                "METRICS_LOG_GROUP": metrics_log_group.log_group_name,
            },
            secrets={"AOT_CONFIG_CONTENT": ecs.Secret.from_ssm_parameter(self.collector_config)},
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="collector",
                log_group=log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
        )
        app = task_definition.add_container(
            "app",
            image=ecs.ContainerImage.from_ecr_repository(
                self._registry.repositories[service.name], settings.image_tag
            ),
            essential=True,
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(service.stop_timeout_s),
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, name="http")]
            if service.is_api
            else None,
            environment=self._environment(service),
            secrets=self._secrets(service, execution_role),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="app",
                log_group=log_group,
                # A blocked stdout would stall the event loop; drop lines instead.
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
        )
        app.add_mount_points(
            ecs.MountPoint(
                container_path="/tmp",  # noqa: S108 - the task's own empty volume, not a shared /tmp
                source_volume="tmp",
                read_only=False,
            )
        )
        app.add_container_dependencies(
            ecs.ContainerDependency(
                container=collector, condition=ecs.ContainerDependencyCondition.START
            )
        )
        # --8<-- [end:task-definition]

        target_group = self._target_group(service, priority) if service.is_api else None
        alarms = self._deployment_alarms(service, target_group) if target_group else []
        # --8<-- [start:service]
        fargate = ecs.FargateService(
            self,
            f"Service{_pascal(service.name)}",
            service_name=service.name,
            cluster=self.cluster,
            task_definition=task_definition,
            desired_count=size.min_tasks,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_alarms=ecs.DeploymentAlarmConfig(
                alarm_names=[alarm.alarm_name for alarm in alarms],
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
            )
            if alarms
            else None,
            health_check_grace_period=Duration.seconds(60) if service.is_api else None,
            platform_version=ecs.FargatePlatformVersion.LATEST,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self._network.task_sgs[service.name]],
            assign_public_ip=False,
            enable_execute_command=False,
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)
            ]
            if service.is_api
            else [
                # One on-demand task per worker; Spot for the rest.
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=1),
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=3),
            ],
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        # --8<-- [end:service]
        if target_group is not None:
            target_group.add_target(
                fargate.load_balancer_target(container_name="app", container_port=CONTAINER_PORT)
            )
            self._api_scaling(service, fargate, target_group)
        else:
            self._worker_scaling(service, fargate)
        return ServiceResources(
            service, fargate, task_definition, task_role, execution_role, log_group, target_group
        )

    def _ecs_tasks_principal(self) -> iam.IPrincipal:
        return iam.ServicePrincipal(
            "ecs-tasks.amazonaws.com",
            conditions={
                "StringEquals": {"aws:SourceAccount": self.account},
                "ArnLike": {
                    "aws:SourceArn": f"arn:{self.partition}:ecs:{self.region}:{self.account}:*"
                },
            },
        )

    # --8<-- [start:environment]
    def _environment(self, service: Service) -> dict[str, str]:
        settings, topology = self._settings, self._topology
        environment = {
            "STOREFRONT_SERVICE_NAME": service.name,
            "STOREFRONT_RESOURCE_PREFIX": settings.resource_prefix,
            "STOREFRONT_EVENT_BUS_NAME": topology.event_bus.name,
            "STOREFRONT_COGNITO_USER_POOL_ID": self._identity.customer_pool.ref,
            "STOREFRONT_STAFF_USER_POOL_ID": self._identity.staff_pool.ref,
            "STOREFRONT_COGNITO_CLIENT_IDS": ",".join(
                client.ref for client in self._identity.clients.values()
            ),
            "STOREFRONT_OTLP_ENDPOINT": "http://localhost:4318",
            "STOREFRONT_LOG_LEVEL": "INFO",
            "LOG_LEVEL": "info",
            "PORT": str(CONTAINER_PORT),
            "OTEL_SERVICE_NAME": service.name,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318",
            "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment.name={settings.name}",
        }
        if service.database_user:
            environment["STOREFRONT_DATABASE_URL"] = (
                f"postgresql+psycopg://{service.database_user}@"
                f"{self._data.proxy.attr_endpoint}:5432/storefront?sslmode=verify-full"
            )
        if service.cache_user:
            environment["STOREFRONT_REDIS_URL"] = (
                f"rediss://{service.name}@{self._data.cache.attr_primary_end_point_address}:6379/0"
            )
        if service.event_store_user:
            environment["STOREFRONT_DOCUMENTS_HOST"] = self._data.documentdb.attr_endpoint
        for key in service.consumes:
            environment[f"STOREFRONT_QUEUE_{key.upper().replace('-', '_')}_URL"] = (
                self._messaging.queues[key].ref
            )
        if service.publishes_notifications:
            environment["STOREFRONT_NOTIFICATIONS_TOPIC_ARN"] = self._messaging.topic.ref
        if service.receipts_prefix:
            environment["STOREFRONT_RECEIPTS_BUCKET"] = topology.bucket("receipts").name
        return environment

    # --8<-- [end:environment]

    def _secrets(self, service: Service, execution_role: iam.Role) -> dict[str, ecs.Secret] | None:
        """The secrets ECS injects at start, each readable by this service's execution role only.

        The secrets are referenced by ARN, so that the grant lands in the execution role's policy
        (here) rather than in the data stack's key policies; the execution role may decrypt with
        the secrets' key only through Secrets Manager.
        """
        secrets: dict[str, ecs.Secret] = {}
        keys: list[str] = []

        def imported(construct_id: str, secret: secretsmanager.ISecret) -> secretsmanager.ISecret:
            return secretsmanager.Secret.from_secret_complete_arn(
                self, f"{construct_id}{_pascal(service.name)}", secret.secret_arn
            )

        if service.cache_user:
            secret = imported("CacheSecret", self._data.cache_secrets[service.name])
            secrets["STOREFRONT_REDIS_PASSWORD"] = ecs.Secret.from_secrets_manager(
                secret, "password"
            )
            keys.append(self._data.cache_key.key_arn)
        if service.event_store_user:
            secret = imported("EventStoreSecret", self._data.event_store_secrets[service.name])
            secrets["STOREFRONT_DOCUMENTS_USERNAME"] = ecs.Secret.from_secrets_manager(
                secret, "username"
            )
            secrets["STOREFRONT_DOCUMENTS_PASSWORD"] = ecs.Secret.from_secrets_manager(
                secret, "password"
            )
            keys.append(self._data.documentdb_key.key_arn)
        if keys:
            execution_role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptItsSecrets",
                    actions=["kms:Decrypt"],
                    resources=keys,
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{self.region}.amazonaws.com"
                        }
                    },
                )
            )
        return secrets or None

    # --8<-- [start:task-role]
    def _task_role(self, service: Service, metrics_log_group: logs.LogGroup) -> iam.Role:
        """The service's task role: the calls its code and its collector make, on its resources."""
        role = iam.Role(
            self,
            f"TaskRole{_pascal(service.name)}",
            assumed_by=self._ecs_tasks_principal(),
            description=f"Task role of the {service.name} service",
        )
        region, account, partition = self.region, self.account, self.partition
        statements = [
            # The collector sidecar: traces to the X-Ray OTLP endpoint (these X-Ray actions
            # take no resource), metrics as EMF records into the service's metrics log group.
            iam.PolicyStatement(
                sid="CollectorTraces",
                actions=["xray:PutSpans", "xray:PutSpansForIndexing"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="CollectorMetrics",
                actions=["logs:PutLogEvents", "logs:CreateLogStream", "logs:DescribeLogStreams"],
                resources=[metrics_log_group.log_group_arn, f"{metrics_log_group.log_group_arn}:*"],
            ),
        ]
        if service.database_user:
            statements.append(
                iam.PolicyStatement(
                    sid="ConnectAsItsDatabaseRole",
                    actions=["rds-db:connect"],
                    resources=[
                        f"arn:{partition}:rds-db:{region}:{account}:dbuser:"
                        f"{self._data.proxy_resource_id}/{service.database_user}"
                    ],
                )
            )
        if service.consumes:
            statements.append(
                iam.PolicyStatement(
                    sid="ConsumeItsOwnQueues",
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                    ],
                    resources=[self._messaging.queues[key].attr_arn for key in service.consumes],
                )
            )
            statements.append(
                iam.PolicyStatement(
                    sid="DecryptMessages",
                    actions=["kms:Decrypt"],
                    resources=[self._messaging.key.key_arn],
                )
            )
        if service.event_source:
            statements.append(
                iam.PolicyStatement(
                    sid="PublishItsOwnSource",
                    actions=["events:PutEvents"],
                    resources=[self._messaging.bus.attr_arn],
                    conditions={"StringEquals": {"events:source": service.event_source}},
                )
            )
        if service.publishes_notifications:
            statements.append(
                iam.PolicyStatement(
                    sid="PublishNotifications",
                    actions=["sns:Publish"],
                    resources=[self._messaging.topic.ref],
                )
            )
            statements.append(
                iam.PolicyStatement(
                    sid="EncryptNotifications",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[self._messaging.key.key_arn],
                )
            )
        if service.receipts_prefix:
            bucket = self._topology.bucket("receipts").name
            # Single-part PUTs of SSE-KMS objects: kms:GenerateDataKey only (kms:Decrypt is
            # for reads and multipart uploads, which the service does not make).
            statements.append(
                iam.PolicyStatement(
                    sid="WriteItsReceipts",
                    actions=["s3:PutObject"],
                    resources=[f"arn:{partition}:s3:::{bucket}/{service.receipts_prefix}*"],
                )
            )
            statements.append(
                iam.PolicyStatement(
                    sid="ReceiptsKey",
                    actions=["kms:GenerateDataKey"],
                    resources=[self._data.bucket_keys["receipts"].key_arn],
                )
            )
        if service.staff_admin:
            statements.append(
                iam.PolicyStatement(
                    sid="AdministerStaffUsers",
                    actions=[
                        "cognito-idp:AdminCreateUser",
                        "cognito-idp:AdminAddUserToGroup",
                        "cognito-idp:AdminRemoveUserFromGroup",
                        "cognito-idp:AdminDisableUser",
                        "cognito-idp:AdminGetUser",
                        "cognito-idp:ListUsers",
                    ],
                    resources=[self._identity.staff_pool.attr_arn],
                )
            )
        for statement in statements:
            role.add_to_policy(statement)
        return role

    # --8<-- [end:task-role]

    # --- Deployment alarms and scaling --------------------------------------------------------

    def _deployment_alarms(
        self, service: Service, target_group: elbv2.ApplicationTargetGroup
    ) -> list[cloudwatch.Alarm]:
        p = self._settings.resource_prefix
        metrics = target_group.metrics
        # --8<-- [start:deployment-alarms]
        errors = cloudwatch.Alarm(
            self,
            f"Target5xx{_pascal(service.name)}",
            alarm_name=f"{p}-{service.name}-HTTPCode_Target_5XX_Count",
            metric=metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=Duration.minutes(1)
            ),
            threshold=10,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        latency = cloudwatch.Alarm(
            self,
            f"TargetLatency{_pascal(service.name)}",
            alarm_name=f"{p}-{service.name}-TargetResponseTime-p99",
            metric=metrics.target_response_time(statistic="p99", period=Duration.minutes(1)),
            threshold=2,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # --8<-- [end:deployment-alarms]
        return [errors, latency]

    def _api_scaling(
        self,
        service: Service,
        fargate: ecs.FargateService,
        target_group: elbv2.ApplicationTargetGroup,
    ) -> None:
        size = self._settings.api
        # --8<-- [start:api-scaling]
        scaling = fargate.auto_scale_task_count(
            min_capacity=size.min_tasks, max_capacity=size.max_tasks
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=self._settings.requests_per_target,
            target_group=target_group,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=60,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )
        # --8<-- [end:api-scaling]

    def _worker_scaling(self, service: Service, fargate: ecs.FargateService) -> None:
        settings = self._settings
        queues = [self._messaging.queues[key] for key in service.consumes]
        target = appscaling.ScalableTarget(
            self,
            f"Scaling{_pascal(service.name)}",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{self.cluster.cluster_name}/{fargate.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=settings.worker.min_tasks,
            max_capacity=settings.worker.max_tasks,
        )
        if not queues:
            # The outbox relays have no queue: they poll their outbox; scale them on CPU.
            target.scale_to_track_metric(
                "Cpu",
                target_value=60,
                predefined_metric=appscaling.PredefinedMetric.ECS_SERVICE_AVERAGE_CPU_UTILIZATION,
                scale_in_cooldown=Duration.seconds(300),
            )
            return
        # --8<-- [start:worker-scaling]
        # Target tracking on the backlog per task: visible messages / running tasks.
        visible = [
            {
                "id": f"visible{index}",
                "returnData": False,
                "metricStat": {
                    "metric": {
                        "namespace": "AWS/SQS",
                        "metricName": "ApproximateNumberOfMessagesVisible",
                        "dimensions": [{"name": "QueueName", "value": queue.attr_queue_name}],
                    },
                    "stat": "Sum",
                },
            }
            for index, queue in enumerate(queues)
        ]
        running = {
            "id": "running",
            "returnData": False,
            "metricStat": {
                "metric": {
                    "namespace": "ECS/ContainerInsights",
                    "metricName": "RunningTaskCount",
                    "dimensions": [
                        {"name": "ClusterName", "value": self.cluster.cluster_name},
                        {"name": "ServiceName", "value": fargate.service_name},
                    ],
                },
                "stat": "Average",
            },
        }
        backlog = " + ".join(m["id"] for m in visible)
        appscaling.CfnScalingPolicy(
            self,
            f"Backlog{_pascal(service.name)}",
            policy_name=f"{settings.resource_prefix}-{service.name}-backlog-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.scalable_target_id,
            target_tracking_scaling_policy_configuration={
                "targetValue": settings.worker_backlog_per_task,
                "scaleInCooldown": 300,
                "scaleOutCooldown": 60,
                "customizedMetricSpecification": {
                    "metrics": [
                        *visible,
                        running,
                        {
                            "id": "backlogPerTask",
                            "expression": f"({backlog}) / running",
                            "label": "Backlog per task",
                            "returnData": True,
                        },
                    ]
                },
            },
        )
        # Step scaling on the age of the oldest message: adds tasks fast when consumers stall.
        age = cloudwatch.MathExpression(
            expression="MAX([" + ", ".join(f"age{i}" for i in range(len(queues))) + "])",
            using_metrics={
                f"age{i}": cloudwatch.Metric(
                    namespace="AWS/SQS",
                    metric_name="ApproximateAgeOfOldestMessage",
                    dimensions_map={"QueueName": queue.attr_queue_name},
                    statistic="Maximum",
                    period=Duration.minutes(1),
                )
                for i, queue in enumerate(queues)
            },
            label="Age of the oldest message",
            period=Duration.minutes(1),
        )
        target.scale_on_metric(
            "OldestMessageAge",
            metric=age,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.seconds(60),
            scaling_steps=[
                appscaling.ScalingInterval(upper=300, change=0),
                appscaling.ScalingInterval(lower=300, change=1),
                appscaling.ScalingInterval(lower=900, change=3),
            ],
        )
        # --8<-- [end:worker-scaling]


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
