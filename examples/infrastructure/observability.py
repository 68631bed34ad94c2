"""The observability layer: alarms for the failure modes the pages name, and a dashboard.

Log groups are created, with their retention and the logs key, by the stack that owns the
resource writing to them (services, API access logs, AWS WAF, RDS); the deployment alarms that
roll back an ECS deployment live in the compute stack, because the services name them. This
stack adds the alarms that page a person or open a ticket, each named
``<prefix>-<component>-<metric>``, all notifying one encrypted SNS topic, and one dashboard.

Thresholds are the starting values of the Observability page, tuned from the first months of
data. Route 53 ``HealthCheckStatus`` is published only in us-east-1, so its alarm is not here
(the canary's alarm behind the health check is in the edge stack).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from storefront.topology import Topology

from infrastructure.api import ApiStack
from infrastructure.compute import ComputeStack
from infrastructure.data import DataStack
from infrastructure.identity import IdentityStack
from infrastructure.messaging import MessagingStack
from infrastructure.settings import EnvironmentSettings

MINUTE = Duration.minutes(1)


class ObservabilityStack(Stack):
    """Alarms and a dashboard.

    Attributes:
        topic: The alarm notification topic.
        alarms: Every alarm, by name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        topology: Topology,
        identity: IdentityStack,
        data: DataStack,
        messaging: MessagingStack,
        compute: ComputeStack,
        api: ApiStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        p = settings.resource_prefix
        key = kms.Key(
            self,
            "AlarmsKey",
            alias=f"alias/{p}-alarms",
            description="Alarm notifications topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{self.partition}:cloudwatch:{self.region}:"
                        f"{self.account}:alarm:{p}-*"
                    }
                },
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", topic_name=f"{p}-alarms", master_key=key, enforce_ssl=True
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._api_alarms(api)
        self._compute_alarms(compute)
        self._data_alarms(data)
        self._messaging_alarms(topology, messaging)
        self._edge_alarms()
        self._identity_alarms(identity)
        self._dashboard(api, compute, data, topology)

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        periods: int,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        ),
        description: str,
    ) -> cloudwatch.Alarm:
        full_name = f"{self._settings.resource_prefix}-{name}"
        alarm = cloudwatch.Alarm(
            self,
            "Alarm" + "".join(c for c in name.title() if c.isalnum()),
            alarm_name=full_name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms[full_name] = alarm
        return alarm

    # --8<-- [start:api-alarms]
    def _api_alarms(self, api: ApiStack) -> None:
        dimensions = {"ApiName": f"{self._settings.resource_prefix}-api", "Stage": api.stage.ref}

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=MINUTE,
            )

        # The Average of 5XXError is the error rate.
        self._alarm(
            "api-5XXError",
            metric("5XXError", "Average"),
            threshold=0.01,
            periods=5,
            description="API errors above 1 % for 5 minutes",
        )
        self._alarm(
            "api-IntegrationLatency-p99",
            metric("IntegrationLatency", "p99"),
            threshold=0.8 * self._settings.integration_timeout_ms,
            periods=10,
            description="p99 integration latency near the integration timeout for 10 minutes",
        )

    # --8<-- [end:api-alarms]

    def _compute_alarms(self, compute: ComputeStack) -> None:
        self._alarm(
            "alb-HTTPCode_ELB_502_Count",
            compute.alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_502_COUNT, period=MINUTE),
            threshold=5,
            periods=5,
            description="Keep-alive race or tasks exiting early (ALB page)",
        )
        self._alarm(
            "alb-RejectedConnectionCount",
            compute.alb.metrics.rejected_connection_count(period=MINUTE),
            threshold=0,
            periods=3,
            description="The ALB is refusing connections",
        )
        for resources in compute.services.values():
            service = resources.service
            minimum = (self._settings.api if service.is_api else self._settings.worker).min_tasks
            if resources.target_group is not None:
                self._alarm(
                    f"{service.name}-HealthyHostCount",
                    resources.target_group.metrics.healthy_host_count(
                        period=MINUTE, statistic="Minimum"
                    ),
                    threshold=minimum,
                    periods=5,
                    comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    description="Fewer healthy targets than the minimum task count",
                )
            dims = {"ClusterName": compute.cluster.cluster_name, "ServiceName": service.name}
            self._alarm(
                f"{service.name}-RunningTaskCount",
                cloudwatch.MathExpression(
                    expression="desired - running",
                    using_metrics={
                        name: cloudwatch.Metric(
                            namespace="ECS/ContainerInsights",
                            metric_name=metric,
                            dimensions_map=dims,
                            statistic="Average",
                            period=MINUTE,
                        )
                        for name, metric in (
                            ("desired", "DesiredTaskCount"),
                            ("running", "RunningTaskCount"),
                        )
                    },
                    period=MINUTE,
                    label="Tasks missing",
                ),
                threshold=0,
                periods=5,
                description="RunningTaskCount below DesiredTaskCount for 5 minutes",
            )

    # --8<-- [start:data-alarms]
    def _data_alarms(self, data: DataStack) -> None:
        settings = self._settings
        db = {"DBInstanceIdentifier": data.database.ref}
        free_threshold = 0.15 * settings.database.allocated_storage_gib * 1024**3
        self._alarm(
            "rds-FreeStorageSpace",
            cloudwatch.Metric(
                namespace="AWS/RDS",
                metric_name="FreeStorageSpace",
                dimensions_map=db,
                statistic="Minimum",
                period=Duration.minutes(5),
            ),
            threshold=free_threshold,
            periods=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            description="Free storage below 15 % of the allocated storage",
        )
        self._alarm(
            "rds-proxy-DatabaseConnectionsBorrowLatency",
            cloudwatch.Metric(
                namespace="AWS/RDS",
                metric_name="DatabaseConnectionsBorrowLatency",
                dimensions_map={"ProxyName": data.proxy.ref},
                statistic="p99",
                period=MINUTE,
            ),
            # Microseconds: a second of waiting for a pooled connection.
            threshold=1_000_000,
            periods=5,
            description="Requests wait for pooled connections (connection exhaustion)",
        )
        node = f"{settings.resource_prefix}-cache-001"
        for name, metric, threshold, comparison in (
            (
                "CacheHitRate",
                "CacheHitRate",
                0.8,
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            ),
            ("DatabaseMemoryUsagePercentage", "DatabaseMemoryUsagePercentage", 80, None),
            ("EngineCPUUtilization", "EngineCPUUtilization", 70, None),
        ):
            self._alarm(
                f"cache-{name}",
                cloudwatch.Metric(
                    namespace="AWS/ElastiCache",
                    metric_name=metric,
                    dimensions_map={"CacheClusterId": node},
                    statistic="Average",
                    period=Duration.minutes(5),
                ),
                threshold=threshold,
                periods=3,
                comparison=comparison or cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description=f"ElastiCache {metric} on the primary (Redis page)",
            )
        for replica in range(2, settings.cache.replicas + 2):
            self._alarm(
                f"cache-{replica:03d}-ReplicationLag",
                cloudwatch.Metric(
                    namespace="AWS/ElastiCache",
                    metric_name="ReplicationLag",
                    dimensions_map={
                        "CacheClusterId": f"{settings.resource_prefix}-cache-{replica:03d}"
                    },
                    statistic="Maximum",
                    period=MINUTE,
                ),
                threshold=1,
                periods=5,
                description="A replica lags the primary by more than a second",
            )
        for index, instance in enumerate(data.documentdb_instances[1:], start=2):
            self._alarm(
                f"documentdb-{index}-DBInstanceReplicaLag",
                cloudwatch.Metric(
                    namespace="AWS/DocDB",
                    metric_name="DBInstanceReplicaLag",
                    dimensions_map={"DBInstanceIdentifier": instance.ref},
                    statistic="Maximum",
                    period=MINUTE,
                ),
                threshold=1_000,
                periods=10,
                description="A DocumentDB replica lags (milliseconds)",
            )

    # --8<-- [end:data-alarms]

    # --8<-- [start:messaging-alarms]
    def _messaging_alarms(self, topology: Topology, messaging: MessagingStack) -> None:
        dlqs = [(q.key, q.name) for q in topology.queues if q.dead_letter_queue is None]
        dlqs.append(("events-bus-dlq", messaging.bus_dlq.attr_queue_name))
        for key, name in dlqs:
            # Every DLQ message is a business fact waiting for a person.
            self._alarm(
                f"{key}-ApproximateNumberOfMessagesVisible",
                cloudwatch.Metric(
                    namespace="AWS/SQS",
                    metric_name="ApproximateNumberOfMessagesVisible",
                    dimensions_map={"QueueName": name},
                    statistic="Maximum",
                    period=MINUTE,
                ),
                threshold=0,
                periods=5,
                description="A message is in a dead-letter queue",
            )
        for queue in topology.queues:
            if queue.dead_letter_queue is None:
                continue
            self._alarm(
                f"{queue.key}-ApproximateAgeOfOldestMessage",
                cloudwatch.Metric(
                    namespace="AWS/SQS",
                    metric_name="ApproximateAgeOfOldestMessage",
                    dimensions_map={"QueueName": queue.name},
                    statistic="Maximum",
                    period=MINUTE,
                ),
                threshold=300,
                periods=5,
                description="The consumer is down or too slow (5-minute objective)",
            )
        bus = topology.event_bus.name
        for rule in topology.event_bus.rules:
            for metric, periods in (
                ("InvocationsFailedToBeSentToDlq", 1),
                ("FailedInvocations", 5),
            ):
                self._alarm(
                    f"{rule.key}-rule-{metric}",
                    cloudwatch.Metric(
                        namespace="AWS/Events",
                        metric_name=metric,
                        dimensions_map={"EventBusName": bus, "RuleName": rule.name},
                        statistic="Sum",
                        period=MINUTE,
                    ),
                    threshold=0,
                    periods=periods,
                    description="EventBridge could not deliver (an event may be lost)"
                    if metric == "InvocationsFailedToBeSentToDlq"
                    else "EventBridge delivery to the queue fails",
                )
        self._alarm(
            "notifications-NumberOfNotificationsFailed",
            cloudwatch.Metric(
                namespace="AWS/SNS",
                metric_name="NumberOfNotificationsFailed",
                dimensions_map={"TopicName": topology.topic.name},
                statistic="Sum",
                period=MINUTE,
            ),
            threshold=0,
            periods=15,
            description="SNS cannot deliver to a channel queue",
        )

    # --8<-- [end:messaging-alarms]

    def _edge_alarms(self) -> None:
        p = self._settings.resource_prefix

        def waf(metric: str, rule: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/WAFV2",
                metric_name=metric,
                dimensions_map={"WebACL": f"{p}-api", "Region": self.region, "Rule": rule},
                statistic="Sum",
                period=Duration.minutes(5),
            )

        self._alarm(
            "waf-OriginLock-BlockedShare",
            cloudwatch.MathExpression(
                expression="100 * locked / (allowed + blocked)",
                using_metrics={
                    "locked": waf("BlockedRequests", "OriginLock"),
                    "allowed": waf("AllowedRequests", "ALL"),
                    "blocked": waf("BlockedRequests", "ALL"),
                },
                period=Duration.minutes(5),
                label="Share of requests blocked by OriginLock (%)",
            ),
            threshold=5,
            periods=2,
            description="Someone probes the origin, or a rotation is half done",
        )

    def _identity_alarms(self, identity: IdentityStack) -> None:
        for label, pool in (("customers", identity.customer_pool), ("staff", identity.staff_pool)):
            for metric in ("SignInThrottles", "SignUpThrottles", "TokenRefreshThrottles"):
                self._alarm(
                    f"cognito-{label}-{metric}",
                    cloudwatch.Metric(
                        namespace="AWS/Cognito",
                        metric_name=metric,
                        dimensions_map={"UserPool": pool.ref},
                        statistic="Sum",
                        period=Duration.minutes(5),
                    ),
                    threshold=0,
                    periods=3,
                    description="Cognito throttles sign-ins or sign-ups",
                )

    def _dashboard(
        self,
        api: ApiStack,
        compute: ComputeStack,
        data: DataStack,
        topology: Topology,
    ) -> None:
        p = self._settings.resource_prefix
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=p)
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=6
            )
        )
        api_metric = {"ApiName": f"{p}-api", "Stage": api.stage.ref}
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API Gateway: latency (p99)",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/ApiGateway",
                        metric_name=name,
                        dimensions_map=api_metric,
                        statistic="p99",
                    )
                    for name in ("Latency", "IntegrationLatency")
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API Gateway: error rates",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/ApiGateway",
                        metric_name=name,
                        dimensions_map=api_metric,
                        statistic="Average",
                    )
                    for name in ("4XXError", "5XXError")
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Targets: p99 response time",
                left=[
                    r.target_group.metrics.target_response_time(statistic="p99")
                    for r in compute.services.values()
                    if r.target_group is not None
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Queues: age of the oldest message",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/SQS",
                        metric_name="ApproximateAgeOfOldestMessage",
                        dimensions_map={"QueueName": queue.name},
                        statistic="Maximum",
                    )
                    for queue in topology.queues
                    if queue.dead_letter_queue is not None
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="RDS Proxy: borrowed connections and pinning",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/RDS",
                        metric_name=name,
                        dimensions_map={"ProxyName": data.proxy.ref},
                        statistic="Maximum",
                    )
                    for name in (
                        "DatabaseConnectionsCurrentlyBorrowed",
                        "DatabaseConnectionsCurrentlySessionPinned",
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="EventBridge: matched events per rule",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/Events",
                        metric_name="MatchedEvents",
                        dimensions_map={
                            "EventBusName": topology.event_bus.name,
                            "RuleName": rule.name,
                        },
                        statistic="Sum",
                    )
                    for rule in topology.event_bus.rules
                ],
                width=12,
            ),
        )
